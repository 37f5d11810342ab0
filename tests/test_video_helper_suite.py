"""ComfyUI-VideoHelperSuite's nodes built in (nodes/video_helper_suite.py): workflows saved by the
pack's editor (its dict-shaped widgets_values, "videopreview" entry and all) and API graphs run
unchanged, checked against independent readers: PyAV and Pillow reading the written files back
(frame counts, rates, loop counts, pixel formats, colour tags, sound, metadata), the frame picks
worked out by hand from the pack's frame clock, and the core nodes (ImageScale, VAEEncode,
VAEDecode) for the same settings."""

import hashlib
import itertools
import json
import math
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from graphflow.context import NodeContext, NodeInputError, _current
from graphflow.executor import Executor
from graphflow.picture_metadata import picture_text
from graphflow.resource_limits import RunLimits, Size
from graphflow.testing import write_checkpoint
from graphflow.validation import validate
from graphflow.video import Video, read_sound, read_video, video_frames, write_video
from graphflow.workflow import load_workflow, parse_workflow
from nodes.video_helper_suite import allowed_path, vhs_pick
from tests.test_nodes_image_mask import call

RATE, COUNT, SAMPLE_RATE = 10, 12, 16000


def vhs_frame_indices(count: int, fps: float, force_rate: float, skip_first: int, every_nth: int,
                      cap: int) -> list[int]:
    """Which of a video's `count` frames vhs_pick keeps."""
    return list(vhs_pick(range(count), fps, force_rate, skip_first, every_nth, cap))


@pytest.fixture
def running():
    workflow = {"nodes": {"1": {"type": "VHSVideoCombine", "inputs": {}}}}
    token = _current.set(NodeContext("run", "1", "test", lambda event: None, threading.Event(), workflow))
    yield
    _current.reset(token)


def clip_frames(count=COUNT, height=48, width=64):
    """Smooth frames (lossy codecs keep them well) that differ from frame to frame."""
    y = torch.linspace(0, 1, height).reshape(height, 1, 1).expand(height, width, 1)
    x = torch.linspace(0, 1, width).reshape(1, width, 1).expand(height, width, 1)
    return torch.stack([torch.cat([x, y, torch.full_like(x, i / count)], -1) for i in range(count)])


def clip_sound(seconds=COUNT / RATE):
    t = torch.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return {"waveform": (0.5 * torch.sin(2 * math.pi * 440 * t))[None, None], "sample_rate": SAMPLE_RATE}


@pytest.fixture
def clip(tmp_folders):
    """A lossless source video (FFV1 + FLAC) in the inputs: 12 frames at 10 fps, 64x48, with sound."""
    write_video(tmp_folders.inputs / "clip.mkv", Video(clip_frames(), Fraction(RATE), clip_sound()), "matroska", "ffv1",
                pix_fmt="bgr0", audio_codec="flac")
    return (clip_frames() * 255).to(torch.uint8)  # what a decoder gives back


def read_frames(path, pix="rgb24"):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format=pix) for f in container.decode(stream)])
        context = stream.codec_context
        facts = {"codec": context.name, "tag": context.codec_tag, "pix_fmt": context.pix_fmt,
                 "rate": stream.average_rate, "colorspace": context.colorspace, "range": context.color_range,
                 "tags": {k.lower(): v for k, v in container.metadata.items()}}
    return frames, facts


def video_packets(path):
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


def sound_seconds(path):
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(f.samples for f in container.decode(stream))
        return samples / stream.rate


VIDEO_PREVIEW = {"hidden": False, "paused": False, "params": {"filename": "x.mp4", "type": "output"}}


def ui_graph():
    """Load Video -> Video Combine as the pack's editor saves them (widgets by name)."""
    return {
        "last_node_id": 2, "last_link_id": 2, "version": 0.4,
        "nodes": [
            {"id": 1, "type": "VHS_LoadVideo", "pos": [0, 0], "size": [300, 400], "mode": 0, "order": 0,
             "inputs": [{"name": "meta_batch", "type": "VHS_BatchManager", "link": None},
                        {"name": "vae", "type": "VAE", "link": None}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0},
                         {"name": "frame_count", "type": "INT", "links": None},
                         {"name": "audio", "type": "AUDIO", "links": [2], "slot_index": 2},
                         {"name": "video_info", "type": "VHS_VIDEOINFO", "links": None}],
             "properties": {"Node name for S&R": "VHS_LoadVideo"},
             "widgets_values": {"video": "clip.mkv", "force_rate": 5, "custom_width": 0, "custom_height": 0,
                                "frame_load_cap": 0, "skip_first_frames": 2, "select_every_nth": 1, "format": "None",
                                "choose video to upload": "image", "videopreview": VIDEO_PREVIEW}},
            {"id": 2, "type": "VHS_VideoCombine", "pos": [400, 0], "size": [300, 500], "mode": 0, "order": 1,
             "inputs": [{"name": "images", "type": "IMAGE", "link": 1},
                        {"name": "audio", "type": "AUDIO", "link": 2},
                        {"name": "meta_batch", "type": "VHS_BatchManager", "link": None},
                        {"name": "vae", "type": "VAE", "link": None}],
             "outputs": [{"name": "Filenames", "type": "VHS_FILENAMES", "links": None}],
             "properties": {"Node name for S&R": "VHS_VideoCombine"},
             "widgets_values": {"frame_rate": 5, "loop_count": 0, "filename_prefix": "vhs/clip",
                                "format": "video/h264-mp4", "pix_fmt": "yuv420p", "crf": 19, "save_metadata": True,
                                "trim_to_audio": False, "pingpong": False, "save_output": True,
                                "videopreview": VIDEO_PREVIEW}},
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 1, 2, 2, 1, "AUDIO"]],
        "groups": [], "config": {}, "extra": {}, "version_": 0.4,
    }


def test_editor_saved_load_and_combine_run_and_files_read_back(builtin_registry, clip, tmp_folders):
    workflow = parse_workflow(ui_graph(), builtin_registry)
    assert workflow.nodes["2"].inputs["format"] == "video/h264-mp4" and "videopreview" not in workflow.nodes["2"].inputs
    result = Executor(builtin_registry).run(workflow)
    assert result.ok, (result.problems, result.error)
    save_output, paths = result.values["2"][0]
    folder = tmp_folders.outputs / "vhs"
    assert save_output is True and paths == [str(folder / n) for n in
                                             ("clip_00001.png", "clip_00001.mp4", "clip_00001-audio.mp4")]
    # 10 fps forced to 5: every other frame (0, 2, 4 ...), the first two of those skipped
    kept = clip[[4, 6, 8, 10]].numpy()
    for path in paths[1:]:
        frames, facts = read_frames(path)
        assert facts["codec"] == "h264" and facts["pix_fmt"] == "yuv420p" and facts["rate"] == 5
        assert (facts["colorspace"], facts["range"]) == (1, 1)  # BT.709, TV range: the pack's h264-mp4
        assert frames.shape == kept.shape and np.abs(frames.astype(float) - kept).mean() < 4
    # the sound: from 0.4 s (the skipped frames' time) for as long as the pictures last
    assert abs(sound_seconds(paths[2]) - 4 / 5) < 0.07
    # the workflow: in the first frame's PNG and in the video's comment tag, as the pack writes them
    png = Image.open(paths[0])
    assert np.array_equal(np.asarray(png), clip[4].numpy()) and "CreationTime" in png.info
    assert json.loads(png.info["workflow"])["nodes"] and json.loads(png.info["prompt"])["2"]["class_type"] \
        == "VHS_VideoCombine"
    comment = json.loads(read_frames(paths[1])[1]["tags"]["comment"])
    assert isinstance(comment["prompt"], str) and isinstance(comment["workflow"], dict)
    assert set(load_workflow(paths[2]).nodes) == {"1", "2"}  # the video opens as its workflow again
    assert json.loads(picture_text(open(paths[1], "rb").read())["prompt"])["1"]["class_type"] == "VHS_LoadVideo"
    shown = result.outputs["2"]
    assert shown["gifs"][0] | {"fullpath": None} == {
        "filename": "clip_00001-audio.mp4", "subfolder": "vhs", "type": "output", "format": "video/h264-mp4",
        "frame_rate": 5.0, "workflow": "clip_00001.png", "fullpath": None}
    assert shown["images"] == [{"filename": "clip_00001-audio.mp4", "subfolder": "vhs", "type": "output"}]


def test_gif_and_webp_keep_rate_loop_and_pingpong(builtin_registry, tmp_folders, running):
    levels = torch.tensor([0.0, 0.25, 0.5, 1.0])
    frames = levels.reshape(4, 1, 1, 1).expand(4, 8, 8, 3).contiguous()
    gif = call(builtin_registry, "VHSVideoCombine", images=frames, frame_rate=8.0, loop_count=3, format="image/gif",
               pingpong=True, filename_prefix="anim")[1][1]
    webp = call(builtin_registry, "VHSVideoCombine", images=frames, frame_rate=8.0, loop_count=0, format="image/webp",
                filename_prefix="anim")[1][1]
    assert gif.endswith("anim_00001.gif") and webp.endswith("anim_00002.webp")
    picture = Image.open(gif)
    assert picture.n_frames == 6 and picture.info["loop"] == 3
    shades = []
    for i in range(6):
        picture.seek(i)
        shades.append(picture.convert("RGB").getpixel((0, 0))[0])
        assert picture.info["duration"] == 120  # round(1000 / 8) ms, in the GIF's hundredths
    assert shades == [0, 63, 127, 255, 127, 63]  # forward, then back without repeating either end
    picture = Image.open(webp)
    assert picture.n_frames == 4 and picture.info["loop"] == 0
    for i, level in enumerate(levels):
        picture.seek(i)
        picture.load()  # Pillow reads a WebP frame's time when it decodes it
        assert picture.info["duration"] == 125
        assert np.array_equal(np.asarray(picture.convert("RGB")), np.full((8, 8, 3), int(level * 255), np.uint8))


@pytest.mark.parametrize("fmt, widgets, codec, pix_fmt", [
    ("video/h265-mp4", {"pix_fmt": "yuv420p10le", "crf": 22}, "hevc", "yuv420p10le"),
    ("video/webm", {"crf": 20}, "vp9", "yuv420p"),
    ("video/av1-webm", {"pix_fmt": "yuv420p", "input_color_depth": "16bit"}, "libdav1d", "yuv420p"),
    ("video/ProRes", {"profile": "4444"}, "prores", "yuv444p12le"),  # 4:4:4, which FFmpeg decodes to 12 bits
])
def test_lossy_formats_read_back_with_loop_and_pingpong(builtin_registry, tmp_folders, running, fmt, widgets, codec,
                                                        pix_fmt):
    frames = clip_frames(count=4, height=64, width=64)
    (path,) = call(builtin_registry, "VHSVideoCombine", images=frames, frame_rate=12.0, loop_count=1, pingpong=True,
                   format=fmt, filename_prefix="v", **widgets)[1][1:]
    got, facts = read_frames(path)
    assert facts["codec"] == codec and facts["pix_fmt"] == pix_fmt and facts["rate"] == 12
    # pingpong 0 1 2 3 2 1, then FFmpeg's loop filter as the pack sets it: the first 4 frames once more
    order = [0, 1, 2, 3, 0, 1, 2, 3, 2, 1]
    want = (frames[order] * 255).numpy()
    assert got.shape == want.shape and np.abs(got - want).mean() < 6
    assert ("comment" in facts["tags"]) == (fmt != "video/ProRes")  # ProRes has no save_metadata


def test_ffv1_is_16_bit_exact_and_odd_sizes_are_edge_padded(builtin_registry, tmp_folders, running):
    frames = torch.rand(3, 5, 7, 3, generator=torch.Generator().manual_seed(0))
    (path,) = call(builtin_registry, "VHSVideoCombine", images=frames, frame_rate=8.0, format="video/ffv1-mkv",
                   pix_fmt="rgba64le", filename_prefix="lossless")[1][1:]
    got, facts = read_frames(path, pix="rgb48le")
    assert facts["codec"] == "ffv1"
    # the pack's padding: one column on the right, one row at the bottom, copies of the edge
    padded = torch.nn.functional.pad(frames.movedim(-1, 1), (0, 1, 0, 1), mode="replicate").movedim(1, -1)
    assert np.array_equal(got, (padded * 65535).to(torch.int32).numpy())


def test_ffv1_keeps_alpha(builtin_registry, tmp_folders, running):
    frames = torch.rand(2, 4, 6, 4, generator=torch.Generator().manual_seed(7))
    (path,) = call(builtin_registry, "VHSVideoCombine", images=frames, frame_rate=8.0, format="video/ffv1-mkv",
                   pix_fmt="rgba64le", filename_prefix="alpha")[1][1:]
    assert np.array_equal(read_frames(path, pix="rgba64le")[0], (frames * 65535).to(torch.int32).numpy())


def test_sound_is_padded_to_the_pictures_or_trims_them(builtin_registry, tmp_folders, running):
    frames = clip_frames(count=8)
    short = clip_sound(seconds=0.3)
    padded = call(builtin_registry, "VHSVideoCombine", images=frames, frame_rate=8.0, format="video/h264-mp4",
                  audio=short, filename_prefix="s")[1][-1]
    assert len(read_frames(padded)[0]) == 8 and abs(sound_seconds(padded) - 1.0) < 0.07
    pictures = padded.replace("-audio.mp4", ".mp4")
    assert video_packets(padded) == video_packets(pictures)  # the pictures encoded once, their packets copied
    assert read_frames(padded)[1] == read_frames(pictures)[1]  # rate, colour tags, metadata too
    hevc = call(builtin_registry, "VHSVideoCombine", images=clip_frames(count=8, height=64, width=64), frame_rate=8.0,
                format="video/h265-mp4", audio=short, filename_prefix="h")[1][-1]
    assert video_packets(hevc) == video_packets(hevc.replace("-audio.mp4", ".mp4"))
    assert read_frames(hevc)[1]["tag"] == "hvc1"  # the tag Apple's players need, kept by the copy
    trimmed = call(builtin_registry, "VHSVideoCombine", images=frames, frame_rate=8.0, format="video/h264-mp4",
                   audio=short, trim_to_audio=True, filename_prefix="s")[1][-1]
    assert len(read_frames(trimmed)[0]) == 3  # ceil(0.3 s x 8 fps)


def test_a_taken_name_moves_the_video_and_its_audio_file_together(builtin_registry, tmp_folders, running, monkeypatch):
    monkeypatch.setattr("nodes.video_helper_suite._next_counter", lambda folder, stem: 1)  # as a run saving at once
    (tmp_folders.outputs / "t_00001.mp4").write_bytes(b"another run's")
    files = call(builtin_registry, "VHSVideoCombine", images=clip_frames(4), frame_rate=8.0, format="video/h264-mp4",
                 audio=clip_sound(0.5), filename_prefix="t")[1]
    assert [Path(f).name for f in files] == ["t_00001.png", "t_00002.mp4", "t_00002-audio.mp4"]


def test_combine_temp_folder_latent_input_and_refusals(builtin_registry, tmp_folders, running):
    (tmp_folders.models / "checkpoints").mkdir()
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    _, _, vae = call(builtin_registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    latent = {"samples": torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(1))}
    save_output, paths = call(builtin_registry, "VHSVideoCombine", images=latent, vae=vae, format="video/ffv1-mkv",
                              pix_fmt="rgba64le", save_output=False, filename_prefix="tmp/x")
    assert save_output is False and all(p.startswith(str(tmp_folders.temp)) for p in paths)
    decoded = call(builtin_registry, "VAEDecode", samples=latent, vae=vae)
    want = (decoded.clamp(0, 1) * 65535).to(torch.int32).numpy()
    assert np.array_equal(read_frames(paths[1], pix="rgb48le")[0], want)
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "VHSVideoCombine", images=latent, format="image/gif")
    assert e.value.input == "images" and "vae" in str(e.value)
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "VHSVideoCombine", images=clip_frames(2), meta_batch=object())
    assert e.value.input == "meta_batch"
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "VHSVideoCombine", images=clip_frames(2), format="video/h264-mp4", pix_fmt="rgba64le")
    assert e.value.input == "pix_fmt" and "yuv420p10le" in str(e.value)
    with pytest.raises(NodeInputError) as e:  # refused rather than risk x265's crash on tiny frames
        call(builtin_registry, "VHSVideoCombine", images=clip_frames(2, 32, 48), format="video/h265-mp4")
    assert e.value.input == "format" and "64 pixels" in str(e.value)
    combine = {"images": ["1", 0], "frame_rate": 8, "loop_count": 0, "filename_prefix": "n",
               "format": "video/nvenc_h264-mp4", "pingpong": False, "save_output": True}
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 0}},
             "2": {"class_type": "VHS_VideoCombine", "inputs": combine}}
    result = Executor(builtin_registry).run(parse_workflow(graph, builtin_registry))
    (problem,) = result.problems
    assert problem.input == "format" and "video/h264-mp4" in problem.message and "image/gif" in problem.message
    cls = builtin_registry.get("VHSVideoCombine")  # run without validation: refused as clearly, nothing written
    node = cls.__new__(cls)
    node.__dict__.update(cls.widget_model.model_validate({}).model_dump(), images=clip_frames(2), audio=None,
                         meta_batch=None, vae=None, format="video/nvenc_h264-mp4")
    with pytest.raises(NodeInputError) as e:
        node.run()
    assert e.value.input == "format" and "video/h264-mp4" in str(e.value)
    assert not list(tmp_folders.outputs.rglob("n_*"))


@pytest.mark.parametrize("fps, force_rate, skip, nth, cap", [
    (10, 0, 0, 1, 0), (10, 0, 3, 2, 3), (10, 5, 0, 1, 0), (10, 5, 1, 2, 0), (10, 4, 0, 1, 0), (10, 20, 0, 1, 7),
    (30, 7, 2, 3, 0), (29.97, 8, 0, 1, 0), (60, 24, 1, 1, 5),
])
def test_frame_clock_keeps_the_first_frame_at_or_after_each_target_time(fps, force_rate, skip, nth, cap):
    """The pack's frame clock, worked out in closed form: target frame k is due at k / force_rate
    seconds and the first frame at or after that time (frame f plays from f / fps) is kept. (Where a
    due time falls exactly on a frame's time, the pack's summed float clock decides, and the node
    sums it the same way: see the test below.)"""
    count = 36
    due = [math.ceil(k * fps / (force_rate or fps) - 1e-9) for k in range(count * 4)]
    want = [f for f in due if f < count][skip::nth]
    assert vhs_frame_indices(count, fps, force_rate, skip, nth, cap) == (want[:cap] if cap else want)


def test_frame_clock_ties_follow_the_packs_float_clock():
    # 24 fps forced to 16: 0.125 s is frame 3's time exactly, but the clock, summed in floats
    # (1/24 three times, less 1/16 twice), falls short of it, so the pack moves on to frame 4
    assert vhs_frame_indices(6, 24, 16, 0, 1, 0) == [0, 2, 4, 5]


def test_load_video_sizes_formats_and_info(builtin_registry, clip):
    def load(**widgets):
        inputs = {"video": "clip.mkv", "format": "None", **widgets}
        return call(builtin_registry, "VHSLoadVideo", **inputs)

    images, count, audio, info = load(skip_first_frames=3, select_every_nth=2, frame_load_cap=3)
    assert count == 3 and torch.equal((images * 255).round().to(torch.uint8), clip[[3, 5, 7]])
    # the sound of the loaded part: 3 frames of 0.1 s skipped, then 3 frames 0.2 s apart (every other)
    sound = call(builtin_registry, "GetVideoComponents", video=call(builtin_registry, "LoadVideo", file="clip.mkv"))[1]
    start = round(0.3 * SAMPLE_RATE)
    assert torch.equal(audio["waveform"], sound["waveform"][..., start:start + round(0.6 * SAMPLE_RATE)])
    assert info == pytest.approx({"source_fps": 10.0, "source_frame_count": 12, "source_duration": 1.2,
                                  "source_width": 64, "source_height": 48, "loaded_fps": 5.0, "loaded_frame_count": 3,
                                  "loaded_duration": 0.6, "loaded_width": 64, "loaded_height": 48})
    assert call(builtin_registry, "VHSVideoInfo", video_info=info) == tuple(info[f"{part}_{key}"] for part in (
        "source", "loaded") for key in ("fps", "frame_count", "duration", "width", "height"))
    assert call(builtin_registry, "VHSVideoInfoLoaded", video_info=info) == (5.0, 3, info["loaded_duration"], 64, 48)
    assert call(builtin_registry, "VHSVideoInfoSource", video_info=info) == (10.0, 12, 1.2, 64, 48)
    # a width alone keeps the aspect; resized as ImageScale does with Lanczos and a centre crop
    images = load(custom_width=32)[0]
    full = load()[0]
    scaled = call(builtin_registry, "ImageScale", image=full, upscale_method="lanczos", width=32, height=24,
                  crop="center")
    assert images.shape == (12, 24, 32, 3) and torch.equal(images, scaled)
    # AnimateDiff's size step is 8: 50 x 37.5 comes to 48 x 40; Wan keeps 4n + 1 frames: 9 of 12
    assert load(custom_width=50, format="AnimateDiff")[0].shape == (12, 40, 48, 3)
    assert load(format="Wan")[1] == 9
    # an older prompt's force_size: ignored, as the pack's backend ignores it
    assert load(force_size="?x24", custom_width=32)[0].shape == (12, 24, 32, 3)


def test_older_saves_read_as_the_packs_editor_restores_them(builtin_registry):
    """Saves from before the pack kept widgets by name (a list in its older order, force_size in
    place of custom sizes) and dict saves with force_size, migrated as its editor does on loading."""
    ui = ui_graph()
    ui["nodes"][0]["widgets_values"] = ["clip.mkv", 5, "?x24", 4, 1, 2, "image"]
    ui["nodes"][1]["widgets_values"] = [5, 0, "old", "image/gif", False, True]
    nodes = parse_workflow(ui, builtin_registry).nodes
    want = {"video": "clip.mkv", "force_rate": 5, "custom_width": 0, "custom_height": 24, "frame_load_cap": 4,
            "skip_first_frames": 1, "select_every_nth": 2}
    assert want.items() <= nodes["1"].inputs.items() and "force_size" not in nodes["1"].inputs
    want = {"frame_rate": 5, "loop_count": 0, "filename_prefix": "old", "format": "image/gif", "pingpong": False,
            "save_output": True}
    assert want.items() <= nodes["2"].inputs.items()
    # every reader of the save sees it so: a %Node.widget% prefix too
    ui["nodes"][1]["widgets_values"] = [5, 0, "v/%VHS_LoadVideo.custom_height%_%VHS_LoadVideo.frame_load_cap%",
                                        "image/gif", False, True]
    assert parse_workflow(ui, builtin_registry).nodes["2"].inputs["filename_prefix"] == "v/24_4"
    for size, width, height in [("512x?", 512, 0), ("Disabled", 0, 0), ("Custom Width", 320, 0),
                                ("Custom Height", 0, 240), ("Custom", 320, 240)]:
        ui["nodes"][0]["widgets_values"] = {"video": "clip.mkv", "force_rate": 0, "force_size": size,
                                            "custom_width": 320, "custom_height": 240, "frame_load_cap": 0,
                                            "skip_first_frames": 0, "select_every_nth": 1}
        inputs = parse_workflow(ui, builtin_registry).nodes["1"].inputs
        assert (inputs["custom_width"], inputs["custom_height"]) == (width, height), size


def test_batched_vae_nodes_filenames_and_pruning(builtin_registry, tmp_folders, running):
    (tmp_folders.models / "checkpoints").mkdir()
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    _, _, vae = call(builtin_registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    pixels = clip_frames(count=5, height=16, width=16)
    whole = call(builtin_registry, "VAEEncode", pixels=pixels, vae=vae)["samples"]
    batched = call(builtin_registry, "VHSVAEEncodeBatched", pixels=pixels, vae=vae, per_batch=2)["samples"]
    assert batched.shape == whole.shape and torch.allclose(batched, whole, atol=1e-5)
    images = call(builtin_registry, "VHSVAEDecodeBatched", samples={"samples": whole}, vae=vae, per_batch=3)
    assert torch.allclose(images, call(builtin_registry, "VAEDecode", samples={"samples": whole}, vae=vae), atol=1e-5)
    files = call(builtin_registry, "VHSVideoCombine", images=pixels, format="video/h264-mp4", audio=clip_sound(),
                 filename_prefix="p")
    assert call(builtin_registry, "VHSSelectFilename", filenames=files) == files[1][-1]
    assert call(builtin_registry, "VHSSelectFilename", filenames=files, index=0).endswith("p_00001.png")
    call(builtin_registry, "VHSPruneOutputs", filenames=files, options="Intermediate")
    assert [Path(p).exists() for p in files[1]] == [True, False, True]
    call(builtin_registry, "VHSPruneOutputs", filenames=files, options="Intermediate and Utility")
    assert [Path(p).exists() for p in files[1]] == [False, False, True]
    outside = tmp_folders.inputs / "keep.mp4"
    outside.write_bytes(b"x")
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "VHSPruneOutputs", filenames=(True, [files[1][0], str(outside), files[1][2]]),
             options="Intermediate")
    assert e.value.input == "filenames" and outside.exists()


def test_load_video_vae_gives_the_latent_vae_encode_gives(builtin_registry, clip, tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir()
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    _, _, vae = call(builtin_registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    latent, count, _, info = call(builtin_registry, "VHSLoadVideo", video="clip.mkv", frame_load_cap=2, vae=vae,
                                  format="None")
    frames = call(builtin_registry, "VHSLoadVideo", video="clip.mkv", frame_load_cap=2, format="None")[0]
    want = call(builtin_registry, "VAEEncode", pixels=frames, vae=vae)
    assert count == 2 and torch.equal(latent["samples"], want["samples"]) and info["loaded_width"] == 64


def test_load_video_path_stays_inside_graphflows_folders(builtin_registry, clip, tmp_folders):
    assert allowed_path("input/clip.mkv") == tmp_folders.inputs / "clip.mkv"
    assert allowed_path(f'"{tmp_folders.inputs / "clip.mkv"}"') == tmp_folders.inputs / "clip.mkv"
    assert call(builtin_registry, "VHSLoadVideoPath", video="clip.mkv", format="None")[1] == COUNT
    digest = hashlib.sha256((tmp_folders.inputs / "clip.mkv").read_bytes()).hexdigest()
    assert builtin_registry.get("VHSLoadVideoPath").fingerprint(video="input/clip.mkv") == digest
    assert builtin_registry.get("VHSLoadVideo").fingerprint(video="clip.mkv") == digest
    assert builtin_registry.get("VHSLoadVideoPath").fingerprint(video="../secret.mp4") is None
    outside = tmp_folders.inputs.parent.parent / "secret.mp4"
    outside.write_bytes(b"x")
    for path, why in [(str(outside), "outside"), ("../secret.mp4", "inside"), ("https://x.org/v.mp4", "URL"),
                      ("input/../../secret.mp4", "inside")]:
        with pytest.raises(NodeInputError) as e:
            call(builtin_registry, "VHSLoadVideoPath", video=path)
        assert e.value.input == "video" and why in str(e.value), path


def test_api_graph_runs(builtin_registry, clip, tmp_folders):
    graph = {"1": {"class_type": "VHS_LoadVideoPath",
                   "inputs": {"video": "input/clip.mkv", "force_rate": 0, "custom_width": 0, "custom_height": 0,
                              "frame_load_cap": 0, "skip_first_frames": 0, "select_every_nth": 1, "format": "None"}},
             "2": {"class_type": "VHS_SelectEveryNthImage",
                   "inputs": {"images": ["1", 0], "select_every_nth": 3, "skip_first_images": 1}},
             "3": {"class_type": "VHS_VideoCombine",
                   "inputs": {"images": ["2", 0], "frame_rate": 4, "loop_count": 0, "filename_prefix": "api",
                              "format": "video/webm", "pingpong": False, "save_output": True, "crf": 20,
                              "save_metadata": "False"}}}
    workflow = parse_workflow(graph, builtin_registry)
    assert workflow.nodes["3"].inputs["save_metadata"] == "False"  # webm's choice "comment" / "False"
    result = Executor(builtin_registry).run(workflow)
    assert result.ok, (result.problems, result.error)
    frames, facts = read_frames(result.values["3"][0][1][1])
    assert len(frames) == 4 and facts["rate"] == 4 and "comment" not in facts["tags"]  # frames 1, 4, 7, 10
    assert np.abs(frames.astype(float) - clip[[1, 4, 7, 10]].numpy()).mean() < 4
    # written in ComfyUI's editor format for the first time: widgets by name, as the pack's editor reads them
    from graphflow.comfy_format import export_ui

    saved = {n["type"]: n["widgets_values"] for n in export_ui(workflow, builtin_registry)["nodes"]}
    assert saved["VHS_VideoCombine"]["format"] == "video/webm" and saved["VHS_VideoCombine"]["save_metadata"] == "False"
    assert saved["VHS_SelectEveryNthImage"] == {"select_every_nth": 3, "skip_first_images": 1}


def test_batch_helpers_match_slicing_and_image_scale(builtin_registry):
    images = torch.rand(5, 8, 6, 3, generator=torch.Generator().manual_seed(2))
    a, a_count, b, b_count = call(builtin_registry, "VHSSplitImages", images=images, split_index=-2)
    assert torch.equal(a, images[:3]) and torch.equal(b, images[3:]) and (a_count, b_count) == (3, 2)
    masks = images[..., 0]
    assert call(builtin_registry, "VHSSplitMasks", mask=masks, split_index=1)[3] == 4
    latent = {"samples": torch.rand(5, 4, 2, 2)}
    split = call(builtin_registry, "VHSSplitLatents", latents=latent, split_index=2)
    assert torch.equal(split[2]["samples"], latent["samples"][2:]) and split[1] == 2
    kept, count = call(builtin_registry, "VHSSelectEveryNthImage", images=images, select_every_nth=2,
                       skip_first_images=1)
    assert torch.equal(kept, images[[1, 3]]) and count == 2
    assert call(builtin_registry, "VHSSelectEveryNthMask", mask=masks, select_every_nth=3, skip_first_masks=0)[1] == 2
    assert call(builtin_registry, "VHSSelectEveryNthLatent", latents=latent, select_every_nth=4,
                skip_first_latents=0)[1] == 2
    assert call(builtin_registry, "VHSGetImageCount", images=images) == 5
    assert call(builtin_registry, "VHSGetMaskCount", mask=masks) == 5
    assert call(builtin_registry, "VHSGetLatentCount", latents=latent) == 5
    doubled, count = call(builtin_registry, "VHSDuplicateImages", images=images, multiply_by=2)
    assert torch.equal(doubled, torch.cat([images, images])) and count == 10
    assert call(builtin_registry, "VHSDuplicateMasks", mask=masks, multiply_by=3)[1] == 15
    assert call(builtin_registry, "VHSDuplicateLatents", latents=latent, multiply_by=2)[1] == 10
    # different sizes: with A the smaller, "match smaller" scales B to A's size, as ImageScale does
    small = torch.rand(2, 4, 4, 3, generator=torch.Generator().manual_seed(3))
    merged, count = call(builtin_registry, "VHSMergeImages", images_A=small, images_B=images,
                         merge_strategy="match smaller", scale_method="bilinear", crop="center")
    scaled = call(builtin_registry, "ImageScale", image=images, upscale_method="bilinear", width=4, height=4,
                  crop="center")
    assert count == 7 and torch.equal(merged, torch.cat([small, scaled]))
    # the pack's rule when A is the larger: A's size, "match smaller" or not
    merged = call(builtin_registry, "VHSMergeImages", images_A=images, images_B=small, merge_strategy="match smaller",
                  scale_method="bilinear", crop="disabled")[0]
    assert merged.shape == (7, 8, 6, 3)
    merged = call(builtin_registry, "VHSMergeImages", images_A=images, images_B=small, merge_strategy="match A",
                  scale_method="nearest-exact", crop="disabled")[0]
    assert merged.shape == (7, 8, 6, 3) and torch.equal(merged[:5], images)
    assert call(builtin_registry, "VHSMergeMasks", mask_A=masks, mask_B=small[..., 0], merge_strategy="match larger",
                scale_method="area", crop="disabled")[0].shape == (7, 8, 6)
    assert call(builtin_registry, "VHSMergeLatents", latents_A=latent, latents_B={"samples": torch.rand(1, 4, 4, 4)},
                merge_strategy="match B", scale_method="bislerp", crop="disabled")[0]["samples"].shape == (6, 4, 4, 4)


def test_repeat_nodes_declare_their_batch_so_limits_refuse_a_huge_one(builtin_registry):
    size = Size(2, 48, 64)
    for node, name in [("VHSDuplicateImages", "images"), ("VHSDuplicateLatents", "latents"),
                       ("VHSDuplicateMasks", "mask")]:
        assert builtin_registry.get(node).estimate({"multiply_by": 3}, {name: size}).size == Size(6, 48, 64)
    workflow = {"nodes": {"1": {"type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
                          "2": {"type": "VHSDuplicateImages", "inputs": {"images": ["1", 0], "multiply_by": 2 ** 40}},
                          "3": {"type": "PreviewImage", "inputs": {"images": ["2", 0]}}}}
    found = validate(parse_workflow(workflow), builtin_registry, limits=RunLimits(max_batch=64))
    assert found and {p.node_id for p in found} == {"2"}, found
    assert "a batch of 1099511627776 is more than" in found[0].message


@pytest.mark.parametrize("indexes, want", [
    ("0", [0]), ("-1", [15]), ("0, 1, 13", [0, 1, 13]), ("0:5, 13", [0, 1, 2, 3, 4, 13]),
    ("0:-1", list(range(15))), ("0:5:-1", [4, 3, 2, 1, 0]), ("0:5:2", [0, 2, 4]), ("::-1", list(range(15, -1, -1))),
])
def test_select_nodes_follow_the_packs_index_grammar(builtin_registry, indexes, want):
    """The pack's own examples (its Select nodes' help, 16 items), against Python's slicing."""
    images = torch.arange(16.0).reshape(16, 1, 1, 1).expand(16, 2, 2, 3)
    assert call(builtin_registry, "VHSSelectImages", image=images, indexes=indexes)[:, 0, 0, 0].tolist() == want
    assert call(builtin_registry, "VHSSelectMasks", mask=images[..., 0], indexes=indexes)[:, 0, 0].tolist() == want
    latent = {"samples": images.movedim(-1, 1), "noise_mask": images[..., 0], "batch_index": [0]}
    picked = call(builtin_registry, "VHSSelectLatents", latent=latent, indexes=indexes)
    assert picked["samples"][:, 0, 0, 0].tolist() == want and picked["noise_mask"][:, 0, 0].tolist() == want
    assert picked["batch_index"] == [0]


def test_select_nodes_report_bad_indexes(builtin_registry):
    images = torch.zeros(4, 2, 2, 3)
    for indexes, words in [("7", "out of range"), ("a", "integer"), ("0:4:0", "step"), ("", "nothing")]:
        with pytest.raises(NodeInputError) as e:
            call(builtin_registry, "VHSSelectImages", image=images, indexes=indexes)
        assert e.value.input == "indexes" and words in str(e.value)
    assert len(call(builtin_registry, "VHSSelectImages", image=images, indexes="1, 7", err_if_missing=False)) == 1
    assert len(call(builtin_registry, "VHSSelectImages", image=images, indexes="", err_if_empty=False)) == 0


def test_written_back_in_the_packs_shape(builtin_registry, clip):
    """Back to ComfyUI's editor format, VHS nodes keep widgets by name (the pack's editor reads only
    that), their preview entry included; a dated prefix is the editor's pattern again."""
    from datetime import datetime

    from graphflow.comfy_format import export_ui

    ui = ui_graph()
    ui["nodes"][1]["widgets_values"]["filename_prefix"] = "%date:yyyy%/clip"
    workflow = parse_workflow(ui, builtin_registry)
    assert workflow.nodes["2"].inputs["filename_prefix"] == f"{datetime.now().year}/clip"
    workflow.nodes["2"].inputs["crf"] = 23
    nodes = {n["id"]: n for n in export_ui(workflow, builtin_registry)["nodes"]}
    combine = nodes[2]["widgets_values"]
    assert combine["crf"] == 23 and combine["videopreview"] == VIDEO_PREVIEW
    assert combine["filename_prefix"] == "%date:yyyy%/clip" and combine["format"] == "video/h264-mp4"
    assert nodes[1]["widgets_values"]["video"] == "clip.mkv" and nodes[1]["widgets_values"]["force_rate"] == 5


def test_frames_are_read_no_further_than_the_cap_needs():
    def frames():
        yield from range(5)
        raise AssertionError("decoded past the frames kept")

    assert list(vhs_pick(frames(), 10, 0, 1, 1, 3)) == [1, 2, 3]


def test_sound_is_read_in_the_pictures_pass_whole_however_few_frames_are_read(clip, tmp_folders):
    path = tmp_folders.inputs / "clip.mkv"
    whole = read_sound(path)
    assert whole["waveform"].shape[-1] == round(COUNT / RATE * SAMPLE_RATE)
    for taken in (0, 2, COUNT):
        with video_frames(path) as (facts, frames, sound):
            kept = [frame.to_ndarray(format="rgb24") for frame in itertools.islice(frames, taken)]
            audio = sound()
        assert len(kept) == taken and torch.equal(audio["waveform"], whole["waveform"]), taken
    assert torch.equal(read_video(path).audio["waveform"], whole["waveform"])


def test_load_images_reads_a_folder_as_the_pack_does(builtin_registry, tmp_folders):
    frames = tmp_folders.inputs / "frames"
    frames.mkdir()
    rng = np.random.default_rng(4)
    pixels = [rng.integers(0, 256, (6, 8, 4), dtype=np.uint8) for _ in range(5)]
    for i, p in enumerate(pixels):  # names sort as frame order; one of another size, one not a picture
        Image.fromarray(p, "RGBA").save(frames / f"f{i:02d}.png")
    Image.fromarray(pixels[0][:4, :4, :3]).save(frames / "f05.png")
    (frames / "notes.txt").write_text("x")
    assert builtin_registry.get("VHSLoadImages").input_specs["directory"].widget.options() == ["frames"]
    images, mask, count = call(builtin_registry, "VHSLoadImages", directory="frames", skip_first_images=1,
                               select_every_nth=2, image_load_cap=2)
    want = torch.from_numpy(np.stack([pixels[1], pixels[3]]).astype(np.float32) / 255).half().float()
    assert count == 2 and torch.equal(images, want[..., :3]) and torch.equal(mask, 1 - want[..., 3])
    images, mask, count = call(builtin_registry, "VHSLoadImages", directory="frames")
    assert count == 6 and images.shape == (6, 6, 8, 3)  # the odd one resized to the common 8x6
    assert torch.equal(mask[5], torch.zeros(6, 8))  # opaque: no alpha to take 1 from
    small = torch.from_numpy(pixels[0][:4, :4, :3].astype(np.float32) / 255)[None]
    scaled = call(builtin_registry, "ImageScale", image=small, upscale_method="lanczos", width=8, height=6,
                  crop="center")
    assert torch.equal(images[5], scaled[0].half().float())
    path_images, _, count = call(builtin_registry, "VHSLoadImagesPath", directory="input/frames", image_load_cap=3)
    assert count == 3 and torch.equal(path_images, images[:3])
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "VHSLoadImagesPath", directory="/etc")
    assert e.value.input == "directory" and "outside" in str(e.value)


def test_load_images_is_held_to_the_server_limits_before_decoding(builtin_registry, tmp_folders):
    frames = tmp_folders.inputs / "frames"
    frames.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(frames / f"f{i}.png")

    def run(limits, **widgets):
        graph = parse_workflow({"nodes": {"1": {"type": "VHSLoadImages", "inputs": {"directory": "frames", **widgets}},
                                          "2": {"type": "PreviewImage", "inputs": {"images": ["1", 0]}}}})
        return Executor(builtin_registry, limits=limits).run(graph)

    result = run(RunLimits(max_batch=2))
    assert (result.error["input"], result.error["message"]) == (
        "image_load_cap", "3 pictures to load is more than this server allows (2); set image_load_cap")
    assert run(RunLimits(max_batch=2), image_load_cap=2).values["1"][2] == 2
    result = run(RunLimits(max_pixels=40))  # 8x6 = 48 pixels
    assert result.error["input"] == "directory" and "'f0.png' is 8×6, larger than this server" in result.error["message"]
    assert run(RunLimits(max_pixels=48)).ok


def test_load_images_skips_links_that_lead_out_of_the_folder(builtin_registry, tmp_folders):
    frames = tmp_folders.inputs / "frames"
    frames.mkdir()
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(frames / "a.png")
    (frames / "b.png").symlink_to(frames / "a.png")  # a link that stays inside is a picture like any other
    secret = tmp_folders.inputs.parent.parent / "secret.png"
    Image.fromarray(np.full((6, 8, 3), 255, np.uint8)).save(secret)
    (frames / "c.png").symlink_to(secret)
    images, _, count = call(builtin_registry, "VHSLoadImages", directory="frames")
    assert count == 2 and images.max() == 0
    state = builtin_registry.get("VHSLoadImages").fingerprint(directory="frames")
    secret.write_bytes(b"changed")  # what lies outside is no part of the folder's state either
    assert builtin_registry.get("VHSLoadImages").fingerprint(directory="frames") == state


def test_load_audio_cuts_the_sound_as_asked(builtin_registry, tmp_folders):
    sound = clip_sound(seconds=1.0)
    with av.open(str(tmp_folders.inputs / "tone.wav"), "w") as container:  # 16-bit PCM, read back exactly
        stream = container.add_stream("pcm_s16le", rate=SAMPLE_RATE)
        stream.layout = "mono"
        samples = (sound["waveform"][0] * 32767).round().to(torch.int16).numpy()
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        container.mux(stream.encode(None))
    want = torch.from_numpy(samples.astype(np.float32) / 32768)[None]
    assert builtin_registry.get("VHSLoadAudioUpload").input_specs["audio"].widget.options() == ["tone.wav"]
    got = call(builtin_registry, "VHSLoadAudioUpload", audio="tone.wav", start_time=0.25, duration=0.5)
    first = round(0.25 * SAMPLE_RATE)
    assert got["sample_rate"] == SAMPLE_RATE and torch.equal(got["waveform"], want[..., first:first + SAMPLE_RATE // 2])
    whole = call(builtin_registry, "VHSLoadAudio", audio_file="input/tone.wav")
    assert torch.equal(whole["waveform"], want)
    for path, words in [("/etc/passwd", "outside"), ("input/none.wav", "no file")]:
        with pytest.raises(NodeInputError) as e:
            call(builtin_registry, "VHSLoadAudio", audio_file=path)
        assert e.value.input == "audio_file" and words in str(e.value)


def ffmpeg_fps_pick(count, fps, rate):
    """FFmpeg's fps filter in closed form (round=near): frame i (at i / fps s) falls to output slot
    round(i x rate / fps), halves away from zero; each slot shows the last frame that fell to it."""
    slots = [math.floor(i * rate / fps + 0.5) for i in range(count)]
    return [max(i for i in range(count) if slots[i] == k) for k in range(slots[-1] + 1)]


def test_load_video_ffmpeg_runs_ffmpegs_filters_as_the_pack_sets_them(builtin_registry, clip, tmp_folders):
    def load(**widgets):
        return call(builtin_registry, "VHSLoadVideoFFmpeg", **{"video": "clip.mkv", "format": "None", **widgets})

    source = clip.float() / 255
    near = 2 / 255  # FFmpeg's own 8 to 16 bit conversion (swscale, dithered) stays within two levels
    images, mask, audio, info = load()
    assert torch.allclose(images, source, atol=near) and torch.equal(mask, torch.zeros(COUNT, 64, 64))
    assert info["loaded_fps"] == 10 and info["loaded_frame_count"] == COUNT and info["source_duration"] > 1.1
    picks = ffmpeg_fps_pick(COUNT, RATE, 4)
    assert picks == [1, 3, 6, 8, 11]
    assert torch.allclose(load(force_rate=4)[0], source[picks], atol=near)
    # the frames before start_time dropped, frame_load_cap counted from there; the sound from start_time
    images, _, audio, info = load(start_time=0.5, frame_load_cap=3)
    assert torch.allclose(images, source[5:8], atol=near) and info["loaded_duration"] == pytest.approx(0.3)
    sound = call(builtin_registry, "GetVideoComponents", video=call(builtin_registry, "LoadVideo", file="clip.mkv"))[1]
    assert torch.equal(audio["waveform"], sound["waveform"][..., 8000:8000 + 4800])
    # a new aspect: the centre cut to it, then scaled (a flat picture stays flat)
    images = load(custom_width=32, custom_height=32)[0]
    assert images.shape == (COUNT, 32, 32, 3)
    centre = source[:, :, 8:56].mean(dim=(1, 2))
    assert torch.allclose(images.mean(dim=(1, 2)), centre, atol=2 / 255)
    assert load(custom_height=24, format="AnimateDiff")[0].shape == (COUNT, 24, 32, 3)


def test_load_video_ffmpeg_reads_alpha_as_the_mask(builtin_registry, tmp_folders):
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (3, 8, 10, 4), dtype=np.uint8)
    with av.open(str(tmp_folders.inputs / "alpha.mkv"), "w") as container:
        stream = container.add_stream("ffv1", rate=5)
        stream.width, stream.height, stream.pix_fmt = 10, 8, "bgra"
        for frame in pixels:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgba")))
        container.mux(stream.encode(None))
    images, mask, _, _ = call(builtin_registry, "VHSLoadVideoFFmpegPath", video="input/alpha.mkv", format="None")
    want = torch.from_numpy(pixels.astype(np.float32) / 255)
    assert torch.allclose(images, want[..., :3], atol=2 / 255)  # within two levels, as above
    assert torch.allclose(mask, 1 - want[..., 3], atol=2 / 255)


def test_unbatch_joins_a_list_back(builtin_registry):
    images = torch.rand(5, 4, 4, 3, generator=torch.Generator().manual_seed(6))
    assert call(builtin_registry, "VHSUnbatch", batched=[images[:2], images[2:4], images[4:]]).equal(images)
    latent = call(builtin_registry, "VHSUnbatch", batched=[{"samples": images[:2], "batch_index": [0, 1]},
                                                           {"samples": images[2:], "batch_index": [2, 3, 4]}])
    assert latent.keys() == {"samples"} and latent["samples"].equal(images)
    assert call(builtin_registry, "VHSUnbatch", batched=[[1], [2, 3]]) == [1, 2, 3]
    # in a graph: RebatchImages sends 5 pictures as a list of 3 batches; Unbatch takes them whole
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 4, "batch_size": 5, "color": 255}},
             "2": {"class_type": "RebatchImages", "inputs": {"images": ["1", 0], "batch_size": 2}},
             "3": {"class_type": "VHS_Unbatch", "inputs": {"batched": ["2", 0]}},
             "4": {"class_type": "VHS_GetImageCount", "inputs": {"images": ["3", 0]}}}
    result = Executor(builtin_registry).run(parse_workflow(graph, builtin_registry), outputs=["4"])
    assert result.ok, (result.problems, result.error)
    assert len(result.values["2"][0]) == 3 and result.values["4"] == (5,)
