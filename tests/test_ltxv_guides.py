"""LTX-Video's guide and helper nodes: LTXVPreprocess (H.264 artefacts on stills), LTXVAddGuide /
LTXVCropGuides (guide frames kept by the noise mask, appended frames placed in time by their rotary
positions), ModelMergeLTXV and TrimVideoLatent.

Oracles: PyAV encoding the same frame directly (the preprocess), diffusers' LTX-Video transformer
given the appended frames' coordinates (the keyframe positions), the checkpoint files' own tensors
(the merge), slicing (the trim)."""

import functools
import io
import json
from fractions import Fraction

import numpy as np
import pytest
import torch

from tests.test_nodes_image_mask import call


@functools.lru_cache(maxsize=1)
def registry():
    from graphflow.registry import Registry

    return Registry().load_builtin()


def smooth_picture(height: int, width: int) -> torch.Tensor:
    """[1, H, W, 3]: gradients and soft waves, the kind of picture H.264 compresses by degrees
    (random noise loses about as much at any CRF to yuv420p's halved colour)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    channels = [x, y, 0.5 + 0.4 * torch.sin(12 * x) * torch.cos(9 * y)]
    return torch.stack(channels, dim=-1)[None].clamp(0, 1)


def av_roundtrip(frame: np.ndarray, crf: int) -> np.ndarray:
    """One uint8 [H, W, 3] frame through libx264 at `crf` and back, written out with PyAV alone."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(1), options={"crf": str(crf), "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], "yuv420p"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    with av.open(io.BytesIO(buffer.getvalue())) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


# -- LTXVPreprocess ------------------------------------------------------------------------------

def test_preprocess_crf_0_is_the_input():
    image = torch.rand(2, 16, 24, 3)
    out = call(registry(), "LTXVPreprocess", image=image, img_compression=0)
    assert torch.equal(out, image)


def test_preprocess_matches_av_and_grows_with_crf():
    image = torch.cat([smooth_picture(48, 64), smooth_picture(48, 64).flip(2)])
    errors = []
    for crf in (10, 35, 51):
        out = call(registry(), "LTXVPreprocess", image=image, img_compression=crf)
        assert out.shape == image.shape and out.dtype == image.dtype
        assert 0 <= float(out.min()) and float(out.max()) <= 1
        for got, frame in zip(out, image):
            pixels = (frame * 255).round().byte().numpy()
            want = torch.from_numpy(av_roundtrip(pixels, crf)).float() / 255
            assert torch.equal(got, want)
        errors.append(float((out - image).abs().mean()))
    assert 0 < errors[0] < errors[1] < errors[2] < 0.1, errors


def test_preprocess_odd_size_is_padded_and_restored():
    image = smooth_picture(33, 47)
    out = call(registry(), "LTXVPreprocess", image=image, img_compression=35)
    assert out.shape == image.shape
    # the even part is what the encoder saw of the padded frame: compare against av on that frame
    padded = torch.nn.functional.pad(image.permute(0, 3, 1, 2), (0, 1, 0, 1), mode="replicate").permute(0, 2, 3, 1)
    want = torch.from_numpy(av_roundtrip((padded[0] * 255).round().byte().numpy(), 35)).float() / 255
    assert torch.equal(out[0], want[:33, :47])
    assert float((out - image).abs().mean()) < 0.1


def test_preprocess_bad_image_is_refused():
    from graphflow.context import NodeInputError

    with pytest.raises(NodeInputError, match=r"IMAGE batch \[frames, H, W, C\]") as e:
        call(registry(), "LTXVPreprocess", image=torch.rand(16, 24, 3), img_compression=35)
    assert e.value.input == "image"


def test_preprocess_graph_runs(tmp_folders):
    from PIL import Image

    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    Image.fromarray((smooth_picture(40, 56)[0] * 255).round().byte().numpy()).save(tmp_folders.inputs / "still.png")
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "still.png"}},
        "2": {"class_type": "LTXVPreprocess", "inputs": {"image": ["1", 0], "img_compression": 40}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "pre"}},
    }
    reg = registry()
    result = Executor(reg).run(parse_workflow(json.loads(json.dumps(graph)), reg), outputs=["3"])
    assert result.ok, json.dumps(result.error, default=str)[:2000]
    loaded, out = result.values["1"][0], result.values["2"][0]
    assert out.shape == loaded.shape and 0 < float((out - loaded).abs().mean()) < 0.1
    assert len(list(tmp_folders.outputs.rglob("pre*.png"))) == 1
