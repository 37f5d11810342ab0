"""ComfyUI's CFG-reshaping nodes (CFGZeroStar, CFGNorm, TCFG, Mahiro, FreSca, RenormCFG, PerpNeg,
PerpNegGuider) and SamplerEulerCFGpp, each against its closed form recomputed here from the cond /
uncond predictions (numpy's FFT for FreSca, an SVD for TCFG), with the settings that reduce them to
plain CFG, and end to end in a ComfyUI API graph on the demo model."""

import numpy as np
import pytest
import torch

from graphflow.sampling import compute_sigmas
from graphflow.sampling import samplers as sp
from graphflow.sampling.guidance import perp_neg_combine
from graphflow.sampling.noise import NoiseSource
from graphflow.sampling.pipeline import sample_custom
from graphflow.sampling.samplers import SamplerChoice
from nodes import custom_sampling as cs
from nodes import guidance_patches as gp
from sampling_fakes import SD, FakeModel, prompt
from test_custom_sampling import run_node
from test_custom_sampling_more import guided_once, structured_eps

CFG = 4.0


def cfg(cond, uncond, scale=CFG):
    return uncond + (cond - uncond) * scale


def sampled(model, cfg_scale=CFG, sampler="euler", positive=0.3, negative=-0.2, steps=3):
    guider = run_node(cs.CFGGuider, model=model, positive=prompt(positive), negative=prompt(negative), cfg=cfg_scale)
    sigmas = compute_sigmas(SD, "karras", steps)
    return sample_custom(guider, NoiseSource(1), SamplerChoice(sampler), sigmas,
                         {"samples": torch.zeros(1, 4, 8, 8)})[0]["samples"]


def test_cfg_zero_star_scales_the_uncond_by_the_optimised_alpha():
    model = FakeModel(structured_eps)
    patched = run_node(gp.CFGZeroStar, model=model)
    out, cond, uncond, x = guided_once(patched)
    eps_c, eps_u = (x - cond).flatten(1), (x - uncond).flatten(1)
    alpha = ((eps_c * eps_u).sum(1) / (eps_u.pow(2).sum(1) + 1e-8)).reshape(-1, 1, 1, 1)
    assert (alpha - 1).abs().max() > 1e-3  # not the identity case
    torch.testing.assert_close(out, alpha * uncond + CFG * (cond - alpha * uncond), rtol=1e-4, atol=1e-5)
    assert getattr(model, "post_cfg_functions", ()) == ()
    torch.testing.assert_close(sampled(patched, 1.0), sampled(model, 1.0))  # cfg 1: no change


def test_cfg_zero_star_with_equal_noise_estimates_is_plain_cfg():
    model = FakeModel(structured_eps)
    patched = run_node(gp.CFGZeroStar, model=model)
    # positive == negative: alpha = 1
    torch.testing.assert_close(sampled(patched, positive=0.3, negative=0.3), sampled(model, positive=0.3, negative=0.3),
                               rtol=1e-5, atol=1e-5)


def test_cfg_norm_caps_the_per_pixel_channel_norm():
    model = FakeModel(structured_eps)
    out, cond, uncond, x = guided_once(run_node(gp.CFGNorm, model=model, strength=0.8))
    guided = cfg(cond, uncond)
    ratio = cond.pow(2).sum(1, keepdim=True).sqrt() / (guided.pow(2).sum(1, keepdim=True).sqrt() + 1e-8)
    assert (ratio < 1).any() and (ratio > 1).any()  # both sides of the cap occur
    torch.testing.assert_close(out, guided * ratio.clamp(max=1.0) * 0.8, rtol=1e-4, atol=1e-5)


def test_mahiro_mixes_cfg_and_the_leap_by_the_sign_root_cosine():
    model = FakeModel(structured_eps)
    out, cond, uncond, x = guided_once(run_node(gp.Mahiro, model=model))
    guided, leap, uleap = cfg(cond, uncond), cond * CFG, uncond * CFG
    a = torch.sign(uleap) * uleap.abs() ** 0.5
    b = torch.sign((leap + guided) / 2) * ((leap + guided) / 2).abs() ** 0.5
    cosine = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-8)
    w = (cosine.mean() + 1) / 2
    torch.testing.assert_close(out, w * guided + (1 - w) * leap, rtol=1e-4, atol=1e-5)


def test_tangential_damping_equals_the_svd_projection():
    from graphflow.sampling.cfg_patches import tangential_damping
    g = torch.Generator().manual_seed(3)
    cond_score = torch.randn(3, 4, 6, 5, generator=g, dtype=torch.float64)
    uncond_score = 0.7 * cond_score + 0.4 * torch.randn(3, 4, 6, 5, generator=g, dtype=torch.float64)
    uncond_score[2] = -2.0 * cond_score[2]  # rank one: nothing tangential to drop
    got = tangential_damping(cond_score, uncond_score)
    matrix = torch.stack([uncond_score.flatten(1), cond_score.flatten(1)], 1)
    v1 = torch.linalg.svd(matrix, full_matrices=False).Vh[:, :1]  # [B, 1, N]
    want = ((matrix[:, :1] * v1).sum(-1, keepdim=True) * v1).reshape(uncond_score.shape)
    torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got[2], uncond_score[2].to(got.dtype), rtol=1e-4, atol=1e-5)
    assert (got[:2] - uncond_score[:2]).abs().max() > 1e-2


def test_tcfg_guides_with_the_damped_uncond_and_skips_cfg_one():
    from graphflow.sampling.cfg_patches import tangential_damping
    model = FakeModel(structured_eps)
    patched = run_node(gp.TCFG, model=model)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    _, cond, uncond, _ = guided_once(model, x=x)
    out = guided_once(patched, x=x)[0]
    damped_uncond = x - tangential_damping(x - cond, x - uncond)
    torch.testing.assert_close(out, cfg(cond, damped_uncond), rtol=1e-4, atol=1e-4)
    assert (out - cfg(cond, uncond)).abs().max() > 1e-3
    torch.testing.assert_close(sampled(patched, 1.0), sampled(model, 1.0))


def numpy_fresca(guidance, low, high, cutoff):
    spectrum = np.fft.fftshift(np.fft.fft2(guidance.numpy().astype(np.float64)), axes=(-2, -1))
    h, w = spectrum.shape[-2:]
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    inside = (abs(rows - h // 2 + 0.5) < cutoff) & (abs(cols - w // 2 + 0.5) < cutoff)  # [c - k, c + k)
    mask = np.where(inside, low, high)
    return torch.from_numpy(np.fft.ifft2(np.fft.ifftshift(spectrum * mask, axes=(-2, -1))).real).float()


@pytest.mark.parametrize("cutoff", [2, 20])
def test_fresca_filters_the_guidance_in_frequency(cutoff):
    model = FakeModel(structured_eps)
    _, cond, uncond, x = guided_once(model)  # the raw predictions (post-CFG hooks see the filtered cond)
    out = guided_once(run_node(gp.FreSca, model=model, scale_low=0.5, scale_high=1.5, freq_cutoff=cutoff), x=x)[0]
    want = uncond + CFG * numpy_fresca(cond - uncond, 0.5, 1.5, cutoff)
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)
    if cutoff == 20:  # beyond the 8 x 8 spectrum: all of it is "low"
        torch.testing.assert_close(out, uncond + CFG * 0.5 * (cond - uncond), rtol=1e-4, atol=1e-4)
    identity = run_node(gp.FreSca, model=model, scale_low=1.0, scale_high=1.0, freq_cutoff=cutoff)
    torch.testing.assert_close(sampled(identity), sampled(model), rtol=1e-4, atol=1e-4)


def test_fresca_low_region_is_clamped_to_half_the_size_so_an_odd_sizes_last_index_stays_high():
    from graphflow.sampling.cfg_patches import fourier_filter
    g = torch.randn(2, 3, 7, 9, generator=torch.Generator().manual_seed(4))
    # cutoff 20 on 7 x 9: low rows [0, 6), cols [0, 8) of the shifted spectrum; row 6 / col 8 high
    spectrum = np.fft.fftshift(np.fft.fft2(g.numpy().astype(np.float64)), axes=(-2, -1))
    mask = np.full((7, 9), 1.5)
    mask[:6, :8] = 0.5
    want = np.fft.ifft2(np.fft.ifftshift(spectrum * mask, axes=(-2, -1))).real
    torch.testing.assert_close(fourier_filter(g, 0.5, 1.5, 20), torch.from_numpy(want).float(), rtol=1e-4, atol=1e-4)
    # cutoff 3 on 7 (centre 3): rows [0, 6) too; on 9 (centre 4): cols [1, 7)
    mask = np.full((7, 9), 1.5)
    mask[0:6, 1:7] = 0.5
    want = np.fft.ifft2(np.fft.ifftshift(spectrum * mask, axes=(-2, -1))).real
    torch.testing.assert_close(fourier_filter(g, 0.5, 1.5, 3), torch.from_numpy(want).float(), rtol=1e-4, atol=1e-4)


def test_fresca_on_a_video_latent_narrows_the_frames_axis_too():
    from graphflow.sampling.cfg_patches import fourier_filter
    g = torch.randn(1, 2, 5, 6, 6, generator=torch.Generator().manual_seed(6))
    out = fourier_filter(g, 0.5, 1.5, 1)
    # frames: centre 2, k 1 -> frames 1, 2 get the spatial filter; frames 0, 3, 4 are scaled by 1.5 at all frequencies
    torch.testing.assert_close(out[:, :, [0, 3, 4]], 1.5 * g[:, :, [0, 3, 4]], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out[:, :, 1:3], fourier_filter(g[:, :, 1:3].flatten(0, 1), 0.5, 1.5, 1).reshape(1, 2, 2, 6, 6),
                               rtol=1e-4, atol=1e-5)
    assert (out[:, :, 1:3] - 1.5 * g[:, :, 1:3]).abs().max() > 1e-2


def test_fresca_does_nothing_at_cfg_one():
    model = FakeModel(structured_eps)
    patched = run_node(gp.FreSca, model=model, scale_low=0.5, scale_high=1.5, freq_cutoff=2)
    torch.testing.assert_close(sampled(patched, 1.0), sampled(model, 1.0))
    assert (sampled(patched) - sampled(model)).abs().max() > 1e-3


def test_renorm_cfg_caps_the_norm_and_truncates_by_sigma():
    model = FakeModel(structured_eps)
    out, cond, uncond, x = guided_once(run_node(gp.RenormCFG, model=model, cfg_trunc=100.0, renorm_cfg=1.0))
    guided = cfg(cond, uncond)
    limit, norm = cond.flatten(1).norm(dim=1), guided.flatten(1).norm(dim=1)
    assert (norm > limit).all()
    torch.testing.assert_close(out, guided * (limit / norm).reshape(-1, 1, 1, 1), rtol=1e-4, atol=1e-5)
    # a loose cap or none: plain CFG; sigma at or above cfg_trunc: the positive alone
    for renorm in (100.0, 0.0):
        loose = run_node(gp.RenormCFG, model=model, cfg_trunc=100.0, renorm_cfg=renorm)
        torch.testing.assert_close(guided_once(loose)[0], guided, rtol=1e-5, atol=1e-5)
    truncated = run_node(gp.RenormCFG, model=model, cfg_trunc=3.0, renorm_cfg=1.0)
    torch.testing.assert_close(guided_once(truncated, sigma=3.0)[0], cond)
    _, cond_below, uncond_below, _ = guided_once(model, sigma=2.9)
    guided_below = cfg(cond_below, uncond_below)
    capped = guided_below * (cond_below.flatten(1).norm(dim=1) / guided_below.flatten(1).norm(dim=1)).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(guided_once(truncated, sigma=2.9)[0], capped, rtol=1e-4, atol=1e-5)


def test_renorm_cfg_replaces_the_dual_cfg_guiders_inner_combination():
    from graphflow.sampling.guidance import DualCFGGuider
    from graphflow.sampling.model_sampling import ModelDenoiser
    from graphflow.sampling import prepare_conds
    model = FakeModel(structured_eps)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    sigma = torch.tensor([2.0])

    def prepare(c, negative=False):
        return prepare_conds(c, model, x.shape, x.device, negative=negative)

    def dual(m):
        guider = DualCFGGuider(m, prompt(0.3), prompt(0.1), prompt(-0.2), 3.0, 5.0)
        return guider.denoiser(ModelDenoiser(m, SD), prepare)(x, sigma)
    c1, c2, neg = (cs_run(model, prompt(v), x, sigma) for v in (0.3, 0.1, -0.2))
    torch.testing.assert_close(dual(model), cfg(c2, neg, 5.0) + (c1 - c2) * 3.0, rtol=1e-5, atol=1e-5)
    truncated = run_node(gp.RenormCFG, model=model, cfg_trunc=1.0, renorm_cfg=1.0)  # sigma 2 >= 1: c2 alone
    torch.testing.assert_close(dual(truncated), c2 + (c1 - c2) * 3.0, rtol=1e-5, atol=1e-5)
    # RescaleCFG is ComfyUI's sampler_cfg_function too: it rescales the inner combination
    from graphflow.sampling.guidance import rescaled_cfg
    from nodes.model_sampling import RescaleCFG
    rescaled = run_node(RescaleCFG, model=model, multiplier=0.7)
    torch.testing.assert_close(dual(rescaled), rescaled_cfg(x, sigma, c2, neg, 5.0, 0.7) + (c1 - c2) * 3.0,
                               rtol=1e-5, atol=1e-5)
    assert (rescaled_cfg(x, sigma, c2, neg, 5.0, 0.7) - cfg(c2, neg, 5.0)).abs().max() > 1e-3


def test_perp_neg_combine_removes_only_the_perpendicular_part():
    g = torch.Generator().manual_seed(4)
    cond, uncond, nocond = (torch.randn(1, 4, 6, 6, generator=g) for _ in range(3))
    out = perp_neg_combine(cond, uncond, nocond, 0.7, 5.0)
    p, n = (cond - nocond).flatten(), (uncond - nocond).flatten()
    perp = n - (n @ p) / (p @ p) * p
    assert abs(float(perp @ p)) < 1e-3
    torch.testing.assert_close(out.flatten(), nocond.flatten() + 5.0 * (p - 0.7 * perp), rtol=1e-5, atol=1e-5)
    # a negative along the positive's guidance has no perpendicular part: CFG against the empty prompt
    along = nocond + 2.0 * (cond - nocond)
    torch.testing.assert_close(perp_neg_combine(cond, along, nocond, 0.7, 5.0), cfg(cond, nocond, 5.0),
                               rtol=1e-5, atol=1e-5)


def perp_neg_sample(model, guider_cls=True, neg_scale=0.7, sampler="euler"):
    sigmas = compute_sigmas(SD, "karras", 3)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    if guider_cls:
        guider = run_node(cs.PerpNegGuider, model=model, positive=prompt(0.3), negative=prompt(-0.2),
                          empty_conditioning=prompt(0.05), cfg=CFG, neg_scale=neg_scale)
    else:
        patched = run_node(gp.PerpNeg, model=model, empty_conditioning=prompt(0.05), neg_scale=neg_scale)
        guider = run_node(cs.CFGGuider, model=patched, positive=prompt(0.3), negative=prompt(-0.2), cfg=CFG)
    return sample_custom(guider, NoiseSource(1), SamplerChoice(sampler), sigmas, latent)[0]["samples"]


def test_perp_neg_guider_and_node_agree_and_follow_the_formula():
    from graphflow.sampling.guidance import PerpNegGuider
    from graphflow.sampling.model_sampling import ModelDenoiser
    from graphflow.sampling import prepare_conds
    model = FakeModel(structured_eps)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    sigma = torch.tensor([2.0])

    def prepare(c, negative=False):
        return prepare_conds(c, model, x.shape, x.device, negative=negative)
    guider = PerpNegGuider(model, prompt(0.3), prompt(-0.2), prompt(0.05), CFG, 0.7)
    got = guider.denoiser(ModelDenoiser(model, SD), prepare)(x, sigma)
    single = [cs_run(model, prompt(v), x, sigma) for v in (0.3, -0.2, 0.05)]
    torch.testing.assert_close(got, perp_neg_combine(*single, 0.7, CFG), rtol=1e-5, atol=1e-5)
    assert model.unet.calls[0]["x"].shape[0] == 3  # the three prompts in one batched call
    torch.testing.assert_close(perp_neg_sample(model), perp_neg_sample(model, guider_cls=False), rtol=1e-5, atol=1e-5)


def cs_run(model, conditioning, x, sigma):
    from graphflow.sampling.guidance import CFGGuider
    from graphflow.sampling.model_sampling import ModelDenoiser
    from graphflow.sampling import prepare_conds

    def prepare(c, negative=False):
        return prepare_conds(c, model, x.shape, x.device, negative=negative)
    return CFGGuider(model, conditioning, [], 1.0).denoiser(ModelDenoiser(model, SD), prepare)(x, sigma)


def test_perp_neg_guider_at_neg_scale_zero_is_cfg_against_the_empty_prompt():
    model = FakeModel(structured_eps)
    sigmas = compute_sigmas(SD, "karras", 3)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    guider = run_node(cs.CFGGuider, model=model, positive=prompt(0.3), negative=prompt(0.05), cfg=CFG)
    plain = sample_custom(guider, NoiseSource(1), SamplerChoice("euler"), sigmas, latent)[0]["samples"]
    model.unet.calls.clear()
    torch.testing.assert_close(perp_neg_sample(model, neg_scale=0.0), plain, rtol=1e-5, atol=1e-5)
    assert all(call["x"].shape[0] == 2 for call in model.unet.calls)  # the negative was not evaluated


def test_euler_cfgpp_node_versions():
    regular = run_node(cs.SamplerEulerCFGpp, variant="regular")
    alternative = run_node(cs.SamplerEulerCFGpp, variant="alternative")
    assert regular == SamplerChoice("euler_cfg_pp")
    model = FakeModel(structured_eps)
    # equal prompts: D_uncond = D_cfg, so the alternative slope is plain Euler's
    same = dict(positive=0.3, negative=0.3)
    torch.testing.assert_close(sampled(model, 2.0, alternative.name, **same), sampled(model, 2.0, "euler", **same),
                               rtol=1e-5, atol=1e-5)
    assert (sampled(model, 2.0, alternative.name) - sampled(model, 2.0, "euler")).abs().max() > 1e-3


def test_euler_cfgpp_alternative_step_in_closed_form():
    model = FakeModel(structured_eps)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    out, cond, uncond, _ = guided_once(model, x=x, sigma=3.0)

    class Denoiser:
        def __call__(self, x_, sigma_, post_cfg=None):
            return guided_once(model, x=x_, sigma=float(sigma_[0]))[0] if post_cfg is None else \
                post_cfg({"denoised": out, "uncond_denoised": uncond})
    stepped = sp.sample_euler_cfg_pp_alternative(Denoiser(), x, torch.tensor([3.0, 1.0]))
    want = x + (x - out + uncond - out) / 3.0 * (1.0 - 3.0)
    torch.testing.assert_close(stepped, want)


def test_a_comfyui_graph_with_the_guidance_nodes_runs_on_the_demo_model():
    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.workflow import parse_workflow

    def link(node, index=0):
        return [str(node), index]
    g = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "graphflow-demo.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": link(1, 1)}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blue", "clip": link(1, 1)}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": link(1, 1)}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CFGZeroStar", "inputs": {"model": link(1)}},
        "7": {"class_type": "CFGNorm", "inputs": {"model": link(6), "strength": 1.0}},
        "8": {"class_type": "TCFG", "inputs": {"model": link(7)}},
        "9": {"class_type": "Mahiro", "inputs": {"model": link(8)}},
        "10": {"class_type": "FreSca", "inputs": {"model": link(9), "scale_low": 1.0, "scale_high": 1.25,
                                                   "freq_cutoff": 20}},
        "11": {"class_type": "RenormCFG", "inputs": {"model": link(10), "cfg_trunc": 100, "renorm_cfg": 1.0}},
        "12": {"class_type": "PerpNegGuider", "inputs": {"model": link(11), "positive": link(2), "negative": link(3),
                                                         "empty_conditioning": link(4), "cfg": 3.0, "neg_scale": 1.0}},
        "13": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
        "14": {"class_type": "SamplerEulerCFGpp", "inputs": {"version": "alternative"}},
        "15": {"class_type": "BasicScheduler", "inputs": {"model": link(1), "scheduler": "karras", "steps": 3,
                                                          "denoise": 1.0}},
        "16": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": link(13), "guider": link(12), "sampler": link(14), "sigmas": link(15), "latent_image": link(5)}},
        "17": {"class_type": "PerpNeg", "inputs": {"model": link(1), "empty_conditioning": link(4), "neg_scale": 1.0}},
        "18": {"class_type": "KSampler", "inputs": {"model": link(17), "seed": 5, "steps": 3, "cfg": 3.0,
                                                    "sampler_name": "euler", "scheduler": "karras", "denoise": 1.0,
                                                    "positive": link(2), "negative": link(3), "latent_image": link(5)}},
    }
    registry = Registry().load_builtin()
    result = Executor(registry).run(parse_workflow(g, registry), outputs=["16", "18"])
    assert result.ok, result.error or result.problems
    for node_id in ("16", "18"):
        out = result.values[node_id][0]["samples"]
        assert out.shape == (1, 4, 8, 8) and torch.isfinite(out).all() and out.abs().max() > 0.05


def test_rescale_cfg_and_renorm_cfg_share_comfyuis_one_slot_the_last_wins():
    # ComfyUI's sampler_cfg_function holds one function: the node applied last decides
    from graphflow.sampling.guidance import rescaled_cfg
    from nodes.model_sampling import RescaleCFG
    model = FakeModel(structured_eps)
    _, cond, uncond, x = guided_once(model)
    sigma = torch.full((2,), 3.0)
    renorm_last = run_node(gp.RenormCFG, model=run_node(RescaleCFG, model=model, multiplier=0.7),
                           cfg_trunc=100.0, renorm_cfg=1.0)
    guided = cfg(cond, uncond)
    limit, norm = cond.flatten(1).norm(dim=1), guided.flatten(1).norm(dim=1)
    torch.testing.assert_close(guided_once(renorm_last)[0], guided * (limit / norm).reshape(-1, 1, 1, 1),
                               rtol=1e-4, atol=1e-5)
    rescale_last = run_node(RescaleCFG, model=run_node(gp.RenormCFG, model=model, cfg_trunc=100.0, renorm_cfg=1.0),
                            multiplier=0.7)
    torch.testing.assert_close(guided_once(rescale_last)[0], rescaled_cfg(x, sigma, cond, uncond, CFG, 0.7),
                               rtol=1e-4, atol=1e-5)
