"""Video files through PyAV (FFmpeg's libraries, as ComfyUI uses them): the VIDEO value, decoding a
file into one, and encoding one into a container.

A VIDEO is its frames (an IMAGE batch, float [frames, H, W, 3] in 0..1), its frame rate, and
optional sound in ComfyUI's AUDIO shape ({"waveform": float [B, channels, samples], "sample_rate"}).
torch and av are imported where used: the upload checks and the workflow reader call is_video and
read_metadata without torch.
"""

from __future__ import annotations

import io
import itertools
import os
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

LAYOUTS = {1: "mono", 2: "stereo"}  # the channel counts the writer encodes
AUDIO_CHUNK = 8192  # samples handed to the encoder at a time (it re-cuts them to its frame size)


@dataclass
class Video:
    images: Any  # IMAGE batch [frames, H, W, 3], float 0..1
    fps: Fraction
    audio: dict | None = None  # AUDIO: {"waveform": [B, channels, samples], "sample_rate": int}
    source: Any = None  # the file it was decoded from (a path or bytes): SaveVideo copies its streams


class VideoFileError(ValueError):
    """A file that is not a video FFmpeg can read, or one that can't be written as asked."""


def is_video(raw: bytes) -> bool:
    """Whether bytes start like a video container: MP4/MOV (an ISO box), Matroska/WebM (EBML) or
    AVI. (GIFs are pictures here: Pillow's to read, LoadVideo's to play.)"""
    head = raw[:12]
    return (head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free") or head[:4] == b"\x1aE\xdf\xa3"
            or (head[:4] == b"RIFF" and head[8:12] == b"AVI "))


def frame_rate(fps: float | Fraction) -> Fraction:
    """A frame rate as the container's time base gets it: to the thousandth, as ComfyUI rounds it
    (a float's thousands in float arithmetic, a Fraction's exactly: 1.0635 is 1064/1000 as a float,
    1063/1000 as the Fraction of that float, whose exact value is just below 1.0635)."""
    return Fraction(round(fps * 1000), 1000)


def _readable(source):
    """What av.open takes for a source given as a path or as the file's bytes."""
    return io.BytesIO(source) if isinstance(source, bytes) else str(source)


def read_video(source) -> Video:
    """Decode a file (a path or bytes) into a Video: every frame as RGB, the last audio stream (if
    any) as float samples at its own rate and channel count, both in one pass over the file."""
    import numpy as np
    import torch

    with video_frames(source) as (facts, frames, sound):
        frames = [frame.to_ndarray(format="rgb24") for frame in frames]
        audio = sound()
    if not frames:
        raise VideoFileError("the video has no frames")
    images = torch.from_numpy(np.stack(frames)).float() / 255.0
    return Video(images, facts.fps, audio, source)


@dataclass
class VideoFacts:
    fps: Fraction
    width: int
    height: int
    frames: int  # as the container states it, else as its duration implies (0: unknown)
    duration: float  # seconds, as the container states it (0: unknown)
    pix_fmt: str  # the decoded pictures' own pixel format (yuva420p: with alpha)


def _open(source):
    import av

    try:
        return av.open(_readable(source))
    except (av.FFmpegError, OSError) as e:
        raise VideoFileError(f"not a video FFmpeg can read: {e}") from None


class _Sound:
    """An audio stream's samples gathered as its packets are read: float planes at its own rate."""

    def __init__(self, stream):
        import av

        self.stream, self.parts, self.done = stream, [], False
        self.resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=stream.rate)

    def add(self, packet) -> None:
        for frame in packet.decode():
            self.parts.extend(part.to_ndarray() for part in self.resampler.resample(frame))

    def audio(self) -> dict | None:
        """AUDIO ({"waveform": [1, channels, samples], "sample_rate"}); None where it held none."""
        import numpy as np
        import torch

        if not self.done:
            self.parts.extend(part.to_ndarray() for part in self.resampler.resample(None))
            self.done = True
        if not self.parts:
            return None
        waveform = torch.from_numpy(np.concatenate(self.parts, axis=1)).float().unsqueeze(0)
        return {"waveform": waveform, "sample_rate": int(self.stream.rate)}


@contextmanager
def video_frames(source, filters=(), pix_fmt: str = "rgb24"):
    """The first video stream's facts, its frames decoded one by one as they are read (a reader that
    stops early, at a frame cap, decodes no further), and a `sound()` that gives the last audio
    stream as AUDIO (None without one; read in the same pass, the rest of it when called). The frames
    are PyAV's: `to_ndarray(format=pix_fmt)` the ones kept (uint8 RGB [H, W, 3] by default).
    filters: FFmpeg video filters as (name, arguments) pairs, or a function of the facts giving them,
    chained as `-vf` chains them (fps, crop, scale, trim ...), the frames passed through them; another
    pix_fmt is converted by FFmpeg's format filter, as its command line's -pix_fmt does."""
    import av

    with _open(source) as container:
        if not container.streams.video:
            raise VideoFileError("the file has no video stream")
        stream = container.streams.video[0]
        fps = Fraction(stream.average_rate or stream.guessed_rate or Fraction(1))
        duration = container.duration / av.time_base if container.duration else 0.0
        count = stream.frames or round(duration * fps)
        facts = VideoFacts(fps, stream.codec_context.width, stream.codec_context.height, int(count), duration,
                           stream.codec_context.pix_fmt or "")
        chain = filters(facts) if callable(filters) else filters
        sound = _Sound(container.streams.audio[-1]) if container.streams.audio else None
        read = [False]  # whether the demuxer reached the end

        def demuxed(*streams):
            try:
                for packet in container.demux(*streams):
                    if sound is not None and packet.stream is sound.stream:
                        sound.add(packet)
                    else:
                        yield from packet.decode()
                read[0] = True
            except av.FFmpegError as e:
                raise VideoFileError(f"the video could not be decoded: {e}") from None

        def frames():
            decoded = demuxed(stream, *([sound.stream] if sound else []))
            if not chain and pix_fmt == "rgb24":  # else through FFmpeg's format filter, as its -pix_fmt converts
                yield from decoded
                return
            graph = av.filter.Graph()
            nodes = [graph.add_buffer(template=stream)]
            for name, arguments in (*chain, ("format", pix_fmt)):
                nodes.append(graph.add(name, arguments))
                nodes[-2].link_to(nodes[-1])
            nodes.append(graph.add("buffersink"))
            nodes[-2].link_to(nodes[-1])
            try:
                graph.configure()
            except (av.FFmpegError, ValueError) as e:
                raise VideoFileError(f"the filters {chain} could not be set up: {e}") from None
            for frame in itertools.chain(decoded, [None]):  # None: the end, flushing the filters
                nodes[0].push(frame)
                while True:
                    try:
                        yield nodes[-1].pull()
                    except (av.error.BlockingIOError, av.error.EOFError):
                        break

        def read_sound_too():
            if sound is None:
                return None
            if not read[0]:  # the frames were read no further than needed: the rest of the sound
                for _ in demuxed(sound.stream):
                    pass
            return sound.audio()

        yield facts, frames(), read_sound_too


def read_sound(source) -> dict | None:
    """The last audio stream of a file (as ComfyUI takes it) as AUDIO, float samples at its own rate
    and channel count; None without one."""
    import av

    with _open(source) as container:
        if not container.streams.audio:
            return None
        sound = _Sound(container.streams.audio[-1])
        try:
            for packet in container.demux(sound.stream):
                sound.add(packet)
        except av.FFmpegError as e:
            raise VideoFileError(f"the video could not be decoded: {e}") from None
        return sound.audio()


def source_streams(source) -> tuple[list[str], str] | None:
    """A video file's container format names (FFmpeg's list, as "mov,mp4,m4a,...") and its first
    video stream's codec; None where it can't be read (any more)."""
    import av

    try:
        with av.open(_readable(source)) as container:
            if not container.streams.video:
                return None
            return container.format.name.split(","), container.streams.video[0].codec_context.name
    except (av.FFmpegError, OSError):
        return None


def copy_streams(path, source, container_format: str, metadata: dict[str, str] | None = None) -> None:
    """Write the pictures, sound and subtitle streams of the file `source` into `path` unchanged (no
    decoding, no generation loss), as ComfyUI saves a loaded video: its tags first, `metadata` over them."""
    import av

    flags = {"movflags": "use_metadata_tags"} if container_format == "mp4" else {}
    target = path if hasattr(path, "write") else str(path)
    try:
        with av.open(_readable(source)) as container, \
                av.open(target, mode="w", format=container_format, options=flags) as output:
            for key, value in {**container.metadata, **(metadata or {})}.items():
                output.metadata[key] = value
            copies = {stream: output.add_stream_from_template(stream, opaque=True) for stream in container.streams
                      if stream.type in ("video", "audio", "subtitle")}
            _mux_copies(container, output, copies)
    except (av.FFmpegError, ValueError, OSError) as e:  # ValueError: a codec the container can't hold
        raise VideoFileError(f"the loaded video's streams could not be copied into {container_format}: {e}") from None


def add_sound(path, pictures, container_format: str, audio: dict, audio_codec: str,
              metadata: dict[str, str] | None = None) -> None:
    """Write the first video stream of the file `pictures` into `path` unchanged (its packets copied:
    no second encoding) with `audio` encoded as its sound and `metadata` as its tags, as
    VideoHelperSuite muxes the sound onto its pictures-only file."""
    import av

    flags = {"movflags": "use_metadata_tags"} if container_format == "mp4" else {}
    try:
        with av.open(str(pictures)) as container, \
                av.open(str(path), mode="w", format=container_format, options=flags) as output:
            for key, value in (metadata or {}).items():
                output.metadata[key] = value
            video = container.streams.video[0]
            copies = {video: output.add_stream_from_template(video, opaque=True)}
            copies[video].codec_context.codec_tag = video.codec_context.codec_tag  # else H.265's hvc1 becomes hev1
            sound = _add_audio(output, audio, audio_codec)
            _mux_copies(container, output, copies)
            _encode_audio(output, sound, audio)
    except (av.FFmpegError, OSError) as e:
        raise VideoFileError(f"the sound could not be added to {pictures}: {e}") from None


def _mux_copies(container, output, copies: dict) -> None:
    """Mux the packets of the streams `copies` maps ({container's stream: output's}) unchanged."""
    for packet in container.demux(*copies):
        if packet.dts is not None:  # the demuxer's end-of-stream packets carry nothing
            packet.stream = copies[packet.stream]
            output.mux(packet)


def read_metadata(raw: bytes) -> dict[str, str]:
    """The container's metadata tags, names in lower case (Matroska reads them back upper-cased);
    {} when it can't be read."""
    import av

    try:
        with av.open(io.BytesIO(raw)) as container:
            return {key.lower(): value for key, value in container.metadata.items()}
    except (av.FFmpegError, OSError):
        return {}


@contextmanager
def _scheduling_kept():
    """Put the calling thread's scheduling policy back after the block. SVT-AV1 (FFmpeg's
    libsvtav1) raises the thread that opens it to SCHED_FIFO priority 99 where it may (as root, in
    a container): a server or worker thread left so starves the machine, and every process it
    starts after inherits the policy (Chromium under it livelocked this project's test VM)."""
    if not hasattr(os, "sched_getscheduler"):  # not on macOS / Windows
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) != (policy, param.sched_priority):
            os.sched_setscheduler(0, policy, param)


def write_video(path, video: Video, container_format: str, codec: str, pix_fmt: str = "yuv420p",
                options: dict | None = None, metadata: dict[str, str] | None = None, audio_codec: str = "aac",
                bt709: bool = False, depth: int = 8, codec_tag: str | None = None,
                order: list[int] | None = None) -> None:
    """Encode a Video into `path` (any name: the container format is given; or a writable binary
    file). Frames are cut to 8 bits as ComfyUI's video savers do (255 x value, clamped, truncated),
    or to 16 (65535 x value) with depth=16; sound is encoded when the Video has some (resampled
    where the codec takes another sample format or rate). bt709: the pictures are turned into YUV
    with the BT.709 matrix in TV range and tagged so (as VideoHelperSuite's formats write them),
    rather than FFmpeg's default BT.601 conversion. codec_tag: the stream's four-letter tag (hvc1:
    H.265 that Apple's players open). order: the frames' indexes in the order played (repeats allowed:
    a loop or pingpong without copies of the frames); all of them once when None."""
    import av
    import torch

    images = video.images
    if images is None or images.dim() != 4 or images.shape[0] == 0:
        raise VideoFileError("the video has no frames")
    height, width = images.shape[1:3]
    if codec in ("libx264", "h264") and (width % 2 or height % 2):
        raise VideoFileError(f"H.264 in {pix_fmt} needs an even width and height; the frames are {width}x{height} "
                             "(crop or scale them)")
    top, kind = (65535.0, torch.int32) if depth == 16 else (255.0, torch.uint8)
    alpha = images.shape[-1] == 4  # kept where the pixel format has alpha (FFV1's rgba64le); else dropped
    pixels = (images[..., :4 if alpha else 3].detach().float() * top).clamp(0, top).to(kind).cpu().numpy()
    if depth == 16:
        pixels = pixels.astype("uint16")
    if pixels.shape[-1] == 1:
        pixels = pixels.repeat(3, axis=-1)
    source_format = ("rgba64le" if alpha else "rgb48le") if depth == 16 else ("rgba" if alpha else "rgb24")
    # MP4 keeps tags other than its own only with this flag (as ComfyUI writes them)
    flags = {"movflags": "use_metadata_tags"} if container_format == "mp4" else {}
    target = path if hasattr(path, "write") else str(path)
    if codec == "libsvtav1":  # SVT-AV1 logs its settings to stderr unless told: errors only (as VideoHelperSuite)
        os.environ.setdefault("SVT_LOG", "1")  # read when the first encoder opens; the user's own setting kept
    with _scheduling_kept(), av.open(target, mode="w", format=container_format, options=flags) as container:
        for key, value in (metadata or {}).items():
            container.metadata[key] = value
        stream = container.add_stream(codec, rate=frame_rate(video.fps))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if options:
            stream.options = options
        if codec_tag:
            stream.codec_context.codec_tag = codec_tag
        if bt709:  # BT.709 primaries, transfer and matrix (1), TV range (1), as the stream's tags
            context = stream.codec_context
            context.colorspace = context.color_primaries = context.color_trc = context.color_range = 1
        sound = _add_audio(container, video.audio, audio_codec) if video.audio is not None else None
        for index in range(len(pixels)) if order is None else order:
            frame = av.VideoFrame.from_ndarray(pixels[index], format=source_format)
            if bt709:
                frame = frame.reformat(format=pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            _encode_audio(container, sound, video.audio)


def h264_roundtrip(images, crf: int):
    """Each frame of an IMAGE batch [frames, H, W, 3] encoded on its own as a one-frame H.264 MP4
    (yuv420p, CRF `crf`, x264's veryfast preset, as ComfyUI's LTXVPreprocess) and decoded back: the
    frames with the compression artefacts of real video. An odd width or height (which yuv420p
    can't hold) loses its last row or column, as in ComfyUI: the frames come back that much smaller."""
    import torch

    height, width = images.shape[1] // 2 * 2, images.shape[2] // 2 * 2
    out = []
    for frame in images[:, :height, :width, :3].float():
        buffer = io.BytesIO()
        write_video(buffer, Video(frame[None], Fraction(1)), "mp4", "libx264",
                    options={"crf": str(int(crf)), "preset": "veryfast"})
        out.append(read_video(buffer.getvalue()).images[0])
    return torch.stack(out).to(images.dtype)


def _add_audio(container, audio: dict, codec: str):
    waveform, rate = audio.get("waveform"), audio.get("sample_rate")
    if waveform is None or waveform.dim() != 3 or waveform.shape[1] not in LAYOUTS or not rate:
        shape = tuple(waveform.shape) if hasattr(waveform, "shape") else None
        raise VideoFileError(f"audio must be a waveform [batch, 1 or 2 channels, samples] with a sample_rate; "
                             f"got shape {shape} at rate {rate!r}")
    import av

    # the codec's own sample format and rate where it takes no float planes at this rate (Opus, FLAC, PCM)
    found = av.codec.Codec(codec, "w")
    formats = [f.name for f in found.audio_formats or []]
    rates = found.audio_rates
    rate = int(rate) if not rates or int(rate) in rates else max(rates)
    sound = container.add_stream(codec, rate=rate)
    sound.layout = LAYOUTS[waveform.shape[1]]
    sound.format = "fltp" if not formats or "fltp" in formats else formats[-1]
    return sound


def _encode_audio(container, sound, audio: dict) -> None:
    import av

    waveform = audio["waveform"].detach().float().cpu()
    # a batch of sounds plays one after another, as ComfyUI lays the batch out in its one audio frame
    samples = waveform.movedim(0, 1).reshape(waveform.shape[1], -1).numpy()
    layout, rate = LAYOUTS[samples.shape[0]], int(audio["sample_rate"])
    same = sound.format.name == "fltp" and sound.rate == rate
    resampler = None if same else av.AudioResampler(format=sound.format.name, layout=layout, rate=sound.rate)
    for start in range(0, samples.shape[1], AUDIO_CHUNK):
        frame = av.AudioFrame.from_ndarray(samples[:, start:start + AUDIO_CHUNK].copy(), format="fltp", layout=layout)
        frame.sample_rate, frame.pts = rate, start
        for part in [frame] if same else resampler.resample(frame):
            container.mux(sound.encode(part))
    for part in [] if same else resampler.resample(None):
        container.mux(sound.encode(part))
    container.mux(sound.encode(None))
