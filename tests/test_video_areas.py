"""Conditioning areas and masks on video latents [B, C, T, h, w], as ComfyUI's N-d areas: an area
is (sizes per latent dim..., offsets per latent dim...), the model runs on the crop and the weight
fades over min(8, size // 4) positions at every inner edge, time included; and the
ConditioningSetAreaPercentageVideo node in a tiny LTX-Video graph."""

import json

import pytest
import torch
from sampling_fakes import FakeModel, context_eps, prompt
from test_nodes_image_mask import call

from graphflow.context import NodeInputError
from graphflow.sampling import prepare_conds
from graphflow.sampling.guidance import Cond, _crop_and_weight, match_areas, predict_sides
from tests.test_ltxv import ltxv_models, registry  # noqa: F401  (the fixture)

VIDEO = (1, 2, 12, 16, 16)  # [B, C, T, h, w]


def conds(conditioning, shape=VIDEO, negative=False):
    return prepare_conds(conditioning, FakeModel(context_eps), shape, "cpu", negative=negative)


def test_percentage_video_area_resolves_per_dim():
    # ("percentage", t, h, w, z, y, x): each fraction times the latent's size there, sizes at least 1
    [c] = conds(prompt(0.1, area=("percentage", 0.67, 0.75, 0.01, 0.25, 0.25, 0.5)))
    assert c.area == (8, 12, 1, 3, 4, 8)  # round(8.04), round(12), max(1, round(0.16)); offsets 3, 4, 8
    # absolute video areas are taken as they are
    [c] = conds(prompt(0.1, area=(4, 8, 8, 2, 0, 8)))
    assert c.area == (4, 8, 8, 2, 0, 8)


def test_image_area_on_a_video_covers_every_frame():
    # ConditioningSetArea's (h, w, y, x): ComfyUI's add_area_dims puts the whole of the frames in front
    [c] = conds(prompt(0.1, area=(8, 4, 2, 6)))
    assert c.area == (12, 8, 4, 0, 2, 6)
    # ConditioningSetAreaPercentage's, taken the same way (ComfyUI's resolver mis-indexes it on video)
    [c] = conds(prompt(0.1, area=("percentage", 0.5, 0.25, 0.5, 0.75)))
    assert c.area == (12, 8, 4, 0, 8, 12)
    # all frames: no fade in time, the spatial fade over min(8, size // 4): h 8 -> 2, w 4 -> 1 (none)
    x = torch.randn(VIDEO)
    _, weight, area = _crop_and_weight(c, x)
    h = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    h[0], h[1] = 0.5, 1.0  # starts at row 8: an inner edge; ends at the bottom
    assert torch.equal(weight, h.reshape(1, 1, 1, 8, 1).expand(1, 2, 12, 8, 4))


def test_video_area_on_an_image_latent_is_an_error_naming_the_node():
    with pytest.raises(ValueError, match="entry 0: ConditioningSetAreaPercentageVideo needs a video latent"):
        conds(prompt(0.1, area=("percentage", 1.0, 0.5, 0.5, 0.0, 0.0, 0.0)), shape=(1, 4, 16, 16))
    with pytest.raises(ValueError, match=r"a video area \(t, h, w, z, y, x\) needs a video latent"):
        conds(prompt(0.1, area=(4, 8, 8, 0, 0, 0)), shape=(1, 4, 16, 16))


def test_crop_and_fade_weights_hand_computed():
    # frames 2..9 (inner edges at both ends, 8 // 4 = 2 steps), rows 4..15 (inner top, 12 // 4 = 3
    # steps; the bottom is the latent's), columns 12..15 (inner left, 4 // 4 = 1 step: weight 1)
    cond = Cond(context=torch.zeros(1, 1, 1), area=(8, 12, 4, 2, 4, 12), strength=0.5)
    x = torch.randn(VIDEO)
    input_x, weight, area = _crop_and_weight(cond, x)
    assert area == (8, 12, 4, 2, 4, 12)
    assert torch.equal(input_x, x[:, :, 2:10, 4:16, 12:16])
    t = torch.tensor([0.5, 1, 1, 1, 1, 1, 1, 0.5])
    h = torch.tensor([1 / 3, 2 / 3] + [1.0] * 10)
    want = 0.5 * t.reshape(8, 1, 1) * h.reshape(1, 12, 1) * torch.ones(1, 1, 4)
    torch.testing.assert_close(weight, want.expand(1, 2, 8, 12, 4), rtol=0, atol=1e-7)

    # an area running past the last frame is cut there: frames 8..11 only, 4 // 4 = 1 step in time
    cond = Cond(context=torch.zeros(1, 1, 1), area=(10, 16, 16, 8, 0, 0))
    input_x, weight, area = _crop_and_weight(cond, x)
    assert area == (4, 16, 16, 8, 0, 0) and input_x.shape == (1, 2, 4, 16, 16) and torch.all(weight == 1)
    # bigger than the latent from its corner: cut to it, no inner edge anywhere
    cond = Cond(context=torch.zeros(1, 1, 1), area=(16, 16, 16, 0, 0, 0))
    assert torch.all(_crop_and_weight(cond, x)[1] == 1)
    with pytest.raises(ValueError, match=r"\(t, h, w, z, y, x\) lies outside the 12x16x16 latent"):
        _crop_and_weight(Cond(context=torch.zeros(1, 1, 1), area=(4, 4, 4, 12, 0, 0)), x)


def test_temporal_fade_over_min_8_and_a_quarter_of_the_frames():
    x = torch.randn(1, 1, 40, 4, 4)
    cond = Cond(context=torch.zeros(1, 1, 1), area=(36, 4, 4, 2, 0, 0))  # frames 2..37: 36 // 4 = 9 -> 8 steps
    weight = _crop_and_weight(cond, x)[1][0, 0, :, 0, 0]
    ramp = torch.tensor([(1.0 / 8) * (t + 1) for t in range(8)])
    torch.testing.assert_close(weight[:8], ramp, rtol=0, atol=0)
    torch.testing.assert_close(weight[-8:], ramp.flip(0), rtol=0, atol=0)
    assert torch.all(weight[8:-8] == 1)


def test_video_masks_are_per_frame_or_for_every_frame():
    # a MASK of one frame weighs every frame; of T frames, each its own (ComfyUI: the MASK batch is time)
    one = torch.zeros(1, 32, 32)
    one[:, :, :16] = 1.0
    [c] = conds(prompt(0.1, mask=one, mask_strength=0.5))
    assert c.mask.shape == (1, 12, 16, 16)
    assert torch.all(c.mask[..., :7] == 1) and torch.all(c.mask[..., 9:] == 0)
    per_frame = torch.arange(12.0).reshape(12, 1, 1).expand(12, 16, 16)
    [c] = conds(prompt(0.1, mask=per_frame))
    assert torch.equal(c.mask[0], per_frame)
    x = torch.randn(VIDEO)
    _, weight, _ = _crop_and_weight(c, x)
    assert torch.equal(weight, per_frame.expand(1, 2, 12, 16, 16))  # no fade for masks
    with pytest.raises(ValueError, match=r"one per latent frame \[12, H, W\], got shape \(1, 3, 16, 16\)"):
        conds(prompt(0.1, mask=torch.ones(3, 16, 16)))


def test_per_frame_video_masks_are_cut_with_context_windows_over_frames():
    from graphflow.sampling.context_windows import ContextWindows

    per_frame = torch.rand(12, 16, 16, generator=torch.Generator().manual_seed(3))
    positive = conds(prompt(0.2) + prompt(0.6, mask=per_frame, mask_strength=2.0))
    x = torch.randn(VIDEO)
    sigma = torch.tensor([1.0])

    class Denoiser:  # pointwise: windowed equals whole
        context_windows = None

        def __init__(self):
            self.frames = []

        def __call__(self, x, sigma, context=None, **_):
            self.frames.append(x.shape[2])
            return 0.5 * x - context.mean(dim=(1, 2)).reshape(-1, 1, 1, 1, 1)

    [whole] = predict_sides(Denoiser(), [positive], x, sigma)
    weight = 2.0 * per_frame.expand(VIDEO)
    torch.testing.assert_close(whole, ((0.5 * x - 0.2) + weight * (0.5 * x - 0.6)) / (1 + weight + 1e-37))
    windowed = Denoiser()
    windowed.context_windows = ContextWindows(5, 2, dim=2).for_run(torch.tensor([1.0, 0.0]))
    [got] = predict_sides(windowed, [positive], x, sigma)
    torch.testing.assert_close(got, whole)
    assert max(windowed.frames) == 5 and len(windowed.frames) > 2  # the mask was cut with each window


def test_areas_over_every_frame_work_with_context_windows_over_frames():
    """An image area on a video spans every frame, so each window whole; a temporal box is refused."""
    from graphflow.sampling.context_windows import ContextWindows

    positive = conds(prompt(0.2) + prompt(0.6, area=("percentage", 0.5, 0.5, 0.5, 0.0), strength=2.0))
    assert positive[1].area == (12, 8, 8, 0, 8, 0)
    x = torch.randn(VIDEO)
    sigma = torch.tensor([1.0])

    class Denoiser:  # pointwise: windowed equals whole
        context_windows = None

        def __init__(self):
            self.shapes = []

        def __call__(self, x, sigma, context=None, **_):
            self.shapes.append(tuple(x.shape))
            return 0.5 * x - context.mean(dim=(1, 2)).reshape(-1, 1, 1, 1, 1)

    [whole] = predict_sides(Denoiser(), [positive], x, sigma)
    windowed = Denoiser()
    windowed.context_windows = ContextWindows(5, 2, dim=2).for_run(torch.tensor([1.0, 0.0]))
    [got] = predict_sides(windowed, [positive], x, sigma)
    torch.testing.assert_close(got, whole)
    assert (1, 2, 5, 8, 8) in windowed.shapes and max(s[2] for s in windowed.shapes) == 5  # the crop of each window
    boxed = conds(prompt(0.6, area=("percentage", 0.5, 1.0, 1.0, 0.25, 0.0, 0.0)))
    with pytest.raises(ValueError, match="can't cut a conditioning area that covers part of that dim"):
        predict_sides(windowed, [boxed], x, sigma)


def test_mask_bounds_on_video_are_the_box_over_all_frames_for_every_frame():
    mask = torch.zeros(12, 16, 16)
    mask[2, 3:5, 4:6] = 1.0
    mask[9, 10, 13] = 1.0
    [c] = conds(prompt(0.1, mask=mask, set_area_to_bounds=True))
    assert c.area == (12, 8, 10, 0, 3, 4)  # rows 3..10, columns 4..13 (at least 8), all frames


def test_weighted_average_of_two_video_areas_with_a_pointwise_denoiser():
    """Each entry's prediction counts only in its box, weighted by its faded strength; the
    negative runs on each box too (match_areas); what no entry covers gets 0."""
    x = torch.randn(VIDEO)
    sigma = torch.tensor([1.0])
    a = prompt(0.2, area=("percentage", 0.67, 1.0, 1.0, 0.0, 0.0, 0.0))  # frames 0..7
    b = prompt(0.6, area=("percentage", 0.75, 1.0, 0.5, 0.25, 0.0, 0.5), strength=2.0)  # frames 3..11, right half
    positive, negative = conds(a + b), conds(prompt(-0.4), negative=True)
    match_areas(positive, negative)
    shapes = []

    def denoiser(x, sigma, context=None, **_):  # pointwise in x, one value per prompt
        shapes.append(tuple(x.shape))
        return 0.5 * x - context.mean(dim=(1, 2)).reshape(-1, 1, 1, 1, 1)

    cond, uncond = predict_sides(denoiser, [positive, negative], x, sigma)
    assert sorted(shapes) == [(1, 2, 12, 16, 16), (2, 2, 8, 16, 16), (2, 2, 9, 16, 8)]  # each box with its negative
    wa = torch.zeros(12)
    wa[:8] = 1.0
    wa[7] = 0.5  # the end of A is inside: min(8, 8 // 4) = 2 steps (1/2, 2/2)
    wb = torch.zeros(12)
    wb[3:] = 2.0
    wb[3] = 1.0  # B starts inside: 9 // 4 = 2 steps; its left edge (8 // 4 = 2 steps) at column 8
    wa = wa.reshape(1, 1, 12, 1, 1).expand(VIDEO)
    wb = wb.reshape(1, 1, 12, 1, 1).expand(VIDEO).clone()
    wb[..., :8] = 0.0
    wb[..., 8] *= 0.5
    want = (wa * (0.5 * x - 0.2) + wb * (0.5 * x - 0.6)) / (wa + wb + 1e-37)
    torch.testing.assert_close(cond, want)
    assert torch.all(cond[:, :, 8:, :, :8] == 0)  # frames 8..11 of the left half: no entry
    torch.testing.assert_close(uncond, 0.5 * x + 0.4)


# -- the node, in a ComfyUI graph ----------------------------------------------------------------

def test_node_writes_comfyui_area_and_refuses_an_area_past_the_edge(builtin_registry):
    out = call(builtin_registry, "ConditioningSetAreaPercentageVideo", conditioning=prompt(0.5), width=0.5,
               height=0.25, temporal=0.75, x=0.5, y=0.125, z=0.25, strength=1.5)
    options = out[0][1]
    assert options["area"] == ("percentage", 0.75, 0.25, 0.5, 0.25, 0.125, 0.5)
    assert options["strength"] == 1.5 and options["set_area_to_bounds"] is False
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "ConditioningSetAreaPercentageVideo", conditioning=prompt(0.5), width=0.5,
             height=0.5, temporal=0.5, x=0.0, y=0.0, z=1.0, strength=1.0)
    assert e.value.input == "z"


def video_area_graph() -> dict:
    """ComfyUI API format: two prompts, each in its box of a 256x256, 89-frame video (a 12x8x8
    latent), combined; one Euler step from sigma 1 to 0."""
    def area(text_node, **box):
        return {"class_type": "ConditioningSetAreaPercentageVideo",
                "inputs": {"conditioning": [text_node, 0], "width": 1.0, "height": 1.0, "temporal": 1.0, "x": 0.0,
                           "y": 0.0, "z": 0.0, "strength": 1.0, **box}}

    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "ltx-video-2b-v0.9.safetensors"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5xxl_fp16.safetensors", "type": "ltxv",
                                                     "device": "default"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red boat", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["2", 0]}},
        "12": {"class_type": "CLIPTextEncode", "inputs": {"text": "a blue sky", "clip": ["2", 0]}},
        "13": area("3", temporal=0.67),
        "14": area("12", temporal=0.75, z=0.25, width=0.5, x=0.5, strength=2.0),
        "15": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["13", 0],
                                                               "conditioning_2": ["14", 0]}},
        "5": {"class_type": "LTXVConditioning", "inputs": {"positive": ["15", 0], "negative": ["4", 0],
                                                           "frame_rate": 25.0}},
        "6": {"class_type": "EmptyLTXVLatentVideo", "inputs": {"width": 256, "height": 256, "length": 89,
                                                               "batch_size": 1}},
        "7": {"class_type": "LTXVScheduler", "inputs": {"steps": 1, "max_shift": 2.05, "base_shift": 0.95,
                                                        "stretch": False, "terminal": 0.1, "latent": ["6", 0]}},
        "8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "9": {"class_type": "SamplerCustom", "inputs": {"model": ["1", 0], "add_noise": True, "noise_seed": 5,
                                                        "cfg": 3.0, "positive": ["5", 0], "negative": ["5", 1],
                                                        "sampler": ["8", 0], "sigmas": ["7", 0],
                                                        "latent_image": ["6", 0]}},
    }


def test_ltxv_graph_with_two_video_areas(ltxv_models, monkeypatch):  # noqa: F811
    from graphflow.executor import Executor
    from graphflow.models.ltxv import LTXV
    from graphflow.sampling.noise import initial_noise
    from graphflow.validation import validate
    from graphflow.workflow import parse_workflow

    reg = registry()
    graph = video_area_graph()
    assert validate(parse_workflow(json.loads(json.dumps(graph)), reg), reg, outputs=["9"]) == []
    bad = json.loads(json.dumps(graph))
    bad["14"]["inputs"]["temporal"] = 1.5
    [problem] = validate(parse_workflow(bad, reg), reg, outputs=["9"])  # above the node's maximum
    assert problem.node_id == "14" and problem.input == "temporal"

    shapes, forward = [], LTXV.forward

    def recording(self, x, *args, **kwargs):
        shapes.append(tuple(x.shape))
        return forward(self, x, *args, **kwargs)

    # the real tiny model runs on each box
    monkeypatch.setattr(LTXV, "forward", recording)
    result = Executor(reg).run(parse_workflow(json.loads(json.dumps(graph)), reg), outputs=["9"])
    assert result.ok, json.dumps(result.error, default=str)[:3000]
    samples = result.values["9"][0]["samples"]
    assert samples.shape == (1, 128, 12, 8, 8) and torch.isfinite(samples).all()
    assert torch.allclose(result.values["7"][0], torch.tensor([1.0, 0.0]))
    # each box, and the negative on each box (its prompt's 3 tokens don't batch with the 5 of the boxes')
    assert sorted(shapes) == [(1, 128, 8, 8, 8)] * 2 + [(1, 128, 9, 8, 4)] * 2 + [(1, 128, 12, 8, 8)]

    # a pointwise velocity, one value per prompt: the result is the hand-computed weighted average
    def pointwise(self, x, sigma, context, *args, **kwargs):
        return 0.5 * x + context.mean(dim=(1, 2)).reshape(-1, 1, 1, 1, 1)

    monkeypatch.setattr(LTXV, "forward", pointwise)
    result = Executor(reg).run(parse_workflow(json.loads(json.dumps(graph)), reg), outputs=["9"])
    assert result.ok, json.dumps(result.error, default=str)[:3000]
    mean = {node: float(result.values[node][0][0][0].float().mean()) for node in ("3", "12", "4")}
    x = initial_noise(torch.zeros(1, 128, 12, 8, 8), 5)  # at sigma 1 the noisy latent is the noise

    def denoised(m):  # x0 = x - sigma v at sigma 1
        return x - (0.5 * x + m)

    shape = (1, 128, 12, 8, 8)
    wa = torch.tensor([1, 1, 1, 1, 1, 1, 1, 0.5, 0, 0, 0, 0]).reshape(1, 1, 12, 1, 1).expand(shape)
    wb = torch.tensor([0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 2, 2.0]).reshape(1, 1, 12, 1, 1).expand(shape).clone()
    wb[..., :4] = 0  # B: the right half, its left edge 4 // 4 = 1 step: no fade
    cond = (wa * denoised(mean["3"]) + wb * denoised(mean["12"])) / (wa + wb + 1e-37)
    uncond = denoised(mean["4"])
    want = uncond + (cond - uncond) * 3.0
    torch.testing.assert_close(result.values["9"][0]["samples"], want, rtol=1e-5, atol=1e-5)
    # frames 8..11 of the left half: no positive entry there, so cond is 0
    torch.testing.assert_close(want[:, :, 8:, :, :4], uncond[:, :, 8:, :, :4] * (1 - 3.0))


def test_areas_that_would_break_ltxv_guides_or_noise_masks_are_refused(ltxv_models):  # noqa: F811
    """LTXVAddGuide's guide frames sit at the latent's end with the whole latent's positions, and
    LTXVImgToVideo's noise mask gives the model a sigma per token of the whole latent: neither
    fits a crop (ComfyUI passes both uncropped too)."""
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.sampling.pipeline import sample

    model = FakeModel(context_eps)
    model.is_video = True
    guides = {"keyframe_idxs": torch.zeros(256, 3)}  # one latent frame of 16x16 tokens
    with pytest.raises(ValueError, match="entry 0: a conditioning area can't crop a latent with LTXVAddGuide"):
        prepare_conds(prompt(0.1, area=(4, 4, 0, 0), **guides), model, VIDEO, "cpu")
    [c] = prepare_conds(prompt(0.1, area=(16, 16, 0, 0), **guides), model, VIDEO, "cpu")  # the whole latent: fine
    assert c.area == (12, 16, 16, 0, 0, 0)

    ckpt = load_checkpoint(ltxv_models.models / "checkpoints" / "ltx-video-2b-v0.9.safetensors", device="cpu",
                           dtype=torch.float32)
    cond = [(torch.zeros(1, 3, ckpt.model.unet.config.caption_channels), {})]
    area = [(cond[0][0], {"area": (1, 1, 0, 0)})]
    latent = {"samples": torch.zeros(1, 128, 2, 2, 2), "noise_mask": torch.ones(1, 1, 2, 2, 2)}
    with pytest.raises(ValueError, match=r"a conditioning area's crop \(2, 1, 1\) can't use it"):
        sample(ckpt.model, 0, 1, 1.0, "euler", "simple", area, cond, latent)
