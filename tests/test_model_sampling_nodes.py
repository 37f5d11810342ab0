"""ModelSamplingDiscrete (eps / v / lcm / x0, zero terminal SNR), ModelSamplingContinuousEDM, RescaleCFG
and DifferentialDiffusion: closed forms, ComfyUI's formulas and diffusers' schedulers."""

import pytest
import torch
from sampling_fakes import SD, FakeModel, gaussian_eps, prompt
from test_nodes_image_mask import call

from graphflow.context import NodeInputError
from graphflow.models.checkpoint import load_checkpoint
from graphflow.sampling import DiscreteSchedule, ModelDenoiser, compute_sigmas, prepare_conds, sample
from graphflow.sampling.guidance import CFGDenoiser, rescaled_cfg
from graphflow.sampling.pipeline import differential_mask
from graphflow.testing import write_checkpoint


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return load_checkpoint(write_checkpoint(tmp_path_factory.mktemp("ms") / "m.safetensors", "sd1"), device="cpu").model


def test_model_sampling_discrete_sets_prediction_and_zsnr_on_a_copy(builtin_registry, model):
    v = call(builtin_registry, "ModelSamplingDiscrete", model=model, sampling="v_prediction", zsnr=True)
    assert (v.prediction, v.zsnr) == ("v", True) and (model.prediction, model.zsnr) == ("eps", False)
    assert v.unet is model.unet
    schedule = DiscreteSchedule.for_model(v)
    assert schedule.prediction == "v" and float(schedule.sigma_max) == pytest.approx(4518.6, rel=1e-3)
    lcm = call(builtin_registry, "ModelSamplingDiscrete", model=model, sampling="lcm", zsnr=False)
    assert DiscreteSchedule.for_model(lcm).prediction == "lcm"


def test_zero_terminal_snr_table_matches_diffusers():
    from diffusers.schedulers.scheduling_ddpm import rescale_zero_terminal_snr

    ours = DiscreteSchedule.from_betas(zsnr=True).sigmas.double()
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    alphas = torch.cumprod(1 - rescale_zero_terminal_snr(betas), 0)
    reference = ((1 - alphas) / alphas) ** 0.5
    torch.testing.assert_close(ours[:-1], reference[:-1], rtol=1e-4, atol=0)
    assert torch.isinf(reference[-1]) or reference[-1] > 1e6  # diffusers reaches alpha 0; ComfyUI keeps 4.9e-8
    assert float(ours[-1]) == pytest.approx(((1 - 4.8973451890853435e-08) / 4.8973451890853435e-08) ** 0.5, rel=1e-5)
    assert float(ours[0]) == pytest.approx(float(SD.sigmas[0]), rel=1e-5)  # the first sigma is kept


def test_lcm_table_timesteps_and_boundary_condition():
    from diffusers import LCMScheduler

    lcm = DiscreteSchedule.from_betas(prediction="lcm")
    assert len(lcm.sigmas) == 50 and torch.equal(lcm.sigmas, SD.sigmas[19::20])
    assert float(lcm.timestep(lcm.sigma_max)) == 999 and float(lcm.timestep(lcm.sigma_min)) == 19
    assert float(lcm.sigma(torch.tensor(519.0))) == pytest.approx(float(SD.sigmas[519]), rel=1e-6)
    scheduler = LCMScheduler()
    x, eps = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    for t in (999, 499, 19):
        sigma = SD.sigmas[t:t + 1]
        c_skip, c_out = scheduler.get_scalings_for_boundary_condition_discrete(t)
        expected = c_out * (x - eps * sigma) + c_skip * x
        torch.testing.assert_close(lcm.denoised(sigma, eps, x), expected)


def test_x0_model_lands_on_its_prediction():
    target = torch.full((1, 4, 8, 8), 0.7)
    fake = FakeModel(lambda x, t, c, y: target.expand(x.shape[0], -1, -1, -1))
    fake.prediction = "x0"
    out = sample(fake, 0, 6, 1.0, "euler", "karras", prompt(0.1), prompt(0.0), {"samples": torch.zeros(1, 4, 8, 8)})
    torch.testing.assert_close(out["samples"], target / 0.18215)  # model space 0.7, back to raw


def test_img_to_img_model_sees_the_unscaled_latent_and_predicts_x0(builtin_registry, model):
    # ComfyUI's IMG_TO_IMG (ModelSamplingDiscrete "img_to_img"): x0 prediction, the UNet's input not
    # divided by sqrt(sigma^2 + 1)
    patched = call(builtin_registry, "ModelSamplingDiscrete", model=model, sampling="img_to_img", zsnr=False)
    assert patched.prediction == "img_to_img" and model.prediction == "eps"
    schedule = DiscreteSchedule.for_model(patched)
    x, sigma = torch.randn(1, 4, 8, 8), torch.tensor([7.0])
    torch.testing.assert_close(schedule.c_in(sigma, x), x)
    target = torch.full((1, 4, 8, 8), 0.7)
    fake = FakeModel(lambda x, t, c, y: target.expand(x.shape[0], -1, -1, -1))
    fake.prediction = "img_to_img"
    denoiser = ModelDenoiser(fake)
    torch.testing.assert_close(denoiser(x, sigma, context=torch.zeros(1, 77, 8)), target)
    torch.testing.assert_close(fake.unet.calls[-1]["x"], x)


def test_zsnr_sampling_starts_at_the_zero_snr_sigma():
    fake = FakeModel(gaussian_eps(0.0, 1.0))
    fake.zsnr = True
    sigmas = compute_sigmas(DiscreteSchedule.for_model(fake), "normal", 4)
    assert float(sigmas[0]) == pytest.approx(4518.6, rel=1e-3)
    out = sample(fake, 0, 4, 1.0, "euler", "normal", prompt(0.1), prompt(0.0), {"samples": torch.zeros(1, 4, 4, 4)})
    assert torch.isfinite(out["samples"]).all()


def comfy_rescale_cfg(x_orig, sigma, cond_denoised, uncond_denoised, cond_scale, multiplier):
    """ComfyUI's RescaleCFG function as written there (args cond/uncond are x - denoised)."""
    cond, uncond = x_orig - cond_denoised, x_orig - uncond_denoised
    sigma = sigma.view(sigma.shape[:1] + (1,) * (cond.ndim - 1))
    x = x_orig / (sigma * sigma + 1.0)
    cond = ((x - (x_orig - cond)) * (sigma ** 2 + 1.0) ** 0.5) / sigma
    uncond = ((x - (x_orig - uncond)) * (sigma ** 2 + 1.0) ** 0.5) / sigma
    x_cfg = uncond + cond_scale * (cond - uncond)
    ro_pos = torch.std(cond, dim=(1, 2, 3), keepdim=True)
    ro_cfg = torch.std(x_cfg, dim=(1, 2, 3), keepdim=True)
    x_final = multiplier * x_cfg * (ro_pos / ro_cfg) + (1.0 - multiplier) * x_cfg
    return x_orig - (x_orig - (x - x_final * sigma / (sigma * sigma + 1.0) ** 0.5))


def test_rescaled_cfg_formula():
    g = torch.Generator().manual_seed(0)
    x, cond, uncond = (torch.randn(2, 4, 5, 5, generator=g) for _ in range(3))
    sigma = torch.tensor([3.0, 0.5])
    torch.testing.assert_close(rescaled_cfg(x, sigma, cond, uncond, 7.0, 0.0), uncond + (cond - uncond) * 7.0)
    for m in (0.7, 1.0):
        torch.testing.assert_close(rescaled_cfg(x, sigma, cond, uncond, 7.0, m),
                                   comfy_rescale_cfg(x, sigma, cond, uncond, 7.0, m))
    # multiplier 1: the guided v has the positive v's standard deviation, image by image.
    out = rescaled_cfg(x, sigma, cond, uncond, 7.0, 1.0)
    s = sigma.reshape(-1, 1, 1, 1)

    def v(d):
        return (x / (s * s + 1) - d) * (s * s + 1).sqrt() / s

    torch.testing.assert_close(v(out).std(dim=(1, 2, 3)), v(cond).std(dim=(1, 2, 3)))


def test_rescaled_cfg_on_a_video_latent_takes_comfyuis_std_over_dims_1_to_3():
    # ComfyUI's std(dim=(1, 2, 3)) on [B, C, T, h, w]: one standard deviation per column of width
    g = torch.Generator().manual_seed(1)
    x, cond, uncond = (torch.randn(2, 4, 3, 5, 6, generator=g) for _ in range(3))
    sigma = torch.tensor([3.0, 0.5])
    out = rescaled_cfg(x, sigma, cond, uncond, 7.0, 1.0)
    s = sigma.reshape(-1, 1, 1, 1, 1)

    def v(d):
        return (x / (s * s + 1) - d) * (s * s + 1).sqrt() / s

    torch.testing.assert_close(v(out).std(dim=(1, 2, 3)), v(cond).std(dim=(1, 2, 3)))
    torch.testing.assert_close(rescaled_cfg(x, sigma, cond, uncond, 7.0, 0.7),
                               comfy_rescale_cfg(x, sigma, cond, uncond, 7.0, 0.7))


def scaled_eps(x_in, t, context, y):
    """eps proportional to x with a prompt-dependent factor, so cond and uncond differ in contrast."""
    return x_in * context.float().mean(dim=(1, 2)).reshape(-1, 1, 1, 1)


def test_rescale_cfg_node_reaches_the_guidance(builtin_registry, model):
    patched = call(builtin_registry, "RescaleCFG", model=model, multiplier=0.5)
    assert patched.options == {"cfg_rescale": 0.5} and model.options == {}
    shape = (1, 4, 8, 8)
    rescaled, plain = FakeModel(scaled_eps), FakeModel(scaled_eps)
    rescaled.options = patched.options
    outs = [sample(m, 0, 3, 6.0, "euler", "normal", prompt(0.3), prompt(-0.2),
                   {"samples": torch.randn(shape, generator=torch.Generator().manual_seed(0))}, denoise=0.5)
            for m in (rescaled, plain)]
    assert (outs[0]["samples"] - outs[1]["samples"]).abs().max() > 1e-3
    # The first model call's result is the rescaled CFG of its two predictions.
    x = rescaled.unet.calls[0]["x"][:1]
    sigma = SD.sigmas[rescaled.unet.calls[0]["t"].long()][:1]
    x_sigma = x * (sigma ** 2 + 1).sqrt()
    cond, uncond = x_sigma - sigma * 0.3 * x, x_sigma - sigma * -0.2 * x
    denoiser = CFGDenoiser(ModelDenoiser(plain), prepare_conds(prompt(0.3), plain, shape, "cpu"),
                           prepare_conds(prompt(-0.2), plain, shape, "cpu", negative=True), 6.0, rescale=0.5)
    torch.testing.assert_close(denoiser(x_sigma, sigma), comfy_rescale_cfg(x_sigma, sigma, cond, uncond, 6.0, 0.5))


def test_differential_mask_releases_pixels_by_their_value():
    sigmas = compute_sigmas(SD, "normal", 10)
    mask = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    fn = differential_mask(SD, sigmas, 1.0)
    assert torch.equal(fn(sigmas[:1], mask), torch.tensor([0.0, 0, 0, 0, 1]))  # only 1s change at first
    assert torch.equal(fn(sigmas[-2:-1], mask), torch.tensor([1.0, 1, 1, 1, 1]))  # the last step: all (>= 0)
    t = [float(SD.timestep(s[None])) for s in (sigmas[0], sigmas[-2])]
    mid = next(s for s in sigmas if (float(SD.timestep(s[None])) - t[1]) / (t[0] - t[1]) <= 0.5)
    assert torch.equal(fn(mid[None], mask), torch.tensor([0.0, 0, 1, 1, 1]))
    half = differential_mask(SD, sigmas, 0.5)(sigmas[:1], mask)
    torch.testing.assert_close(half, 0.5 * torch.tensor([0.0, 0, 0, 0, 1]) + 0.5 * mask)
    # strength 0 is ComfyUI's "no blend" (its test is `if strength and strength < 1`): the binary mask
    assert torch.equal(differential_mask(SD, sigmas, 0.0)(sigmas[:1], mask), torch.tensor([0.0, 0, 0, 0, 1]))
    # a run starting at sigma_min's timestep (img2img at a tiny denoise): ComfyUI's threshold is 0 / 0,
    # so nothing is released
    low = torch.tensor([float(SD.sigma_min), 0.0])
    assert torch.equal(differential_mask(SD, low, 1.0)(low[:1], mask), torch.zeros(5))


def test_differential_diffusion_in_sampling(builtin_registry, model):
    patched = call(builtin_registry, "DifferentialDiffusion", model=model, strength=1.0)
    assert patched.options == {"differential_diffusion": 1.0}
    fake = FakeModel(gaussian_eps(0.0, 1.0))
    fake.options = patched.options
    latent = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 4:] = 0.5  # right half: half-way released
    sample(fake, 3, 10, 1.0, "euler", "normal", prompt(0.1), prompt(0.0), {"samples": latent, "noise_mask": mask})
    from graphflow.sampling import initial_noise

    noise = initial_noise(latent, 3)
    known = []
    for c in fake.unet.calls:
        sigma = SD.sigmas[c["t"].long()].reshape(-1, 1, 1, 1)
        x = c["x"] * (sigma ** 2 + 1).sqrt()
        known.append(torch.allclose(x[..., 4:], (latent * 0.18215 + noise * sigma)[..., 4:], atol=1e-4))
    assert known[:4] == [True] * 4 and known[-4:] == [False] * 4  # held early, free late


def test_continuous_edm_schedule_matches_diffusers_preconditioning():
    from diffusers import EDMEulerScheduler

    from graphflow.sampling.model_sampling import ContinuousSchedule

    x, out = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    sigma = torch.tensor([80.0, 0.3])
    for prediction, theirs in (("edm", "epsilon"), ("v", "v_prediction")):
        schedule = ContinuousSchedule(0.002, 120.0, prediction)
        reference = EDMEulerScheduler(sigma_data=schedule.sigma_data, prediction_type=theirs)
        s = sigma.reshape(-1, 1, 1, 1)
        torch.testing.assert_close(schedule.denoised(sigma, out, x), reference.precondition_outputs(x, out, s))
        torch.testing.assert_close(schedule.c_in(sigma, x), reference.precondition_inputs(x, s))
        torch.testing.assert_close(schedule.timestep(sigma), reference.precondition_noise(sigma))
    schedule = ContinuousSchedule(0.002, 120.0, "edm")
    assert float(schedule.sigma_min) == pytest.approx(0.002) and float(schedule.sigma_max) == pytest.approx(120.0)
    assert float(schedule.sigma(schedule.timestep(torch.tensor([7.0])))) == pytest.approx(7.0)
    assert schedule.percent_to_sigma(0.5) == pytest.approx((0.002 * 120.0) ** 0.5)


def test_model_sampling_continuous_edm_node_and_sampling(builtin_registry, model):
    edm = call(builtin_registry, "ModelSamplingContinuousEDM", model=model, sampling="edm", sigma_max=80.0,
               sigma_min=0.01)
    assert (edm.prediction, edm.edm) == ("edm", (0.01, 80.0)) and model.edm is None and edm.unet is model.unet
    for bad, name in (({"sigma_min": 0.0}, "sigma_min"), ({"sigma_min": 200.0}, "sigma_min")):
        args = {"sampling": "v_prediction", "sigma_max": 120.0, "sigma_min": 0.002, **bad}
        with pytest.raises(NodeInputError) as e:
            call(builtin_registry, "ModelSamplingContinuousEDM", model=model, **args)
        assert e.value.input == name
    fake = FakeModel(lambda x, t, c, y: torch.zeros_like(x))
    fake.prediction, fake.edm = "edm", (0.01, 80.0)
    sample(fake, 0, 5, 1.0, "euler", "karras", prompt(0.1), prompt(0.0), {"samples": torch.zeros(1, 4, 4, 4)})
    sigmas = compute_sigmas(DiscreteSchedule.for_model(fake), "karras", 5)
    assert float(sigmas[0]) == pytest.approx(80.0) and float(sigmas[-2]) == pytest.approx(0.01)
    timesteps = torch.stack([c["t"][0] for c in fake.unet.calls])
    torch.testing.assert_close(timesteps, 0.25 * sigmas[:-1].log())  # the UNet is told c_noise
    # Back to discrete sampling clears the EDM setting.
    assert call(builtin_registry, "ModelSamplingDiscrete", model=edm, sampling="eps", zsnr=False).edm is None


def test_model_sampling_continuous_edm_playground_and_cosmos_rflow(builtin_registry, model):
    # ComfyUI's edm_playground_v2.5: EDM (sigma_data 0.5) in Playground v2.5's latent space,
    # (z - mean_c) * 0.5 / std_c per channel
    pg = call(builtin_registry, "ModelSamplingContinuousEDM", model=model, sampling="edm_playground_v2.5",
              sigma_max=80.0, sigma_min=0.002)
    assert (pg.prediction, pg.edm) == ("edm", (0.002, 80.0)) and model.latent_format.name == "sd1"
    schedule = DiscreteSchedule.for_model(pg)
    assert schedule.sigma_data == 0.5
    z = torch.randn(1, 4, 3, 3)
    mean = torch.tensor([-1.6574, 1.886, -1.383, 2.5155]).view(1, 4, 1, 1)
    std = torch.tensor([8.4927, 5.9022, 6.5498, 5.2299]).view(1, 4, 1, 1)
    torch.testing.assert_close(pg.latent_format.process_in(z), (z - mean) * 0.5 / std)
    torch.testing.assert_close(pg.latent_format.process_out(pg.latent_format.process_in(z)), z)
    # cosmos_rflow: Cosmos-Predict2's rectified flow over the node's sigma range
    rf = call(builtin_registry, "ModelSamplingContinuousEDM", model=model, sampling="cosmos_rflow",
              sigma_max=80.0, sigma_min=0.002)
    schedule = DiscreteSchedule.for_model(rf)
    assert schedule.prediction == "cosmos_rflow"
    assert float(schedule.sigma_max) == pytest.approx(80.0) and float(schedule.sigma_min) == pytest.approx(0.002)
    sigma = torch.tensor([3.0])
    torch.testing.assert_close(schedule.timestep(sigma), sigma / (sigma + 1))
    assert schedule.percent_to_sigma(0.5) == pytest.approx((0.002 * 80.0) ** 0.5)


def test_model_sampling_continuous_v_tells_the_unet_the_angle_of_sigma(builtin_registry, model):
    import math

    v = call(builtin_registry, "ModelSamplingContinuousV", model=model, sampling="v_prediction", sigma_max=500.0,
             sigma_min=0.03)
    assert (v.prediction, v.edm, v.continuous_timestep) == ("v", (0.03, 500.0), "atan") and v.unet is model.unet
    assert model.edm is None and model.continuous_timestep == "log"
    schedule = DiscreteSchedule.for_model(v)
    assert float(schedule.sigma_min) == pytest.approx(0.03) and float(schedule.sigma_max) == pytest.approx(500.0)
    sigma = torch.tensor([500.0, 1.0, 0.03])
    expected = torch.tensor([math.atan(s) * 2 / math.pi for s in (500.0, 1.0, 0.03)])
    torch.testing.assert_close(schedule.timestep(sigma), expected)
    assert float(schedule.timestep(torch.tensor([1.0]))) == pytest.approx(0.5)  # atan 1 = pi / 4
    torch.testing.assert_close(schedule.sigma(schedule.timestep(sigma)), sigma, rtol=1e-4, atol=0)
    # v-prediction with sigma_data 1: x0 = cos(phi) x_vp - sin(phi) v, x_vp = x / sqrt(sigma^2 + 1), phi = atan sigma
    x, out = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    phi = sigma.atan().reshape(-1, 1, 1, 1)
    x_vp = x * phi.cos()
    torch.testing.assert_close(schedule.denoised(sigma, out, x), phi.cos() * x_vp - phi.sin() * out,
                               atol=1e-5, rtol=1e-5)
    assert schedule.percent_to_sigma(0.5) == pytest.approx((0.03 * 500.0) ** 0.5)
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "ModelSamplingContinuousV", model=model, sampling="v_prediction", sigma_max=1.0,
             sigma_min=2.0)
    assert e.value.input == "sigma_min"

    fake = FakeModel(lambda x, t, c, y: torch.zeros_like(x))
    fake.prediction, fake.edm, fake.continuous_timestep = "v", (0.03, 500.0), "atan"
    sample(fake, 0, 4, 1.0, "euler", "karras", prompt(0.1), prompt(0.0), {"samples": torch.zeros(1, 4, 4, 4)})
    sigmas = compute_sigmas(DiscreteSchedule.for_model(fake), "karras", 4)
    assert float(sigmas[0]) == pytest.approx(500.0)
    timesteps = torch.stack([c["t"][0] for c in fake.unet.calls])
    torch.testing.assert_close(timesteps, sigmas[:-1].atan() * 2 / math.pi)
    assert call(builtin_registry, "ModelSamplingContinuousEDM", model=v, sampling="v_prediction", sigma_max=120.0,
                sigma_min=0.002).continuous_timestep == "log"
    assert call(builtin_registry, "ModelSamplingDiscrete", model=v, sampling="v_prediction",
                zsnr=False).continuous_timestep == "log"
