"""Behaviour audit of the utility and file-output nodes against ComfyUI's (strings, primitives,
rebatch, video, animated pictures): each test pins one place where graphflow gave another result
than ComfyUI for the same valid input. Oracles are closed forms, Python's `re` and PyAV/FFmpeg."""

import math
import re
import sys
from contextlib import nullcontext
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_nodes_image_mask import call  # noqa: E402
from test_video import running, smooth_frames  # noqa: E402,F401

from graphflow.context import NodeInputError  # noqa: E402


def decoded_sound(path):
    """PyAV's decoding of a file's first sound track: float samples [channels, n]."""
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)


def test_save_video_cuts_the_sound_at_the_pictures_end(builtin_registry, tmp_folders, running):
    rate, frames, fps = 8000, 7, 3.0  # 7 pictures at 3 a second: 2.33 s; the sound lasts 6 s
    t = torch.arange(6 * rate) / rate
    waveform = (0.5 * torch.sin(2 * torch.pi * 440 * t))[None, None]
    video = call(builtin_registry, "CreateVideo", images=smooth_frames(count=frames), fps=fps,
                 audio={"waveform": waveform, "sample_rate": rate})
    call(builtin_registry, "SaveVideo", video=video, filename_prefix="cut")
    kept = math.ceil(rate * frames / fps)  # 18667 samples
    samples = decoded_sound(tmp_folders.outputs / "cut_00001_.mp4").shape[1]
    assert kept <= samples < kept + 2048  # AAC pads its last frame (1024 samples) and primes one
    # the VIDEO itself keeps all its sound: only the file is cut
    _, audio, _ = call(builtin_registry, "GetVideoComponents", video=video)
    assert audio["waveform"].shape[-1] == 6 * rate


def test_create_video_keeps_the_frame_rate_as_given(builtin_registry, tmp_folders, running):
    fps = 24000 / 1001  # NTSC film: no fraction with a denominator up to 1000 is this float
    video = call(builtin_registry, "CreateVideo", images=smooth_frames(count=2), fps=fps)
    assert call(builtin_registry, "GetVideoComponents", video=video)[2] == fps
    call(builtin_registry, "SaveVideo", video=video, filename_prefix="ntsc")
    with av.open(str(tmp_folders.outputs / "ntsc_00001_.mp4")) as container:
        assert container.streams.video[0].average_rate == Fraction(23976, 1000)  # the file: to the thousandth


def test_save_webm_rounds_a_fractional_crf_as_ffmpeg_does(builtin_registry, tmp_folders, running):
    """ComfyUI hands crf to FFmpeg as the text of the float; FFmpeg rounds it to the nearest integer
    (33.5 -> 34), where cutting it to an integer first gave 33."""
    noise = torch.rand(3, 32, 48, 3, generator=torch.Generator().manual_seed(0))

    def frames_at(crf, n):
        call(builtin_registry, "SaveWEBM", images=noise, filename_prefix="crf", codec="vp9", fps=24.0, crf=crf)
        with av.open(str(tmp_folders.outputs / f"crf_{n:05d}_.webm")) as container:
            return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])

    half, above, below = frames_at(33.5, 1), frames_at(34.0, 2), frames_at(33.0, 3)
    assert np.array_equal(half, above) and not np.array_equal(half, below)


def test_load_video_takes_the_last_sound_track(builtin_registry, tmp_folders):
    """ComfyUI's LoadVideo gives the sound of the file's last audio stream."""
    pixels = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    tracks = {8000: 300.0, 16000: 1000.0}  # sample rate -> tone of each track, in this order
    with av.open(str(tmp_folders.inputs / "two.mkv"), "w") as container:
        picture = container.add_stream("ffv1", rate=2)
        picture.width, picture.height, picture.pix_fmt = 8, 8, "bgr0"
        sounds = [container.add_stream("pcm_f32le", rate=rate, layout="mono") for rate in tracks]
        for frame in pixels:
            container.mux(picture.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(picture.encode(None))
        for sound, (rate, tone) in zip(sounds, tracks.items()):
            wave = (0.5 * np.sin(2 * np.pi * tone * np.arange(rate) / rate)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(wave, format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, 0
            container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    _, audio, _ = call(builtin_registry, "GetVideoComponents",
                       video=call(builtin_registry, "LoadVideo", file="two.mkv"))
    assert audio["sample_rate"] == 16000
    expected = (0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(16000) / 16000)).astype(np.float32)
    assert np.array_equal(audio["waveform"][0, 0, :16000].numpy(), expected)  # float samples: exact


def test_animated_png_is_marked_animated_even_with_one_frame(builtin_registry, tmp_folders, running):
    still = torch.rand(1, 6, 6, 3, generator=torch.Generator().manual_seed(1))
    call(builtin_registry, "SaveAnimatedPNG", images=still, filename_prefix="one")
    assert running.ui["animated"] == [True]  # ComfyUI's APNG saver always says animated
    call(builtin_registry, "SaveAnimatedWEBP", images=still, filename_prefix="one")
    assert running.ui["animated"][-1] is False  # its WebP saver: animated only with more than one frame


def packets(path, kind="video"):
    """The coded bytes of a file's first stream of a kind, packet by packet (undecoded)."""
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return stream.codec_context.name, [bytes(p) for p in container.demux(stream) if p.dts is not None]


def test_save_video_copies_a_loaded_videos_streams(builtin_registry, tmp_folders, running):
    """ComfyUI saves a LoadVideo video by copying its streams (no second encoding) unless format or
    codec asks for another than the file's."""
    noise = torch.rand(4, 16, 24, 3, generator=torch.Generator().manual_seed(2))
    t = torch.arange(8000) / 8000
    sound = {"waveform": (0.4 * torch.sin(2 * torch.pi * 500 * t))[None, None], "sample_rate": 8000}
    video = call(builtin_registry, "CreateVideo", images=noise, fps=8.0, audio=sound)
    call(builtin_registry, "SaveVideo", video=video, filename_prefix="src")
    (tmp_folders.inputs / "src.mp4").write_bytes((tmp_folders.outputs / "src_00001_.mp4").read_bytes())
    loaded = call(builtin_registry, "LoadVideo", file="src.mp4")
    for n, (format, codec) in enumerate([("auto", "auto"), ("mp4", "h264")], start=1):
        call(builtin_registry, "SaveVideo", video=loaded, filename_prefix="copy", format=format, codec=codec)
        copy = tmp_folders.outputs / f"copy_{n:05d}_.mp4"
        for kind in ("video", "audio"):
            assert packets(copy, kind) == packets(tmp_folders.inputs / "src.mp4", kind)
    # a VP9 WebM: copied when nothing else is asked; encoded again when codec asks for H.264
    call(builtin_registry, "SaveWEBM", images=noise, filename_prefix="web", fps=8.0)
    (tmp_folders.inputs / "web.webm").write_bytes((tmp_folders.outputs / "web_00001_.webm").read_bytes())
    web = call(builtin_registry, "LoadVideo", file="web.webm")
    call(builtin_registry, "SaveVideo", video=web, filename_prefix="webcopy", format="auto", codec="auto")
    assert packets(tmp_folders.outputs / "webcopy_00001_.mp4") == packets(tmp_folders.inputs / "web.webm")
    call(builtin_registry, "SaveVideo", video=web, filename_prefix="webcopy", format="auto", codec="h264")
    assert packets(tmp_folders.outputs / "webcopy_00002_.mp4")[0] == "h264"
    # a file whose pictures MP4 can't hold (HuffYUV in AVI), where ComfyUI stops: encoded instead
    with av.open(str(tmp_folders.inputs / "lossless.avi"), "w") as container:
        stream = container.add_stream("huffyuv", rate=4)
        stream.width, stream.height, stream.pix_fmt = 24, 16, "rgb24"
        for frame in (noise * 255).to(torch.uint8).numpy():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    call(builtin_registry, "SaveVideo", video=call(builtin_registry, "LoadVideo", file="lossless.avi"),
         filename_prefix="huffyuv")
    codec, coded = packets(tmp_folders.outputs / "huffyuv_00001_.mp4")
    assert codec == "h264" and len(coded) == 4


@pytest.mark.parametrize("pattern, text", [
    (r"\w+", "cafe\u0301 \u00bd x\u00b2"),  # a combining accent, a fraction, a superscript: word characters to re
    (r"\s", "a\x1cb"),  # an information separator: whitespace to re
    (r"a{d}", "a{d} aa"),  # braces that aren't a repeat are literal to re (a fuzzy match elsewhere)
    (r"x{s}", "x{s}"),
    (r"[[:alpha:]]+", "ab:[h]"),  # a set holding '[', ':', 'a', ... to re (a POSIX class elsewhere)
])
def test_regex_nodes_give_res_matches(builtin_registry, pattern, text):
    """ComfyUI runs Python's re: its matches are the nodes' results, also where other engines read
    the same pattern otherwise."""
    r = builtin_registry
    with pytest.warns(FutureWarning) if "[[" in pattern else nullcontext():
        expected = re.findall(pattern, text)
    assert call(r, "RegexExtract", string=text, regex_pattern=pattern, mode="All Matches",
                case_insensitive=False) == "\n".join(expected)
    assert call(r, "RegexReplace", string=text, regex_pattern=pattern, replace="<\\g<0>>",
                case_insensitive=False) == re.sub(pattern, "<\\g<0>>", text)
    assert call(r, "RegexMatch", string=text, regex_pattern=pattern, case_insensitive=False) is bool(expected)


def test_regex_syntax_re_lacks_is_an_invalid_pattern(builtin_registry):
    """\\p{L} (a Unicode property) is not re syntax: ComfyUI's re refuses it (False there); an error here."""
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "RegexMatch", string="abc", regex_pattern=r"\p{L}")
    assert e.value.input == "regex_pattern"


def test_preview_any_shows_a_value_json_cannot_take_as_comfyui_does(builtin_registry):
    """Nesting deeper than Python's recursion limit stops json.dumps with a RecursionError; ComfyUI
    falls back to str(), which stops too, and shows its fixed message rather than failing."""
    from nodes.primitives import as_text

    nested = []
    for _ in range(sys.getrecursionlimit() * 2):
        nested = [nested]
    assert as_text(nested) == "source exists, but could not be serialized."
    assert as_text([[1, 2], {"a": None}]) == '[\n    [\n        1,\n        2\n    ],\n    {\n        "a": null\n    }\n]'


def test_savers_number_files_after_every_file_of_the_prefix(builtin_registry, tmp_folders, running):
    """ComfyUI numbers a saved file 1 + the highest `prefix_<n>_` among all files in the folder,
    whatever their kind: an animation saved after pictures, or a video after an animation, goes on counting."""
    (tmp_folders.outputs / "ComfyUI_00007_.png").write_bytes(b"")  # a picture ComfyUI saved earlier
    (tmp_folders.outputs / "ComfyUI_notes.txt").write_bytes(b"")  # not numbered: not counted
    (tmp_folders.outputs / "ComfyUIX_00050_.png").write_bytes(b"")  # another prefix
    images = torch.rand(2, 8, 8, 3, generator=torch.Generator().manual_seed(3))
    call(builtin_registry, "SaveAnimatedWEBP", images=images, filename_prefix="ComfyUI")
    call(builtin_registry, "SaveAnimatedPNG", images=images, filename_prefix="ComfyUI")
    call(builtin_registry, "SaveWEBM", images=images, filename_prefix="ComfyUI")
    call(builtin_registry, "SaveImage", images=images[:1], filename_prefix="ComfyUI")
    names = [entry["filename"] for entry in running.ui["images"]]
    assert names[:3] == ["ComfyUI_00008_.webp", "ComfyUI_00009_.png", "ComfyUI_00010_.webm"]
    assert names[3].startswith("ComfyUI_00011")  # SaveImage counts on too (its own name ends differently)
    from nodes.checkpoint_save import _output_path

    assert _output_path("ComfyUI").name == "ComfyUI_00012_.safetensors"  # model savers count on as well


def test_frame_rates_round_to_the_thousandth_as_comfyui_does(builtin_registry, tmp_folders, running):
    """SaveVideo rounds the VIDEO's exact frame rate (a Fraction); SaveWEBM rounds fps x 1000 in float
    arithmetic. 1.0635 is just below 1.0635 exactly (1063.4999...), but 1.0635 * 1000 is 1063.5 in floats."""
    fps = 1.0635
    assert Fraction(fps) * 1000 < Fraction(21270, 20) and fps * 1000 == 1063.5
    images = smooth_frames(count=2)
    call(builtin_registry, "SaveVideo", video=call(builtin_registry, "CreateVideo", images=images, fps=fps),
         filename_prefix="slow")
    call(builtin_registry, "SaveWEBM", images=images, filename_prefix="slow", fps=fps)
    for name, rate in (("slow_00001_.mp4", Fraction(1063, 1000)), ("slow_00002_.webm", Fraction(1064, 1000))):
        with av.open(str(tmp_folders.outputs / name)) as container:
            assert container.streams.video[0].average_rate == rate, name


def test_save_video_plays_a_batch_of_sounds_one_after_another(builtin_registry, tmp_folders, running):
    """ComfyUI hands the whole AUDIO batch [B, channels, n] to the encoder as one stretch of B x n
    samples (after cutting each to the pictures' length): the sounds play in sequence."""
    rate = 8000
    t = torch.arange(rate // 2) / rate
    tones = torch.stack([0.5 * torch.sin(2 * torch.pi * 400 * t), 0.5 * torch.sin(2 * torch.pi * 1200 * t)])
    video = call(builtin_registry, "CreateVideo", images=smooth_frames(count=4), fps=4.0,
                 audio={"waveform": tones[:, None], "sample_rate": rate})  # 1 s of pictures, 2 x 0.5 s of sound
    call(builtin_registry, "SaveVideo", video=video, filename_prefix="seq")
    back = torch.from_numpy(decoded_sound(tmp_folders.outputs / "seq_00001_.mp4")[0])
    assert rate <= back.shape[0] < rate + 2048
    halves = back[:rate].reshape(2, rate // 2)
    assert ((halves - tones).pow(2).mean(-1).sqrt() < 0.05).all()  # the first tone, then the second
