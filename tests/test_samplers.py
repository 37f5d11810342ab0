"""Samplers on data whose exact denoiser is known in closed form.

Data x0 ~ N(mu, s^2) (independently per element). Then D(x; sigma) = (s^2 x + sigma^2 mu) / (s^2 + sigma^2)
and the probability-flow ODE dx/dsigma = (x - D) / sigma = sigma (x - mu) / (s^2 + sigma^2) has the
solution x(sigma) = mu + (x(sigma_T) - mu) * sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_T^2).
"""

import numpy as np
import pytest
import scipy.integrate
import torch

from graphflow.sampling import SAMPLERS, SCHEDULERS, STOCHASTIC_SAMPLERS, DiscreteSchedule
from graphflow.sampling.noise import BrownianTreeNoiseSampler, gaussian_noise_sampler
from graphflow.sampling.samplers import get_ancestral_step, lms_coefficient

SD = DiscreteSchedule.from_betas()
DETERMINISTIC = ["euler", "ddim", "heun", "dpm_2", "lms", "dpmpp_2m", "ipndm", "uni_pc", "uni_pc_bh2",
                 "heunpp2", "ipndm_v", "deis", "res_multistep", "gradient_estimation",
                 # without CFG (a plain denoiser) the CFG++ samplers are their plain counterparts
                 "euler_cfg_pp", "dpmpp_2m_cfg_pp", "res_multistep_cfg_pp", "gradient_estimation_cfg_pp"]
# Stochastic samplers with eta = 0 (SA-Solver: tau = 0) must solve the same ODE.
ETA_ZERO = ["euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde",
            "euler_ancestral_cfg_pp", "res_multistep_ancestral",
            "res_multistep_ancestral_cfg_pp", "seeds_2", "seeds_3", "dpmpp_2m_sde_heun", "sa_solver", "sa_solver_pece"]
# Not dpmpp_2s_ancestral_cfg_pp: ComfyUI v0.3.64's (which graphflow follows) adds D(x) - D(x_2) to
# the full step, the hook's last prediction being the midpoint's, so it solves no ODE exactly.
NOT_CONSISTENT = {"dpmpp_2s_ancestral_cfg_pp"}
# First-order methods (heunpp2's and gradient estimation's corrections do not raise the order).
FIRST_ORDER = {"euler", "ddim", "euler_ancestral", "euler_cfg_pp", "euler_ancestral_cfg_pp", "heunpp2",
               "gradient_estimation", "gradient_estimation_cfg_pp"}


def ode_options(name):
    if name.startswith("sa_solver"):
        return {"tau_func": lambda sigma: 0.0}
    return {"eta": 0.0} if name in ETA_ZERO else {}


def gaussian_problem(seed=0, shape=(2, 4, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(shape, generator=g) * 0.5
    s = torch.rand(shape, generator=g) + 0.5

    def denoiser(x, sigma):
        sigma = sigma.reshape(-1, 1, 1, 1)
        return (s ** 2 * x + sigma ** 2 * mu) / (s ** 2 + sigma ** 2)

    def transport(x_start, sigma_start, sigma_end):
        return mu + (x_start - mu) * ((s ** 2 + sigma_end ** 2) / (s ** 2 + sigma_start ** 2)).sqrt()

    def start(sigma):
        return mu + (s ** 2 + sigma ** 2).sqrt() * torch.randn(shape, generator=g)

    return denoiser, transport, start


def ode_error(name, steps, end_at_zero=True, scheduler="karras"):
    denoiser, transport, start = gaussian_problem()
    sigmas = SCHEDULERS[scheduler](SD, steps)
    if not end_at_zero:
        sigmas = sigmas[:-1]
    x_T = start(sigmas[0])
    out = SAMPLERS[name](denoiser, x_T.clone(), sigmas, **ode_options(name))
    sigma_end = sigmas[-1]
    if name.startswith("uni_pc") and end_at_zero:
        sigma_end = torch.tensor(0.001)  # UniPC stops at 0.001 (ComfyUI), lambda must stay finite
    if name.startswith("sa_solver") and not end_at_zero:
        sigma_end = sigmas[-2]  # ComfyUI v0.3.64's SA-Solver returns the state one sigma before the end
    return (out - transport(x_T, sigmas[0], sigma_end)).abs().max().item()


@pytest.mark.parametrize("name", DETERMINISTIC + ETA_ZERO)
def test_ode_samplers_reach_the_exact_transport(name):
    assert ode_error(name, 60) < 0.12 if name in FIRST_ORDER else ode_error(name, 60) < 0.01


# Global convergence order measured from 40 -> 80 steps on the ODE to sigma_min. The multistep
# methods warm up (and uni_pc finishes) with first-order steps, which caps the global order at 2.
ORDERS = [("euler", 0.9), ("heun", 1.8), ("dpm_2", 1.8), ("lms", 1.8), ("dpmpp_2m", 1.8), ("ipndm", 1.8),
          ("uni_pc", 2.2), ("uni_pc_bh2", 2.2), ("dpmpp_2s_ancestral", 1.8), ("dpmpp_3m_sde", 1.7),
          ("deis", 2.8), ("res_multistep", 1.9), ("dpmpp_2m_cfg_pp", 1.8), ("seeds_2", 1.8), ("seeds_3", 2.5),
          ("sa_solver", 3.5), ("sa_solver_pece", 3.5), ("heunpp2", 0.9), ("gradient_estimation", 0.8)]


@pytest.mark.parametrize("name,order", ORDERS)
def test_convergence_order(name, order):
    errors = [ode_error(name, n, end_at_zero=False) for n in (20, 40, 80)]
    measured = np.log2(errors[1] / errors[2])
    assert measured > order, (errors, measured)
    assert errors[2] < errors[1] < errors[0]
    if name in FIRST_ORDER:
        assert measured < 1.2  # and not better than first order


def test_third_order_samplers_beat_second_order_ones():
    for steps in (20, 40):
        assert ode_error("uni_pc", steps) < ode_error("dpmpp_2m", steps) / 3
        assert ode_error("dpmpp_3m_sde", steps) < ode_error("dpmpp_2m", steps) / 3


@pytest.mark.parametrize("name", [n for n in DETERMINISTIC if n not in FIRST_ORDER])
def test_higher_order_samplers_beat_euler_at_equal_steps(name):
    # RES multistep's interpolation error constant is larger at 10 Karras steps (0.36 vs euler's 0.62)
    margin = 1.5 if name.startswith("res_multistep") else 2.5
    for steps in (10, 20):
        assert ode_error(name, steps) < ode_error("euler", steps) / margin


def test_ddim_is_euler_and_eta_zero_ancestral_is_its_ode_solver():
    denoiser, _, start = gaussian_problem()
    sigmas = SCHEDULERS["normal"](SD, 12)
    x = start(sigmas[0])
    torch.testing.assert_close(SAMPLERS["ddim"](denoiser, x, sigmas), SAMPLERS["euler"](denoiser, x, sigmas))
    torch.testing.assert_close(SAMPLERS["euler_ancestral"](denoiser, x, sigmas, eta=0.0),
                               SAMPLERS["euler"](denoiser, x, sigmas), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(SAMPLERS["dpm_2_ancestral"](denoiser, x, sigmas, eta=0.0),
                               SAMPLERS["dpm_2"](denoiser, x, sigmas), rtol=1e-5, atol=1e-5)


def test_euler_step_formula():
    # x <- x + (x - denoised) / sigma_i * (sigma_{i+1} - sigma_i), one step by hand
    x = torch.randn(1, 4, 2, 2)
    denoised = torch.randn(1, 4, 2, 2)
    sigmas = torch.tensor([3.0, 1.5])
    out = SAMPLERS["euler"](lambda x_, s_: denoised, x, sigmas)
    torch.testing.assert_close(out, x + (x - denoised) / 3.0 * (1.5 - 3.0))


def consistency_problem(mu=0.3, s=0.5):
    """A consistency function (Song et al. 2023): the exact ODE map from any sigma to sigma = 0."""
    def f(x, sigma):
        sigma = sigma.reshape(-1, 1, 1, 1)
        return mu + (x - mu) * s / (s ** 2 + sigma ** 2).sqrt()
    return f


STOCHASTIC_STEPS = {"euler_ancestral": 200, "euler_ancestral_cfg_pp": 200, "ddpm": 200}


# the "_gpu" variants differ only in where the Brownian tree lives (the same on a CPU-only machine)
@pytest.mark.parametrize("name", sorted(n for n in STOCHASTIC_SAMPLERS
                                         if not n.endswith("_gpu") and n not in NOT_CONSISTENT))
def test_stochastic_samplers_produce_the_data_distribution(name):
    mu, s = 0.3, 0.5
    shape = (1, 1, 128, 128)
    if name == "lcm":  # LCM assumes a consistency model, not a posterior-mean denoiser
        denoiser = consistency_problem(mu, s)
    else:
        def denoiser(x, sigma):
            sigma = sigma.reshape(-1, 1, 1, 1)
            return (s ** 2 * x + sigma ** 2 * mu) / (s ** 2 + sigma ** 2)
    sigmas = SCHEDULERS["karras"](SD, STOCHASTIC_STEPS.get(name, 50))
    x_T = mu + (s ** 2 + sigmas[0] ** 2).sqrt() * torch.randn(shape, generator=torch.Generator().manual_seed(1))
    out = SAMPLERS[name](denoiser, x_T, sigmas, seed=7)
    assert abs(out.mean().item() - mu) < 0.015
    assert abs(out.std().item() / s - 1) < 0.03, out.std().item()
    # the noise is really there: the ODE from the same start gives a different result
    ode = SAMPLERS["euler"](denoiser, x_T, sigmas)
    assert (out - ode).abs().mean() > 0.05


def test_euler_ancestral_variance_error_shrinks_with_steps():
    mu, s = 0.0, 0.5

    def denoiser(x, sigma):
        sigma = sigma.reshape(-1, 1, 1, 1)
        return (s ** 2 * x + sigma ** 2 * mu) / (s ** 2 + sigma ** 2)
    errors = []
    for steps in (25, 100):
        sigmas = SCHEDULERS["karras"](SD, steps)
        x_T = (s ** 2 + sigmas[0] ** 2).sqrt() * torch.randn(1, 1, 128, 128, generator=torch.Generator().manual_seed(2))
        errors.append(abs(SAMPLERS["euler_ancestral"](denoiser, x_T, sigmas, seed=1).std().item() / s - 1))
    assert errors[1] < errors[0] / 2


@pytest.mark.parametrize("name", sorted(STOCHASTIC_SAMPLERS))
def test_stochastic_samplers_are_reproducible_from_the_seed(name):
    denoiser, _, start = gaussian_problem(shape=(2, 4, 8, 8))
    sigmas = SCHEDULERS["karras"](SD, 6)
    x = start(sigmas[0])
    a = SAMPLERS[name](denoiser, x, sigmas, seed=11)
    b = SAMPLERS[name](denoiser, x, sigmas, seed=11)
    c = SAMPLERS[name](denoiser, x, sigmas, seed=12)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["euler_ancestral", "dpmpp_2m_sde"])
def test_per_image_seeds_do_not_depend_on_the_batch(name):
    denoiser, _, start = gaussian_problem(shape=(2, 4, 8, 8))
    sigmas = SCHEDULERS["karras"](SD, 6)
    x = start(sigmas[0])
    both = SAMPLERS[name](denoiser, x, sigmas, seed=[100, 101])

    def one(x1, sigma):  # the same denoiser restricted to image 1
        return denoiser(torch.cat([x1, x1]), torch.cat([sigma, sigma]))[1:]
    alone = SAMPLERS[name](one, x[1:], sigmas, seed=[101])
    torch.testing.assert_close(both[1:], alone, rtol=1e-6, atol=1e-6)
    swapped = SAMPLERS[name](denoiser, x, sigmas, seed=[101, 100])
    assert (swapped[1:] - both[1:]).abs().max() > 1e-3


def test_comfy_gaussian_noise_is_one_seeded_stream_on_x_device():
    x = torch.zeros(2, 4, 3, 3)
    sampler = gaussian_noise_sampler(x, 42)
    g = torch.Generator(x.device).manual_seed(42)
    for _ in range(3):
        torch.testing.assert_close(sampler(None, None), torch.randn(x.shape, generator=g), rtol=0, atol=0)


def test_brownian_noise_is_standard_normal_and_path_consistent():
    x = torch.zeros(1, 1, 64, 64)
    tree = BrownianTreeNoiseSampler(x, torch.tensor(0.03), torch.tensor(14.6), seed=5)
    z = tree(torch.tensor(3.0), torch.tensor(2.0))
    assert abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1) < 0.05
    # increments over [3, 2.5] and [2.5, 2] add up to the increment over [3, 2] (same Brownian path)
    w = lambda a, b: tree(torch.tensor(a), torch.tensor(b)) * abs(a - b) ** 0.5
    torch.testing.assert_close(w(3.0, 2.5) + w(2.5, 2.0), w(3.0, 2.0), rtol=1e-4, atol=1e-4)


def test_ancestral_step_splits_the_variance():
    for eta in (1.0, 0.5):
        down, up = get_ancestral_step(torch.tensor(3.0), torch.tensor(1.2), eta)
        assert float(down ** 2 + up ** 2) == pytest.approx(1.2 ** 2, rel=1e-6)
    down, up = get_ancestral_step(torch.tensor(3.0), torch.tensor(1.2), 0.0)
    assert float(down) == pytest.approx(1.2) and up == 0.0


def test_lms_coefficients_equal_numerical_integration():
    t = SCHEDULERS["karras"](SD, 10).double().numpy()
    for i in range(3, 8):
        for order in (1, 2, 3, 4):
            for j in range(order):
                def basis(tau):
                    prod = 1.0
                    for k in range(order):
                        if k != j:
                            prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
                    return prod
                expected = scipy.integrate.quad(basis, t[i], t[i + 1], epsrel=1e-12)[0]
                assert lms_coefficient(order, t, i, j) == pytest.approx(expected, rel=1e-9, abs=1e-12)
            total = sum(lms_coefficient(order, t, i, j) for j in range(order))
            assert total == pytest.approx(t[i + 1] - t[i], rel=1e-12)


# DPM-Solver-fast / adaptive use only the schedule's ends and take their own steps
OWN_STEPS = {"dpm_fast", "dpm_adaptive"}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_callback_once_per_step_and_interrupt(name):
    denoiser, _, start = gaussian_problem(shape=(1, 4, 4, 4))
    sigmas = SCHEDULERS["karras"](SD, 5)
    seen = []
    options = {"seed": 0} if name in STOCHASTIC_SAMPLERS else {}
    SAMPLERS[name](denoiser, start(sigmas[0]), sigmas, callback=lambda info: seen.append(info), **options)
    steps = [info["i"] for info in seen]
    if name in OWN_STEPS:
        assert len(steps) >= 2 and steps == sorted(steps) and steps[0] == 0 and steps[-1] <= 4
    else:
        assert steps == list(range(5))
    assert all({"x", "denoised", "sigma"} <= set(info) for info in seen)

    class Stop(Exception):
        pass

    calls = []

    def interrupt(info):
        calls.append(info)
        if len(calls) == 2:
            raise Stop

    with pytest.raises(Stop):
        SAMPLERS[name](denoiser, start(sigmas[0]), sigmas, callback=interrupt, **options)


def test_uni_pc_uses_one_model_call_per_step():
    denoiser, _, start = gaussian_problem()
    calls = []

    def counting(x, sigma):
        calls.append(float(sigma[0]))
        return denoiser(x, sigma)
    sigmas = SCHEDULERS["karras"](SD, 12)
    SAMPLERS["uni_pc"](counting, start(sigmas[0]), sigmas)
    assert len(calls) == 12
    assert calls[0] == pytest.approx(float(sigmas[0]))
