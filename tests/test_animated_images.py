"""SaveAnimatedPNG / SaveAnimatedWEBP: read back with Pillow (frame count, durations, pixels where
lossless), the workflow embedded where the editor's picture reader finds it."""

import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

sys.path.insert(0, str(Path(__file__).parent))
from test_custom_sampling import run_node  # noqa: E402
from test_nodes_image_mask import call  # noqa: E402

from graphflow.context import NodeContext, NodeInputError, _current  # noqa: E402
from graphflow.picture_metadata import picture_text  # noqa: E402

WORKFLOW = {"nodes": {"1": {"type": "SaveAnimatedPNG", "inputs": {"filename_prefix": "anim/a"}}}}


@pytest.fixture
def running():
    """A node context, as the executor gives one: its workflow is what gets embedded."""
    ctx = NodeContext("run", "1", "test", lambda event: None, threading.Event(), WORKFLOW)
    token = _current.set(ctx)
    yield ctx
    _current.reset(token)


def frames(count=4, height=10, width=14, seed=0):
    values = torch.randint(0, 256, (count, height, width, 3), generator=torch.Generator().manual_seed(seed))
    return values.float() / 255.0  # exact 8-bit values: a lossless file gives them back


def read_frames(path):
    picture = Image.open(path)
    pixels, durations = [], []
    for frame in ImageSequence.Iterator(picture):
        pixels.append(np.asarray(frame.convert("RGB")))
        durations.append(frame.info.get("duration"))
    return picture, np.stack(pixels), durations


def test_animated_png_round_trips_frames_and_timing(builtin_registry, tmp_folders, running):
    images = frames()
    call(builtin_registry, "SaveAnimatedPNG", images=images, filename_prefix="anim/a", fps=8.0, compress_level=9)
    path = tmp_folders.outputs / "anim" / "a_00001_.png"
    picture, pixels, durations = read_frames(path)
    assert picture.n_frames == 4 and picture.is_animated
    assert durations == [125] * 4  # int(1000 / 8) ms
    assert np.array_equal(pixels, (images.numpy() * 255).astype(np.uint8))  # truncated, as ComfyUI saves
    assert json.loads(picture_text(path.read_bytes())["graphflow"]) == WORKFLOW
    assert running.ui["images"] == [{"filename": "a_00001_.png", "subfolder": "anim", "type": "output"}]
    call(builtin_registry, "SaveAnimatedPNG", images=images, filename_prefix="anim/a", fps=3.0, compress_level=1)
    assert read_frames(tmp_folders.outputs / "anim" / "a_00002_.png")[2] == [333] * 4


def test_animated_webp_lossless_and_lossy(builtin_registry, tmp_folders, running):
    images = frames(count=3, seed=1)
    call(builtin_registry, "SaveAnimatedWEBP", images=images, filename_prefix="w", fps=10.0, lossless=True,
         quality=80, method="slowest")
    path = tmp_folders.outputs / "w_00001_.webp"
    picture, pixels, durations = read_frames(path)
    assert picture.format == "WEBP" and picture.n_frames == 3
    assert durations == [100] * 3
    assert np.array_equal(pixels, (images.numpy() * 255).astype(np.uint8))  # truncated, as ComfyUI saves
    assert json.loads(picture_text(path.read_bytes())["graphflow"]) == WORKFLOW
    # lossy: still 3 frames of that timing, the pixels near but not equal
    smooth = torch.linspace(0, 1, 14).reshape(1, 1, 14, 1).expand(3, 10, 14, 3).clone()
    smooth[1] *= 0.5
    smooth[2] = 1 - smooth[2]
    call(builtin_registry, "SaveAnimatedWEBP", images=smooth, filename_prefix="w", fps=2.0, lossless=False,
         quality=90, method="fastest")
    picture, pixels, durations = read_frames(tmp_folders.outputs / "w_00002_.webp")
    assert picture.n_frames == 3 and durations == [500] * 3
    error = np.abs(pixels.astype(float) - smooth.numpy() * 255).mean()
    assert 0 < error < 12  # lossy (YUV 4:2:0) yet close


def test_animated_saves_refuse_bad_input(builtin_registry, tmp_folders, running):
    outside = tmp_folders.outputs.parent / "outside"
    outside.mkdir()
    (tmp_folders.outputs / "link").symlink_to(outside, target_is_directory=True)
    for node in ("SaveAnimatedPNG", "SaveAnimatedWEBP"):
        with pytest.raises(NodeInputError) as e:
            call(builtin_registry, node, images=frames(2), filename_prefix="link/x")
        assert e.value.input == "filename_prefix"
        with pytest.raises(NodeInputError) as e:
            call(builtin_registry, node, images=torch.zeros(0, 8, 8, 3), filename_prefix="x")
        assert e.value.input == "images"
    assert not list(outside.iterdir())


def test_load_image_output_reads_results_and_stays_inside_the_outputs(builtin_registry, tmp_folders):
    rgba = np.zeros((6, 9, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    rgba[2, 3] = (0, 0, 255, 0)  # one transparent pixel
    (tmp_folders.outputs / "runs").mkdir()
    Image.fromarray(rgba, "RGBA").save(tmp_folders.outputs / "runs" / "older.png")
    images = frames(count=3, seed=4)
    call(builtin_registry, "SaveAnimatedPNG", images=images, filename_prefix="runs/anim", fps=5.0, compress_level=4)
    listed = builtin_registry.get("LoadImageOutput").input_specs["image"].widget.options()
    assert listed[0] == "runs/anim_00001_.png" and set(listed) == {"runs/anim_00001_.png", "runs/older.png"}
    image, mask = call(builtin_registry, "LoadImageOutput", image="runs/older.png")
    assert image.shape == (1, 6, 9, 3) and mask.shape == (1, 6, 9)
    torch.testing.assert_close(image[0, 0, 0], torch.tensor([200 / 255, 0.0, 0.0]))
    assert mask[0, 2, 3] == 1 and mask.sum() == 1
    animated, _ = call(builtin_registry, "LoadImageOutput", image="runs/anim_00001_.png")
    torch.testing.assert_close(animated, images)  # every frame, as saved
    # nothing outside the outputs folder: not listed, not read
    outside = tmp_folders.outputs.parent / "elsewhere"
    outside.mkdir()
    Image.fromarray(rgba, "RGBA").save(outside / "secret.png")
    (tmp_folders.outputs / "link").symlink_to(outside, target_is_directory=True)
    assert "link/secret.png" not in builtin_registry.get("LoadImageOutput").input_specs["image"].widget.options()
    for name in ("link/secret.png", "../elsewhere/secret.png"):
        with pytest.raises(NodeInputError) as e:
            run_node(builtin_registry.get("LoadImageOutput"), image=name)  # past the editor's choice check
        assert e.value.input == "image" and ("outside" in str(e.value) or "inside" in str(e.value))


def test_exif_texts_past_the_text_tags_are_left_out_with_a_warning(tmp_path):
    # Make (0x010F) down to 0x010B take text; the tags below hold numbers, where Pillow fails
    from nodes.image import EXIF_TEXT_TAGS, comfy_exif

    events = []
    ctx = NodeContext("run", "1", "test", events.append, threading.Event(), WORKFLOW)
    texts = {"prompt": "{}", **{f"k{i}": f'"{i}"' for i in range(EXIF_TEXT_TAGS + 2)}}
    token = _current.set(ctx)
    try:
        exif = comfy_exif(texts)
    finally:
        _current.reset(token)
    path = tmp_path / "x.webp"
    Image.new("RGB", (4, 4)).save(path, exif=exif)
    written = Image.open(path).getexif()
    assert written[0x0110] == "prompt:{}"
    assert [written[0x010F - i] for i in range(EXIF_TEXT_TAGS)] == [f'k{i}:"{i}"' for i in range(EXIF_TEXT_TAGS)]
    assert 0x010F - EXIF_TEXT_TAGS not in written
    warnings = [e["message"] for e in events if e["type"] == "warning"]
    assert len(warnings) == 1 and "k5, k6" in warnings[0]


def test_a_long_non_ascii_name_leaves_room_for_the_temporary_name(tmp_path):
    from nodes.image import _write_at

    name = "\N{GRINNING FACE}" * 60 + ".png"  # 244 bytes (64 characters): a name the file system takes
    assert _write_at(lambda path: path.write_bytes(b"x"), tmp_path / name)
    assert (tmp_path / name).read_bytes() == b"x" and [p.name for p in tmp_path.iterdir()] == [name]
