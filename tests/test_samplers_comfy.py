"""The samplers added for ComfyUI parity, each against a hand-computed step, an independent
quadrature of its coefficients, or a sampler it must reduce to. (test_samplers.py also runs them on
the Gaussian problem: ODE accuracy, convergence order, data distribution, seeds, callbacks.)"""

import inspect
import math
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.integrate
import torch

from graphflow.sampling import SAMPLERS, SCHEDULERS, DiscreteSchedule, sample
from graphflow.sampling.samplers import deis_coefficients, stochastic_adams_coefficients
from sampling_fakes import FakeModel, context_eps, prompt

SD = DiscreteSchedule.from_betas()


def posterior_mean(mu, s):
    def denoiser(x, sigma):
        sigma = sigma.reshape(-1, 1, 1, 1)
        return (s ** 2 * x + sigma ** 2 * mu) / (s ** 2 + sigma ** 2)
    return denoiser


class FakeCFG:
    """A guided denoiser with a post_cfg hook, as CFGDenoiser: cond and uncond are the exact
    denoisers of two different Gaussians."""

    def __init__(self, cfg=3.0):
        self.cond, self.uncond, self.cfg = posterior_mean(0.4, 0.6), posterior_mean(-0.3, 0.8), cfg

    def __call__(self, x, sigma, post_cfg=None):
        c, u = self.cond(x, sigma), self.uncond(x, sigma)
        d = u + (c - u) * self.cfg
        return d if post_cfg is None else post_cfg({"denoised": d, "cond_denoised": c, "uncond_denoised": u})

    def both(self, x, sigma):
        sigma = torch.as_tensor(sigma).reshape(1)
        return self(x, sigma), self.uncond(x, sigma)


def x0(seed=0, shape=(1, 4, 4, 4), scale=3.0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale


# ---- CFG++ -----------------------------------------------------------------------------------

def test_euler_cfg_pp_renoises_along_the_unconditional_prediction():
    model, x = FakeCFG(), x0()
    sigmas = torch.tensor([3.0, 1.5, 0.0])
    d0, u0 = model.both(x, 3.0)
    x1 = d0 + 1.5 * (x - u0) / 3.0
    d1, _ = model.both(x1, 1.5)
    torch.testing.assert_close(SAMPLERS["euler_cfg_pp"](model, x, sigmas), d1)
    torch.testing.assert_close(SAMPLERS["euler_cfg_pp"](model, x, sigmas[:2]), x1)
    # and it is not plain euler with CFG
    assert not torch.allclose(SAMPLERS["euler"](model, x, sigmas[:2]), x1, atol=1e-3)


def test_euler_ancestral_cfg_pp_step():
    model, x = FakeCFG(), x0(1)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    sigmas = torch.tensor([3.0, 1.5])
    d0, u0 = model.both(x, 3.0)
    up = min(1.5, (1.5 ** 2 * (3.0 ** 2 - 1.5 ** 2) / 3.0 ** 2) ** 0.5)
    down = (1.5 ** 2 - up ** 2) ** 0.5
    want = d0 + down * (x - u0) / 3.0 + up * noise
    got = SAMPLERS["euler_ancestral_cfg_pp"](model, x, sigmas, noise_sampler=lambda *_: noise)
    torch.testing.assert_close(got, want)


def test_dpmpp_2s_ancestral_cfg_pp_step():
    """ComfyUI v0.3.64's: sub-steps from x + D - U along the guided D, the second one's x + D - U_2
    taking the unconditional prediction recorded last (at the midpoint x_2)."""
    model, x = FakeCFG(), x0(4)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(6))
    s, s1 = 3.0, 1.5
    up = min(s1, (s1 ** 2 * (s ** 2 - s1 ** 2) / s ** 2) ** 0.5)
    down = (s1 ** 2 - up ** 2) ** 0.5
    mid = math.sqrt(s * down)  # the log-midpoint of s and sigma_down
    d0, u0 = model.both(x, s)
    x_2 = mid / s * (x + d0 - u0) + (1 - mid / s) * d0
    d_2, u_2 = model.both(x_2, mid)
    want = down / s * (x + d0 - u_2) + (1 - down / s) * d_2 + up * noise
    got = SAMPLERS["dpmpp_2s_ancestral_cfg_pp"](model, x, torch.tensor([s, s1]), noise_sampler=lambda *_: noise)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # into sigma 0: the guided estimate, for flow models too (ComfyUI v0.3.64 has no flow form of it)
    torch.testing.assert_close(SAMPLERS["dpmpp_2s_ancestral_cfg_pp"](model, x, torch.tensor([s, 0.0])), d0)
    assert "flow" not in inspect.signature(SAMPLERS["dpmpp_2s_ancestral_cfg_pp"]).parameters


def test_dpmpp_2m_cfg_pp_steps():
    model, x = FakeCFG(), x0(2)
    sigmas = torch.tensor([4.0, 2.0, 0.5])
    lam = [-math.log(s) for s in (4.0, 2.0, 0.5)]
    d0, u0 = model.both(x, 4.0)
    h = lam[1] - lam[0]
    x1 = d0 + math.exp(-h) * (x - u0)
    d1, u1 = model.both(x1, 2.0)
    h2 = lam[2] - lam[1]
    r = h / h2
    x2 = d1 + math.exp(-h2) * (x1 - u1) - math.expm1(-h2) / (2 * r) * (d1 - u0)
    torch.testing.assert_close(SAMPLERS["dpmpp_2m_cfg_pp"](model, x, sigmas), x2, rtol=1e-5, atol=1e-5)


def test_gradient_estimation_steps():
    model, x = posterior_mean(0.2, 0.5), x0(3)
    sigmas = torch.tensor([4.0, 2.0, 1.0])
    d0 = (x - model(x, torch.tensor([4.0]))) / 4.0
    x1 = x + d0 * (2.0 - 4.0)
    d1 = (x1 - model(x1, torch.tensor([2.0]))) / 2.0
    x2 = x1 + d1 * (1.0 - 2.0) + (2.0 - 1) * (d1 - d0) * (1.0 - 2.0)
    torch.testing.assert_close(SAMPLERS["gradient_estimation"](model, x, sigmas), x2)
    # CFG++: the Euler part renoises along uncond, the slope extrapolation uses uncond's slopes
    guided = FakeCFG()
    g0, u0 = guided.both(x, 4.0)
    du0 = (x - u0) / 4.0
    y1 = g0 + du0 * 2.0
    g1, u1 = guided.both(y1, 2.0)
    du1 = (y1 - u1) / 2.0
    y2 = g1 + du1 * 1.0 + (du1 - du0) * (1.0 - 2.0)
    torch.testing.assert_close(SAMPLERS["gradient_estimation_cfg_pp"](guided, x, sigmas), y2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pp,base", [("euler_cfg_pp", "euler"), ("dpmpp_2m_cfg_pp", "dpmpp_2m"),
                                     ("res_multistep_cfg_pp", "res_multistep"),
                                     ("gradient_estimation_cfg_pp", "gradient_estimation"),
                                     ("euler_ancestral_cfg_pp", "euler_ancestral"),
                                     ("dpmpp_2s_ancestral_cfg_pp", "dpmpp_2s_ancestral"),
                                     ("res_multistep_ancestral_cfg_pp", "res_multistep_ancestral")])
def test_cfg_pp_without_guidance_is_the_plain_sampler(pp, base):
    """Equal positive and negative prompts make D_cfg = D_uncond at any cfg: CFG++ and plain
    sampling coincide (through the real CFGDenoiser); different prompts make them differ even at
    cfg 1, where the CFG++ sampler still runs the negative prompt for its post-CFG hook."""
    model = FakeModel(context_eps)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}

    def run(name, negative, cfg=4.0):
        return sample(model, 5, 6, cfg, name, "karras", prompt(0.5), prompt(negative), latent)["samples"]

    same_pp, same_base = run(pp, 0.5), run(base, 0.5)
    scale = same_base.abs().max()
    assert (same_pp - same_base).abs().max() < 1e-5 * scale
    assert (run(pp, -0.5, cfg=1.0) - run(base, -0.5, cfg=1.0)).abs().max() > 1e-2 * scale
    model.unet.calls.clear()
    run(pp, -0.5, cfg=1.0)
    assert all(call["x"].shape[0] == 2 for call in model.unet.calls)


def test_res_multistep_second_step_is_the_exponential_integral_of_the_linear_interpolant():
    """x_{i+1} = e^{-h} x + int_0^h e^{-(h-u)} D(lambda_i + u) du with D linear in lambda through
    D_{i-1}, D_i, done here by numerical quadrature."""
    model, x = posterior_mean(0.1, 0.7), x0(4)
    sigmas = torch.tensor([5.0, 2.0, 0.7])
    x1 = SAMPLERS["res_multistep"](model, x, sigmas[:2])
    dm1, d0 = model(x, torch.tensor([5.0])), model(x1, torch.tensor([2.0]))
    lam = [-math.log(s) for s in (5.0, 2.0, 0.7)]
    h, h_prev = lam[2] - lam[1], lam[1] - lam[0]
    w0 = scipy.integrate.quad(lambda u: math.exp(-(h - u)) * (1 + u / h_prev), 0, h)[0]
    w1 = scipy.integrate.quad(lambda u: math.exp(-(h - u)) * (-u / h_prev), 0, h)[0]
    want = math.exp(-h) * x1 + w0 * d0 + w1 * dm1
    torch.testing.assert_close(SAMPLERS["res_multistep"](model, x, sigmas), want, rtol=1e-5, atol=1e-5)


# ---- Heun++, iPNDM-v, DEIS -------------------------------------------------------------------

def test_heunpp2_steps():
    model, x = posterior_mean(0.3, 0.5), x0(5)
    sigmas = torch.tensor([4.0, 2.0, 1.0, 0.0])

    def d(x_, s):
        return (x_ - model(x_, torch.tensor([s]))) / s
    # step 0: three slopes, weights sigma_1 / (3 sigma_0), sigma_2 / (3 sigma_0)
    d1 = d(x, 4.0)
    xa = x + d1 * -2.0
    d2 = d(xa, 2.0)
    xb = xa + d2 * -1.0
    d3 = d(xb, 1.0)
    w2, w3 = 2.0 / 12, 1.0 / 12
    y1 = x + ((1 - w2 - w3) * d1 + w2 * d2 + w3 * d3) * -2.0
    # step 1: the next sigma is the last: Heun with weight sigma_2 / (2 sigma_0)
    e1 = d(y1, 2.0)
    ya = y1 + e1 * -1.0
    e2 = d(ya, 1.0)
    w = 1.0 / 8
    y2 = y1 + (e1 * (1 - w) + e2 * w) * -1.0
    # step 2: Euler into 0
    y3 = y2 + d(y2, 1.0) * -1.0
    torch.testing.assert_close(SAMPLERS["heunpp2"](model, x, sigmas), y3, rtol=1e-5, atol=1e-5)


def test_ipndm_v_on_uniform_steps_is_ipndm_and_its_second_order_is_variable_step_adams_bashforth():
    model, x = posterior_mean(0.2, 0.6), x0(6)
    uniform = torch.linspace(10.0, 1.0, 13)
    torch.testing.assert_close(SAMPLERS["ipndm_v"](model, x, uniform, max_order=3),
                               SAMPLERS["ipndm"](model, x, uniform, max_order=3), rtol=1e-5, atol=1e-5)
    karras = SCHEDULERS["karras"](SD, 12)[:-1]
    torch.testing.assert_close(SAMPLERS["ipndm_v"](model, x, karras, max_order=2),
                               SAMPLERS["lms"](model, x, karras, order=2), rtol=1e-5, atol=1e-5)


def test_deis_coefficients_equal_an_independent_quadrature():
    """C_ij = int_{t_i}^{t_{i+1}} L_j(t) dsigma/dt dt, with sigma(t) = sqrt(exp(beta_d t^2 / 2 +
    beta_min t) - 1) differentiated in that form (not the code's alpha form), by scipy."""
    sigmas = SCHEDULERS["karras"](SD, 8)
    got = deis_coefficients(sigmas, max_order=3)
    eps_s, smin, smax = 1e-3, 0.002, 80.0
    beta_d = 2 * (math.log(smin ** 2 + 1) / eps_s - math.log(smax ** 2 + 1)) / (eps_s - 1)
    beta_min = math.log(smax ** 2 + 1) - 0.5 * beta_d
    t = [(math.sqrt(beta_min ** 2 + 2 * beta_d * math.log(float(s) ** 2 + 1)) - beta_min) / beta_d for s in sigmas]

    def dsigma(tau):
        e = math.exp(beta_d * tau ** 2 / 2 + beta_min * tau)
        return (beta_d * tau + beta_min) * e / (2 * math.sqrt(e - 1))
    assert got[0] == [] and got[-1] == []  # Euler first and into sigma = 0
    for i in range(1, len(sigmas) - 2):
        order = min(i + 1, 3)
        nodes = [t[i - k] for k in range(order)]
        for j in range(order):
            def integrand(tau):
                basis = 1.0
                for k in range(order):
                    if k != j:
                        basis *= (tau - nodes[k]) / (nodes[j] - nodes[k])
                return basis * dsigma(tau)
            want = scipy.integrate.quad(integrand, t[i], t[i + 1], epsrel=1e-10)[0]
            assert got[i][j] == pytest.approx(want, rel=2e-3, abs=1e-6)
        # the weights of a constant slope add up to the sigma step
        assert sum(got[i]) == pytest.approx(float(sigmas[i + 1] - sigmas[i]), rel=2e-3)


# ---- DPM-Solver fast / adaptive --------------------------------------------------------------

def _gaussian_error(name, sigmas, **options):
    mu, s = 0.3, 0.5
    model = posterior_mean(mu, s)
    x = mu + (s ** 2 + sigmas[0] ** 2).sqrt() * torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(9))
    calls = []

    def counting(x_, sigma):
        calls.append(float(sigma[0]))
        return model(x_, sigma)
    out = SAMPLERS[name](counting, x, sigmas, **options)
    end = sigmas[-1] if sigmas[-1] > 0 else sigmas[-2]
    exact = mu + (x - mu) * ((s ** 2 + end ** 2) / (s ** 2 + sigmas[0] ** 2)).sqrt()
    return (out - exact).abs().max().item(), calls


def test_dpm_fast_spends_its_evaluations_and_is_third_order():
    errors = []
    for n in (9, 18):
        error, calls = _gaussian_error("dpm_fast", SCHEDULERS["karras"](SD, n))
        assert len(calls) == n  # nfe = steps
        assert calls[0] == pytest.approx(float(SD.sigma_max), rel=1e-5)
        errors.append(error)
    assert errors[1] < errors[0] / 6  # 2^3 = 8 for exact third order
    assert errors[1] < 5e-3


def test_dpm_adaptive_error_follows_its_tolerance():
    sigmas = SCHEDULERS["karras"](SD, 10)
    loose, loose_calls = _gaussian_error("dpm_adaptive", sigmas)
    tight, tight_calls = _gaussian_error("dpm_adaptive", sigmas, rtol=1e-4, atol=1e-5)
    assert tight < 2e-3 and tight < loose / 10
    assert len(tight_calls) > len(loose_calls)
    assert len(_gaussian_error("dpm_adaptive", sigmas, order=2)[1]) > 0


# ---- SEEDS, ER-SDE, SA-Solver ----------------------------------------------------------------

def test_seeds_2_without_noise_is_dpmpp_2s():
    model, x = posterior_mean(0.1, 0.4), x0(7)
    sigmas = SCHEDULERS["karras"](SD, 8)
    torch.testing.assert_close(SAMPLERS["seeds_2"](model, x, sigmas, eta=0.0),
                               SAMPLERS["dpmpp_2s_ancestral"](model, x, sigmas, eta=0.0), rtol=1e-5, atol=1e-5)


def test_seeds_noise_is_one_brownian_increment():
    """eta = 1: the step's noise comes in two draws that add up to std sigma_{i+1} sqrt(1 - e^{-2h})."""
    model = posterior_mean(0.0, 1e-6)  # D = 0 (data at 0): x after one step is pure noise
    sigmas = torch.tensor([2.0, 1.0])
    x = torch.zeros(1, 1, 256, 256)
    out = SAMPLERS["seeds_2"](model, x, sigmas, eta=1.0, seed=4)
    h = math.log(2.0)
    assert out.std().item() == pytest.approx(1.0 * math.sqrt(-math.expm1(-2 * h)), rel=0.02)


def test_er_sde_first_stage_step():
    model, x = posterior_mean(0.2, 0.5), x0(8)
    sigmas = torch.tensor([3.0, 1.0])

    def phi(s):
        return s * (math.exp(s ** 0.3) + 10.0)
    r = phi(1.0) / phi(3.0)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    want = r * x + (1 - r) * model(x, torch.tensor([3.0])) + noise * math.sqrt(1.0 - 9.0 * r ** 2)
    got = SAMPLERS["er_sde"](model, x, sigmas, noise_sampler=lambda *_: noise)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tau", [0.0, 1.0])
def test_stochastic_adams_coefficients_equal_quadrature(tau):
    lambdas = torch.tensor([-1.3, -0.8, -0.2], dtype=torch.float64)
    lam_s, lam_t = -0.2, 0.5
    k = 1 + tau ** 2
    b = stochastic_adams_coefficients(lambdas, lam_s, lam_t, tau)
    nodes = lambdas.tolist()
    for j in range(3):
        def integrand(lam):
            basis = np.prod([(lam - nodes[m]) / (nodes[j] - nodes[m]) for m in range(3) if m != j])
            return k * math.exp(-k * (lam_t - lam)) * basis
        assert float(b[j]) == pytest.approx(scipy.integrate.quad(integrand, lam_s, lam_t, epsrel=1e-12)[0], rel=1e-9)
    # first order, tau = 0: DPM-Solver++(1)'s 1 - e^{-h}
    one = stochastic_adams_coefficients(lambdas[-1:], lam_s, lam_t, 0.0)
    assert float(one[0]) == pytest.approx(-math.expm1(-(lam_t - lam_s)), rel=1e-12)


@pytest.mark.parametrize("name", ["sa_solver", "sa_solver_pece"])
def test_sa_solver_without_a_final_zero_returns_the_state_before_its_last_prediction(name):
    """ComfyUI v0.3.64's SA-Solver returns x, not its last prediction: with sigmas that end above 0
    one step gives back the input, and without a corrector the result is the state the last step
    started from (its callback's x)."""
    model, x = posterior_mean(0.2, 0.5), x0(5)
    tau = {"tau_func": lambda sigma: 0.0}
    torch.testing.assert_close(SAMPLERS[name](model, x, torch.tensor([3.0, 2.0]), **tau), x)
    seen = []
    out = SAMPLERS[name](model, x, torch.tensor([3.0, 2.0, 1.5, 1.0]), corrector_order=0,
                         callback=lambda info: seen.append(info["x"]), **tau)
    assert len(seen) == 3 and not torch.allclose(seen[-1], x)
    torch.testing.assert_close(out, seen[-1])


def test_sa_solver_adds_noise_only_in_the_models_middle_range():
    model = posterior_mean(0.3, 0.5)
    sigmas = SCHEDULERS["karras"](SD, 12)
    x = x0(9, shape=(1, 1, 8, 8), scale=float(sigmas[0]))
    draws = []

    def noise(sigma, sigma_next):
        draws.append(float(sigma_next))
        return torch.zeros_like(x)
    SAMPLERS["sa_solver"](model, x, sigmas, noise_sampler=noise, schedule=SD)
    start, end = float(SD.sigma(torch.tensor(0.8 * 999))), float(SD.sigma(torch.tensor(0.2 * 999)))
    inside = [float(s) for s in sigmas[1:-1] if start >= float(s) >= end]
    assert draws == pytest.approx(inside) and 0 < len(inside) < len(sigmas) - 2


@pytest.mark.parametrize("tau_from", ["default", "node"])
def test_sa_solver_interval_bounds_are_compared_in_float32(tau_from):
    """ComfyUI compares the step's float32 sigma TENSOR with the Python-float bounds, i.e. in
    float32. FLUX's simple schedule over 10 steps lands on t = 0.8, whose float32 sigma rounds up
    from the double percent_to_sigma(0.2): that step is inside the SDE interval (noise is drawn),
    though in double precision it lies just above it."""
    from graphflow.sampling.flow_sampling import FlowSchedule
    from graphflow.sampling.samplers import sa_solver_tau

    flux = FlowSchedule.flux(1.15)  # FLUX dev's default
    sigmas = SCHEDULERS["simple"](flux, 10)
    start, end = flux.percent_to_sigma(0.2), flux.percent_to_sigma(0.8)
    assert float(sigmas[2]) > start and sigmas[2] == torch.tensor(start)  # the case at hand
    f32_start, f32_end = float(torch.tensor(start)), float(torch.tensor(end))
    inside = [float(s) for s in sigmas[1:-1] if f32_start >= float(s) >= f32_end]
    assert float(sigmas[2]) in inside
    draws = []

    def noise(sigma, sigma_next):
        draws.append(float(sigma_next))
        return torch.zeros(1, 1, 4, 4)
    tau = {} if tau_from == "default" else {"tau_func": sa_solver_tau(start, end, 1.0)}
    SAMPLERS["sa_solver"](posterior_mean(0.3, 0.5), x0(9, shape=(1, 1, 4, 4)), sigmas, noise_sampler=noise,
                          schedule=flux, flow=True, **tau)
    assert draws == inside


@pytest.mark.parametrize("name,solver_type", [("dpmpp_2m_sde_heun", "heun"), ("dpmpp_2m_sde", "midpoint")])
def test_dpmpp_2m_sde_matches_diffusers_sde_dpmsolver_pp(name, solver_type):
    """diffusers' DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++") works on the
    variance-preserving sample x / sqrt(1 + sigma^2); fed the same eps and the same noise draws
    it must land where ours does."""
    from diffusers import DPMSolverMultistepScheduler

    mu, s = 0.3, 0.6
    model = posterior_mean(mu, s)
    steps = 10
    scheduler = DPMSolverMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                            algorithm_type="sde-dpmsolver++", solver_type=solver_type,
                                            use_karras_sigmas=True)
    scheduler.set_timesteps(steps)
    sigmas = scheduler.sigmas.float()
    g = torch.Generator().manual_seed(0)
    sample_vp = torch.randn(1, 4, 8, 8, generator=g)
    noises = [torch.randn(1, 4, 8, 8, generator=g) for _ in range(steps)]
    x_start = sample_vp * (1 + sigmas[0] ** 2).sqrt()
    for i, t in enumerate(scheduler.timesteps):
        x = sample_vp * (1 + sigmas[i] ** 2).sqrt()
        eps = (x - model(x, sigmas[i].reshape(1))) / sigmas[i]
        sample_vp = scheduler.step(eps, t, sample_vp, variance_noise=noises[i]).prev_sample
    draws = iter(noises)
    ours = SAMPLERS[name](model, x_start, sigmas, noise_sampler=lambda *_: next(draws))
    torch.testing.assert_close(ours, sample_vp, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("tau", [0.0, 1.0])
def test_sa_solver_matches_diffusers_sa_solver_scheduler(tau):
    """diffusers' SASolverScheduler (data prediction, predictor order 3, corrector order 4 as
    ComfyUI's) on the variance-preserving sample, the same eps and the same noise draws. Compared
    one step before the end, where the two lower their orders differently: our prediction there as
    the callback reports it (with sigmas ending above 0 the sampler returns, as ComfyUI v0.3.64's,
    the state one sigma earlier), one more sigma given so that the step is taken."""
    from diffusers import SASolverScheduler

    model = posterior_mean(0.3, 0.6)
    steps = 12
    scheduler = SASolverScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  predictor_order=3, corrector_order=4, tau_func=lambda t: tau,
                                  lower_order_final=False, use_karras_sigmas=True)
    scheduler.set_timesteps(steps)
    sigmas = scheduler.sigmas.float()[:steps]
    sample_vp = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    x_start = sample_vp * (1 + sigmas[0] ** 2).sqrt()
    g = torch.Generator().manual_seed(1)
    for i, t in enumerate(scheduler.timesteps[:steps - 1]):
        x = sample_vp * (1 + sigmas[i] ** 2).sqrt()
        eps = (x - model(x, sigmas[i].reshape(1))) / sigmas[i]
        sample_vp = scheduler.step(eps, t, sample_vp, generator=g).prev_sample
    g = torch.Generator().manual_seed(1)
    seen = []
    SAMPLERS["sa_solver"](model, x_start, torch.cat([sigmas, sigmas[-1:] / 2]), tau_func=lambda sigma: tau,
                          noise_sampler=lambda *_: torch.randn(1, 4, 8, 8, generator=g),
                          callback=lambda info: seen.append(info["x"]))
    torch.testing.assert_close(seen[steps - 1], sample_vp * (1 + sigmas[-1] ** 2).sqrt(), rtol=1e-4, atol=1e-4)


# ---- flow models (x = (1 - sigma) x0 + sigma eps): the samplers' flow switch -----------------

def flow_posterior_mean(mu, s):
    """The exact x0 estimate for data N(mu, s^2) under the flow noising."""
    def denoiser(x, sigma):
        sigma = sigma.reshape(-1, 1, 1, 1)
        a = 1 - sigma
        return mu + a * s ** 2 * (x - a * mu) / (a ** 2 * s ** 2 + sigma ** 2)
    return denoiser


def flow_sigmas(steps, shift=3.0):
    t = torch.linspace(1, 0, steps + 1)
    return shift * t / (1 + (shift - 1) * t)  # SD3's shifted schedule


def test_euler_cfg_pp_flow_step():
    model, x = FakeCFG(), x0(10, scale=1.0)
    sigmas = torch.tensor([0.8, 0.5])
    d, u = model.both(x, 0.8)
    want = 0.5 * d + 0.5 * (x - 0.2 * u) / 0.8
    torch.testing.assert_close(SAMPLERS["euler_cfg_pp"](model, x, sigmas, flow=True), want)


FLOW_SDE = [("seeds_2", {}, 50), ("seeds_3", {}, 50), ("sa_solver", {"tau_func": lambda sigma: 1.0}, 50),
            ("sa_solver_pece", {"tau_func": lambda sigma: 1.0}, 50),
            ("er_sde", {}, 50), ("euler_ancestral_cfg_pp", {}, 400)]  # first order: 0.935, 0.963, 0.990 of s at 100, 200, 400 steps


@pytest.mark.parametrize("name,options,steps", FLOW_SDE)
def test_flow_sde_samplers_produce_the_data_distribution(name, options, steps):
    mu, s = 0.3, 0.5
    model = flow_posterior_mean(mu, s)
    x = torch.randn(1, 1, 128, 128, generator=torch.Generator().manual_seed(1))  # sigma = 1: pure noise
    out = SAMPLERS[name](model, x, flow_sigmas(steps), seed=3, flow=True, **options)
    assert abs(out.mean().item() - mu) < 0.015
    assert abs(out.std().item() / s - 1) < 0.03, out.std().item()
    if name.startswith("seeds") or name.startswith("sa_solver"):
        # the sigma-space form re-noises as if x = x0 + sigma eps: visibly the wrong distribution
        wrong = SAMPLERS[name](model, x, flow_sigmas(steps), seed=3, flow=False, **options)
        assert abs(wrong.std().item() / s - 1) > 0.15


def test_flow_sde_samplers_start_just_below_sigma_one():
    seen = []

    def model(x, sigma):
        seen.append(float(sigma[0]))
        return flow_posterior_mean(0.0, 1.0)(x, sigma)
    SAMPLERS["seeds_2"](model, torch.randn(1, 1, 4, 4), flow_sigmas(4), seed=0, flow=True)
    assert seen[0] == pytest.approx(1 - 1e-4)
    seen.clear()
    SAMPLERS["seeds_2"](model, torch.randn(1, 1, 4, 4), flow_sigmas(4), seed=0, flow=True,
                        schedule=SimpleNamespace(percent_to_sigma=lambda p: 0.98765))
    assert seen[0] == pytest.approx(0.98765)


def test_the_pipeline_switches_samplers_to_flow_for_a_flow_schedule(monkeypatch):
    from graphflow.sampling import pipeline

    seen = {}

    def recorder(denoiser, x, sigmas, callback=None, **options):
        seen.update(options)
        return x
    monkeypatch.setitem(pipeline.SAMPLERS, "seeds_2", recorder)
    model = FakeModel(context_eps)
    schedule = DiscreteSchedule.from_betas()
    args = (model, SD.sigmas[[999, 500]], torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 8), prompt(0.1), prompt(0.0),
            2.0, "seeds_2", 1)
    pipeline.sample_with_sigmas(*args, schedule=schedule)
    assert "flow" not in seen and seen["schedule"] is schedule and seen["seed"] == 1
    schedule.prediction = "flow"  # what a flow model's sampling reports
    pipeline.sample_with_sigmas(*args, schedule=schedule)
    assert seen["flow"] is True


@pytest.mark.parametrize("name", ["dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde", "euler_ancestral", "lms", "ipndm"])
def test_the_step_into_sigma_zero_returns_the_denoised_value_exactly(name):
    """ComfyUI's x = denoised at sigma_next = 0 (an Euler step x + (x - D)/s * (0 - s) gets there
    only up to rounding: visibly so for large x and small s)."""
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0)) * 300
    d = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    options = {"seed": 1} if name in ("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde", "euler_ancestral") else {}
    out = SAMPLERS[name](lambda x, sigma: d, x, torch.tensor([0.0291675, 0.0]), **options)
    assert torch.equal(out, d)

