"""ComfyUI's conditioning nodes (concat, average, timestep range, mask, area percentage, inpainting
and InstructPix2Pix conditioning) and the guidance support they need."""

import pytest
import torch
from sampling_fakes import SD, FakeModel, context_eps, prompt
from test_nodes_image_mask import call

from graphflow.context import NodeInputError
from graphflow.models.checkpoint import load_vae
from graphflow.sampling import CFGDenoiser, ModelDenoiser, prepare_conds, sample
from graphflow.sampling.guidance import percent_to_sigma
from graphflow.testing import write_vae

SHAPE = (1, 4, 16, 16)


def test_concat_appends_tokens_of_the_first_source_entry(builtin_registry):
    to = prompt(0.5, tokens=77, pooled_output=torch.ones(1, 4)) + prompt(0.25, tokens=154)
    source = prompt(-1.0, tokens=77) + prompt(9.0)
    out = call(builtin_registry, "ConditioningConcat", conditioning_to=to, conditioning_from=source)
    assert [c.shape[1] for c, _ in out] == [154, 231]
    assert torch.all(out[0][0][:, :77] == 0.5) and torch.all(out[0][0][:, 77:] == -1.0)
    assert torch.all(out[1][0][:, 154:] == -1.0)
    assert out[0][1]["pooled_output"] is to[0][1]["pooled_output"] and out[0][1] is not to[0][1]
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "ConditioningConcat", conditioning_to=to, conditioning_from=prompt(1.0, dim=16))
    assert e.value.input == "conditioning_from"


def test_average_blends_tokens_and_pooled(builtin_registry):
    to = prompt(1.0, tokens=154, pooled_output=torch.full((1, 4), 2.0))
    source = prompt(3.0, tokens=77, pooled_output=torch.full((1, 4), 6.0))
    out = call(builtin_registry, "ConditioningAverage", conditioning_to=to, conditioning_from=source,
               conditioning_to_strength=0.25)
    cond, options = out[0]
    assert cond.shape == (1, 154, 8)
    assert torch.allclose(cond[:, :77], torch.tensor(0.25 * 1.0 + 0.75 * 3.0))
    assert torch.allclose(cond[:, 77:], torch.tensor(0.25 * 1.0))  # the shorter source is zero-padded
    assert torch.allclose(options["pooled_output"], torch.tensor(0.25 * 2.0 + 0.75 * 6.0))
    assert torch.all(to[0][0] == 1.0) and torch.all(to[0][1]["pooled_output"] == 2.0)  # inputs untouched
    # A longer source is cut to conditioning_to's length.
    out = call(builtin_registry, "ConditioningAverage", conditioning_to=prompt(1.0), conditioning_from=prompt(
        3.0, tokens=154), conditioning_to_strength=0.5)
    assert out[0][0].shape == (1, 77, 8) and torch.allclose(out[0][0], torch.tensor(2.0))


def test_percent_to_sigma_on_the_sd_schedule():
    assert percent_to_sigma(SD, 0.0) > 1e8 and percent_to_sigma(SD, 1.0) == 0.0
    assert percent_to_sigma(SD, 0.5) == pytest.approx(float(SD.sigma(499.5)))
    assert percent_to_sigma(SD, 0.001) == pytest.approx(float(SD.sigmas[998]), rel=1e-3)


def test_timestep_range_cond_is_inactive_outside_its_range(builtin_registry):
    late = call(builtin_registry, "ConditioningSetTimestepRange", conditioning=prompt(0.9), start=0.5, end=1.0)
    assert late[0][1] == {"start_percent": 0.5, "end_percent": 1.0}
    positive = call(builtin_registry, "ConditioningCombine", conditioning_1=prompt(0.3), conditioning_2=late)
    model = FakeModel(context_eps)
    denoiser = CFGDenoiser(ModelDenoiser(model), prepare_conds(positive, model, SHAPE, "cpu"),
                           prepare_conds(prompt(-0.2), model, SHAPE, "cpu", negative=True), 1.0)
    boundary = percent_to_sigma(SD, 0.5)
    x = torch.randn(SHAPE)
    early_sigma = torch.tensor([boundary * 1.5])
    torch.testing.assert_close(denoiser(x, early_sigma), x - early_sigma * 0.3)  # the late prompt has no effect
    assert torch.all(model.unet.calls[-1]["context"] == 0.3)
    late_sigma = torch.tensor([boundary / 1.5])
    torch.testing.assert_close(denoiser(x, late_sigma), x - late_sigma * (0.3 + 0.9) / 2)  # both averaged


def test_timestep_range_with_start_after_end_is_never_used(builtin_registry):
    # ComfyUI takes it: active while sigma_end <= sigma <= sigma_start, which no sigma satisfies
    never = call(builtin_registry, "ConditioningSetTimestepRange", conditioning=prompt(0.9), start=0.8, end=0.2)
    assert never[0][1] == {"start_percent": 0.8, "end_percent": 0.2}
    positive = call(builtin_registry, "ConditioningCombine", conditioning_1=prompt(0.3), conditioning_2=never)
    model = FakeModel(context_eps)
    denoiser = CFGDenoiser(ModelDenoiser(model), prepare_conds(positive, model, SHAPE, "cpu"), [], 1.0)
    x = torch.randn(SHAPE)
    for percent in (0.1, 0.5, 0.9):
        sigma = torch.tensor([percent_to_sigma(SD, percent)])
        torch.testing.assert_close(denoiser(x, sigma), x - sigma * 0.3)


def test_prompt_switch_mid_sampling_runs_each_prompt_on_its_own_steps(builtin_registry):
    first = call(builtin_registry, "ConditioningSetTimestepRange", conditioning=prompt(0.1), start=0.0, end=0.5)
    second = call(builtin_registry, "ConditioningSetTimestepRange", conditioning=prompt(0.7), start=0.5, end=1.0)
    positive = call(builtin_registry, "ConditioningCombine", conditioning_1=first, conditioning_2=second)
    model = FakeModel(context_eps)
    sample(model, 1, 10, 1.0, "euler", "normal", positive, prompt(0.0), {"samples": torch.zeros(SHAPE)})
    boundary = percent_to_sigma(SD, 0.5)
    for c in model.unet.calls:
        sigma = float(SD.sigmas[c["t"].long()][0])
        assert torch.all(c["context"] == (0.1 if sigma > boundary else 0.7)), sigma


def test_set_mask_weights_and_mask_bounds(builtin_registry):
    mask = torch.zeros(1, 128, 128)
    mask[:, 32:64, 16:48] = 1.0  # latent rows 4..7, cols 2..5
    masked = call(builtin_registry, "ConditioningSetMask", conditioning=prompt(0.8), mask=mask, strength=0.5,
                  set_cond_area="default")
    assert masked[0][1]["mask_strength"] == 0.5 and masked[0][1]["set_area_to_bounds"] is False
    model = FakeModel(context_eps)
    positive = prepare_conds(prompt(0.2) + masked, model, SHAPE, "cpu")
    out = CFGDenoiser(ModelDenoiser(model), positive, [], 1.0)(torch.zeros(SHAPE), torch.tensor([1.0]))
    # Inside the mask: weights 1 (plain prompt) and 0.5: (0.2 + 0.5 * 0.8) / 1.5; outside: 0.2 alone.
    torch.testing.assert_close(out[0, 0, 5, 3], torch.tensor(-(0.2 + 0.4) / 1.5))
    torch.testing.assert_close(out[0, 0, 0, 0], torch.tensor(-0.2))
    bounded = call(builtin_registry, "ConditioningSetMask", conditioning=prompt(0.8), mask=mask, strength=1.0,
                   set_cond_area="mask bounds")
    cond = prepare_conds(bounded, model, SHAPE, "cpu")[0]
    assert cond.area == (8, 8, 4, 2)  # the 4x4 box, grown to the 8x8 minimum
    model.unet.calls.clear()
    CFGDenoiser(ModelDenoiser(model), prepare_conds(prompt(0.2) + bounded, model, SHAPE, "cpu"), [], 1.0)(
        torch.zeros(SHAPE), torch.tensor([1.0]))
    assert sorted(tuple(c["x"].shape[2:]) for c in model.unet.calls) == [(8, 8), (16, 16)]


def test_set_area_after_mask_bounds_uses_the_area(builtin_registry):
    # ComfyUI's ConditioningSetArea turns set_area_to_bounds off: its area, not the mask's box, is used
    mask = torch.zeros(1, 128, 128)
    mask[:, 32:64, 16:48] = 1.0
    bounded = call(builtin_registry, "ConditioningSetMask", conditioning=prompt(0.8), mask=mask, strength=1.0,
                   set_cond_area="mask bounds")
    area = call(builtin_registry, "ConditioningSetArea", conditioning=bounded, width=64, height=96, x=8, y=16,
                strength=0.5)
    assert area[0][1]["set_area_to_bounds"] is False and bounded[0][1]["set_area_to_bounds"] is True
    cond = prepare_conds(area, FakeModel(context_eps), SHAPE, "cpu")[0]
    assert cond.area == (12, 8, 2, 1) and cond.strength == 0.5


def test_set_area_percentage(builtin_registry):
    out = call(builtin_registry, "ConditioningSetAreaPercentage", conditioning=prompt(0.5), width=0.5, height=0.25,
               x=0.5, y=0.25, strength=2.0)
    assert out[0][1]["area"] == ("percentage", 0.25, 0.5, 0.25, 0.5) and out[0][1]["strength"] == 2.0
    model = FakeModel(context_eps)
    cond = prepare_conds(out, model, (1, 4, 32, 64), "cpu")[0]
    assert cond.area == (8, 32, 8, 32)


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory):
    return load_vae(write_vae(tmp_path_factory.mktemp("vae") / "vae.safetensors"), dtype=torch.float32)


def test_inpaint_model_conditioning(builtin_registry, tiny_vae):
    pixels = torch.rand(1, 68, 64, 3, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 68, 64)
    mask[:, :, 32:] = 1.0
    positive, negative, latent = call(builtin_registry, "InpaintModelConditioning", positive=prompt(0.1),
                                      negative=prompt(-0.1), vae=tiny_vae, pixels=pixels, mask=mask, noise_mask=True)
    cropped = pixels[:, 2:66]
    torch.testing.assert_close(latent["samples"], tiny_vae.encode(cropped))
    greyed = cropped.clone()
    greyed[:, :, 32:] = 0.5
    for cond in (positive, negative):
        options = cond[0][1]
        torch.testing.assert_close(options["concat_latent_image"], tiny_vae.encode(greyed))
        assert options["concat_mask"].shape == (1, 1, 64, 64) and options["concat_mask"][..., 32:].eq(1).all()
    assert latent["noise_mask"].sum() == 64 * 32
    # A 9-channel model sees [x, mask, masked-image latent (scaled)].
    model = FakeModel(lambda x, t, c, y: torch.zeros_like(x[:, :4]), in_channels=9)
    sample(model, 0, 2, 2.0, "euler", "normal", positive, negative, latent)
    x = model.unet.calls[0]["x"]
    assert x.shape == (2, 9, 8, 8) and x[:, 4, :, 4:].eq(1).all() and x[:, 4, :, :4].eq(0).all()
    torch.testing.assert_close(x[:1, 5:], options["concat_latent_image"] * 0.18215)
    _, _, plain = call(builtin_registry, "InpaintModelConditioning", positive=prompt(0.1), negative=prompt(-0.1),
                       vae=tiny_vae, pixels=pixels, mask=mask, noise_mask=False)
    assert "noise_mask" not in plain


@pytest.mark.parametrize("downscale", [4, 16])
def test_inpaint_model_conditioning_crops_the_mask_to_multiples_of_8_whatever_the_vae(builtin_registry, downscale):
    # ComfyUI crops picture and mask to multiples of 8; its VAE crops what it encodes to its own
    class FakeVAE:
        def __init__(self, f):
            self.downscale = f

        def encode(self, pixels):
            assert pixels.shape[1] % self.downscale == 0 and pixels.shape[2] % self.downscale == 0
            return pixels.movedim(-1, 1)[:, :, ::self.downscale, ::self.downscale].clone()
    pixels = torch.rand(1, 108, 70, 3, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(1, 108, 70)
    mask[:, 50:] = 1.0
    vae = FakeVAE(downscale)
    positive, _, latent = call(builtin_registry, "InpaintModelConditioning", positive=prompt(0.1),
                               negative=prompt(-0.1), vae=vae, pixels=pixels, mask=mask, noise_mask=True)
    assert latent["noise_mask"].shape == (1, 1, 104, 64)  # 108 x 70 centre-cropped to 8s: rows 2.., cols 3..
    assert torch.equal(latent["noise_mask"], mask[:, None, 2:106, 3:67])
    greyed = pixels[:, 2:106, 3:67].clone()
    greyed[:, 48:] = 0.5
    def centre(x, f):  # the VAE's own centre crop to multiples of f
        h, w = x.shape[1:3]
        top, left = (h % f) // 2, (w % f) // 2
        return x[:, top:top + h // f * f, left:left + w // f * f]
    torch.testing.assert_close(positive[0][1]["concat_latent_image"], vae.encode(centre(greyed, downscale)))
    torch.testing.assert_close(latent["samples"], vae.encode(centre(pixels, downscale)))


def test_instruct_pix2pix_conditioning_feeds_the_raw_image_latent(builtin_registry, tiny_vae):
    pixels = torch.rand(1, 64, 76, 3, generator=torch.Generator().manual_seed(1))
    positive, negative, latent = call(builtin_registry, "InstructPixToPixConditioning", positive=prompt(0.1),
                                      negative=prompt(-0.1), vae=tiny_vae, pixels=pixels)
    image_latent = tiny_vae.encode(pixels[:, :, 2:74])  # centre-cropped to 72 wide
    torch.testing.assert_close(positive[0][1]["concat_latent_image"], image_latent)
    assert latent["samples"].shape == (1, 4, 8, 9) and latent["samples"].eq(0).all()
    model = FakeModel(lambda x, t, c, y: torch.zeros_like(x[:, :4]), in_channels=8)
    sample(model, 0, 2, 3.0, "euler", "normal", positive, negative, latent)
    x = model.unet.calls[0]["x"]
    assert x.shape == (2, 8, 8, 9)
    torch.testing.assert_close(x[:, 4:], image_latent.expand(2, -1, -1, -1))


def test_timestep_range_on_a_flow_model_uses_its_schedule(builtin_registry):
    from flow_fakes import FakeFlowModel

    from graphflow.sampling.flow_sampling import model_sampling_for

    def by_prompt(x, sigma, context, y, guidance):  # x0 = the prompt's value: shows which prompt ran
        return context.float().mean(dim=(1, 2)).reshape(-1, 1, 1, 1).expand_as(x)

    model = FakeFlowModel(by_prompt)
    late = call(builtin_registry, "ConditioningSetTimestepRange", conditioning=prompt(0.9, dim=8), start=0.6, end=1.0)
    cond = prepare_conds(late, model, (1, 16, 8, 8), "cpu")[0]
    schedule = model_sampling_for(model)
    assert cond.sigma_start == pytest.approx(schedule.percent_to_sigma(0.6)) and cond.sigma_end == 0.0
    sample(model, 0, 8, 1.0, "euler", "simple", prompt(0.2) + late, prompt(0.0),
           {"samples": torch.zeros(1, 16, 8, 8)})
    for c in model.calls:  # cfg 1: positive only; the late prompt joins the batch below its start sigma
        early = float(c["sigma"][0]) > cond.sigma_start
        assert c["context"].shape[0] == (1 if early else 2)
        if early:
            assert torch.all(c["context"] == 0.2)
    assert {c["context"].shape[0] for c in model.calls} == {1, 2}
