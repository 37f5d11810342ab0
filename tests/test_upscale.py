"""Upscale models through spandrel: loading original-layout files, tiling, refusing wrong files."""

import pickle

import pytest
import torch
from safetensors.torch import save_file

from graphflow.context import Interrupted
from graphflow.models.upscale import load_upscale_model, upscale
from graphflow.models.weight_files import CheckpointError
from graphflow.testing import write_esrgan, write_lora

RECEPTIVE_RADIUS = 24  # input pixels: conv_first + 1 RRDB (15 convs) + trunk + 2 upconvs + HR + last, 3x3 each


@pytest.fixture(scope="module")
def esrgan(tmp_path_factory):
    return write_esrgan(tmp_path_factory.mktemp("up") / "esrgan_x4.safetensors", scale=4)


def test_spandrel_recognises_the_original_layout(esrgan):
    model = load_upscale_model(esrgan)
    assert model.architecture.name == "ESRGAN" and model.scale == 4
    image = torch.rand(1, 20, 24, 3)
    out = upscale(model, image, tile=0)
    assert out.shape == (1, 80, 96, 3)
    with torch.no_grad():  # the untiled path is the bare network on the whole image
        direct = model.model(image.permute(0, 3, 1, 2)).clamp(0, 1).permute(0, 2, 3, 1)
    assert torch.allclose(out, direct, atol=1e-6)
    assert 0.01 < out.std() and (out > 0).float().mean() > 0.5  # not clamped flat


def test_tiled_equals_untiled_away_from_seams(esrgan):
    model = load_upscale_model(esrgan)
    torch.manual_seed(1)
    image = torch.rand(1, 120, 136, 3)
    whole = upscale(model, image, tile=0)
    calls = []
    tiled = upscale(model, image, tile=64, overlap=16, on_tile=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (len(calls), len(calls)) and len(calls) == 3 * 3  # starts 0, 48, 96 on each axis
    # inner tile edges (input pixels): each tile's start > 0 and end < size
    def far_from_edges(size):
        starts = [0, 48, 96]
        edges = [s for s in starts if s > 0] + [s + 64 for s in starts if s + 64 < size]
        keep = torch.ones(size, dtype=torch.bool)
        for e in edges:
            keep[max(0, e - RECEPTIVE_RADIUS):e + RECEPTIVE_RADIUS] = False
        return keep.repeat_interleave(4)
    ky, kx = far_from_edges(120), far_from_edges(136)
    assert ky.sum() > 0 and kx.sum() > 0
    diff = (whole - tiled).abs()[0][ky][:, kx]
    assert diff.max() < 1e-3
    # at the seams they differ (the receptive field is cut) but are cross-faded, not broken
    assert (whole - tiled).abs().max() > 1e-4
    assert (whole - tiled).abs().mean() < 0.05


def test_interrupt_between_tiles(esrgan):
    model = load_upscale_model(esrgan)

    def stop(done, total):
        if done == 2:
            raise Interrupted("stop")
    with pytest.raises(Interrupted):
        upscale(model, torch.rand(1, 64, 64, 3), tile=32, overlap=8, on_tile=stop)


def test_refuses_wrong_and_damaged_files(tmp_path, esrgan):
    lora = write_lora(tmp_path / "a_lora.safetensors", "sd1")
    with pytest.raises(CheckpointError, match="a_lora.safetensors is not an upscale model"):
        load_upscale_model(lora)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(esrgan.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cut.safetensors .*truncated"):
        load_upscale_model(cut)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"model.0.weight": Evil()}))
    with pytest.raises(CheckpointError, match="evil.pth was refused by PyTorch's restricted unpickler"):
        load_upscale_model(evil)
    # a plain-tensor pickle (.pth as most upscalers ship) is accepted
    state = load_upscale_model(esrgan).model.state_dict()
    good = tmp_path / "good.pth"
    torch.save(state, good)
    assert load_upscale_model(good).scale == 4
    bad_shapes = tmp_path / "bad.safetensors"
    save_file({"model.0.weight": torch.zeros(3)}, str(bad_shapes))
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_upscale_model(bad_shapes)


def test_comfyui_graph_upscales_with_progress_per_tile(builtin_registry, tmp_folders, esrgan):
    """ComfyUI's UpscaleModelLoader / ImageUpscaleWithModel import onto ours and run; progress is
    reported per tile through the executor's events."""
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    folder = tmp_folders.models / "upscale_models"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "x4.safetensors").write_bytes(esrgan.read_bytes())
    graph = {
        "1": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "x4.safetensors"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "red-circle-on-blue.png"}},
        "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["1", 0], "image": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "up"}},
    }
    wf = parse_workflow(graph, builtin_registry)
    assert wf.nodes["1"].type == "LoadUpscaleModel" and wf.nodes["3"].type == "ImageUpscaleWithModel"
    wf.nodes["3"].inputs["tile_size"] = 32
    events = []
    result = Executor(builtin_registry).run(wf, on_event=events.append)
    assert result.ok, result.error
    source = result.values["2"][0]
    assert result.values["3"][0].shape == (1, source.shape[1] * 4, source.shape[2] * 4, 3)
    ticks = [(e["value"], e["max"]) for e in events if e["type"] == "progress" and e["node"] == "3"]
    assert ticks and ticks[-1][0] == ticks[-1][1] == len(ticks) > 1


def test_loader_node_names_the_file_it_refuses(builtin_registry, tmp_folders):
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    folder = tmp_folders.models / "upscale_models"
    folder.mkdir(parents=True, exist_ok=True)
    write_lora(folder / "not_an_upscaler.safetensors", "sd1")
    graph = {"1": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "not_an_upscaler.safetensors"}},
             "2": {"class_type": "LoadImage", "inputs": {"image": "red-circle-on-blue.png"}},
             "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["1", 0], "image": ["2", 0]}},
             "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "up"}}}
    result = Executor(builtin_registry).run(parse_workflow(graph, builtin_registry))
    [problem] = result.problems  # a file of a known other kind: validation says which
    assert result.status == "invalid" and problem.input == "model_name"
    assert "not_an_upscaler.safetensors is not a file for models/upscale_models/" in problem.message
    assert "looks like a LoRA" in problem.message
    from safetensors.torch import save_file
    save_file({"mystery.weight": torch.zeros(2, 2)}, str(folder / "mystery.safetensors"))
    graph["1"]["inputs"]["model_name"] = "mystery.safetensors"
    result = Executor(builtin_registry).run(parse_workflow(graph, builtin_registry))
    assert result.status == "error" and result.error["input"] == "model_name"
    assert "mystery.safetensors is not an upscale model" in result.error["message"]


def test_out_of_memory_halves_the_tile(esrgan):
    from graphflow.models.upscale import upscale_fitting

    model = load_upscale_model(esrgan)
    sizes = []

    class Tight:  # the model, but "out of memory" on tiles larger than 32 pixels
        scale, net = model.scale, model.model

        def __init__(self):
            self.model = self.net

        def __call__(self, x):
            sizes.append(x.shape[-1])
            if x.shape[-1] > 32:
                raise torch.OutOfMemoryError("fake")
            return model(x)
    image = torch.rand(1, 64, 64, 3)
    out = upscale_fitting(Tight(), image, tile=128, overlap=8, smallest=16)
    assert sizes[:2] == [64, 64] and max(sizes[2:]) == 32 and out.shape == (1, 256, 256, 3)  # tiles 128, 64, 32
    assert torch.allclose(out, upscale(model, image, tile=32, overlap=8))


class Constant:
    """A stand-in upscale model (scale 1) giving the k-th tile it sees the constant values[k]; it
    records each tile's height and width. Out of memory on tiles wider than `fits`."""
    scale = 1

    def __init__(self, values=(), fits=10**9):
        self.values, self.fits, self.tiles = list(values), fits, []
        self.model = torch.nn.Identity()  # what the memory manager places

    def __call__(self, x):
        if x.shape[-1] > self.fits:
            raise torch.OutOfMemoryError("fake")
        self.tiles.append(tuple(x.shape[-2:]))
        return torch.full_like(x, self.values[len(self.tiles) - 1] if self.values else 0.5)


def test_tiles_start_every_tile_minus_overlap_and_cross_fade_before_clamping():
    # ComfyUI's tiling of 24 columns in tiles of 16 overlapping by 4: starts 0 and 12 (every
    # 16 - 4), the second cut short at the border (12 wide), not moved back to start at 8.
    model = Constant([-1.0, 2.0])
    out = upscale(model, torch.rand(1, 8, 24, 3), tile=16, overlap=4)
    assert model.tiles == [(8, 16), (8, 12)]
    # Over the 4 shared columns the first tile's weight falls 1, 3/4, 2/4, 1/4 and the second's
    # rises 1/4 .. 1: (-1 w1 + 2 w2) / (w1 + w2) = -0.4, 0.2, 0.8, 1.4, then clamped to 0..1
    # (clamping each tile first would give 0, 0.4, 0.6, 0.8).
    row = out[0, 3, :, 0]
    assert torch.allclose(row[12:16], torch.tensor([0.0, 0.2, 0.8, 1.0]), atol=1e-6)
    assert (row[:12] == 0).all() and (row[16:] == 1).all()


def test_out_of_memory_tries_512_256_128_then_gives_up():
    from graphflow.models.upscale import upscale_fitting

    image = torch.rand(1, 8, 600, 3)
    model = Constant(fits=128)
    upscale_fitting(model, image)
    assert model.tiles[0] == (8, 128) and {w for _, w in model.tiles} == {128, 600 - 480}  # starts 0, 96, .., 480
    with pytest.raises(torch.OutOfMemoryError):  # 64 is not tried: ComfyUI stops below 128
        upscale_fitting(Constant(fits=64), image)


def test_validation_refuses_a_pickle_with_code_and_allows_taesd(builtin_registry, tmp_folders):
    """Before anything runs: LoadUpscaleModel naming a pickle that would run code is a problem of
    its model_name; LoadVAE's "taesd" (two files in vae_approx/, no file in vae/) is not."""
    from graphflow.validation import validate
    from graphflow.workflow import parse_workflow

    folder = tmp_folders.models / "upscale_models"
    folder.mkdir(parents=True, exist_ok=True)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    (folder / "evil.pth").write_bytes(pickle.dumps({"model.0.weight": Evil()}))
    graph = {"1": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "evil.pth"}},
             "2": {"class_type": "LoadImage", "inputs": {"image": "red-circle-on-blue.png"}},
             "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["1", 0], "image": ["2", 0]}},
             "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}
    problems = validate(parse_workflow(graph, builtin_registry), builtin_registry)
    assert [(p.node_id, p.input) for p in problems] == [("1", "model_name")]
    assert "evil.pth was refused by PyTorch's restricted unpickler" in problems[0].message

    from pathlib import Path
    demo = Path(__file__).parent.parent / "graphflow" / "bundled" / "demo_taesd"
    approx = tmp_folders.models / "vae_approx"
    approx.mkdir(parents=True, exist_ok=True)
    for part in ("encoder", "decoder"):
        (approx / f"taesd_{part}.safetensors").write_bytes((demo / f"taesd_{part}.safetensors").read_bytes())
    graph = {"1": {"class_type": "VAELoader", "inputs": {"vae_name": "taesd"}},
             "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
             "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 0]}},
             "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}
    assert validate(parse_workflow(graph, builtin_registry), builtin_registry) == []
