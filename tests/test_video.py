"""The video nodes (LoadVideo, CreateVideo, GetVideoComponents, SaveVideo, SaveWEBM), checked against
PyAV's own decoding of the files: frame counts, frame rates, sizes, pixels (exact for a lossless
file, bounded for lossy codecs), sound kept through a save, the workflow in the metadata, uploads."""

import io
import json
import os
import shutil
import sys
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_custom_sampling import run_node  # noqa: E402
from test_nodes_image_mask import call  # noqa: E402
from test_server_safety import form, home, start  # noqa: E402,F401

from graphflow.context import NodeContext, NodeInputError, _current  # noqa: E402
from graphflow.executor import Executor  # noqa: E402
from graphflow.server.comfyui_object_info import object_info  # noqa: E402
from graphflow.validation import validate  # noqa: E402
from graphflow.workflow import load_workflow, parse_workflow  # noqa: E402

WORKFLOW = {"nodes": {"1": {"type": "SaveVideo", "inputs": {"filename_prefix": "video/v"}}}}


@pytest.fixture
def running():
    ctx = NodeContext("run", "1", "test", lambda event: None, threading.Event(), WORKFLOW)
    token = _current.set(ctx)
    yield ctx
    _current.reset(token)


def smooth_frames(count=6, height=16, width=24):
    """Gradients that move from frame to frame: what lossy codecs keep well."""
    y = torch.linspace(0, 1, height).reshape(height, 1, 1)
    x = torch.linspace(0, 1, width).reshape(1, width, 1)
    frames = [torch.cat([x.expand(height, width, 1), y.expand(height, width, 1),
                         (0.5 + 0.4 * torch.sin(torch.tensor(i / 2.0)) + 0 * x * y).expand(height, width, 1)], -1)
              for i in range(count)]
    return torch.stack(frames)


def decoded(path):
    """PyAV's reading of a file: (frames uint8 [N, H, W, 3], average rate, codec name, metadata)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
        tags = {key.lower(): value for key, value in container.metadata.items()}  # Matroska's come upper-cased
        return frames, stream.average_rate, stream.codec_context.name, tags


def levels(images):
    return images.numpy() * 255.0


def test_save_video_writes_h264_mp4_that_av_and_load_video_read_back(builtin_registry, tmp_folders, running):
    images = smooth_frames()
    video = call(builtin_registry, "CreateVideo", images=images, fps=12.0)
    call(builtin_registry, "SaveVideo", video=video, filename_prefix="video/v", format="auto", codec="auto")
    path = tmp_folders.outputs / "video" / "v_00001_.mp4"
    frames, rate, codec, metadata = decoded(path)
    assert codec == "h264" and rate == 12 and frames.shape == (6, 16, 24, 3)
    error = np.abs(frames - levels(images)).mean()
    assert 0 < error < 8  # lossy (chroma at half resolution, quantised) yet close: 3% of the range
    assert json.loads(metadata["graphflow"]) == WORKFLOW
    assert running.ui == {"images": [{"filename": "v_00001_.mp4", "subfolder": "video", "type": "output"}],
                          "animated": [True]}
    call(builtin_registry, "SaveVideo", video=video, filename_prefix="video/v", format="mp4", codec="h264")
    assert (tmp_folders.outputs / "video" / "v_00002_.mp4").is_file()
    # LoadVideo offers it from the inputs and decodes it as av does; its parts come apart again
    shutil.copy(path, tmp_folders.inputs / "clip.mp4")
    (tmp_folders.inputs / "still.png").write_bytes(b"")
    assert builtin_registry.get("LoadVideo").input_specs["file"].widget.options() == ["clip.mp4"]
    loaded = call(builtin_registry, "LoadVideo", file="clip.mp4")
    parts = call(builtin_registry, "GetVideoComponents", video=loaded)
    assert parts[1] is None and parts[2] == 12.0 and isinstance(parts[2], float)
    assert np.array_equal(levels(parts[0]).round(), frames)
    # the workflow reader opens the video's graph
    assert set(load_workflow(path).nodes) == {"1"}


def test_load_video_is_exact_for_a_lossless_file(builtin_registry, tmp_folders):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 10, 14, 3), dtype=np.uint8)
    with av.open(str(tmp_folders.inputs / "lossless.mkv"), "w") as container:
        stream = container.add_stream("ffv1", rate=Fraction(25, 2))
        stream.width, stream.height, stream.pix_fmt = 14, 10, "bgr0"
        for frame in pixels:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    images, audio, fps = call(builtin_registry, "GetVideoComponents",
                              video=call(builtin_registry, "LoadVideo", file="lossless.mkv"))
    assert fps == 12.5 and audio is None
    assert images.dtype == torch.float32 and images.shape == (5, 10, 14, 3)
    assert np.array_equal(levels(images).round().astype(np.uint8), pixels)


def test_frames_are_truncated_to_8_bits_as_comfyui_writes_them():
    """A lossless FFV1 file shows the levels written: int(255 x v) clamped, as ComfyUI's video savers
    cast (0.999 is 254, an overshoot of 1.2 is 255, -0.1 is 0)."""
    from graphflow.video import Video, read_video, write_video

    values = torch.tensor([0.999, 0.5, 0.2, 1.2, -0.1, 0.0])
    frame = values.repeat(4 * 4 * 3 // 6 * 2)[:4 * 4 * 3].reshape(1, 4, 4, 3)
    buffer = io.BytesIO()
    write_video(buffer, Video(frame, Fraction(1)), "matroska", "ffv1", pix_fmt="bgr0")
    got = read_video(buffer.getvalue()).images
    assert torch.equal((got * 255).round(), (frame * 255).clamp(0, 255).floor())


def test_sound_is_kept_from_create_video_to_get_video_components(builtin_registry, tmp_folders, running):
    rate, count = 8000, 4000
    t = torch.arange(count) / rate
    waveform = torch.stack([0.5 * torch.sin(2 * torch.pi * 300 * t), 0.3 * torch.sin(2 * torch.pi * 700 * t)])[None]
    video = call(builtin_registry, "CreateVideo", images=smooth_frames(count=5), fps=10.0,
                 audio={"waveform": waveform, "sample_rate": rate})
    call(builtin_registry, "SaveVideo", video=video, filename_prefix="talk")
    path = tmp_folders.outputs / "talk_00001_.mp4"
    with av.open(str(path)) as container:  # av's view: an AAC stream of that rate and layout
        sound = container.streams.audio[0]
        assert (sound.codec_context.name, sound.rate, sound.layout.name) == ("aac", rate, "stereo")
    shutil.copy(path, tmp_folders.inputs / "talk.mp4")
    images, audio, fps = call(builtin_registry, "GetVideoComponents",
                              video=call(builtin_registry, "LoadVideo", file="talk.mp4"))
    assert images.shape == (5, 16, 24, 3) and fps == 10.0
    assert audio["sample_rate"] == rate
    back = audio["waveform"]
    assert back.shape[:2] == (1, 2) and count <= back.shape[2] < count + 2048  # AAC pads its last frame
    rms = (back[..., :count] - waveform).pow(2).mean(-1).sqrt()
    assert (rms < 0.05).all(), rms  # both channels, in time (no shift) and of the right loudness


def test_save_webm_vp9_and_av1(builtin_registry, tmp_folders, running):
    images = smooth_frames(count=4)
    call(builtin_registry, "SaveWEBM", images=images, filename_prefix="web/w", codec="vp9", fps=7.5, crf=20.0)
    call(builtin_registry, "SaveWEBM", images=images, filename_prefix="web/w", codec="av1", fps=24.0, crf=32.0)
    for name, codec, rate in (("w_00001_.webm", "vp9", Fraction(15, 2)), ("w_00002_.webm", "av1", 24)):
        frames, average, decoder, metadata = decoded(tmp_folders.outputs / "web" / name)
        assert codec in decoder and average == rate and frames.shape == (4, 16, 24, 3)
        assert np.abs(frames - levels(images)).mean() < 6
        assert json.loads(metadata["graphflow"]) == WORKFLOW
    assert running.ui["images"][1] == {"filename": "w_00002_.webm", "subfolder": "web", "type": "output"}
    assert running.ui["animated"] == [True, True]


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="scheduling policies are Linux's")
def test_an_av1_save_leaves_the_thread_on_its_scheduling_policy(builtin_registry, tmp_folders, running):
    """SVT-AV1 raises the thread that opens it to SCHED_FIFO 99 where it may (as root); the saver
    puts the policy back, so nothing the thread runs or starts afterwards is real-time."""
    before = os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    call(builtin_registry, "SaveWEBM", images=smooth_frames(count=2), filename_prefix="web/rt", codec="av1",
         fps=24.0, crf=40.0)
    assert (os.sched_getscheduler(0), os.sched_getparam(0).sched_priority) == before


def test_bad_files_and_inputs_name_the_input(builtin_registry, tmp_folders, running):
    (tmp_folders.inputs / "notes.mp4").write_text("not a video")
    outside = tmp_folders.inputs.parent / "outside.mp4"
    outside.write_bytes(b"\x00\x00\x00\x18ftypisom")
    (tmp_folders.inputs / "link.mp4").symlink_to(outside)
    assert set(builtin_registry.get("LoadVideo").input_specs["file"].widget.options()) == {"notes.mp4"}
    cases = {"notes.mp4": "can't read 'notes.mp4'", "../outside.mp4": "inside", "link.mp4": "outside",
             "gone.mp4": "no video 'gone.mp4'"}
    for name, expected in cases.items():
        with pytest.raises(NodeInputError) as e:
            run_node(builtin_registry.get("LoadVideo"), file=name)  # past the editor's choice check
        assert e.value.input == "file" and expected in str(e.value), str(e.value)
    odd = call(builtin_registry, "CreateVideo", images=torch.rand(2, 9, 12, 3), fps=5.0)
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "SaveVideo", video=odd, filename_prefix="v")
    assert e.value.input == "video" and "even width and height" in str(e.value) and "12x9" in str(e.value)
    elsewhere = tmp_folders.outputs.parent / "elsewhere"
    elsewhere.mkdir()
    (tmp_folders.outputs / "link").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "SaveVideo", video=call(builtin_registry, "CreateVideo", images=smooth_frames(2)),
             filename_prefix="link/v")
    assert e.value.input == "filename_prefix" and not list(elsewhere.iterdir())
    for node, inputs in (("CreateVideo", {"images": torch.zeros(0, 8, 8, 3)}),
                         ("SaveWEBM", {"images": torch.zeros(0, 8, 8, 3)})):
        with pytest.raises(NodeInputError) as e:
            call(builtin_registry, node, **inputs)
        assert e.value.input == "images"
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "CreateVideo", images=smooth_frames(2), audio={"samples": 1})
    assert e.value.input == "audio"
    assert not list(tmp_folders.outputs.rglob("*.mp4"))


def comfy_graph(file):
    """A ComfyUI API-format graph over the video classes: take a video apart, put it together, save."""
    return {
        "1": {"class_type": "LoadVideo", "inputs": {"file": file}},
        "2": {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}},
        "3": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": ["2", 2], "audio": ["2", 1]}},
        "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0], "filename_prefix": "video/ComfyUI",
                                                    "format": "auto", "codec": "auto"}},
        "5": {"class_type": "SaveWEBM", "inputs": {"images": ["2", 0], "filename_prefix": "ComfyUI",
                                                   "codec": "vp9", "fps": 24.0, "crf": 32.0}},
    }


def test_comfyui_api_graph_validates_and_runs(builtin_registry, tmp_folders):
    source = smooth_frames(count=3)
    with av.open(str(tmp_folders.inputs / "in.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 24, 16, "yuv420p"
        for frame in levels(source).round().astype(np.uint8):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    workflow = parse_workflow(comfy_graph("in.mp4"), builtin_registry)
    assert validate(workflow, builtin_registry) == []
    result = Executor(builtin_registry).run(workflow)
    assert result.ok, result.error or result.problems
    assert result.outputs["4"] == {"images": [{"filename": "ComfyUI_00001_.mp4", "subfolder": "video",
                                               "type": "output"}], "animated": [True]}
    assert result.outputs["5"]["images"][0]["filename"] == "ComfyUI_00001_.webm"
    frames, rate, _, metadata = decoded(tmp_folders.outputs / "video" / "ComfyUI_00001_.mp4")
    assert frames.shape == (3, 16, 24, 3) and rate == 8
    reopened = load_workflow(tmp_folders.outputs / "video" / "ComfyUI_00001_.mp4", builtin_registry)
    assert {n.type for n in reopened.nodes.values()} == {n.type for n in workflow.nodes.values()}
    # ComfyUI clients see the classes as ComfyUI describes them
    info = object_info(builtin_registry)
    assert info["GetVideoComponents"]["output_name"] == ["images", "audio", "fps"]
    assert info["LoadVideo"]["input"]["required"]["file"][0] == ["in.mp4"]
    assert info["LoadVideo"]["input"]["required"]["file"][1]["video_upload"] is True
    # a file not in the inputs: validation names the node and its input; a non-video fails the run there
    problems = validate(parse_workflow(comfy_graph("nope.mp4"), builtin_registry), builtin_registry)
    assert [(p.node_id, p.input) for p in problems] == [("1", "file")]
    (tmp_folders.inputs / "fake.webm").write_bytes(b"\x1aE\xdf\xa3 broken")
    result = Executor(builtin_registry).run(parse_workflow(comfy_graph("fake.webm"), builtin_registry))
    assert not result.ok and (result.error["node_id"], result.error["node_type"], result.error["input"]) == \
        ("1", "LoadVideo", "file")
    assert "can't read 'fake.webm'" in result.error["message"]


async def test_videos_upload_into_the_inputs_and_are_served(start, home):
    client = await start()
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=4)
        stream.width, stream.height, stream.pix_fmt = 16, 8, "yuv420p"
        for value in (0, 255):
            frame = np.full((8, 16, 3), value, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    data = buffer.getvalue()
    for route, name in (("/api/upload", "clip.mp4"), ("/upload/image", "clip.mov")):
        response = await client.post(route, data=form(data, filename=name, content_type="video/mp4"))
        assert response.status == 200, await response.text()
        body = await response.json()
        assert body["name"] == name and body["width"] == 16 and body["height"] == 8
        assert (home / "inputs" / name).read_bytes() == data
    from graphflow.folders import folders
    assert folders.list_input_videos() == ["clip.mov", "clip.mp4"]
    served = await client.get("/api/view?type=input&filename=clip.mp4&thumbnail=64")
    assert served.status == 200 and served.content_type == "video/mp4" and await served.read() == data
    # not a video: refused with a reason, nothing stored
    fake = await client.post("/api/upload", data=form(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 40, filename="bad.mp4",
                                                      content_type="video/mp4"))
    assert fake.status == 415 and "not a readable video" in (await fake.json())["error"]
    assert not (home / "inputs" / "bad.mp4").exists()
