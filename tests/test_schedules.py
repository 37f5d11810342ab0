"""Sigma tables and schedules: ComfyUI's published numbers and diffusers' schedulers as oracles."""

import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler

from graphflow.sampling import SCHEDULERS, DiscreteSchedule, compute_sigmas

SD = DiscreteSchedule.from_betas()


def diffusers_euler(**kwargs):
    return EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", **kwargs)


def diffusers_sigmas(n, **kwargs):
    scheduler = diffusers_euler(**kwargs)
    scheduler.set_timesteps(n)
    return scheduler.sigmas.float()


def test_sigma_table_ends_and_diffusers():
    assert SD.sigmas.dtype == torch.float32 and len(SD.sigmas) == 1000
    assert float(SD.sigma_min) == pytest.approx(0.029167, abs=5e-7)
    assert float(SD.sigma_max) == pytest.approx(14.614641, abs=5e-6)
    ref = diffusers_euler()  # diffusers builds its betas in float32: agrees to ~1e-6
    ref_sigmas = ((1 - ref.alphas_cumprod) / ref.alphas_cumprod) ** 0.5
    torch.testing.assert_close(SD.sigmas, ref_sigmas.float(), rtol=2e-5, atol=0)
    assert torch.all(SD.sigmas[1:] > SD.sigmas[:-1])


def test_normal_matches_comfyui_reference_numbers():
    expected = [14.6146, 10.7468, 8.0815, 6.2049, 4.8557, 3.8654, 3.1238, 2.5572, 2.1157, 1.7648, 1.4806,
                1.2458, 1.0481, 0.8784, 0.7297, 0.5964, 0.4736, 0.3555, 0.2322, 0.0292, 0.0]
    sigmas = SCHEDULERS["normal"](SD, 20)
    assert sigmas.dtype == torch.float32
    assert [round(v, 4) for v in sigmas.tolist()] == expected


def test_karras_matches_comfyui_reference_numbers():
    sigmas = SCHEDULERS["karras"](SD, 20).tolist()
    assert len(sigmas) == 21
    assert [round(v, 4) for v in sigmas[:3]] == [14.6146, 11.7254, 9.3402]
    assert [round(v, 4) for v in sigmas[-3:]] == [0.0485, 0.0292, 0.0]


def test_denoise_keeps_the_tail_of_a_longer_schedule():
    sigmas = compute_sigmas(SD, "normal", 20, denoise=0.5)
    assert len(sigmas) == 21
    assert round(float(sigmas[0]), 4) == 1.5482
    torch.testing.assert_close(sigmas, SCHEDULERS["normal"](SD, 40)[-21:], rtol=0, atol=0)
    assert len(compute_sigmas(SD, "karras", 20, denoise=0.0)) == 0
    torch.testing.assert_close(compute_sigmas(SD, "karras", 7, denoise=1.0), SCHEDULERS["karras"](SD, 7))


def test_discard_penultimate_sigma():
    sigmas = compute_sigmas(SD, "normal", 20, discard_penultimate=True)
    longer = SCHEDULERS["normal"](SD, 21)
    assert len(sigmas) == 21
    torch.testing.assert_close(sigmas[:-1], longer[:-2], rtol=0, atol=0)
    assert float(sigmas[-1]) == 0.0 and float(sigmas[-2]) > float(SD.sigma_min) * 2


@pytest.mark.parametrize("steps", [4, 10, 28])
def test_normal_equals_diffusers_linspace_at_integer_timesteps(steps):
    # t = linspace(999, 0, steps) are integers here, where linear (diffusers) and log (ComfyUI)
    # interpolation of the table agree.
    ours = SCHEDULERS["normal"](SD, steps)
    torch.testing.assert_close(ours, diffusers_sigmas(steps, timestep_spacing="linspace"), rtol=2e-5, atol=1e-7)


def test_normal_interpolates_in_log_sigma_not_linearly():
    ours = SCHEDULERS["normal"](SD, 20)
    linear = diffusers_sigmas(20, timestep_spacing="linspace")
    # fractional timesteps: log interpolation lies below linear interpolation (convexity)
    assert torch.all(ours[1:-2] < linear[1:-2])
    assert torch.all((linear[1:-2] - ours[1:-2]) / ours[1:-2] < 1e-3)


def test_karras_and_exponential_equal_diffusers():
    torch.testing.assert_close(SCHEDULERS["karras"](SD, 20), diffusers_sigmas(20, use_karras_sigmas=True),
                               rtol=2e-5, atol=1e-7)
    torch.testing.assert_close(SCHEDULERS["exponential"](SD, 15), diffusers_sigmas(15, use_exponential_sigmas=True),
                               rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("steps", [10, 20, 25, 50])
def test_simple_equals_diffusers_trailing(steps):
    torch.testing.assert_close(SCHEDULERS["simple"](SD, steps), diffusers_sigmas(steps, timestep_spacing="trailing"),
                               rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("steps", [10, 20, 50])
def test_ddim_uniform_equals_diffusers_leading_offset_1(steps):
    ours = SCHEDULERS["ddim_uniform"](SD, steps)
    torch.testing.assert_close(ours, diffusers_sigmas(steps, timestep_spacing="leading", steps_offset=1),
                               rtol=2e-5, atol=1e-7)
    ddim = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                         set_alpha_to_one=False)
    ddim.set_timesteps(steps)
    expected_t = ddim.timesteps.tolist()
    assert SD.timestep(ours[:-1]).long().tolist() == expected_t


def test_ddim_uniform_keeps_comfyui_length_quirk():
    assert len(SCHEDULERS["ddim_uniform"](SD, 30)) == 32  # 1000 // 30 = 33: indices 1, 34, ..., 991


def test_sgm_uniform_is_normal_without_the_last_timestep():
    for steps in (5, 20):
        sgm = SCHEDULERS["sgm_uniform"](SD, steps)
        normal = SCHEDULERS["normal"](SD, steps + 1)
        torch.testing.assert_close(sgm, torch.cat([normal[:-2], normal[-1:]]), rtol=0, atol=0)


def test_beta_schedule_properties():
    sigmas = SCHEDULERS["beta"](SD, 20)
    assert float(sigmas[0]) == float(SD.sigma_max) and float(sigmas[-1]) == 0.0
    assert torch.all(sigmas[1:] < sigmas[:-1])
    t = SD.timestep(sigmas[:-1]).long().numpy()
    # timesteps are beta(0.6, 0.6) quantiles: symmetric around the middle, dense at both ends
    assert t[0] == 999 and len(t) == 20
    gaps = -np.diff(t)
    assert gaps[0] < gaps[len(gaps) // 2] and gaps[-1] < gaps[len(gaps) // 2]
    quantiles = 1 - np.arange(20) / 20
    import scipy.stats
    assert np.all(np.abs(t - scipy.stats.beta.ppf(quantiles, 0.6, 0.6) * 999) <= 0.5 + 1e-9)


def test_linear_quadratic_and_kl_optimal_shapes():
    lq = SCHEDULERS["linear_quadratic"](SD, 10)
    assert len(lq) == 11 and float(lq[0]) == pytest.approx(float(SD.sigma_max)) and float(lq[-1]) == 0
    fractions = 1 - lq / SD.sigma_max
    torch.testing.assert_close(fractions[:5], torch.arange(5) * 0.025 / 5, rtol=0, atol=1e-6)  # the linear half
    assert torch.all(lq[1:] < lq[:-1])
    kl = SCHEDULERS["kl_optimal"](SD, 12)
    assert len(kl) == 13 and float(kl[-1]) == 0
    angles = kl[:-1].double().atan()
    torch.testing.assert_close(angles.diff(), angles.diff().mean().expand(11), rtol=1e-4, atol=0)
    assert float(kl[0]) == pytest.approx(float(SD.sigma_max), rel=1e-5)
    assert float(kl[-2]) == pytest.approx(float(SD.sigma_min), rel=1e-4)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_schedule_decreases_to_zero(name):
    for steps in (1, 3, 20):
        sigmas = SCHEDULERS[name](SD, steps)
        assert sigmas.dtype == torch.float32 and float(sigmas[-1]) == 0.0
        assert len(sigmas) >= 2 and torch.all(sigmas[1:] < sigmas[:-1]), (name, steps, sigmas)


def test_timestep_lookup():
    k = torch.tensor([0, 1, 500, 998, 999])
    assert SD.timestep(SD.sigmas[k]).long().tolist() == k.tolist()
    # nearest in log sigma (ComfyUI) vs interpolated (diffusers / k-diffusion)
    fractional = torch.tensor([10.25, 480.3, 700.9])
    sigma = SD.sigma(fractional)
    assert SD.timestep(sigma).tolist() == [10.0, 480.0, 701.0]
    torch.testing.assert_close(SD.timestep(sigma, quantize=False), fractional, rtol=0, atol=2e-3)
    ref = diffusers_euler()
    log_sigmas = np.log(((1 - ref.alphas_cumprod.double()) / ref.alphas_cumprod.double()).numpy() ** 0.5)
    some = torch.tensor([14.0, 3.3, 0.5, 0.04])
    expected = ref._sigma_to_t(some.double().numpy(), log_sigmas)
    np.testing.assert_allclose(SD.timestep(some, quantize=False).numpy(), expected, atol=2e-3)


def test_quantized_timestep_is_the_nearest_table_entry_in_log_sigma():
    sigmas = torch.cat([torch.rand(2000) * 16, torch.tensor([0.01, 0.029167, 14.6146, 20.0]), SD.sigmas[::37]])
    brute = (sigmas.log()[None, :] - SD.log_sigmas[:, None]).abs().argmin(dim=0)
    assert torch.equal(SD.timestep(sigmas).long(), brute)
    assert SD.timestep(sigmas.reshape(4, -1)).shape == (4, sigmas.numel() // 4)


def test_sigma_interpolates_log_sigma():
    assert math.isclose(float(SD.sigma(torch.tensor(999.0))), float(SD.sigma_max), rel_tol=1e-6)  # exp(log(.))
    mid = float(SD.sigma(torch.tensor(100.5)))
    assert mid == pytest.approx(math.sqrt(float(SD.sigmas[100]) * float(SD.sigmas[101])), rel=1e-6)


def test_unknown_scheduler_and_bad_steps():
    with pytest.raises(ValueError, match="unknown scheduler 'fast'"):
        compute_sigmas(SD, "fast", 20)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        compute_sigmas(SD, "normal", 0)


def test_log_sigma_table_is_the_float64_log_rounded_as_comfyui():
    # ComfyUI keeps log(sigma) taken in float64 then rounded; the log of the rounded float32 sigmas
    # differs in the last bit for about a third of the entries and moved normal's sigmas by an ulp
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, 0)
    log_sigmas = (0.5 * torch.log((1 - alphas_cumprod) / alphas_cumprod)).float()
    assert torch.equal(SD.log_sigmas, log_sigmas)
    assert not torch.equal(SD.sigmas.log(), log_sigmas)  # the case this guards against
    t = torch.linspace(999, 0, 7)
    low, high, w = t.floor().long(), t.ceil().long(), t.frac()
    expected = torch.cat([((1 - w) * log_sigmas[low] + w * log_sigmas[high]).exp(), torch.zeros(1)])
    assert torch.equal(SCHEDULERS["normal"](SD, 7), expected)
    lcm = DiscreteSchedule.from_betas(prediction="lcm")  # LCM's 50-entry table: the log of its float32 sigmas
    assert torch.equal(lcm.log_sigmas, lcm.sigmas.log())
