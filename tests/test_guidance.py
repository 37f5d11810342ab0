"""Classifier-free guidance and conditioning lists (areas, strengths, masks, SDXL y, batching)."""

import pytest
import torch
from sampling_fakes import FakeModel, context_eps, prompt

from graphflow.sampling import CFGDenoiser, ModelDenoiser, cfg_combine, prepare_conds
from graphflow.sampling.guidance import match_areas

SHAPE = (2, 4, 16, 16)
SIGMA = torch.full((2,), 2.0)


def guided(positive, negative, cfg, model=None, shape=SHAPE):
    model = model or FakeModel(context_eps)
    denoiser = CFGDenoiser(ModelDenoiser(model), prepare_conds(positive, model, shape, "cpu"),
                           prepare_conds(negative, model, shape, "cpu", negative=True), cfg)
    return model, denoiser


def test_cfg_is_uncond_plus_scaled_difference_and_order_matters():
    x = torch.randn(SHAPE)
    model, denoiser = guided(prompt(0.3), prompt(-0.2), cfg=7.5)
    out = denoiser(x, SIGMA)
    cond, uncond = x - 2.0 * 0.3, x - 2.0 * (-0.2)  # denoised = x - sigma * eps
    torch.testing.assert_close(out, uncond + (cond - uncond) * 7.5)
    torch.testing.assert_close(out, x - 2.0 * (-0.2 + 7.5 * 0.5))
    _, swapped = guided(prompt(-0.2), prompt(0.3), cfg=7.5)
    assert (swapped(x, SIGMA) - out).abs().min() > 1.0
    assert len(model.unet.calls) == 1 and model.unet.calls[0]["x"].shape[0] == 4  # cond + uncond: one forward


def test_cfg_combine_operand_order():
    cond, uncond = torch.tensor([1.0]), torch.tensor([0.25])
    assert cfg_combine(cond, uncond, 3.0).item() == 0.25 + (1.0 - 0.25) * 3.0


def test_cfg_one_skips_the_negative_prompt():
    x = torch.randn(SHAPE)
    model, denoiser = guided(prompt(0.3), prompt(-0.2), cfg=1.0)
    out = denoiser(x, SIGMA)
    torch.testing.assert_close(out, x - 2.0 * 0.3)
    assert len(model.unet.calls) == 1 and model.unet.calls[0]["x"].shape[0] == 2
    assert torch.all(model.unet.calls[0]["context"] == 0.3)


def test_different_token_lengths_are_batched_by_repetition_up_to_4x():
    x = torch.randn(SHAPE)
    model, denoiser = guided(prompt(0.3, tokens=154), prompt(-0.2, tokens=77), cfg=5.0)
    out = denoiser(x, SIGMA)
    assert len(model.unet.calls) == 1 and model.unet.calls[0]["context"].shape[1] == 154
    torch.testing.assert_close(out, x - 2.0 * (-0.2 + 5.0 * 0.5))
    model, denoiser = guided(prompt(0.3, tokens=77 * 5), prompt(-0.2, tokens=77), cfg=5.0)
    torch.testing.assert_close(denoiser(x, SIGMA), out)
    assert len(model.unet.calls) == 2  # 5x padding is too much: separate forwards


def test_batch_size_one_prompt_is_repeated_to_the_latent_batch():
    model = FakeModel(context_eps)
    conds = prepare_conds(prompt(0.1), model, SHAPE, "cpu")
    assert conds[0].context.shape == (2, 77, 8)
    conds = prepare_conds(prompt(0.1, batch=3), model, SHAPE, "cpu")
    assert conds[0].context.shape == (2, 77, 8)


def test_combined_prompts_average_and_area_prompts_act_on_their_area():
    x = torch.zeros(1, 4, 16, 16)
    sigma = torch.tensor([1.0])
    # ConditioningCombine(full A, ConditioningSetArea(B, 12x12 at the top-left))
    positive = prompt(0.2) + prompt(0.6, area=(12, 12, 0, 0), strength=1.0)
    model, denoiser = guided(positive, prompt(0.0), cfg=1.0, shape=x.shape)
    out = -denoiser(x, sigma)  # = the effective eps
    # inside the area, away from its faded inner edges: the average of A and B
    torch.testing.assert_close(out[..., :4, :4], torch.full((1, 4, 4, 4), 0.4))
    # outside: A alone
    torch.testing.assert_close(out[..., 12:, :], torch.full((1, 4, 4, 16), 0.2))
    # the fade over min(8, 12 // 4) = 3 rows: row 11 (the area's last, inside the image) has weight 1/3
    # for B, row 10 2/3
    torch.testing.assert_close(out[0, 0, 11, 0], torch.tensor((0.2 + 0.6 / 3) / (1 + 1 / 3)))
    torch.testing.assert_close(out[0, 0, 10, 0], torch.tensor((0.2 + 0.6 * 2 / 3) / (1 + 2 / 3)))
    # the area prompt ran on the 12x12 crop only
    shapes = sorted(tuple(c["x"].shape[2:]) for c in model.unet.calls)
    assert shapes == [(12, 12), (16, 16)]


def test_strength_weights_the_average():
    x = torch.zeros(1, 4, 16, 16)
    positive = prompt(0.2) + prompt(0.8, area=(16, 16, 0, 0), strength=3.0)  # whole image: no fade
    _, denoiser = guided(positive, prompt(0.0), cfg=1.0, shape=x.shape)
    torch.testing.assert_close(-denoiser(x, torch.tensor([1.0])), torch.full((1, 4, 16, 16), (0.2 + 3 * 0.8) / 4))


def test_area_prompts_get_a_negative_counterpart():
    model = FakeModel(context_eps)
    positive = prepare_conds(prompt(0.2) + prompt(0.6, area=(8, 8, 4, 4), strength=0.5), model, SHAPE, "cpu")
    negative = prepare_conds(prompt(-0.1), model, SHAPE, "cpu")
    match_areas(positive, negative)
    assert len(positive) == 2 and len(negative) == 2
    assert negative[1].area == (8, 8, 4, 4) and negative[1].strength == 0.5
    assert torch.all(negative[1].context == -0.1)


def test_mask_conditioning_weights_without_fade():
    x = torch.zeros(1, 4, 16, 16)
    mask = torch.zeros(128, 128)
    mask[:, :64] = 1.0  # left half, at pixel resolution: resized to the latent
    positive = prompt(0.2) + prompt(0.6, mask=mask, mask_strength=1.0)
    _, denoiser = guided(positive, prompt(0.0), cfg=1.0, shape=x.shape)
    out = -denoiser(x, torch.tensor([1.0]))
    torch.testing.assert_close(out[..., :, :7], torch.full((1, 4, 16, 7), 0.4))
    torch.testing.assert_close(out[..., :, 9:], torch.full((1, 4, 16, 7), 0.2))


def test_sdxl_vector_conditioning_per_entry():
    model = FakeModel(context_eps, adm_channels=16)
    x = torch.randn(SHAPE)
    _, denoiser = guided(prompt(0.3, tag=5.0), prompt(-0.2, tag=7.0), cfg=4.0, model=model)
    denoiser(x, SIGMA)
    y = model.unet.calls[0]["y"]
    assert y.shape == (4, 16)
    # width, height = latent size * 8; the negative side asked with negative=True
    assert sorted(y[:, :4].tolist()) == sorted([[128.0, 128.0, 0.0, 5.0]] * 2 + [[128.0, 128.0, 1.0, 7.0]] * 2)


def test_bad_conditioning_is_reported():
    model = FakeModel(context_eps)
    with pytest.raises(TypeError, match="list of"):
        prepare_conds(torch.zeros(1, 77, 8), model, SHAPE, "cpu")
    with pytest.raises(TypeError, match="entry 0"):
        prepare_conds([torch.zeros(1, 77, 8)], model, SHAPE, "cpu")
    with pytest.raises(ValueError, match=r"\[B, T, D\]"):
        prepare_conds([(torch.zeros(77, 8), {})], model, SHAPE, "cpu")


def test_area_cut_short_by_an_image_that_is_no_multiple_of_64px():
    # 72x40 px -> a 9x5 latent; a 64x64 px area at (8, 8) px keeps 8 rows but only 4 columns
    x = torch.zeros(1, 4, 9, 5)
    positive = prompt(0.2) + prompt(0.6, area=(8, 8, 1, 1), strength=1.0)
    model, denoiser = guided(positive, prompt(0.0), cfg=1.0, shape=x.shape)
    out = -denoiser(x, torch.tensor([1.0]))
    assert sorted(tuple(c["x"].shape[2:]) for c in model.unet.calls) == [(8, 4), (9, 5)]
    # the fade follows the cut-short crop (8 rows, 4 columns): rows over min(8, 8 // 4) = 2 from the
    # top (row 1: 1/2, row 2: 1), columns over 4 // 4 = 1 (weight 1); the bottom and right edges are
    # the image's, not faded
    for row, weight in ((1, 1 / 2), (2, 1.0), (8, 1.0)):
        for col in range(1, 5):
            torch.testing.assert_close(out[0, 0, row, col], torch.tensor((0.2 + 0.6 * weight) / (1 + weight)))
    torch.testing.assert_close(out[0, :, 0, :], torch.full((4, 5), 0.2))  # outside the area


def test_area_counterparts_are_rows_of_their_own_side():
    """A counterpart added to the negative side is a negative row (IP-Adapter gives those the
    unconditional image tokens), though it copies the positive entry's area."""
    model = FakeModel(context_eps)
    positive = prepare_conds(prompt(0.2) + prompt(0.6, area=(8, 8, 4, 4)), model, SHAPE, "cpu")
    negative = prepare_conds(prompt(-0.1) + prompt(-0.3, area=(8, 8, 0, 0)), model, SHAPE, "cpu", negative=True)
    from dataclasses import replace
    positive = [replace(c, control_context=torch.full((1, 2, 8), 1.0)) for c in positive]  # ControlNets' own text
    negative = [replace(c, control_context=torch.full((1, 2, 8), -1.0)) for c in negative]
    match_areas(positive, negative)
    assert [c.negative for c in positive] == [False] * len(positive) and len(positive) == 3
    assert [c.negative for c in negative] == [True] * len(negative) and len(negative) == 3
    # like the prompt, the ControlNets' text comes from the side the counterpart joins
    assert all(float(c.control_context[0, 0, 0]) == 1.0 for c in positive)
    assert all(float(c.control_context[0, 0, 0]) == -1.0 for c in negative)


@pytest.mark.parametrize("arch, apart", [("sd3", True), ("flux", True), ("wan", True), ("sd1", False)])
def test_prompts_of_other_lengths_share_a_call_only_on_unets(arch, apart):
    """ComfyUI passes a DiT's prompt as CONDRegular (entries of other lengths run apart: repeating a
    shorter prompt would reweigh SD3's / FLUX's joint attention) and a UNet's as CONDCrossAttn (the
    shorter repeated to a common length, one call)."""
    from graphflow.sampling.guidance import _can_batch, prepare_conds

    class Model:
        prediction, is_video, adm_channels, dtype = ("flow" if apart else "eps"), arch == "wan", 0, torch.float32

    Model.arch = arch
    x = torch.zeros((1, 16, 1, 4, 4) if arch == "wan" else (1, 16, 4, 4))
    pooled = {"pooled_output": torch.zeros(1, 2048 if arch == "sd3" else 768)} if arch in ("sd3", "flux") else {}
    short, long = ([(torch.zeros(1, n, 8), dict(pooled))] for n in (77, 154))
    a, b, c = (prepare_conds(cond, Model(), x.shape, "cpu")[0] for cond in (short, long, long))
    assert _can_batch((x, None, None, a), (x, None, None, b)) is not apart
    assert _can_batch((x, None, None, b), (x, None, None, c))
