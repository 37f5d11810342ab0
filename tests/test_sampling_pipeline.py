"""The KSampler entry point: noise, latent formats, denoise, KSamplerAdvanced steps, masks,
inpainting models, progress / previews, errors, and a diffusers Euler oracle."""

import io

import pytest
import torch
from PIL import Image
from sampling_fakes import SD, FakeModel, context_eps, gaussian_eps, prompt

from graphflow.context import Interrupted, NodeInputError
from graphflow.sampling import SAMPLERS, SCHEDULERS, ModelDenoiser, compute_sigmas, encode_preview, initial_noise, sample
from graphflow.sampling.noise import inpaint_noise

SCALE = 0.18215  # SD1 latent format


def empty_latent(batch=1, h=8, w=8):
    return {"samples": torch.zeros(batch, 4, h, w)}


def first_x(model, call=0):
    """The sigma-space x of a recorded UNet call (undo c_in)."""
    c = model.unet.calls[call]
    sigma = SD.sigmas[c["t"].long()].reshape(-1, 1, 1, 1)
    return c["x"][:, :4] * (sigma ** 2 + 1).sqrt()


def run(model, latent, sampler="euler", scheduler="simple", steps=10, cfg=1.0, seed=3, **kw):
    return sample(model, seed, steps, cfg, sampler, scheduler, prompt(0.1), prompt(-0.1), latent, **kw)


# --- noise -------------------------------------------------------------------------------------

def test_initial_noise_is_comfyuis():
    samples = torch.zeros(3, 4, 8, 8)
    torch.manual_seed(1234)
    expected = torch.randn(3, 4, 8, 8)  # ComfyUI: torch.manual_seed(seed); one randn of the batch shape
    torch.testing.assert_close(initial_noise(samples, 1234), expected, rtol=0, atol=0)
    assert initial_noise(samples, 1234).device.type == "cpu" and initial_noise(samples, 1234).dtype == torch.float32


def test_initial_noise_with_batch_index_skips_ahead_per_image():
    samples = torch.zeros(2, 4, 8, 8)
    g = torch.Generator().manual_seed(9)
    per_image = [torch.randn(1, 4, 8, 8, generator=g) for _ in range(4)]
    torch.testing.assert_close(initial_noise(samples, 9, [3, 1]), torch.cat([per_image[3], per_image[1]]), rtol=0, atol=0)
    # an image regenerated alone by its batch index gets the noise it had in the batch
    torch.testing.assert_close(initial_noise(torch.zeros(1, 4, 8, 8), 9, [2]), initial_noise(torch.zeros(3, 4, 8, 8), 9)[2:],
                               rtol=0, atol=0)
    with pytest.raises(ValueError, match="batch_index"):
        initial_noise(samples, 9, [0])
    with pytest.raises(ValueError, match="past the largest"):  # a latent file's index can't make it draw for hours
        initial_noise(samples, 9, [0, 10**9])


def test_start_from_pure_noise_scales_by_sqrt_one_plus_sigma_squared():
    model = FakeModel(context_eps)
    run(model, empty_latent(), steps=4)
    sigma_max = SD.sigma_max
    expected = initial_noise(torch.zeros(1, 4, 8, 8), 3) * torch.sqrt(1 + sigma_max ** 2)
    torch.testing.assert_close(first_x(model), expected, rtol=1e-5, atol=1e-5)
    assert model.unet.calls[0]["t"].tolist() == [999.0]


def test_img2img_denoise_starts_at_the_tail_sigma_with_plain_sigma_noise():
    model = FakeModel(context_eps)
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))}
    run(model, latent, scheduler="normal", steps=20, denoise=0.5)
    sigma0 = 1.5481600761413574
    assert model.unet.calls[0]["t"].item() == SD.timestep(torch.tensor(sigma0)).item()
    expected = latent["samples"] * SCALE + initial_noise(latent["samples"], 3) * sigma0
    sigma_t = SD.sigmas[model.unet.calls[0]["t"].long()]
    x_in = model.unet.calls[0]["x"]
    torch.testing.assert_close(x_in, expected / (torch.tensor(sigma0) ** 2 + 1).sqrt(), rtol=1e-5, atol=1e-5)
    assert len(model.unet.calls) == 20 and sigma_t > 0


# --- the whole pipeline on a model with a known exact answer ----------------------------------

@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_sampling_gaussian_data_lands_on_the_exact_ode_solution(prediction):
    mu = torch.tensor([0.5, -0.3, 0.2, 0.0]).reshape(1, 4, 1, 1)
    s = torch.tensor([0.8, 1.0, 0.6, 1.2]).reshape(1, 4, 1, 1)
    model = FakeModel(gaussian_eps(mu, s, prediction), prediction=prediction)
    out = sample(model, 11, 40, 7.0, "dpmpp_2m", "simple", prompt(0.1), prompt(-0.1), empty_latent(2))
    x_T = initial_noise(torch.zeros(2, 4, 8, 8), 11) * torch.sqrt(1 + SD.sigma_max ** 2)
    # PF-ODE transport to the last nonzero sigma, then the final step into 0 takes the denoised value
    sigma_last = compute_sigmas(SD, "simple", 40)[-2]
    x_last = mu + (x_T - mu) * ((s ** 2 + sigma_last ** 2) / (s ** 2 + SD.sigma_max ** 2)).sqrt()
    exact = (s ** 2 * x_last + sigma_last ** 2 * mu) / (s ** 2 + sigma_last ** 2)
    torch.testing.assert_close(out["samples"] * SCALE, exact, rtol=0, atol=0.015)  # 2nd-order solver error
    assert out["samples"].dtype == torch.float32 and out["samples"].device.type == "cpu"


def test_v_and_eps_models_of_the_same_data_agree():
    mu, s = 0.2, 0.7
    outs = [sample(FakeModel(gaussian_eps(mu, s, p), prediction=p), 5, 12, 3.0, "heun", "karras", prompt(0.1),
                   prompt(-0.1), empty_latent())["samples"] for p in ("eps", "v")]
    torch.testing.assert_close(outs[0] * SCALE, outs[1] * SCALE, rtol=0, atol=1e-4)  # float32 rounding


def test_euler_matches_diffusers_euler_discrete_scheduler():
    from diffusers import EulerDiscreteScheduler
    mu, s = 0.3, 0.9

    def eps_model(x_in, t):  # a smooth eps model of fractional timesteps (diffusers interpolates t)
        sigma = SD.sigma(t).reshape(-1, 1, 1, 1)
        x = x_in * (sigma ** 2 + 1).sqrt()
        denoised = (s ** 2 * x + sigma ** 2 * mu) / (s ** 2 + sigma ** 2)
        return (x - denoised) / sigma * (1 + 0.1 * torch.sin(t / 5).reshape(-1, 1, 1, 1))

    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       use_karras_sigmas=True)
    scheduler.set_timesteps(15)
    # (diffusers starts from noise * sigma_max here, ComfyUI from noise * sqrt(1 + sigma_max^2): same start for both)
    x_start = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
    x = x_start
    for t in scheduler.timesteps:
        x = scheduler.step(eps_model(scheduler.scale_model_input(x, t), t.float().reshape(1)), t, x).prev_sample

    model = FakeModel(lambda x_in, t, c, y: eps_model(x_in, t))
    sigmas = SCHEDULERS["karras"](SD, 15)
    ours = SAMPLERS["euler"](ModelDenoiser(model, quantize_timesteps=False), x_start, sigmas)
    torch.testing.assert_close(ours, x, rtol=1e-4, atol=1e-4)
    # ComfyUI's integer timesteps give a (slightly) different trajectory
    quantized = SAMPLERS["euler"](ModelDenoiser(model), x_start, sigmas)
    assert (quantized - x).abs().max() > 1e-3


# --- KSamplerAdvanced --------------------------------------------------------------------------

def test_two_stage_advanced_sampling_equals_one_run():
    model = FakeModel(gaussian_eps(0.1, 0.8))
    latent = empty_latent()
    full = run(model, latent, sampler="euler", scheduler="karras", steps=12, cfg=2.0)
    first = run(model, latent, sampler="euler", scheduler="karras", steps=12, cfg=2.0, start_step=0, end_step=5,
                return_with_leftover_noise=True)
    second = run(model, first, sampler="euler", scheduler="karras", steps=12, cfg=2.0, start_step=5, end_step=10000,
                 add_noise=False)
    torch.testing.assert_close(second["samples"], full["samples"], rtol=1e-4, atol=1e-4)
    # without leftover noise the first stage ends fully denoised (last sigma forced to 0)
    clean = run(model, latent, sampler="euler", scheduler="karras", steps=12, cfg=2.0, end_step=5)
    assert (clean["samples"] - first["samples"]).abs().max() > 1.0


def test_start_step_past_the_end_returns_the_input():
    model = FakeModel(context_eps)
    latent = {"samples": torch.randn(1, 4, 8, 8), "batch_index": [0]}
    out = run(model, latent, steps=10, start_step=10)
    assert out["samples"] is latent["samples"] and not model.unet.calls
    out = run(model, latent, steps=10, denoise=0.0)
    assert out["samples"] is latent["samples"]


def test_empty_latent_is_not_shifted():
    from graphflow.models.latent_formats import SD3
    model = FakeModel(lambda x, t, c, y: torch.zeros_like(x), latent_format=SD3, in_channels=16)
    out = sample(model, 1, 3, 1.0, "euler", "simple", prompt(0.0), prompt(0.0), {"samples": torch.zeros(1, 4, 8, 8)})
    # zero eps: x0 = x; the 16-channel result is the scaled noise mapped out of SD3's space
    assert out["samples"].shape == (1, 16, 8, 8)
    expected = initial_noise(torch.zeros(1, 16, 8, 8), 1) * torch.sqrt(1 + SD.sigma_max ** 2)
    torch.testing.assert_close(out["samples"], SD3.process_out(expected), rtol=1e-5, atol=1e-5)


# --- masks and inpainting models ---------------------------------------------------------------

def masked_latent():
    samples = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :, 32:] = 1.0  # right half to change, at pixel resolution
    return {"samples": samples, "noise_mask": mask}


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "euler_ancestral"])
def test_noise_mask_keeps_the_known_region(sampler):
    model = FakeModel(gaussian_eps(0.0, 1.0))
    latent = masked_latent()
    out = run(model, latent, sampler=sampler, scheduler="karras", steps=8, cfg=3.0)
    torch.testing.assert_close(out["samples"][..., :4], latent["samples"][..., :4], rtol=1e-5, atol=1e-5)
    assert (out["samples"][..., 4:] - latent["samples"][..., 4:]).abs().mean() > 0.1
    assert torch.equal(out["noise_mask"], latent["noise_mask"])
    # before every model call the known region is the latent noised to the current sigma
    noise = initial_noise(latent["samples"], 3)
    for call in model.unet.calls:
        sigma = SD.sigmas[call["t"].long()][0]
        x = first_x_from(call)
        expected = latent["samples"] * SCALE + noise * sigma
        torch.testing.assert_close(x[:1, ..., :3], expected[..., :3], rtol=1e-3, atol=1e-3)


def first_x_from(call):
    sigma = SD.sigmas[call["t"].long()].reshape(-1, 1, 1, 1)
    return call["x"][:, :4] * (sigma ** 2 + 1).sqrt()


def test_ddim_renoises_the_known_region_with_seed_plus_one():
    model = FakeModel(gaussian_eps(0.0, 1.0))
    latent = masked_latent()
    run(model, latent, sampler="ddim", scheduler="simple", steps=5)
    call = model.unet.calls[1]
    sigma = SD.sigmas[call["t"].long()][0]
    expected = latent["samples"] * SCALE + inpaint_noise(latent["samples"].shape, 3) * sigma
    torch.testing.assert_close(first_x_from(call)[..., :3], expected[..., :3], rtol=1e-4, atol=1e-4)


def test_inpainting_model_gets_noisy_latent_mask_and_masked_image_channels():
    model = FakeModel(lambda x, t, c, y: torch.zeros_like(x[:, :4]), in_channels=9)
    latent = masked_latent()
    run(model, latent, steps=3, cfg=2.0)
    for call in model.unet.calls:
        x = call["x"]
        assert x.shape == (2, 9, 8, 8)
        expected_mask = torch.zeros(8, 8)
        expected_mask[:, 4:] = 1.0
        assert torch.equal(x[:, 4], expected_mask.expand(2, 8, 8))
        torch.testing.assert_close(x[:, 5:], (latent["samples"] * SCALE).expand(2, -1, -1, -1))
    # without a mask: everything to inpaint over the grey-image latent
    model = FakeModel(lambda x, t, c, y: torch.zeros_like(x[:, :4]), in_channels=9)
    run(model, empty_latent(), steps=2)
    x = model.unet.calls[0]["x"]
    assert torch.all(x[:, 4] == 1.0)
    torch.testing.assert_close(x[0, 5:, 0, 0], torch.tensor([0.8223, -0.6876, 0.6364, 0.1380]))


# --- per-image reproducibility -----------------------------------------------------------------

def test_per_image_noise_mode_regenerates_one_image_of_a_batch():
    model = FakeModel(gaussian_eps(0.0, 1.0))
    kw = dict(sampler="euler_ancestral", scheduler="karras", steps=6, cfg=1.0, seed=21)
    batch = run(model, empty_latent(2), noise_mode="per_image", **kw)
    alone = run(model, {"samples": torch.zeros(1, 4, 8, 8), "batch_index": [1]}, noise_mode="per_image", **kw)
    torch.testing.assert_close(alone["samples"], batch["samples"][1:], rtol=1e-5, atol=1e-5)
    comfy = run(model, {"samples": torch.zeros(1, 4, 8, 8), "batch_index": [1]}, **kw)
    assert (comfy["samples"] - batch["samples"][1:]).abs().max() > 1e-2  # ComfyUI's stream depends on the batch


def test_same_seed_same_image():
    model = FakeModel(gaussian_eps(0.0, 1.0))
    a = run(model, empty_latent(), sampler="dpmpp_2m_sde", scheduler="karras", steps=5, seed=8)
    b = run(model, empty_latent(), sampler="dpmpp_2m_sde", scheduler="karras", steps=5, seed=8)
    c = run(model, empty_latent(), sampler="dpmpp_2m_sde", scheduler="karras", steps=5, seed=9)
    assert torch.equal(a["samples"], b["samples"]) and not torch.equal(a["samples"], c["samples"])


# --- device / dtype, progress, previews --------------------------------------------------------

def test_unet_runs_in_the_model_dtype_and_x_stays_float32():
    model = FakeModel(lambda x, t, c, y: torch.zeros_like(x), dtype=torch.bfloat16)
    seen = []
    run(model, empty_latent(), steps=3, cfg=2.0, callback=seen.append)
    assert all(c["x"].dtype == torch.bfloat16 and c["context"].dtype == torch.bfloat16 for c in model.unet.calls)
    assert all(c["t"].dtype == torch.float32 for c in model.unet.calls)
    assert all(info["x"].dtype == torch.float32 and info["denoised"].dtype == torch.float32 for info in seen)


def test_progress_callback_payload_and_previews():
    model = FakeModel(gaussian_eps(0.0, 1.0))
    seen = []
    run(model, empty_latent(2), sampler="heun", steps=7, callback=seen.append, preview_every=3)
    assert [p["i"] for p in seen] == list(range(7)) and [p["step"] for p in seen] == list(range(1, 8))
    assert all(p["total"] == 7 for p in seen)
    assert [p["preview"] is not None for p in seen] == [True, False, False, True, False, False, True]
    preview = seen[0]["preview"]
    assert preview.shape == (1, 8, 8, 3) and preview.min() >= 0 and preview.max() <= 1
    assert seen[0]["sigma"] == pytest.approx(float(SD.sigma_max))
    data = encode_preview(preview, max_size=64)
    assert Image.open(io.BytesIO(data)).size == (64, 64)


@pytest.mark.parametrize("sampler", ["uni_pc", "dpm_2"])
def test_penultimate_dropping_samplers_run_steps_steps(sampler):
    model = FakeModel(gaussian_eps(0.0, 1.0))
    seen = []
    run(model, empty_latent(), sampler=sampler, scheduler="normal", steps=6, callback=seen.append)
    sigmas = compute_sigmas(SD, "normal", 6, discard_penultimate=True)
    assert [p["i"] for p in seen] == list(range(6))
    assert [p["sigma"] for p in seen] == pytest.approx(sigmas[:-1].tolist())
    assert sigmas[-2] > SCHEDULERS["normal"](SD, 6)[-2]  # the jump to 0 starts higher than normal's


def test_interrupt_from_the_callback_stops_sampling():
    model = FakeModel(context_eps)

    def interrupt(payload):
        if payload["i"] == 2:
            raise Interrupted("stop")
    with pytest.raises(Interrupted):
        run(model, empty_latent(), steps=10, callback=interrupt)
    assert len(model.unet.calls) == 3


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,input_name", [
    (dict(sampler="fastest"), "sampler_name"),
    (dict(scheduler="fast"), "scheduler"),
    (dict(steps=0), "steps"),
    (dict(denoise=1.5), "denoise"),
    (dict(seed=-1), "seed"),
    (dict(noise_mode="random"), "noise_mode"),
])
def test_bad_inputs_name_the_input(kwargs, input_name):
    with pytest.raises(NodeInputError) as error:
        run(FakeModel(context_eps), empty_latent(), **kwargs)
    assert error.value.input == input_name


def test_bad_latents_are_reported():
    model = FakeModel(context_eps)
    with pytest.raises(NodeInputError, match="LATENT"):
        run(model, torch.zeros(1, 4, 8, 8))
    with pytest.raises(NodeInputError, match="3 channels, the model expects 4"):
        run(model, {"samples": torch.ones(1, 3, 8, 8)})
    out = run(model, {"samples": torch.zeros(1, 16, 8, 8)}, steps=2)  # an empty latent is resized
    assert out["samples"].shape == (1, 4, 8, 8)


# --- the real model stack (tiny random-weight UNets in the real layouts) -----------------------

def real_model(arch):
    from graphflow.models import DiffusionModel, UNet
    from graphflow.testing import unet_config
    torch.manual_seed(0)
    unet = UNet(unet_config(arch))
    base = {"sd1_inpaint": "sd1", "sd2_v": "sd2"}.get(arch, arch)
    return DiffusionModel(unet, base, "v" if arch == "sd2_v" else "eps"), unet.config


@pytest.mark.parametrize("arch", ["sd1", "sd1_inpaint", "sd2_v", "sdxl", "sdxl_refiner"])
def test_sampling_runs_the_real_unet(arch):
    model, config = real_model(arch)
    forwards = []
    model.unet.register_forward_hook(lambda module, args, output: forwards.append(args[0].shape))
    options = {"pooled_output": torch.randn(1, 128)} if config.adm_in_channels else {}

    def cond(value):
        return [(torch.full((1, 77, config.context_dim), value), dict(options))]
    latent = masked_latent() if arch == "sd1_inpaint" else empty_latent(2)
    out = sample(model, 1, 3, 5.0, "dpmpp_2m", "karras", cond(0.5), cond(-0.5), latent)
    batch = latent["samples"].shape[0]
    assert out["samples"].shape == latent["samples"].shape and torch.isfinite(out["samples"]).all()
    assert forwards == [(2 * batch, config.in_channels, 8, 8)] * 3  # cond + uncond batched: one forward per step


def test_repeating_a_shorter_prompt_leaves_the_real_unet_output_unchanged():
    from graphflow.sampling import Cond
    from graphflow.sampling.guidance import predict_sides
    model, config = real_model("sd1")
    denoiser = ModelDenoiser(model)
    x = torch.randn(1, 4, 8, 8)
    sigma = torch.tensor([3.0])
    long = Cond(context=torch.randn(1, 154, config.context_dim))
    short = Cond(context=torch.randn(1, 77, config.context_dim))
    batched = predict_sides(denoiser, [[long], [short]], x, sigma)
    assert model.unet.training is False
    separate = [denoiser(x, sigma, context=long.context), denoiser(x, sigma, context=short.context)]
    for a, b in zip(batched, separate):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_sizes_that_are_no_multiple_of_64px_sample_with_areas():
    """72x40 px (a 9x5 latent) runs through the real UNet, whole and through an area crop of 8x4."""
    model, config = real_model("sd1")
    forwards = []
    model.unet.register_forward_hook(lambda module, args, output: forwards.append(tuple(args[0].shape[2:])))
    positive = [(torch.full((1, 77, config.context_dim), 0.5), {}),
                (torch.full((1, 77, config.context_dim), 0.2), {"area": (8, 8, 1, 1), "strength": 1.0})]
    negative = [(torch.full((1, 77, config.context_dim), -0.5), {})]
    out = sample(model, 1, 2, 5.0, "euler", "normal", positive, negative, {"samples": torch.zeros(1, 4, 9, 5)})
    assert out["samples"].shape == (1, 4, 9, 5) and torch.isfinite(out["samples"]).all()
    assert sorted(set(forwards)) == [(8, 4), (9, 5)]
