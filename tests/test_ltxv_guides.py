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
            pixels = (frame * 255).byte().numpy()  # truncated, as ComfyUI
            want = torch.from_numpy(av_roundtrip(pixels, crf)).float() / 255
            assert torch.equal(got, want)
        errors.append(float((out - image).abs().mean()))
    assert 0 < errors[0] < errors[1] < errors[2] < 0.1, errors


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


# -- the transformer: appended guide frames at the positions they guide ----------------------------

from tests.test_ltxv import (diffusers_velocity, ltxv_graph, ltxv_models, oracle,  # noqa: E402,F401 (fixtures)
                             transformer_pair)


def grid_coords(frames: int, h: int, w: int, frame_rate: float, keyframes: torch.Tensor | None = None):
    """diffusers' video_coords [1, 3, tokens]: (seconds, pixel row, pixel column) of each token of a
    0.9.0 (non-causal) latent, the last tokens at `keyframes` [N, 3] (pixel frame, row, column)."""
    f, y, x = torch.meshgrid(torch.arange(frames), torch.arange(h), torch.arange(w), indexing="ij")
    coords = torch.stack([8.0 * f, 32.0 * y, 32.0 * x], dim=-1).reshape(-1, 3).float()
    if keyframes is not None:
        coords[-keyframes.shape[0]:] = keyframes
    coords[:, 0] /= frame_rate
    return coords.T[None]


def test_keyframe_positions_match_diffusers_coordinates(transformer_pair):
    _, ours, theirs, _ = transformer_pair
    gen = torch.Generator().manual_seed(11)
    x, context = torch.randn(1, 8, 3, 2, 2, generator=gen), torch.randn(1, 4, 24, generator=gen)
    keyframes = torch.tensor([[5.0, 0, 0], [5, 0, 32], [5, 32, 0], [5, 32, 32]])  # the last frame guides frame 5
    with torch.no_grad():
        got = ours(x, torch.tensor([0.6]), context, frame_rate=24.0, keyframe_positions=keyframes)
        plain = ours(x, torch.tensor([0.6]), context, frame_rate=24.0)
        want = theirs(x.flatten(2).transpose(1, 2), context, torch.tensor([600.0]), None,
                      video_coords=grid_coords(3, 2, 2, 24.0, keyframes), return_dict=False)[0]
    assert (got - want.transpose(1, 2).reshape(x.shape)).abs().max() < 1e-4
    assert (got - plain).abs().max() > 1e-3  # the positions reached attention
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        ours(x, torch.tensor([0.6]), context, keyframe_positions=torch.zeros(4, 2))


# -- LTXVAddGuide / LTXVCropGuides ---------------------------------------------------------------

@pytest.fixture(scope="module")
def ltxv_vae(tmp_path_factory):
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.testing import write_ltxv_checkpoint

    path = write_ltxv_checkpoint(tmp_path_factory.mktemp("ltxv") / "ltxv.safetensors", dtype=torch.float32, seed=3)
    return load_checkpoint(path, device="cpu", dtype=torch.float32).vae


def conditioning(value: float):
    return [(torch.full((1, 3, 8), value), {"frame_rate": 24.0})]


def add_guide(vae, latent, image, frame_idx, strength=1.0, positive=None, negative=None):
    return call(registry(), "LTXVAddGuide", positive=positive or conditioning(1.0),
                negative=negative or conditioning(-1.0), vae=vae, latent=latent, image=image, frame_idx=frame_idx,
                strength=strength)


def stretched(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The frames resized to width x height without cropping (ComfyUI's crop="disabled")."""
    return torch.nn.functional.interpolate(image.movedim(-1, 1), size=(height, width), mode="bilinear",
                                           align_corners=False).movedim(1, -1)


def test_add_guide_at_frame_0_appends_a_keyframe(ltxv_vae):
    """ComfyUI's guide at frame 0 (as at any frame): the still is stretched to the video's size,
    appended with the position of pixel frame 0, and the video's first frame is drawn fresh."""
    image = torch.rand(1, 80, 64, 3, generator=torch.Generator().manual_seed(12))  # taller than the video
    start = call(registry(), "EmptyLTXVLatentVideo", width=64, height=64, length=17, batch_size=2)
    pos, neg, started = call(registry(), "LTXVImgToVideo", positive=conditioning(1.0), negative=conditioning(-1.0),
                             vae=ltxv_vae, image=image, width=64, height=64, length=17, batch_size=2, strength=0.8)
    pos, neg, out = add_guide(ltxv_vae, started, image, 0, strength=0.8, positive=pos, negative=neg)
    assert out["samples"].shape == (2, 128, 4, 2, 2)
    assert torch.equal(out["samples"][:, :, :3], started["samples"])  # the video's own frames as they were
    want = ltxv_vae.encode(stretched(image, 64, 64))
    assert torch.equal(out["samples"][:, :, 3:], want.expand(2, -1, -1, -1, -1))
    assert not torch.equal(want, ltxv_vae.encode(image[:, 8:72]))  # stretched, not cropped to the centre
    assert out["noise_mask"].flatten().tolist() == pytest.approx([1, 1, 1, 0.2] * 2)  # frame 0 redrawn
    rows, cols = [0.0, 0, 32, 32], [0.0, 32, 0, 32]
    for side in (pos, neg):
        assert torch.equal(side[0][1]["keyframe_idxs"], torch.tensor([[0.0, r, c] for r, c in zip(rows, cols)]))
    _, _, both = add_guide(ltxv_vae, out, image, -1, strength=0.5, positive=pos, negative=neg)
    assert both["samples"].shape == (2, 128, 5, 2, 2) and torch.equal(both["samples"][0], both["samples"][1])
    assert both["noise_mask"].flatten().tolist() == pytest.approx([1, 1, 1, 0.2, 0.5] * 2)
    assert start["samples"].shape == (2, 128, 3, 2, 2)


def test_long_clip_appends_two_frames_and_places_the_rest(ltxv_vae):
    """A 17-frame clip (3 latent frames) from frame 8: its first two latent frames are appended at
    pixel frames 8 and 9 (causal positions), the third replaces the video's latent frame 3."""
    clip = torch.rand(20, 64, 64, 3, generator=torch.Generator().manual_seed(14))  # cut to 17
    empty = call(registry(), "EmptyLTXVLatentVideo", width=64, height=64, length=33, batch_size=1)  # 5 frames
    pos, neg, out = add_guide(ltxv_vae, empty, clip, 10, strength=0.9)  # rounded down to 8: latent frame 1
    encoded = ltxv_vae.encode(clip[:17])
    assert encoded.shape[2] == 3 and out["samples"].shape == (1, 128, 7, 2, 2)
    assert torch.equal(out["samples"][:, :, 5:], encoded[:, :, :2])
    assert torch.equal(out["samples"][:, :, 3], encoded[:, :, 2])
    assert torch.equal(out["samples"][:, :, [0, 1, 2, 4]], empty["samples"][:, :, [0, 1, 2, 4]])
    assert out["noise_mask"].flatten().tolist() == pytest.approx([1, 1, 1, 0.1, 1, 0.1, 0.1])
    assert pos[0][1]["keyframe_idxs"][:, 0].unique().tolist() == [8.0, 9.0]
    _, _, cropped = call(registry(), "LTXVCropGuides", positive=pos, negative=neg, latent=out)
    assert torch.equal(cropped["samples"], out["samples"][:, :, :5])


def test_add_guides_append_keyframes_and_crop_removes_them(ltxv_vae):
    gen = torch.Generator().manual_seed(13)
    still, clip = torch.rand(1, 64, 64, 3, generator=gen), torch.rand(11, 64, 64, 3, generator=gen)
    empty = call(registry(), "EmptyLTXVLatentVideo", width=64, height=64, length=17, batch_size=1)  # 3 x 2 x 2
    pos, neg, one = add_guide(ltxv_vae, empty, still, -1, strength=0.7)  # frame 16: latent frame 2
    assert one["samples"].shape == (1, 128, 4, 2, 2)
    assert torch.equal(one["samples"][:, :, 3:], ltxv_vae.encode(still))
    assert one["noise_mask"].flatten().tolist() == pytest.approx([1, 1, 1, 0.3])
    rows, cols = [0.0, 0, 32, 32], [0.0, 32, 0, 32]
    want = torch.tensor([[16.0, r, c] for r, c in zip(rows, cols)])
    for side in (pos, neg):
        assert torch.equal(side[0][1]["keyframe_idxs"], want) and side[0][1]["frame_rate"] == 24.0

    # a clip of 11 frames: its first 9 (2 latent frames), from frame 13 rounded down to 8, after the first guide
    pos, neg, two = add_guide(ltxv_vae, one, clip, 13, positive=pos, negative=neg)
    assert two["samples"].shape == (1, 128, 6, 2, 2)
    assert torch.equal(two["samples"][:, :, 4:], ltxv_vae.encode(clip[:9]))
    assert two["noise_mask"].flatten().tolist() == pytest.approx([1, 1, 1, 0.3, 0, 0])
    clip_positions = torch.tensor([[f, r, c] for f in (8.0, 9.0) for r, c in zip(rows, cols)])  # causal: 8, 8 + 1
    assert torch.equal(pos[0][1]["keyframe_idxs"], torch.cat([want, clip_positions]))

    # -1 still means the video's own last frame with guides appended
    pos3, _, three = add_guide(ltxv_vae, two, still, -1, positive=pos, negative=neg)
    assert torch.equal(pos3[0][1]["keyframe_idxs"][-4:], want) and three["samples"].shape[2] == 7

    pos, neg, cropped = call(registry(), "LTXVCropGuides", positive=pos, negative=neg, latent=two)
    assert torch.equal(cropped["samples"], empty["samples"])
    assert cropped["noise_mask"].flatten().tolist() == [1, 1, 1]
    for side in (pos, neg):
        assert "keyframe_idxs" not in side[0][1] and side[0][1]["frame_rate"] == 24.0
    # nothing appended: unchanged
    _, _, same = call(registry(), "LTXVCropGuides", positive=pos, negative=neg, latent=cropped)
    assert torch.equal(same["samples"], cropped["samples"])


def test_add_guide_bad_inputs(ltxv_vae):
    from graphflow.context import NodeInputError

    latent = call(registry(), "EmptyLTXVLatentVideo", width=64, height=64, length=17, batch_size=1)
    clip = torch.rand(9, 64, 64, 3)
    with pytest.raises(NodeInputError, match="run past the video's 3 latent frames") as e:
        add_guide(ltxv_vae, latent, clip, 16)  # 2 latent frames from latent frame 2
    assert e.value.input == "frame_idx"
    with pytest.raises(NodeInputError, match=r"LTX-Video LATENT \[B, 128, frames, h, w\]") as e:
        add_guide(ltxv_vae, {"samples": torch.zeros(1, 4, 8, 8)}, clip[:1], 0)
    assert e.value.input == "latent"
    with pytest.raises(NodeInputError, match="LTX-Video's video VAE") as e:
        add_guide(object(), latent, clip[:1], 0)
    assert e.value.input == "vae"
    pos, neg, guided = add_guide(ltxv_vae, latent, clip[:1], 8)
    with pytest.raises(NodeInputError, match="only 1 frames") as e:
        call(registry(), "LTXVCropGuides", positive=pos, negative=neg, latent={"samples": guided["samples"][:, :, :1]})
    assert e.value.input == "latent"


def test_guide_graph_matches_diffusers_and_crops(ltxv_models):
    """ComfyUI's keyframe graph: a preprocessed still guides the last frame of a 9-frame video
    (appended, told the position of pixel frame 8), sampled with SamplerCustom, cropped, decoded.
    The oracle: diffusers' transformer with those token coordinates and per-token timesteps (the
    guide's 0), two Euler steps with CFG, the guide frame held to its latent."""
    from PIL import Image

    from graphflow.executor import Executor
    from graphflow.sampling.noise import initial_noise
    from graphflow.workflow import parse_workflow

    picture = (smooth_picture(64, 96)[0] * 255).round().byte().numpy()
    Image.fromarray(picture).save(ltxv_models.inputs / "last.png")
    graph = ltxv_graph(3.0, 25.0)
    graph["12"] = {"class_type": "LoadImage", "inputs": {"image": "last.png"}}
    graph["13"] = {"class_type": "LTXVPreprocess", "inputs": {"image": ["12", 0], "img_compression": 35}}
    graph["14"] = {"class_type": "LTXVAddGuide", "inputs": {
        "positive": ["3", 0], "negative": ["4", 0], "vae": ["1", 2], "latent": ["6", 0], "image": ["13", 0],
        "frame_idx": -1, "strength": 1.0}}
    graph["5"]["inputs"].update(positive=["14", 0], negative=["14", 1])
    graph["9"]["inputs"]["latent_image"] = ["14", 2]
    graph["15"] = {"class_type": "LTXVCropGuides", "inputs": {"positive": ["5", 0], "negative": ["5", 1],
                                                              "latent": ["9", 0]}}
    graph["10"]["inputs"]["samples"] = ["15", 2]
    reg = registry()
    result = Executor(reg).run(parse_workflow(json.loads(json.dumps(graph)), reg), outputs=["11"])
    assert result.ok, json.dumps(result.error, default=str)[:3000]

    latent = result.values["14"][2]["samples"]
    assert latent.shape == (1, 128, 3, 2, 2)
    keyframes = result.values["14"][0][0][1]["keyframe_idxs"]
    theirs, text = oracle(ltxv_models)
    cond, uncond = text("a boat on a lake at dawn"), text("blurry")
    mask = torch.tensor([1.0, 1.0, 0.0]).reshape(1, 1, 3, 1, 1).expand(1, 128, 3, 2, 2)

    def two_steps(coords):
        x = initial_noise(latent, 7)
        for sigma, sigma_next in ((1.0, 0.1), (0.1, 0.0)):
            x_in = x * mask + latent * (1 - mask)
            timestep = (mask[:, 0] * sigma * 1000.0).flatten(1)
            v = [theirs(x_in.flatten(2).transpose(1, 2), c, timestep, None, video_coords=coords,
                        return_dict=False)[0].transpose(1, 2).reshape(x.shape) for c in (cond, uncond)]
            denoised = x_in - sigma * (v[1] + 3.0 * (v[0] - v[1]))
            denoised = denoised * mask + latent * (1 - mask)
            x = x + (x - denoised) / sigma * (sigma_next - sigma)
        return x

    with torch.no_grad():
        want, as_frame_2 = two_steps(grid_coords(3, 2, 2, 25.0, keyframes)), two_steps(grid_coords(3, 2, 2, 25.0))
    sampled = result.values["9"][0]["samples"]
    assert float((sampled - want).abs().max()) < 1e-4 * float(want.abs().max())
    assert float((sampled - as_frame_2).abs().max()) > 1e-3 * float(want.abs().max())  # the position mattered
    assert torch.allclose(sampled[:, :, 2:], latent[:, :, 2:], atol=1e-5)  # the guide stays as it is
    cropped = result.values["15"]
    assert torch.equal(cropped[2]["samples"], sampled[:, :, :2])
    assert "keyframe_idxs" not in cropped[0][0][1]
    assert result.values["10"][0].shape == (9, 64, 64, 3)
    assert len(list(ltxv_models.outputs.rglob("ltxv*.webp"))) == 1


# -- ModelMergeLTXV ------------------------------------------------------------------------------

MERGE_BLOCKS = (["patchify_proj.", "adaln_single.", "caption_projection."]
                + [f"transformer_blocks.{i}." for i in range(28)] + ["scale_shift_table", "proj_out."])


def test_model_merge_ltxv_picks_each_blocks_weights(tmp_path):
    from safetensors.torch import load_file

    from graphflow.context import NodeInputError
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.testing import write_checkpoint, write_ltxv_checkpoint

    paths = [write_ltxv_checkpoint(tmp_path / f"ltxv{s}.safetensors", dtype=torch.float32, seed=s) for s in (0, 5)]
    m1, m2 = (load_checkpoint(p, device="cpu", dtype=torch.float32).model for p in paths)
    prefix = "model.diffusion_model."
    files = [{k[len(prefix):]: v for k, v in load_file(str(p)).items() if k.startswith(prefix)} for p in paths]
    ratios = {"patchify_proj.": 1.0, "adaln_single.": 0.0, "caption_projection.": 0.25, "transformer_blocks.0.": 0.0,
              "scale_shift_table": 1.0, "proj_out.": 0.0}
    widgets = {p.rstrip(".").replace(".", "_"): v for p, v in ratios.items()}
    before = {k: v.clone() for k, v in m1.unet.state_dict().items()}
    merged = call(registry(), "ModelMergeLTXV", model1=m1, model2=m2, **widgets).unet.state_dict()
    for name, a in files[0].items():
        block = next(p for p in ratios if name.startswith(p))
        r = ratios[block]
        torch.testing.assert_close(merged[name], r * a + (1 - r) * files[1][name], msg=name)
        if r in (0.0, 1.0):
            assert torch.equal(merged[name], a if r == 1 else files[1][name]), name
    assert {next(p for p in ratios if n.startswith(p)) for n in files[0]} == set(ratios)  # every block is there
    assert all(torch.equal(v, before[k]) for k, v in m1.unet.state_dict().items())  # model1 untouched
    sd1 = load_checkpoint(write_checkpoint(tmp_path / "sd1.safetensors", "sd1"), device="cpu").model
    with pytest.raises(NodeInputError, match="ltxv.*sd1") as e:
        call(registry(), "ModelMergeLTXV", model1=sd1, model2=m2)
    assert e.value.input == "model1"
    assert list(registry().get("ModelMergeLTXV").input_specs)[:2] == ["model1", "model2"]


def test_model_merge_ltxv_graph(ltxv_models):
    """ComfyUI's graph with a second checkpoint merged in (dotted input names): all ratios 0 gives
    model2's video, the defaults (all 1) model1's."""
    from graphflow.executor import Executor
    from graphflow.testing import write_ltxv_checkpoint
    from graphflow.workflow import parse_workflow

    write_ltxv_checkpoint(ltxv_models.models / "checkpoints" / "other.safetensors", dtype=torch.float32, seed=8)
    reg = registry()

    def sampled(model_source, ratio=None):
        graph = ltxv_graph(3.0, 25.0)
        graph["20"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "other.safetensors"}}
        if ratio is not None:
            graph["21"] = {"class_type": "ModelMergeLTXV", "inputs": {
                "model1": ["1", 0], "model2": ["20", 0], **{p: ratio for p in MERGE_BLOCKS}}}
        graph["9"]["inputs"]["model"] = model_source
        result = Executor(reg).run(parse_workflow(json.loads(json.dumps(graph)), reg), outputs=["11"])
        assert result.ok, json.dumps(result.error, default=str)[:3000]
        return result.values["9"][0]["samples"]

    first, other = sampled(["1", 0]), sampled(["20", 0])
    assert float((first - other).abs().max()) > 1e-2
    assert torch.equal(sampled(["21", 0], 0.0), other)
    assert torch.equal(sampled(["21", 0], 1.0), first)


# -- TrimVideoLatent -----------------------------------------------------------------------------

def test_trim_video_latent_drops_first_frames():
    from graphflow.context import NodeInputError

    samples = torch.randn(2, 128, 5, 2, 3)
    mask = torch.rand(2, 1, 5, 1, 1)
    out = call(registry(), "TrimVideoLatent", samples={"samples": samples, "noise_mask": mask, "batch_index": [3, 4]},
               trim_amount=2)
    assert torch.equal(out["samples"], samples[:, :, 2:])
    assert out["noise_mask"] is mask and out["batch_index"] == [3, 4]  # the mask as ComfyUI leaves it
    same = call(registry(), "TrimVideoLatent", samples={"samples": samples}, trim_amount=0)
    assert torch.equal(same["samples"], samples) and "noise_mask" not in same
    with pytest.raises(NodeInputError, match="would leave none") as e:
        call(registry(), "TrimVideoLatent", samples={"samples": samples}, trim_amount=5)
    assert e.value.input == "trim_amount"
    with pytest.raises(NodeInputError, match=r"video LATENT \[B, C, frames, h, w\]") as e:
        call(registry(), "TrimVideoLatent", samples={"samples": torch.zeros(1, 4, 8, 8)}, trim_amount=1)
    assert e.value.input == "samples"


def test_trim_video_latent_graph(ltxv_models):
    """Sample 17 frames, trim the first latent frame, decode: 9 frames, the decoder's view of the
    remaining two latent frames."""
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    graph = ltxv_graph(3.0, 25.0)
    graph["6"]["inputs"]["length"] = 17
    graph["16"] = {"class_type": "TrimVideoLatent", "inputs": {"samples": ["9", 0], "trim_amount": 1}}
    graph["10"]["inputs"]["samples"] = ["16", 0]
    reg = registry()
    result = Executor(reg).run(parse_workflow(json.loads(json.dumps(graph)), reg), outputs=["11"])
    assert result.ok, json.dumps(result.error, default=str)[:3000]
    sampled, trimmed = result.values["9"][0]["samples"], result.values["16"][0]["samples"]
    assert sampled.shape[2] == 3 and torch.equal(trimmed, sampled[:, :, 1:])
    assert result.values["10"][0].shape == (9, 64, 64, 3)
