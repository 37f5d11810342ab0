"""ComfyUI's parameterised Sampler* nodes, its extra schedulers and sigma tools, and AddNoise:
each checked against the sampler it configures (the same latent as KSampler's choice where
ComfyUI's is the same), against closed forms, or against the published tables."""

import math

import numpy as np
import pytest
import torch

from graphflow.context import NodeInputError
from graphflow.sampling import SAMPLERS, SCHEDULERS, compute_sigmas, prepare_conds
from graphflow.sampling import samplers as sp
from graphflow.sampling import schedules as sch
from graphflow.sampling.noise import NoiseSource
from graphflow.sampling.pipeline import sample_custom
from graphflow.sampling.samplers import SamplerChoice
from nodes import custom_sampling as cs
from sampling_fakes import SD, FakeModel, gaussian_eps, prompt
from test_custom_sampling import run_node
from test_samplers import gaussian_problem


def custom_run(sampler, steps=6, seed=5, model=None, sigmas=None):
    model = model or FakeModel(gaussian_eps(0.2, 0.5))
    guider = run_node(cs.CFGGuider, model=model, positive=prompt(0.1), negative=prompt(-0.1), cfg=3.0)
    if sigmas is None:
        sigmas = run_node(cs.BasicScheduler, model=model, scheduler="karras", steps=steps, denoise=1.0)
    out, _ = sample_custom(guider, NoiseSource(seed), sampler, sigmas, {"samples": torch.zeros(1, 4, 8, 8)})
    return out["samples"]


# ---- sampler nodes -------------------------------------------------------------------------------

@pytest.mark.parametrize("node, inputs, same_as", [
    (cs.SamplerEulerAncestral, {"eta": 1.0, "s_noise": 1.0}, "euler_ancestral"),
    (cs.SamplerEulerAncestralCFGPP, {"eta": 1.0, "s_noise": 1.0}, "euler_ancestral_cfg_pp"),
    (cs.SamplerDPMPP_2S_Ancestral, {"eta": 1.0, "s_noise": 1.0}, "dpmpp_2s_ancestral"),
    (cs.SamplerDPMPP_2M_SDE, {"solver_type": "heun", "eta": 1.0, "s_noise": 1.0, "noise_device": "cpu"},
     "dpmpp_2m_sde_heun"),
    (cs.SamplerDPMPP_2M_SDE, {"solver_type": "midpoint", "eta": 1.0, "s_noise": 1.0, "noise_device": "gpu"},
     "dpmpp_2m_sde_gpu"),
    (cs.SamplerDPMPP_3M_SDE, {"eta": 1.0, "s_noise": 1.0, "noise_device": "cpu"}, "dpmpp_3m_sde"),
    (cs.SamplerDPMPP_SDE, {"eta": 1.0, "s_noise": 1.0, "r": 0.5, "noise_device": "cpu"}, "dpmpp_sde"),
    (cs.SamplerLMS, {"order": 4}, "lms"),
    (cs.SamplerER_SDE, {"solver_type": "ER-SDE", "max_stage": 3, "eta": 1.0, "s_noise": 1.0}, "er_sde"),
])
def test_sampler_nodes_at_the_defaults_give_ksamplers_latent(node, inputs, same_as):
    """At KSampler's settings a Sampler* node must sample exactly what KSamplerSelect's name does."""
    sampler = run_node(node, **inputs)
    torch.testing.assert_close(custom_run(sampler), custom_run(SamplerChoice(same_as)), rtol=0, atol=1e-6)


def test_sampler_nodes_pass_their_parameters_on():
    ancestral = custom_run(run_node(cs.SamplerEulerAncestral, eta=1.0, s_noise=1.0))
    half = custom_run(run_node(cs.SamplerEulerAncestral, eta=0.5, s_noise=1.0))
    quiet = custom_run(run_node(cs.SamplerEulerAncestral, eta=1.0, s_noise=0.0))
    assert (ancestral - half).abs().max() > 1e-3 and (ancestral - quiet).abs().max() > 1e-3
    # eta 0 is the ODE: Euler (k-diffusion's sigma_down = sigma_next, no noise)
    torch.testing.assert_close(custom_run(run_node(cs.SamplerEulerAncestral, eta=0.0, s_noise=1.0)),
                               custom_run(SamplerChoice("euler")), rtol=0, atol=1e-5)
    denoiser, _, start = gaussian_problem()
    sigmas = SCHEDULERS["karras"](SD, 6)
    x = start(sigmas[0])
    ode = run_node(cs.SamplerDPMPP_2S_Ancestral, eta=0.0, s_noise=1.0).options
    assert torch.equal(SAMPLERS["dpmpp_2s_ancestral"](denoiser, x, sigmas, seed=1, **ode),
                       SAMPLERS["dpmpp_2s_ancestral"](denoiser, x, sigmas, seed=9, **ode))  # eta 0: no noise
    r_mid = custom_run(run_node(cs.SamplerDPMPP_SDE, eta=0.0, s_noise=1.0, r=0.5, noise_device="cpu"))
    r_late = custom_run(run_node(cs.SamplerDPMPP_SDE, eta=0.0, s_noise=1.0, r=0.9, noise_device="cpu"))
    assert (r_mid - r_late).abs().max() > 1e-4
    with pytest.raises(NodeInputError) as e:
        run_node(cs.SamplerDPMPP_SDE, eta=1.0, s_noise=1.0, r=0.0, noise_device="cpu")
    assert e.value.input == "r"


def test_lms_order_one_is_euler():
    denoiser, _, start = gaussian_problem()
    sigmas = SCHEDULERS["karras"](SD, 8)
    x = start(sigmas[0])
    sampler = run_node(cs.SamplerLMS, order=1)
    torch.testing.assert_close(SAMPLERS["lms"](denoiser, x, sigmas, **sampler.options),
                               SAMPLERS["euler"](denoiser, x, sigmas), rtol=1e-5, atol=1e-5)


def test_dpm_adaptive_eta_adds_seeded_noise_and_eta_zero_is_unchanged():
    denoiser, _, start = gaussian_problem()
    sigmas = SCHEDULERS["karras"](SD, 10)
    x = start(sigmas[0])
    options = run_node(cs.SamplerDPMAdaptative, order=3, rtol=0.05, atol=0.0078, h_init=0.05, pcoeff=0.0,
                       icoeff=1.0, dcoeff=0.0, accept_safety=0.81, eta=0.0, s_noise=1.0).options
    assert torch.equal(SAMPLERS["dpm_adaptive"](denoiser, x, sigmas, **options),
                       SAMPLERS["dpm_adaptive"](denoiser, x, sigmas))
    noisy = {**options, "eta": 1.0}
    a = SAMPLERS["dpm_adaptive"](denoiser, x, sigmas, seed=3, **noisy)
    b = SAMPLERS["dpm_adaptive"](denoiser, x, sigmas, seed=3, **noisy)
    c = SAMPLERS["dpm_adaptive"](denoiser, x, sigmas, seed=4, **noisy)
    assert torch.equal(a, b) and (a - c).abs().max() > 1e-3
    assert (a - SAMPLERS["dpm_adaptive"](denoiser, x, sigmas)).abs().max() > 1e-3


def test_dpm_adaptive_with_eta_keeps_the_data_distribution():
    mu, s = 0.3, 0.5

    def denoiser(x, sigma):
        sigma = sigma.reshape(-1, 1, 1, 1)
        return (s ** 2 * x + sigma ** 2 * mu) / (s ** 2 + sigma ** 2)
    sigmas = SCHEDULERS["karras"](SD, 10)
    x = mu + (s ** 2 + sigmas[0] ** 2).sqrt() * torch.randn(1, 1, 128, 128, generator=torch.Generator().manual_seed(1))
    out = SAMPLERS["dpm_adaptive"](denoiser, x, sigmas, eta=1.0, seed=2, rtol=0.01)
    # it stops at sigma_min (0.03): the std there is sqrt(s^2 + 0.03^2)
    assert abs(out.mean().item() - mu) < 0.02
    assert abs(out.std().item() / math.sqrt(s ** 2 + float(sigmas[-2]) ** 2) - 1) < 0.05


def test_er_sde_solver_types():
    denoiser, _, start = gaussian_problem()
    sigmas = SCHEDULERS["karras"](SD, 6)
    x = start(sigmas[0])
    ode = sp.er_sde_options("ODE", 1.0, 1.0)
    assert ode["s_noise"] == 0.0 and sp.er_sde_options("Reverse-time SDE", 0.0, 1.0)["s_noise"] == 0.0
    # psi(l) = l: stage 1 is x_t = (l_t / l_s) x + (1 - l_t / l_s) D, the Euler step in sigma space
    torch.testing.assert_close(SAMPLERS["er_sde"](denoiser, x, sigmas, max_stage=1, **ode),
                               SAMPLERS["euler"](denoiser, x, sigmas), rtol=1e-5, atol=1e-5)
    lam = torch.tensor([0.1, 1.0, 5.0])
    torch.testing.assert_close(sp.er_sde_options("Reverse-time SDE", 1.0)["noise_scaler"](lam), lam ** 2)
    torch.testing.assert_close(sp.er_sde_options("Reverse-time SDE", 0.5)["noise_scaler"](lam), lam ** 1.5)
    torch.testing.assert_close(sp.er_sde_options("Reverse-time SDE", 0.0)["noise_scaler"](lam), lam)
    node = run_node(cs.SamplerER_SDE, solver_type="Reverse-time SDE", max_stage=2, eta=1.0, s_noise=0.7)
    assert node.name == "er_sde" and node.options["max_stage"] == 2 and node.options["s_noise"] == 0.7
    with pytest.raises(ValueError, match="ER-SDE solver type"):
        sp.er_sde_options("SDE")


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0, 3.0])
def test_er_sde_solver_type_ignores_eta(eta):
    """ComfyUI's SamplerER_SDE (v0.3.64, the catalogue's): eta "doesn't apply to ER-SDE solver type";
    the paper's phi(l) = l (e^{l^0.3} + 10) and the given s_noise at every eta, even 0."""
    lam = torch.tensor([0.05, 1.0, 14.6])
    options = sp.er_sde_options("ER-SDE", eta, 0.7)
    assert options["s_noise"] == 0.7
    torch.testing.assert_close(options["noise_scaler"](lam), lam * (torch.exp(lam ** 0.3) + 10))
    node = run_node(cs.SamplerER_SDE, solver_type="ER-SDE", max_stage=3, eta=eta, s_noise=0.7)
    assert node.options["s_noise"] == 0.7
    torch.testing.assert_close(node.options["noise_scaler"](lam), lam * (torch.exp(lam ** 0.3) + 10))


def test_sa_solver_node_sets_its_stochastic_interval_from_the_models_percentages():
    model = FakeModel(gaussian_eps(0.2, 0.5))
    node = run_node(cs.SamplerSASolver, model=model, eta=0.7, sde_start_percent=0.2, sde_end_percent=0.8,
                    s_noise=1.0, predictor_order=3, corrector_order=4, use_pece=False, simple_order_2=False)
    tau = node.options["tau_func"]
    start, end = SD.percent_to_sigma(0.2), SD.percent_to_sigma(0.8)
    assert tau(torch.tensor(start)) == 0.7 and tau(end) == 0.7 and tau((start * end) ** 0.5) == 0.7
    assert tau(start * 1.01) == 0.0 and tau(end * 0.99) == 0.0
    assert sp.sa_solver_tau(start, end, 0.0)(start) == 0.0
    # at ComfyUI's defaults (eta 1, 20% to 80%) it is KSampler's sa_solver
    default = run_node(cs.SamplerSASolver, model=model, eta=1.0, sde_start_percent=0.2, sde_end_percent=0.8,
                       s_noise=1.0, predictor_order=3, corrector_order=4, use_pece=False, simple_order_2=False)
    torch.testing.assert_close(custom_run(default), custom_run(SamplerChoice("sa_solver")), rtol=0, atol=1e-6)


@pytest.mark.parametrize("corrector", [False, True])
def test_simple_order_2_weights_approach_the_exact_ones(corrector):
    """The weights are O(h) and the simplified ones differ from the exact ones by O(h^2), equally and
    oppositely (each pair sums to 1 - e^{-(1 + tau^2) h}); the difference meets D_newer - D_older =
    O(h), so the step's error stays O(h^3): still second order."""
    tau = 0.8
    errors = []
    for h in (0.2, 0.1, 0.05):
        prev, s = -1.0 - h, -1.0  # evenly spaced nodes
        t = s + h
        if corrector:
            nodes, a, b = torch.tensor([prev, s], dtype=torch.float64), prev, s
            simple = sp.simple_order_2_coefficients(None, prev, s, tau, corrector=True)
        else:
            nodes, a, b = torch.tensor([prev, s], dtype=torch.float64), s, t
            simple = sp.simple_order_2_coefficients(prev, s, t, tau, corrector=False)
        exact = sp.stochastic_adams_coefficients(nodes, a, b, tau)
        assert float(simple.sum()) == pytest.approx(-math.expm1(-(1 + tau ** 2) * h), rel=1e-12)
        errors.append(float((simple - exact).abs().max()))
        assert float((simple - exact).sum()) == pytest.approx(0.0, abs=1e-12)
    assert errors[1] < errors[0] / 3.5 and errors[2] < errors[1] / 3.5


def test_sa_solver_simple_order_2_runs_second_order():
    denoiser, transport, start = gaussian_problem()
    results = []
    for steps in (10, 20):
        sigmas = SCHEDULERS["karras"](SD, steps)[:-1]
        x = start(sigmas[0])
        out = SAMPLERS["sa_solver"](denoiser, x, sigmas, tau_func=lambda s: 0.0, predictor_order=2,
                                    corrector_order=2, simple_order_2=True)
        results.append(float((out - transport(x, sigmas[0], sigmas[-1])).abs().max()))
    assert results[1] < results[0] / 3  # error falls at least ~2nd order with the steps


def test_lcm_upscale_grows_the_latent_and_repeats_from_the_seed():
    c = 0.37

    def denoiser(x, sigma):
        return torch.full_like(x, c)
    sigmas = SCHEDULERS["karras"](SD, 4)
    x = torch.randn(1, 4, 8, 8)
    for method in ("bislerp", "nearest-exact", "bilinear", "area", "bicubic"):
        options = run_node(cs.SamplerLCMUpscale, scale_ratio=2.0, scale_steps=-1, upscale_method=method).options
        out = sp.ALL_SAMPLERS["lcm_upscale"](denoiser, x, sigmas, seed=1, **options)
        assert out.shape == (1, 4, 16, 16)
        torch.testing.assert_close(out, torch.full_like(out, c))  # the last step lands on D
    # default upscale_steps: half the steps + 1 points from 1 to 2, the sizes after each step
    sizes = []
    sp.ALL_SAMPLERS["lcm_upscale"](denoiser, x, SCHEDULERS["karras"](SD, 6), seed=1, total_upscale=2.0,
                                   upscale_method="bilinear", callback=lambda info: sizes.append(info["x"].shape[-1]))
    assert sizes == [8, round(8 * 4 / 3), round(8 * 5 / 3), 16, 16, 16]
    a = custom_run(run_node(cs.SamplerLCMUpscale, scale_ratio=1.5, scale_steps=2, upscale_method="bilinear"))
    b = custom_run(run_node(cs.SamplerLCMUpscale, scale_ratio=1.5, scale_steps=2, upscale_method="bilinear"))
    assert a.shape == (1, 4, 12, 12) and torch.equal(a, b)


def test_lcm_upscale_noise_continues_comfyuis_global_stream():
    """ComfyUI's sample_lcm_upscale adds sigma' * torch.randn_like(x) from the global generator,
    which its prepare_noise seeded (torch.manual_seed(seed)) and then drew the starting noise from;
    on the CPU the fresh noise is that stream's continuation, at each step's (upscaled) size."""
    seed, shape = 7, (2, 4, 6, 6)
    sigmas = torch.tensor([2.0, 1.0, 0.5, 0.25])
    seen = []

    def denoiser(x, sigma):
        return torch.zeros_like(x)  # D = 0: x after a step is sigma' times the fresh noise
    x = torch.randn(shape)
    out = sp.ALL_SAMPLERS["lcm_upscale"](denoiser, x, sigmas, seed=seed, total_upscale=2.0, upscale_method="bilinear",
                                         upscale_steps=2, callback=lambda info: seen.append(info["x"]))
    try:
        state = torch.get_rng_state()
        torch.manual_seed(seed)
        torch.randn(shape)  # the starting noise
        sizes = [9, 12, 12]  # 6 * 1.5, 6 * 2, then no more upscaling
        want = [s * torch.randn(2, 4, n, n) for s, n in zip((1.0, 0.5, 0.25), sizes)]
    finally:
        torch.set_rng_state(state)
    for got, expected in zip(seen[1:] + [out], want):
        torch.testing.assert_close(got, expected)


# ---- schedulers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("model_type", ["SD1", "SDXL", "SVD"])
def test_align_your_steps_is_the_published_table(model_type):
    table = sch.AYS_SIGMAS[model_type]
    ten = run_node(cs.AlignYourStepsScheduler, model_type=model_type, steps=10, denoise=1.0)
    assert ten.dtype == torch.float32 and ten.tolist()[-1] == 0.0
    torch.testing.assert_close(ten[:-1], torch.tensor(table[:-1]))
    # 20 steps: log-linear interpolation keeps every published point (at the even positions)
    twenty = run_node(cs.AlignYourStepsScheduler, model_type=model_type, steps=20, denoise=1.0)
    assert len(twenty) == 21
    torch.testing.assert_close(twenty[0:-1:2], torch.tensor(table[:-1]), rtol=1e-6, atol=0)
    # and the points between are geometric means of their neighbours
    torch.testing.assert_close(twenty[1:-1:2], (torch.tensor(table[:-1]) * torch.tensor(table[1:])).sqrt(),
                               rtol=1e-5, atol=0)
    half = run_node(cs.AlignYourStepsScheduler, model_type=model_type, steps=10, denoise=0.5)
    torch.testing.assert_close(half[:-1], torch.tensor(table[5:-1]))
    assert len(half) == 6 and half[-1] == 0
    assert len(run_node(cs.AlignYourStepsScheduler, model_type=model_type, steps=10, denoise=0.0)) == 0


def test_align_your_steps_known_values():
    # ComfyUI's AlignYourStepsScheduler("SD1", 10, 1.0): the table with the last entry replaced by 0
    assert run_node(cs.AlignYourStepsScheduler, model_type="SD1", steps=10, denoise=1.0)[:3].tolist() == \
        pytest.approx([14.6146412293, 6.4745760956, 3.8636745985], rel=1e-7)
    # 5 steps: interpolation at 0, 1/5, ... in log space over the 11 points: x = 0.2 is point 2
    five = run_node(cs.AlignYourStepsScheduler, model_type="SD1", steps=5, denoise=1.0)
    assert five[1].item() == pytest.approx(3.8636745985, rel=1e-6)


@pytest.mark.parametrize("model_type, points", [("FLUX", 11), ("Wan", 21), ("Chroma", 41)])
def test_optimal_steps_is_the_published_table(model_type, points):
    table = sch.OPTIMAL_STEPS_SIGMAS[model_type]
    assert len(table) == points
    exact = run_node(cs.OptimalStepsScheduler, model_type=model_type, steps=points - 1, denoise=1.0)
    torch.testing.assert_close(exact[:-1], torch.tensor(table[:-1]))
    assert exact[-1] == 0
    double = run_node(cs.OptimalStepsScheduler, model_type=model_type, steps=2 * (points - 1), denoise=1.0)
    torch.testing.assert_close(double[0:-1:2], torch.tensor(table[:-1]), rtol=1e-6, atol=0)


def test_gits_tables_are_whole_and_lie_on_sd15s_noise_levels():
    from graphflow.sampling.gits_sigmas import GITS_SIGMAS
    assert sorted(GITS_SIGMAS) == [round(0.8 + 0.05 * i, 2) for i in range(15)]
    grid = torch.cat([SD.sigmas[0:1000:10], SD.sigmas[999:]]).double()
    for coeff, rows in GITS_SIGMAS.items():
        assert [len(row) for row in rows] == list(range(3, 22))  # 2 to 20 steps
        for row in rows:
            assert row[0] == 14.61464119 and row[-1] == 0.02916753  # SD1.5's sigma_max and sigma_min
            assert all(a > b for a, b in zip(row, row[1:]))
            # every entry is one of SD1.5's sigmas at timesteps 0, 10, ..., 990, 999 to within 1%
            # (neighbours there differ by 5% or more, so a mistyped digit shows)
            nearest = (grid[None, :] - torch.tensor(row, dtype=torch.float64)[:, None]).abs().min(dim=1).values
            assert (nearest / torch.tensor(row, dtype=torch.float64)).max() < 0.01


def test_gits_scheduler_takes_the_published_row():
    ten = run_node(cs.GITSScheduler, coeff=1.2, steps=10, denoise=1.0)
    # ComfyUI's GITSScheduler(1.20, 10, 1.0): the published row with sigma_min replaced by 0
    assert ten.tolist() == pytest.approx([14.61464119, 5.85520077, 2.84484982, 1.67050016, 1.08895338, 0.74807048,
                                          0.50118381, 0.32104823, 0.19894916, 0.09824532, 0.0], rel=1e-7)
    two = run_node(cs.GITSScheduler, coeff=0.8, steps=2, denoise=1.0)
    assert two.tolist() == pytest.approx([14.61464119, 7.49001646, 0.0], rel=1e-7)
    half = run_node(cs.GITSScheduler, coeff=1.2, steps=10, denoise=0.5)
    torch.testing.assert_close(half, torch.cat([ten[5:-1], torch.zeros(1)]))
    # above 20 steps: the 20-step row, log-linearly interpolated (40 steps keep its points)
    from graphflow.sampling.gits_sigmas import GITS_SIGMAS
    forty = run_node(cs.GITSScheduler, coeff=1.05, steps=40, denoise=1.0)
    torch.testing.assert_close(forty[0:-1:2], torch.tensor(GITS_SIGMAS[1.05][-1][:-1]), rtol=1e-6, atol=0)
    # a float widget value off by rounding still finds its table (ComfyUI rounds to 2 decimals)
    assert run_node(cs.GITSScheduler, coeff=1.2000001, steps=4, denoise=1.0)[1].item() == pytest.approx(2.36326075)
    with pytest.raises(NodeInputError) as e:
        run_node(cs.GITSScheduler, coeff=1.23, steps=4, denoise=1.0)
    assert e.value.input == "coeff"


def test_loglinear_interp_is_linear_in_log_sigma():
    sigmas = [10.0, 1.0, 0.1]
    out = sch.loglinear_interp(sigmas, 5)
    np.testing.assert_allclose(out, [10.0, 10 ** 0.5, 1.0, 0.1 ** 0.5, 0.1], rtol=1e-12)


def test_polyexponential_vp_and_laplace_closed_forms():
    poly = run_node(cs.PolyexponentialScheduler, steps=10, sigma_max=14.614642, sigma_min=0.0291675, rho=1.0)
    torch.testing.assert_close(poly, sch.exponential_sigmas(10, 0.0291675, 14.614642))
    poly2 = run_node(cs.PolyexponentialScheduler, steps=5, sigma_max=10.0, sigma_min=0.1, rho=2.0)
    expected = [math.exp(math.log(0.1) + (1 - i / 4) ** 2 * (math.log(10) - math.log(0.1))) for i in range(5)] + [0]
    assert poly2.tolist() == pytest.approx(expected, rel=1e-5)

    vp = run_node(cs.VPScheduler, steps=4, beta_d=19.9, beta_min=0.1, eps_s=0.001)
    ts = [1.0, 1 - 0.999 / 3, 1 - 2 * 0.999 / 3, 0.001]
    assert vp.tolist() == pytest.approx([math.sqrt(math.expm1(19.9 * t * t / 2 + 0.1 * t)) for t in ts] + [0], rel=1e-5)
    assert vp[0].item() == pytest.approx(152.0, rel=2e-3)  # the VP SDE's sigma_max (EDM table 1)

    lap = run_node(cs.LaplaceScheduler, steps=5, sigma_max=14.614642, sigma_min=0.0291675, mu=0.0, beta=0.5)
    assert len(lap) == 5 and lap[-1] > 0  # ComfyUI's: no final 0
    # x = 0, 1/4, 1/2, 3/4, 1: log sigma = -/+ beta log(1 - 2|1/2 - x| + 1e-5), clamped
    assert lap[2].item() == 1.0  # the middle: sign(0) = 0, exactly e^mu
    assert lap[1].item() == pytest.approx(math.exp(-0.5 * math.log(0.5 + 1e-5)), rel=1e-6)
    assert lap[3].item() == pytest.approx(math.exp(0.5 * math.log(0.5 + 1e-5)), rel=1e-6)
    assert lap[0].item() == pytest.approx(14.614642) and lap[4].item() == pytest.approx(0.0291675)
    shifted = run_node(cs.LaplaceScheduler, steps=5, sigma_max=100.0, sigma_min=0.001, mu=1.0, beta=0.5)
    assert shifted[2].item() == pytest.approx(math.e, rel=1e-4)


def test_beta_sampling_scheduler_is_the_beta_schedule_with_its_parameters():
    model = FakeModel(gaussian_eps(0.0, 1.0))
    default = run_node(cs.BetaSamplingScheduler, model=model, steps=12, alpha=0.6, beta=0.6)
    assert torch.equal(default, compute_sigmas(SD, "beta", 12))
    skewed = run_node(cs.BetaSamplingScheduler, model=model, steps=12, alpha=2.0, beta=0.6)
    assert torch.equal(skewed, sch.beta(SD, 12, alpha=2.0, beta=0.6)) and not torch.equal(skewed, default)
    with pytest.raises(NodeInputError) as e:
        run_node(cs.BetaSamplingScheduler, model=model, steps=12, alpha=0.0, beta=0.6)
    assert e.value.input == "alpha"


# ---- sigma tools ---------------------------------------------------------------------------------

def test_set_first_sigma():
    sigmas = torch.tensor([14.6, 3.0, 0.0])
    out = run_node(cs.SetFirstSigma, sigmas=sigmas, sigma=136.0)
    assert out.tolist() == [136.0, 3.0, 0.0] and sigmas[0] == pytest.approx(14.6)  # the input is not changed
    with pytest.raises(NodeInputError):
        run_node(cs.SetFirstSigma, sigmas=torch.zeros(0), sigma=1.0)


def test_extend_intermediate_sigmas():
    sigmas = torch.tensor([20.0, 10.0, 4.0, 0.0])
    linear = run_node(cs.ExtendIntermediateSigmas, sigmas=sigmas, steps=2, start_at_sigma=-1.0, end_at_sigma=12.0,
                      spacing="linear")
    assert linear.tolist() == [20.0, 15.0, 10.0, 4.0, 0.0]  # only the step starting at 20 (>= 12) is split
    every = run_node(cs.ExtendIntermediateSigmas, sigmas=sigmas, steps=4, start_at_sigma=15.0, end_at_sigma=0.0,
                     spacing="cosine")
    # 20 is above start_at_sigma; 10 -> 4 and 4 -> 0 get 3 points at sin(k pi / 8) of the way
    f = [math.sin(k * math.pi / 8) for k in (1, 2, 3)]
    assert every.tolist() == pytest.approx([20.0, 10.0] + [10 - 6 * v for v in f] + [4.0] + [4 - 4 * v for v in f] + [0.0])
    sine = run_node(cs.ExtendIntermediateSigmas, sigmas=sigmas[:2], steps=2, start_at_sigma=-1.0, end_at_sigma=0.0,
                    spacing="sine")
    assert sine.tolist() == pytest.approx([20.0, 20 - 10 * (1 - math.cos(math.pi / 4)), 10.0])
    # the bounds hold as float32 numbers, as in ComfyUI: a bound typed as 0.0291675 includes the float32
    # sigma 0.0291675 (which is 0.02916749939... as a double, below the bound)
    low = torch.tensor([1.0, 0.0291675, 0.0])
    edge = run_node(cs.ExtendIntermediateSigmas, sigmas=low, steps=2, start_at_sigma=0.0291675, end_at_sigma=0.0291675,
                    spacing="linear")
    assert edge.tolist() == pytest.approx([1.0, 0.0291675, 0.0291675 / 2, 0.0])


def test_sampling_percent_to_sigma():
    model = FakeModel(gaussian_eps(0.0, 1.0))

    def node(p, actual=False):
        return run_node(cs.SamplingPercentToSigma, model=model, sampling_percent=p, return_actual_sigma=actual)
    assert node(0.0) == 999999999.9 and node(1.0) == 0.0
    assert node(0.0, True) == pytest.approx(float(SD.sigma_max)) and node(1.0, True) == pytest.approx(float(SD.sigma_min))
    assert node(0.5) == pytest.approx(float(SD.sigma(torch.tensor(499.5))), rel=1e-6)
    assert node(0.5, True) == node(0.5)


# ---- AddNoise ------------------------------------------------------------------------------------

def test_add_noise_scales_the_noise_by_the_schedules_span():
    model = FakeModel(gaussian_eps(0.0, 1.0))
    fmt = model.latent_format
    latent = {"samples": torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1)), "extra": 1}
    sigmas = torch.tensor([6.0, 2.0, 0.5])
    out = run_node(cs.AddNoise, model=model, noise=NoiseSource(11), sigmas=sigmas, latent_image=latent)
    noise = NoiseSource(11).generate(latent["samples"])
    expected = fmt.process_out(fmt.process_in(latent["samples"]) + 5.5 * noise)
    torch.testing.assert_close(out["samples"], expected)
    assert out["extra"] == 1
    one = run_node(cs.AddNoise, model=model, noise=NoiseSource(11), sigmas=torch.tensor([3.0]), latent_image=latent)
    torch.testing.assert_close(one["samples"], fmt.process_out(fmt.process_in(latent["samples"]) + 3.0 * noise))
    # an empty latent is not shifted: zeros + sigma * noise, out of the model's space
    empty = run_node(cs.AddNoise, model=model, noise=NoiseSource(11), sigmas=sigmas, latent_image={"samples": torch.zeros(2, 4, 8, 8)})
    torch.testing.assert_close(empty["samples"], fmt.process_out(5.5 * noise))
    assert run_node(cs.AddNoise, model=model, noise=NoiseSource(11), sigmas=torch.zeros(0), latent_image=latent) is latent
    disabled = run_node(cs.AddNoise, model=model, noise=NoiseSource(0, enabled=False), sigmas=sigmas, latent_image=latent)
    torch.testing.assert_close(disabled["samples"], fmt.process_out(fmt.process_in(latent["samples"])))


def test_add_noise_then_sampling_without_noise_is_sampling_with_it():
    """AddNoise + DisableNoise is ComfyUI's way to split noising from sampling: for a schedule
    ending at 0 it must equal one SamplerCustomAdvanced run with the same noise (img2img)."""
    model = FakeModel(gaussian_eps(0.2, 0.5))
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))}
    sigmas = compute_sigmas(SD, "karras", 8, denoise=0.5)
    guider = run_node(cs.CFGGuider, model=model, positive=prompt(0.1), negative=prompt(-0.1), cfg=3.0)
    sampler = SamplerChoice("euler")
    direct, _ = sample_custom(guider, NoiseSource(4), sampler, sigmas, latent)
    noised = run_node(cs.AddNoise, model=model, noise=NoiseSource(4), sigmas=sigmas, latent_image=latent)
    split, _ = sample_custom(guider, NoiseSource(0, enabled=False), sampler, sigmas, noised)
    torch.testing.assert_close(split["samples"], direct["samples"], rtol=1e-5, atol=1e-5)


# ---- guidance patches ----------------------------------------------------------------------------

def guided_once(model, cfg=4.0, x=None, sigma=3.0):
    """One guided x0 prediction of a model, with the cond / uncond predictions it combined."""
    from graphflow.sampling.guidance import CFGGuider as CFGGuidance
    from graphflow.sampling.model_sampling import ModelDenoiser
    seen = {}

    def record(args):
        seen.update(cond=args["cond_denoised"], uncond=args["uncond_denoised"])
        return args["denoised"]
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5)) if x is None else x
    guider = CFGGuidance(model, prompt(0.3, batch=1), prompt(-0.2, batch=1), cfg)
    def prepare(conditioning, negative=False):
        return prepare_conds(conditioning, model, x.shape, torch.device("cpu"), negative=negative)
    denoiser = guider.denoiser(ModelDenoiser(model, SD), prepare)
    out = denoiser(x, torch.full((2,), sigma), post_cfg=record)
    return out, seen["cond"], seen["uncond"], x


def structured_eps(x_in, t, context, y):
    """A prediction whose conditional and unconditional parts point different ways per pixel."""
    c = context.float().mean(dim=(1, 2)).reshape(-1, 1, 1, 1)
    ramp = torch.linspace(-1, 1, x_in.shape[-1]).reshape(1, 1, 1, -1)
    return (0.3 * x_in + c * ramp + c * c).to(x_in.dtype)


def test_apg_without_its_limits_is_cfg_plus_one_and_eta_zero_drops_the_parallel_part():
    from nodes.guidance_patches import AdaptiveProjectedGuidance
    from graphflow.sampling.cfg_patches import project
    model = FakeModel(structured_eps)
    plain, cond, uncond, x = guided_once(model)
    torch.testing.assert_close(plain, uncond + (cond - uncond) * 4.0)
    # ComfyUI's APG at eta 1 without threshold or momentum: D_cond + cfg g, i.e. plain CFG at cfg + 1
    off = run_node(AdaptiveProjectedGuidance, model=model, eta=1.0, norm_threshold=0.0, momentum=0.0)
    torch.testing.assert_close(guided_once(off)[0], uncond + (cond - uncond) * 5.0, rtol=1e-5, atol=1e-5)
    assert getattr(model, "pre_cfg_functions", ()) == ()  # the input model is not patched
    # eta 0: D = D_cond + cfg * (g - (g . u) u) with u = D_cond / |D_cond| per image
    no_parallel = run_node(AdaptiveProjectedGuidance, model=model, eta=0.0, norm_threshold=0.0, momentum=0.0)
    g = cond - uncond
    u = cond / cond.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    expected = cond + 4.0 * (g - (g * u).sum(dim=(1, 2, 3), keepdim=True) * u)
    torch.testing.assert_close(guided_once(no_parallel)[0], expected, rtol=1e-4, atol=1e-5)
    parallel, orthogonal = project(g, cond)
    torch.testing.assert_close((orthogonal * cond).sum(dim=(1, 2, 3)), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(parallel + orthogonal, g)


def test_apg_norm_threshold_caps_the_guidance():
    from nodes.guidance_patches import AdaptiveProjectedGuidance
    model = FakeModel(structured_eps)
    plain, cond, uncond, x = guided_once(model)
    g = cond - uncond
    norms = g.flatten(1).norm(dim=1)
    threshold = float(norms.min()) / 2  # below both images' guidance norms
    capped = run_node(AdaptiveProjectedGuidance, model=model, eta=1.0, norm_threshold=threshold, momentum=0.0)
    out = guided_once(capped)[0]
    expected = cond + 4.0 * g * (threshold / norms).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    loose = run_node(AdaptiveProjectedGuidance, model=model, eta=1.0, norm_threshold=float(norms.max()) * 2, momentum=0.0)
    torch.testing.assert_close(guided_once(loose)[0], cond + 4.0 * g, rtol=1e-5, atol=1e-5)


def test_apg_momentum_sums_guidance_over_steps_and_restarts_with_a_new_run():
    from nodes.guidance_patches import AdaptiveProjectedGuidance
    model = FakeModel(structured_eps)
    patched = run_node(AdaptiveProjectedGuidance, model=model, eta=1.0, norm_threshold=0.0, momentum=0.5)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    _, cond1, uncond1, _ = guided_once(model, x=x, sigma=3.0)  # the unpatched model's predictions
    _, cond2, uncond2, _ = guided_once(model, x=x * 0.5, sigma=2.0)
    first = guided_once(patched, x=x, sigma=3.0)[0]
    torch.testing.assert_close(first, cond1 + 4.0 * (cond1 - uncond1), rtol=1e-5, atol=1e-5)
    second = guided_once(patched, x=x * 0.5, sigma=2.0)[0]
    running = 0.5 * (cond1 - uncond1) + (cond2 - uncond2)
    torch.testing.assert_close(second, cond2 + 4.0 * running, rtol=1e-5, atol=1e-5)
    again = guided_once(patched, x=x, sigma=3.0)[0]  # sigma went up: a new run
    torch.testing.assert_close(again, first, rtol=1e-5, atol=1e-5)


def test_apg_at_cfg_one_guides_by_the_positive_prediction_alone():
    # ComfyUI's APG is a pre-CFG function: at cfg 1 the negative is skipped and its prediction is 0,
    # so g = D_cond, capped to norm_threshold, all of it parallel to D_cond: D = D_cond (1 + eta s)
    from graphflow.sampling.guidance import CFGGuider as CFGGuidance
    from graphflow.sampling.model_sampling import ModelDenoiser
    from nodes.guidance_patches import AdaptiveProjectedGuidance
    model = FakeModel(structured_eps)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5))

    def once(m):
        guider = CFGGuidance(m, prompt(0.3, batch=1), prompt(-0.2, batch=1), 1.0)
        denoiser = guider.denoiser(ModelDenoiser(m, SD), lambda c, negative=False: prepare_conds(
            c, m, x.shape, torch.device("cpu"), negative=negative))
        return denoiser(x, torch.full((2,), 3.0))
    cond = once(model)
    norms = cond.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    threshold = float(norms.min()) / 2
    patched = run_node(AdaptiveProjectedGuidance, model=model, eta=0.5, norm_threshold=threshold, momentum=0.0)
    torch.testing.assert_close(once(patched), cond * (1 + 0.5 * threshold / norms), rtol=1e-4, atol=1e-5)
    assert len(model.unet.calls) == 2  # one batched positive-only call each: the negative was not run


def test_apg_changes_the_positive_prediction_that_later_patches_see():
    # pre-CFG as ComfyUI: RescaleCFG and post-CFG functions get APG's modified D_cond
    from nodes.guidance_patches import AdaptiveProjectedGuidance
    model = FakeModel(structured_eps)
    _, cond, uncond, x = guided_once(model)
    patched = run_node(AdaptiveProjectedGuidance, model=model, eta=1.0, norm_threshold=0.0, momentum=0.0)
    out, seen_cond, seen_uncond, _ = guided_once(patched)
    torch.testing.assert_close(seen_cond, uncond + (cond - uncond) * (1 + 1 / 4.0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(seen_uncond, uncond)
    torch.testing.assert_close(out, seen_uncond + (seen_cond - seen_uncond) * 4.0)


def test_epsilon_scaling_divides_the_noise_estimate():
    from nodes.guidance_patches import EpsilonScaling
    model = FakeModel(structured_eps)
    plain, _, _, x = guided_once(model)
    scaled = run_node(EpsilonScaling, model=model, scaling_factor=1.25)
    out = guided_once(scaled)[0]
    torch.testing.assert_close(x - out, (x - plain) / 1.25, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(guided_once(run_node(EpsilonScaling, model=model, scaling_factor=1.0))[0], plain)


def test_add_noise_on_a_flow_model_mixes_latent_and_noise():
    from graphflow.sampling.flow_sampling import FlowSchedule
    model = FakeModel(gaussian_eps(0.0, 1.0))
    model.model_sampling = FlowSchedule(shift=3.0)  # what ModelSamplingSD3 sets
    fmt = model.latent_format
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))}
    out = run_node(cs.AddNoise, model=model, noise=NoiseSource(3), sigmas=torch.tensor([0.75, 0.0]),
                   latent_image=latent)
    noise = NoiseSource(3).generate(latent["samples"])
    expected = fmt.process_out(0.75 * noise + 0.25 * fmt.process_in(latent["samples"]))
    torch.testing.assert_close(out["samples"], expected)


def test_a_comfyui_graph_with_the_new_nodes_runs_on_the_demo_model():
    """ComfyUI API format through the registry: AddNoise + DisableNoise with an Align Your Steps
    schedule extended and split, a parameterised sampler, APG, Epsilon Scaling and Deep Shrink."""
    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.workflow import parse_workflow

    def link(node, index=0):
        return [str(node), index]
    g = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "graphflow-demo.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": link(1, 1)}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": link(1, 1)}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "APG", "inputs": {"model": link(1), "eta": 0.5, "norm_threshold": 5.0, "momentum": 0.0}},
        "6": {"class_type": "Epsilon Scaling", "inputs": {"model": link(5), "scaling_factor": 1.005}},
        "7": {"class_type": "PatchModelAddDownscale", "inputs": {
            "model": link(6), "block_number": 1, "downscale_factor": 2.0, "start_percent": 0.0, "end_percent": 0.35,
            "downscale_after_skip": True, "downscale_method": "bicubic", "upscale_method": "bicubic"}},
        "10": {"class_type": "AlignYourStepsScheduler", "inputs": {"model_type": "SD1", "steps": 4, "denoise": 1.0}},
        "11": {"class_type": "ExtendIntermediateSigmas", "inputs": {
            "sigmas": link(10), "steps": 2, "start_at_sigma": -1.0, "end_at_sigma": 12.0, "spacing": "linear"}},
        "12": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
        "13": {"class_type": "AddNoise", "inputs": {"model": link(1), "noise": link(12), "sigmas": link(11),
                                                     "latent_image": link(4)}},
        "14": {"class_type": "DisableNoise", "inputs": {}},
        "15": {"class_type": "CFGGuider", "inputs": {"model": link(7), "positive": link(2), "negative": link(3), "cfg": 5.0}},
        "16": {"class_type": "SamplerDPMPP_2M_SDE", "inputs": {"solver_type": "heun", "eta": 0.5, "s_noise": 1.0,
                                                               "noise_device": "cpu"}},
        "17": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": link(14), "guider": link(15), "sampler": link(16), "sigmas": link(11), "latent_image": link(13)}},
    }
    registry = Registry().load_builtin()
    result = Executor(registry).run(parse_workflow(g, registry), outputs=["17", "11"])
    assert result.ok, result.error or result.problems
    sigmas = result.values["11"][0]
    assert len(sigmas) == 6 and sigmas[1].item() == pytest.approx((14.6146412293 + float(sigmas[2])) / 2, rel=1e-6)
    out = result.values["17"][0]["samples"]
    assert out.shape == (1, 4, 8, 8) and torch.isfinite(out).all() and out.abs().max() > 0.05


def test_sampling_percent_to_sigma_of_a_continuous_model_uses_the_tables_float32_ends():
    from graphflow.sampling.model_sampling import ContinuousSchedule
    s = ContinuousSchedule(0.002, 120.0, "edm")
    low, high = math.log(float(s.sigmas[0])), math.log(float(s.sigmas[-1]))  # 0.0019999998..., 120.0000076...
    for p in (0.1, 0.5, 0.9):
        assert s.percent_to_sigma(p) == math.exp((high - low) * (1 - p) + low)  # ComfyUI's, to the bit
    assert s.percent_to_sigma(0.1) != math.exp((math.log(120.0) - math.log(0.002)) * 0.9 + math.log(0.002))
