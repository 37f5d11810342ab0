"""Flow-matching (CONST) model sampling: sigma tables against closed forms and diffusers'
FlowMatchEulerDiscreteScheduler, samplers against closed-form flows, and KSampler with a fake
flow model following the SD3 / FLUX contract."""

import math

import numpy as np
import pytest
import scipy.stats
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.flux.pipeline_flux import calculate_shift

from graphflow.sampling import SAMPLERS, SCHEDULERS, FlowDenoiser, FlowSchedule, flux_mu, sampler_for
from graphflow.sampling.flow_samplers import FLOW_SAMPLERS, sample_euler_ancestral_rf
from graphflow.sampling.pipeline import sample
from graphflow.sampling.samplers import sample_euler_ancestral
from flow_fakes import FakeFlowModel, constant_x0, gaussian_x0

# -- sigma tables and schedules --------------------------------------------------------------


def sd3_shift(shift):
    return lambda t: shift * t / (1 + (shift - 1) * t)


def flux_shift(mu):
    return lambda t: math.exp(mu) / (math.exp(mu) + (1 / t - 1))


def closed_form(name, shift, N, n):
    """Each scheduler over a flow table of N times t = k/N with sigma = shift(t), written from
    ComfyUI's definitions in float64 (not from schedules.py)."""
    table = [shift((k + 1) / N) for k in range(N)]
    smin = table[0]
    if name == "simple":
        out = [shift((N - int(i * N / n)) / N) for i in range(n)]
    elif name == "normal":
        out = [shift(t) for t in np.linspace(1.0, smin, n)]
    elif name == "sgm_uniform":
        out = [shift(t) for t in np.linspace(1.0, smin, n + 1)[:-1]]
    elif name == "karras":
        out = [(1 + r * (smin ** (1 / 7) - 1)) ** 7 for r in np.linspace(0, 1, n)]
    elif name == "exponential":
        out = list(np.exp(np.linspace(0.0, math.log(smin), n)))
    elif name == "kl_optimal":
        out = [math.tan(r * math.atan(smin) + (1 - r) * math.atan(1.0)) for r in np.linspace(0, 1, n)]
    elif name == "beta":
        idx = np.rint(scipy.stats.beta.ppf(1 - np.linspace(0, 1, n, endpoint=False), 0.6, 0.6) * (N - 1)).astype(int)
        out = [table[k] for j, k in enumerate(idx) if j == 0 or k != idx[j - 1]]
    elif name == "ddim_uniform":
        return [table[k] for k in range(1, N, N // n)][::-1] + [0.0]
    elif name == "linear_quadratic":
        half = n // 2
        lin = [i * 0.025 / half for i in range(half)]
        diff = half - 0.025 * n
        qs = n - half
        qc = diff / (half * qs ** 2)
        lc = 0.025 / half - 2 * diff / qs ** 2
        quad = [qc * i ** 2 + lc * i + qc * half ** 2 for i in range(half, n)]
        out = [1.0 - f for f in lin + quad]
    return out + [0.0]


@pytest.mark.parametrize("name", list(SCHEDULERS))
@pytest.mark.parametrize("kind", ["sd3", "flux", "schnell"])
def test_every_scheduler_over_flow_sigmas_matches_closed_form(name, kind):
    schedule, shift, N = {
        "sd3": (FlowSchedule.sd3(3.0), sd3_shift(3.0), 1000),
        "flux": (FlowSchedule.flux(flux_mu(1024, 768)), flux_shift(flux_mu(1024, 768)), 10000),
        "schnell": (FlowSchedule.sd3(1.0, multiplier=1.0), sd3_shift(1.0), 1000),
    }[kind]
    for n in (1, 4, 9, 20) if name not in ("kl_optimal", "linear_quadratic") else (4, 9, 20):
        ours = SCHEDULERS[name](schedule, n)
        expected = torch.tensor(closed_form(name, shift, N, n), dtype=torch.float64)
        assert ours.dtype == torch.float32 and ours.shape == expected.shape, (name, n)
        torch.testing.assert_close(ours.double(), expected, atol=2e-6, rtol=0)
        assert float(ours[0]) <= 1.0 and float(ours[-1]) == 0.0


def test_flow_tables_as_comfyui_builds_them():
    sd3 = FlowSchedule.sd3()
    assert len(sd3.sigmas) == 1000 and float(sd3.sigma_max) == 1.0
    assert float(sd3.sigma_min) == pytest.approx(3 * 0.001 / (1 + 2 * 0.001), rel=1e-6)
    flux = FlowSchedule.flux()  # FLUX dev without ModelSamplingFlux: mu 1.15 over 10000 times
    assert len(flux.sigmas) == 10000 and float(flux.sigmas[4999]) == pytest.approx(math.exp(1.15) / (math.exp(1.15) + 1), rel=1e-6)
    assert float(sd3.timestep(torch.tensor(0.5))) == 500.0 and float(flux.timestep(torch.tensor(0.5))) == 0.5
    assert sd3.percent_to_sigma(0.0) == 1.0 and sd3.percent_to_sigma(1.0) == 0.0
    assert sd3.percent_to_sigma(0.5) == pytest.approx(0.75)


def test_flux_mu_matches_diffusers_calculate_shift():
    for width, height in [(1024, 1024), (512, 512), (768, 1344), (256, 256), (2048, 2048)]:
        seq_len = (width // 16) * (height // 16)
        assert flux_mu(width, height) == pytest.approx(calculate_shift(seq_len, 256, 4096, 0.5, 1.15), abs=1e-12)
    assert flux_mu(1024, 1024) == pytest.approx(1.15) and flux_mu(256, 256) == pytest.approx(0.5)


@pytest.mark.parametrize("n", [1, 4, 10, 28])
def test_normal_equals_diffusers_default_flow_match_schedule(n):
    ref = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    ref.set_timesteps(n)
    torch.testing.assert_close(SCHEDULERS["normal"](FlowSchedule.sd3(3.0), n), ref.sigmas.float(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("n", [1, 4, 10, 20, 50])
def test_simple_equals_diffusers_with_flux_pipeline_sigmas(n):
    """simple = shift(1 - i/n) when n divides the table length (1000 SD3, 10000 FLUX): diffusers'
    FluxPipeline passes sigmas = linspace(1, 1/n, n)."""
    linear = np.linspace(1.0, 1 / n, n)
    ref = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    ref.set_timesteps(sigmas=linear)
    torch.testing.assert_close(SCHEDULERS["simple"](FlowSchedule.sd3(3.0), n), ref.sigmas.float(), atol=1e-6, rtol=0)
    for width, height in [(1024, 1024), (512, 768)]:
        seq_len = (width // 16) * (height // 16)
        ref = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                              base_image_seq_len=256, max_image_seq_len=4096)
        ref.set_timesteps(sigmas=linear, mu=calculate_shift(seq_len, 256, 4096, 0.5, 1.15))
        ours = SCHEDULERS["simple"](FlowSchedule.flux(flux_mu(width, height)), n)
        torch.testing.assert_close(ours, ref.sigmas.float(), atol=1e-6, rtol=0)


# -- samplers --------------------------------------------------------------------------------

def _denoiser(model, schedule):
    inner = FlowDenoiser(model, schedule)
    return lambda x, sigma: inner(x, sigma)


@pytest.mark.parametrize("name", [n for n in SAMPLERS if n != "ddpm"])  # ddpm: a VP step, as ComfyUI
def test_every_flow_sampler_lands_on_a_constant_x0(name):
    """D(x; sigma) = c for all x: each step maps x - c to (sigma'/sigma)(x - c), so sampling to
    sigma = 0 gives c exactly (uni_pc stops at sigma 0.001 as ComfyUI's does; dpm_fast and
    dpm_adaptive integrate from the largest to the smallest nonzero sigma, as k-diffusion's do)."""
    schedule = FlowSchedule.sd3(3.0)
    model = FakeFlowModel(constant_x0(0.3))
    sigmas = SCHEDULERS["simple"](schedule, 6)
    x = torch.randn(2, 16, 4, 4, generator=torch.Generator().manual_seed(0))
    options = {"seed": 5} if name in FLOW_SAMPLERS or "seed" in str(SAMPLERS[name].__code__.co_varnames) else {}
    out = sampler_for(name, schedule)(_denoiser(model, schedule), x, sigmas, **options)
    end = 0.001 if name.startswith("uni_pc") else float(sigmas[-2]) if name in ("dpm_fast", "dpm_adaptive") else 0.0
    expected = 0.3 + (x - 0.3) * end / float(sigmas[0])
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=0)
    assert all(float(c["sigma"].max()) <= 1.0 for c in model.calls)


def test_euler_trajectory_is_the_closed_form():
    schedule = FlowSchedule.sd3(3.0)
    model = FakeFlowModel(constant_x0(-0.5))
    sigmas = SCHEDULERS["normal"](schedule, 5)
    x0 = torch.randn(1, 16, 3, 3)
    seen = []
    sampler_for("euler", schedule)(_denoiser(model, schedule), x0, sigmas, callback=lambda i: seen.append(i["x"]))
    for x, sigma in zip(seen, sigmas[:-1]):
        torch.testing.assert_close(x, -0.5 + (x0 + 0.5) * float(sigma), atol=1e-6, rtol=0)


def test_euler_and_heun_converge_to_the_exact_flow_at_their_order():
    """For data N(mu, s^2) the flow ODE maps noise z (sigma 1) to mu + s z exactly: euler's
    error halves when the steps double (1st order), heun's quarters (2nd order)."""
    mu, s = 0.7, 0.4
    schedule = FlowSchedule.sd3(3.0)
    model = FakeFlowModel(gaussian_x0(mu, s))
    z = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(1))
    errors = {}
    for name in ("euler", "heun", "dpmpp_2m"):
        for n in (20, 40):
            sigmas = SCHEDULERS["simple"](schedule, n)
            out = sampler_for(name, schedule)(_denoiser(model, schedule), z.clone(), sigmas)
            errors[name, n] = float((out - (mu + s * z)).abs().max())
    assert 1.6 < errors["euler", 20] / errors["euler", 40] < 2.5
    assert 3.0 < errors["heun", 20] / errors["heun", 40] < 5.0
    assert errors["heun", 40] < 0.03 and errors["dpmpp_2m", 40] < errors["dpmpp_2m", 20] / 2


def test_flow_ancestral_keeps_the_noised_data_distribution():
    """With the exact denoiser of data N(mu, s^2), x at sigma must be distributed as
    (1 - sigma) x0 + sigma eps: mean (1 - sigma) mu, std sqrt((1 - sigma)^2 s^2 + sigma^2).
    The flow re-noise tracks that mean at every step; k-diffusion's sigma-space re-noise
    (x0 + sigma eps) drifts away from it."""
    mu, s = 0.5, 0.25
    schedule = FlowSchedule.sd3(3.0)
    model = FakeFlowModel(gaussian_x0(mu, s))
    x = torch.randn(1, 16, 64, 64, generator=torch.Generator().manual_seed(2))
    sigmas = SCHEDULERS["simple"](schedule, 30)
    for sampler, ok in ((sample_euler_ancestral_rf, True), (sample_euler_ancestral, False)):
        seen = []
        sampler(_denoiser(model, schedule), x, sigmas, seed=3, callback=lambda info: seen.append(info))
        mean_errors = [abs(float(i["x"].mean()) - (1 - float(i["sigma"])) * mu) for i in seen]
        if ok:
            assert max(mean_errors) < 0.01
            mid = seen[15]
            a, sigma = 1 - float(mid["sigma"]), float(mid["sigma"])
            assert float(mid["x"].std()) == pytest.approx((a * a * s * s + sigma * sigma) ** 0.5, rel=0.01)
        else:
            assert max(mean_errors) > 0.05


def test_flow_dpm_2_ancestral_steps_down_the_flow_way_then_renoises():
    """ComfyUI (v0.3.64) switches dpm_2_ancestral to its RF form for flow models: DPM-Solver-2 down
    to sigma_down = s' (1 + (s'/s - 1) eta), x scaled by (1 - s') / (1 - sigma_down), fresh noise of
    std sqrt(s'^2 - sigma_down^2 (1 - s')^2 / (1 - sigma_down)^2); into sigma 0 an Euler step."""
    x = torch.tensor([[[[0.7, -1.2]]]])
    noise = torch.tensor([[[[0.25, -0.5]]]])

    def denoiser(x, sigma):
        return 0.3 + 0.5 * x * sigma.reshape(-1, 1, 1, 1)  # any known function of (x, sigma)

    def D(x, s):
        return 0.3 + 0.5 * x * s

    s, s1, eta = 0.8, 0.5, 0.6
    down = s1 * (1 + (s1 / s - 1) * eta)
    mid = math.sqrt(s * down)
    x_mid = x + (x - D(x, s)) / s * (mid - s)
    want = x + (x_mid - D(x_mid, mid)) / mid * (down - s)
    want = (1 - s1) / (1 - down) * want + noise * 0.9 * math.sqrt(s1 ** 2 - down ** 2 * (1 - s1) ** 2 / (1 - down) ** 2)
    fn = sampler_for("dpm_2_ancestral", FlowSchedule.sd3())
    assert fn is FLOW_SAMPLERS["dpm_2_ancestral"]
    got = fn(denoiser, x, torch.tensor([s, s1]), eta=eta, s_noise=0.9, noise_sampler=lambda *_: noise)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # the last step (sigma_down = 0) is Euler onto the denoised value, no noise
    last = fn(denoiser, x, torch.tensor([s1, 0.0]), eta=eta, noise_sampler=lambda *_: noise)
    torch.testing.assert_close(last, D(x, s1), rtol=1e-5, atol=1e-6)


def test_samplers_without_a_flow_form_run_unchanged_on_flow_models():
    """ComfyUI has no flow (CONST) form of ddpm and lcm_upscale and runs them as they are."""
    from graphflow.sampling.samplers import NODE_SAMPLERS
    schedule = FlowSchedule.sd3()
    assert sampler_for("ddpm", schedule) is SAMPLERS["ddpm"]
    assert sampler_for("lcm_upscale", schedule) is NODE_SAMPLERS["lcm_upscale"]
    assert sampler_for("euler", schedule) is SAMPLERS["euler"]
    assert sampler_for("euler_ancestral", schedule) is FLOW_SAMPLERS["euler_ancestral"]
    assert sampler_for("euler_ancestral", None) is SAMPLERS["euler_ancestral"]


# -- KSampler with a flow model --------------------------------------------------------------

def _cond(tokens=5, dim=32, **options):
    return [(torch.randn(1, tokens, dim), options)]


def test_ksampler_on_a_flow_model_starts_from_sigma_noise_and_lands_on_x0():
    model = FakeFlowModel(constant_x0(0.25), arch="sd3")
    latent = {"samples": torch.zeros(1, 16, 4, 4)}
    out = sample(model, 7, 4, 1.0, "euler", "simple", _cond(), _cond(), latent)
    # model space 0.25 -> raw latent 0.25 / 1.5305 + 0.0609
    torch.testing.assert_close(out["samples"], torch.full((1, 16, 4, 4), 0.25 / 1.5305 + 0.0609), atol=1e-6, rtol=0)
    first = model.calls[0]
    assert float(first["sigma"][0]) == 1.0  # sigma, not a 0..999 timestep
    noise = torch.randn((1, 16, 4, 4), generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(first["x"], noise)  # sigma 1: x = noise (no sqrt(1 + sigma^2))
    assert first["y"].shape == (1, 2048) and torch.count_nonzero(first["y"]) == 0  # no pooled: zeros
    assert first["guidance"] is None
    assert len(model.calls) == 4  # cfg 1: the negative is never run


@pytest.mark.parametrize("name", ["uni_pc", "uni_pc_bh2"])
def test_ksampler_uni_pc_on_a_flow_model_unscales_at_its_end_sigma(name):
    """ComfyUI's uni_pc ends at sigma 0.001 instead of 0 and writes that into the sigmas it was
    given, so the flow inverse noise scaling after sampling divides the result by 1 - 0.001.
    With D = c: x at 0.001 is c + 0.001 (noise - c) (sigma_0 = 1), the latent that over 0.999."""
    c = 0.25
    model = FakeFlowModel(constant_x0(c), arch="sd3")
    out = sample(model, 7, 4, 1.0, name, "simple", _cond(), _cond(), {"samples": torch.zeros(1, 16, 4, 4)})
    noise = torch.randn((1, 16, 4, 4), generator=torch.Generator().manual_seed(7))
    x_end = c + 0.001 * (noise - c)
    torch.testing.assert_close(out["samples"], x_end / (1 - 0.001) / 1.5305 + 0.0609, atol=1e-6, rtol=1e-6)


def test_img2img_on_a_flow_model_mixes_noise_and_latent():
    model = FakeFlowModel(constant_x0(0.0), arch="sd3")
    raw = torch.randn(1, 16, 4, 4)
    sample(model, 3, 4, 1.0, "euler", "simple", _cond(), _cond(), {"samples": raw}, denoise=0.5)
    sigma0 = float(model.calls[0]["sigma"][0])
    assert sigma0 == pytest.approx(SCHEDULERS["simple"](FlowSchedule.sd3(), 8)[4].item())
    noise = torch.randn((1, 16, 4, 4), generator=torch.Generator().manual_seed(3))
    expected = sigma0 * noise + (1 - sigma0) * (raw - 0.0609) * 1.5305
    torch.testing.assert_close(model.calls[0]["x"], expected, atol=1e-6, rtol=0)


def test_leftover_noise_hand_over_equals_one_run():
    """KSamplerAdvanced 0..3 with leftover noise, then 3..8 without adding noise = one 8-step run."""
    predict = gaussian_x0(0.2, 0.5)
    latent = {"samples": torch.zeros(1, 16, 4, 4)}
    full = sample(FakeFlowModel(predict), 11, 8, 1.0, "euler", "simple", _cond(), _cond(), latent)
    part = sample(FakeFlowModel(predict), 11, 8, 1.0, "euler", "simple", _cond(), _cond(), latent,
                  end_step=3, return_with_leftover_noise=True)
    rest = sample(FakeFlowModel(predict), 11, 8, 1.0, "euler", "simple", _cond(), _cond(), part,
                  start_step=3, add_noise=False)
    torch.testing.assert_close(rest["samples"], full["samples"], atol=1e-5, rtol=0)


def test_flux_dev_gets_pooled_and_guidance_per_conditioning():
    model = FakeFlowModel(constant_x0(0.0), arch="flux", guidance_embed=True)
    pooled = torch.randn(1, 768)
    positive = _cond(dim=64, pooled_output=pooled, guidance=2.5)
    negative = _cond(dim=64)
    sample(model, 1, 2, 3.0, "euler", "simple", positive, negative, {"samples": torch.zeros(1, 16, 4, 4)})
    call = model.calls[0]
    assert call["x"].shape[0] == 2  # positive and negative batched
    guidance = sorted(call["guidance"].tolist())
    assert guidance == [2.5, 3.5]  # the negative has none: ComfyUI's default 3.5
    assert any(torch.equal(row, pooled[0]) for row in call["y"])
    # FLUX dev without ModelSamplingFlux: mu 1.15 over 10000 times
    assert float(model.calls[1]["sigma"][0]) == pytest.approx(float(SCHEDULERS["simple"](FlowSchedule.flux(1.15), 2)[1]))


def test_schnell_gets_no_guidance_and_shift_one():
    model = FakeFlowModel(constant_x0(0.0), arch="flux", guidance_embed=False)
    sample(model, 1, 4, 1.0, "euler", "simple", _cond(dim=64, guidance=3.0), _cond(dim=64),
           {"samples": torch.zeros(1, 16, 4, 4)})
    assert model.calls[0]["guidance"] is None
    assert [round(float(c["sigma"][0]), 6) for c in model.calls] == [1.0, 0.75, 0.5, 0.25]


def test_ddpm_on_a_flow_model_runs_its_variance_preserving_step_as_comfyui():
    """KSampler with ddpm on a flow model gives what ComfyUI's does (it has no flow form of DDPM):
    the DDPM step on the flow denoiser, from x = noise at sigma 1, noise drawn with the seed."""
    from graphflow.sampling import model_sampling_for
    model = FakeFlowModel(gaussian_x0(0.2, 0.5))
    out = sample(model, 3, 4, 1.0, "ddpm", "simple", _cond(), _cond(), {"samples": torch.zeros(1, 16, 4, 4)})
    schedule = model_sampling_for(model)
    sigmas = SCHEDULERS["simple"](schedule, 4)
    noise = torch.randn((1, 16, 4, 4), generator=torch.Generator().manual_seed(3))
    want = SAMPLERS["ddpm"](_denoiser(FakeFlowModel(gaussian_x0(0.2, 0.5)), schedule), noise, sigmas, seed=3)
    torch.testing.assert_close(out["samples"], want / 1.5305 + 0.0609, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["euler_ancestral", "dpmpp_2m_sde", "dpmpp_sde", "lcm", "dpmpp_2s_ancestral"])
def test_stochastic_samplers_run_on_flow_models_through_ksampler(name):
    model = FakeFlowModel(gaussian_x0(0.0, 1.0))
    out = sample(model, 1, 5, 1.0, name, "simple", _cond(), _cond(), {"samples": torch.zeros(1, 16, 4, 4)})
    assert torch.isfinite(out["samples"]).all()
    assert all(float(c["sigma"].max()) < 1.0 + 1e-6 for c in model.calls)


def test_previews_of_16_channel_latents_during_flow_sampling():
    model = FakeFlowModel(gaussian_x0(0.0, 1.0), arch="flux")
    seen = []
    sample(model, 2, 3, 1.0, "euler", "simple", _cond(), _cond(), {"samples": torch.zeros(1, 16, 6, 10)},
           callback=seen.append, preview_every=1)
    assert len(seen) == 3
    for info in seen:
        preview = info["preview"]
        assert preview.shape == (1, 6, 10, 3) and preview.dtype == torch.float32
        assert float(preview.min()) >= 0.0 and float(preview.max()) <= 1.0
    assert float(seen[-1]["preview"].std()) > 0.05  # the latent's structure shows, not a flat image


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_ksampler_euler_equals_a_diffusers_flow_match_loop(family):
    """Same model, same initial noise: KSampler (euler) against diffusers' scheduler loop as its
    SD3 pipeline (shift 3, default timesteps = our "normal") and FLUX pipeline (dynamic mu,
    sigmas linspace(1, 1/n, n) = our "simple" when n divides the 10000-entry table; otherwise
    ComfyUI's simple rounds t down to the table, e.g. 6 steps differ by 7e-5 in sigma)."""
    steps, seed = 5, 4
    predict = gaussian_x0(0.3, 0.6)
    if family == "sd3":
        model = FakeFlowModel(predict, arch="sd3")
        scheduler, ref = "normal", FlowMatchEulerDiscreteScheduler(shift=3.0)
        ref.set_timesteps(steps)
    else:
        model = FakeFlowModel(predict, arch="flux", guidance_embed=True)
        model.model_sampling = FlowSchedule.flux(flux_mu(512, 384))
        scheduler = "simple"
        ref = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                              base_image_seq_len=256, max_image_seq_len=4096)
        ref.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=calculate_shift(32 * 24, 256, 4096, 0.5, 1.15))
    shape = (1, 16, 48, 64)
    out = sample(model, seed, steps, 1.0, "euler", scheduler, _cond(), _cond(), {"samples": torch.zeros(shape)})
    ours = model.latent_format.process_in(out["samples"])
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    reference = FakeFlowModel(predict)
    for i, t in enumerate(ref.timesteps):
        v = reference(latents, ref.sigmas[i].reshape(1))
        latents = ref.step(v, t, latents).prev_sample
    assert float((ours - latents).abs().max()) < 1e-5


def test_inpainting_a_flow_model_keeps_the_known_region():
    """noise_mask 0 keeps the input: the known region is re-noised the flow way
    (sigma * noise + (1 - sigma) * latent) before each call and lands on the latent."""
    model = FakeFlowModel(constant_x0(0.5), arch="sd3")
    raw = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(5))
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, 4:] = 1.0
    out = sample(model, 9, 4, 1.0, "euler", "simple", _cond(), _cond(), {"samples": raw, "noise_mask": mask})
    samples = out["samples"]
    torch.testing.assert_close(samples[..., :4], raw[..., :4], atol=1e-5, rtol=0)
    torch.testing.assert_close(samples[..., 4:], torch.full_like(samples[..., 4:], 0.5 / 1.5305 + 0.0609), atol=1e-5, rtol=0)
    second = model.calls[1]
    sigma = float(second["sigma"][0])
    noise = torch.randn((1, 16, 8, 8), generator=torch.Generator().manual_seed(9))
    known = sigma * noise + (1 - sigma) * (raw - 0.0609) * 1.5305
    torch.testing.assert_close(second["x"][..., :4], known[..., :4], atol=1e-5, rtol=0)
