"""Parity of the sampling set-up with ComfyUI's (nodes.py KSampler / KSamplerAdvanced, comfy/sample.py,
comfy/samplers.py, comfy_extras/nodes_custom_sampler.py): timestep ranges, latents and noise masks
of other shapes, the steps KSamplerAdvanced leaves nothing to do for."""

import torch
from flow_fakes import FakeFlowModel, constant_x0
from sampling_fakes import FakeModel, prompt

from graphflow.sampling import compute_sigmas, sample
from graphflow.sampling.flow_sampling import model_sampling_for
from graphflow.sampling.model_sampling import in_sigma_window


def flow_prompt(value, **options):
    return [(torch.full((1, 4, 8), float(value)), options)]


def test_timestep_range_bounds_are_compared_in_float32():
    """ComfyUI compares the sigma tensor with the range's Python-float bounds, which torch rounds
    to float32 first: a flow model's step sigma that is the float32 nearest a bound is inside."""
    sigma = torch.tensor([2 / 3], dtype=torch.float32)  # 0.66666669 > 2/3 in double precision
    assert float(sigma) > 2 / 3
    assert in_sigma_window(sigma, 2 / 3, 0.0, rounded=True)
    assert not in_sigma_window(sigma, 2 / 3, 0.0)  # SLG / IP-Adapter: sigma.item() in double
    assert in_sigma_window(torch.tensor([0.9], dtype=torch.float32), 1.0, 0.9, rounded=True)


def test_conditioning_start_percent_on_a_flow_schedule_counts_the_boundary_step():
    """SD3 (shift 3), 20 simple steps: start_percent 0.6 is sigma 2/3, and step 12's sigma is
    float32(2/3); ComfyUI evaluates the ranged prompt from that step on (8 of the 20 steps)."""
    model = FakeFlowModel(constant_x0(0.0))
    schedule = model_sampling_for(model)
    sigmas = compute_sigmas(schedule, "simple", 20)
    assert float(sigmas[12]) == float(torch.tensor(schedule.percent_to_sigma(0.6), dtype=torch.float32))
    positive = flow_prompt(1.0) + flow_prompt(2.0, start_percent=0.6, end_percent=1.0)
    sample(model, 0, 20, 1.0, "euler", "simple", positive, [], {"samples": torch.zeros(1, 16, 4, 4)})
    ranged = [i for i, call in enumerate(model.calls) if bool((call["context"] == 2.0).any())]
    assert ranged == list(range(12, 20))


# --- latents of other shapes: ComfyUI's fix_empty_latent_channels -----------------------------

def test_nothing_left_to_do_returns_the_latent_as_the_model_takes_it():
    """start_at_step past the end (or denoise 0): ComfyUI returns the latent it would have sampled,
    an empty latent already given the model's channels (4 -> 16 for SD3)."""
    model = FakeFlowModel(constant_x0(0.0))
    latent = {"samples": torch.zeros(2, 4, 3, 5), "batch_index": [4, 5]}
    for kw in ({"start_step": 10}, {"denoise": 0.0}):
        out = sample(model, 0, 10, 1.0, "euler", "simple", flow_prompt(1.0), [], latent, **kw)
        assert out["samples"].shape == (2, 16, 3, 5) and not out["samples"].any()
        assert out["batch_index"] == [4, 5] and not model.calls


# --- noise masks: ComfyUI's reshape_mask ------------------------------------------------------

def test_image_noise_mask_is_resized_bilinearly_and_not_rounded():
    from graphflow.sampling.pipeline import prepare_noise_mask

    mask = torch.full((1, 64, 64), 0.3)
    mask[:, :, 32:] = 0.7
    out = prepare_noise_mask(mask, (2, 4, 8, 8), "cpu")
    assert out.shape == (2, 4, 8, 8)
    torch.testing.assert_close(out[..., :4], torch.full((2, 4, 8, 4), 0.3))
    torch.testing.assert_close(out[..., 4:], torch.full((2, 4, 8, 4), 0.7))


def test_video_noise_mask_of_fewer_dims_is_one_video_of_its_entries():
    """SetLatentNoiseMask's [N, 1, h, w] on a video latent: the N masks are frames, stretched
    trilinearly over the latent's frames (half-pixel centres: 2 -> 4 frames weigh 1, 3/4, 1/4, 0)."""
    from graphflow.sampling.pipeline import prepare_noise_mask

    m0, m1 = torch.rand(4, 4, generator=torch.Generator().manual_seed(0)), torch.zeros(4, 4)
    out = prepare_noise_mask(torch.stack([m0, m1])[:, None], (2, 3, 4, 4, 4), "cpu")
    assert out.shape == (2, 3, 4, 4, 4)
    for frame, w in enumerate([1.0, 0.75, 0.25, 0.0]):
        torch.testing.assert_close(out[:, :, frame], (w * m0 + (1 - w) * m1).expand(2, 3, 4, 4))
    # one mask for every frame
    out = prepare_noise_mask(m0[None], (1, 3, 5, 4, 4), "cpu")
    torch.testing.assert_close(out, m0.expand(1, 3, 5, 4, 4))


def test_video_noise_mask_keeps_its_channels():
    """A [B, C, frames, h, w] mask with one mask per latent channel stays per channel."""
    from graphflow.sampling.pipeline import prepare_noise_mask

    mask = torch.arange(3.0).reshape(1, 3, 1, 1, 1).expand(1, 3, 2, 2, 2) / 2
    torch.testing.assert_close(prepare_noise_mask(mask, (1, 3, 2, 2, 2), "cpu"), mask)


# --- the nodes' widget defaults ---------------------------------------------------------------

GROUP = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced", "CFGGuider", "BasicGuider",
         "DualCFGGuider", "RandomNoise", "DisableNoise", "AddNoise")


def test_widget_defaults_are_comfyuis(builtin_registry):
    """A node added in the editor starts as ComfyUI's does (KSampler's scheduler: "simple", the
    first of ComfyUI's list, not "normal")."""
    from graphflow.comfy_format import comfy_catalogue

    catalogue = comfy_catalogue()
    for name in GROUP:
        cls = builtin_registry.comfy_node(name)
        for entry in catalogue[name]["inputs"]:
            if entry.get("widget"):
                assert cls.input_specs[entry["name"]].default == entry["default"], (name, entry["name"])


# --- DualCFGGuider with RescaleCFG --------------------------------------------------------------

def rescale_oracle(x, sigma, cond, uncond, scale, multiplier):
    """RescaleCFG (Lin et al. 2023, sec. 3.4) in v-space: v = (x / (s^2 + 1) - x0) sqrt(s^2 + 1) / s,
    the guided v scaled to the positive v's std, mixed by the multiplier, back to x0."""
    s = sigma.reshape(-1, 1, 1, 1)
    root, x_vp = (s * s + 1).sqrt(), x / (s * s + 1)
    v_c, v_u = (x_vp - cond) * root / s, (x_vp - uncond) * root / s
    v = v_u + scale * (v_c - v_u)
    v = multiplier * v * v_c.std(dim=(1, 2, 3), keepdim=True) / v.std(dim=(1, 2, 3), keepdim=True) \
        + (1 - multiplier) * v
    return x_vp - v * s / root


def test_dual_cfg_guider_takes_rescale_cfg_for_its_inner_combination():
    """ComfyUI's DualCFGGuider combines through cfg_function, where RescaleCFG's
    sampler_cfg_function replaces the plain CFG: regular, of (cond2, negative, cfg_cond2_negative);
    nested, of (cond1, cond2, cfg_conds)."""
    from graphflow.sampling.guidance import DualCFGGuider, prepare_conds, predict_sides
    from graphflow.sampling.model_sampling import ModelDenoiser
    from sampling_fakes import SD

    def scaled_eps(x_in, t, context, y):  # prompts differ in contrast, so the rescale acts
        return x_in * context.float().mean(dim=(1, 2)).reshape(-1, 1, 1, 1)

    model = FakeModel(scaled_eps)
    model.options = {"cfg_rescale": 0.7}
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3)) * 3
    sigma = torch.tensor([2.0])

    def prepare(c, negative=False):
        return prepare_conds(c, model, x.shape, "cpu", negative=negative)

    c1, c2, neg = (predict_sides(ModelDenoiser(model, SD), [prepare(prompt(v))], x, sigma)[0] for v in (0.3, 0.1, -0.2))
    regular = DualCFGGuider(model, prompt(0.3), prompt(0.1), prompt(-0.2), 3.0, 5.0).denoiser(ModelDenoiser(model, SD),
                                                                                              prepare)
    torch.testing.assert_close(regular(x, sigma), rescale_oracle(x, sigma, c2, neg, 5.0, 0.7) + (c1 - c2) * 3.0)
    nested = DualCFGGuider(model, prompt(0.3), prompt(0.1), prompt(-0.2), 3.0, 5.0, nested=True)
    text = rescale_oracle(x, sigma, c1, c2, 3.0, 0.7)
    torch.testing.assert_close(nested.denoiser(ModelDenoiser(model, SD), prepare)(x, sigma), neg + 5.0 * (text - neg))


# --- KSamplerAdvanced's step window -------------------------------------------------------------

def test_ksampler_advanced_step_window_edges():
    """end_at_step past the schedule cuts nothing (leftover noise or not: the last sigma is 0
    already); start_at_step >= end_at_step leaves nothing to run; a later start adds the noise at
    that step's sigma (x = latent + sigma noise, not sqrt(1 + sigma^2))."""
    from sampling_fakes import SD, gaussian_eps

    from graphflow.sampling import initial_noise

    model = FakeModel(gaussian_eps(0.1, 0.8))
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(7))}

    def run(**kw):
        return sample(model, 5, 10, 2.0, "euler", "karras", prompt(0.1), prompt(-0.1), latent, **kw)

    full = run()
    for leftover in (False, True):
        torch.testing.assert_close(run(start_step=0, end_step=10000, return_with_leftover_noise=leftover)["samples"],
                                   full["samples"], rtol=0, atol=0)
    model.unet.calls.clear()
    assert torch.equal(run(start_step=6, end_step=6)["samples"], latent["samples"]) and not model.unet.calls
    assert torch.equal(run(start_step=7, end_step=3)["samples"], latent["samples"]) and not model.unet.calls
    run(start_step=3)
    sigmas = compute_sigmas(SD, "karras", 10)
    call = model.unet.calls[0]
    x = call["x"][:1] * (sigmas[3] ** 2 + 1).sqrt()
    torch.testing.assert_close(x, latent["samples"] * 0.18215 + initial_noise(latent["samples"], 5) * sigmas[3],
                               rtol=1e-5, atol=1e-5)
