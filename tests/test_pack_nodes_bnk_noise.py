"""BlenderNeko's ComfyUI_Noise (nodes/pack_nodes_bnk_noise.py): Noisy Latent Image against torch's
seeded generator as the pack calls it, Slerp Latents against the slerp formula computed here, Get
Sigma against our scheduler's sigmas, Inject Noise's formula and mask, the Unsampler against Euler
steps over the flipped sigmas computed here on a model whose prediction is known in closed form,
and on the demo model (unsample, then sample back without added noise: the image comes back); a
UI-format save and an API prompt under the pack's class names, and export round trips."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from graphflow.choices import SAMPLER_NAMES
from graphflow.comfy_format import custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.sampling import compute_sigmas, model_sampling_for
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_bnk_noise import UNSAMPLER_REFUSED, unsampling_sigmas
from sampling_fakes import FakeModel, prompt
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

DEMO = "graphflow-demo.safetensors"
SD1_SCALE = 0.18215


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def _pack_noise(seed, shape, device="cpu"):
    """The pack's Noisy Latent Image: the global generator seeded, one randn of the batch in float32
    (the global RNG state is put back afterwards)."""
    with torch.random.fork_rng(devices=[device] if device != "cpu" else []):
        torch.manual_seed(seed)
        return torch.randn(shape, dtype=torch.float32, device=device).cpu()


def _latent(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# -- Noisy Latent Image ------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 42, 2 ** 63 + 5, 2 ** 64 - 1])
def test_noisy_latent_image_is_torchs_seeded_randn(registry, seed):
    got = call(registry, "NoisyLatentImage", source="CPU", seed=seed, width=72, height=64, batch_size=3)["samples"]
    assert got.shape == (3, 4, 8, 9) and got.dtype == torch.float32
    assert torch.equal(got, _pack_noise(seed, (3, 4, 8, 9)))


def test_noisy_latent_image_gpu_source(registry, caplog):
    got = call(registry, "NoisyLatentImage", source="GPU", seed=7, width=64, height=64, batch_size=2)["samples"]
    if torch.cuda.is_available():  # the CUDA generator, as the pack on an NVIDIA card
        assert torch.equal(got, _pack_noise(7, (2, 4, 8, 8), "cuda"))
    else:  # drawn on the CPU instead, and said so
        assert torch.equal(got, _pack_noise(7, (2, 4, 8, 8)))
        assert "no CUDA device" in caplog.text


def test_noisy_latent_image_is_ksamplers_noise_and_get_sigma_its_strength(registry):
    """The variations recipe: noise injected at Get Sigma's strength from start_at_step to the end,
    then sampled from start_at_step without added noise, is KSampler Advanced adding that seed's
    noise at start_at_step itself (the noise is KSampler's; the sigma in the latent's scale)."""
    model = FakeModel(lambda x, t, c, y: 0.3 * x + 0.1 * c.float().mean())
    latent = {"samples": _latent(2, 4, 8, 8, seed=1)}
    common = dict(model=model, steps=10, cfg=2.0, sampler_name="euler", scheduler="karras", positive=prompt(0.5),
                  negative=prompt(-0.2), start_at_step=3, end_at_step=10000, return_with_leftover_noise="disable")
    want = call(registry, "KSamplerAdvanced", add_noise="enable", noise_seed=11, latent_image=latent, **common)
    noise = call(registry, "NoisyLatentImage", source="CPU", seed=11, width=64, height=64, batch_size=2)
    strength = call(registry, "GetSigma", model=model, sampler_name="euler", scheduler="karras", steps=10,
                    start_at_step=3, end_at_step=10)
    noised = call(registry, "InjectNoise", latents=latent, strength=strength, noise=noise)
    got = call(registry, "KSamplerAdvanced", add_noise="disable", noise_seed=0, latent_image=noised, **common)
    # one rounding apart: the noise crosses the scale factor twice
    torch.testing.assert_close(got["samples"], want["samples"], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(got["samples"], latent["samples"], atol=0.1)


# -- Duplicate Batch Index -----------------------------------------------------------------------

def test_duplicate_batch_index_repeats_one_latent(registry):
    samples = _latent(3, 4, 8, 8)
    mask = torch.rand(3, 64, 64)
    out = call(registry, "DuplicateBatchIndex", latents={"samples": samples, "noise_mask": mask}, batch_index=1,
               batch_size=4)
    assert torch.equal(out["samples"], samples[1:2].expand(4, -1, -1, -1))
    assert out["noise_mask"] is mask  # kept as it was, as the pack
    past_the_end = call(registry, "DuplicateBatchIndex", latents={"samples": samples}, batch_index=9, batch_size=2)
    assert torch.equal(past_the_end["samples"], samples[2:3].expand(2, -1, -1, -1))
    picked = call(registry, "DuplicateBatchIndex", latents={"samples": samples, "batch_index": [4, 6, 9]},
                  batch_index=2, batch_size=3)
    assert picked["batch_index"] == [9, 9, 9]
    with pytest.raises(NodeInputError) as e:
        call(registry, "DuplicateBatchIndex", latents={"samples": samples[:0]}, batch_index=0, batch_size=2)
    assert e.value.input == "latents"


# -- Slerp Latents -------------------------------------------------------------------------------

def _slerp_reference(t, a, b):
    """Slerp of each image's flattened latent, in float64 numpy."""
    a64, b64 = a.double().numpy().reshape(len(a), -1), b.double().numpy().reshape(len(b), -1)
    out = []
    for x, y in zip(a64, b64):
        omega = np.arccos(np.clip(np.dot(x / np.linalg.norm(x), y / np.linalg.norm(y)), -1, 1))
        out.append(np.sin((1 - t) * omega) / np.sin(omega) * x + np.sin(t * omega) / np.sin(omega) * y)
    return torch.from_numpy(np.stack(out)).float().reshape(a.shape)


@pytest.mark.parametrize("factor", [0.0, 0.05, 0.5, 0.9, 1.0])
def test_slerp_follows_the_formula(registry, factor):
    a, b = _latent(2, 4, 8, 8, seed=1), _latent(2, 4, 8, 8, seed=2)
    out = call(registry, "SlerpLatents", latents1={"samples": a, "batch_index": [3, 4]}, factor=factor,
               latents2={"samples": b})
    torch.testing.assert_close(out["samples"], _slerp_reference(factor, a, b), rtol=1e-4, atol=1e-5)
    assert out["batch_index"] == [3, 4]  # latents1's entries
    # two unit noises slerped stay about unit length; a linear mix at 0.5 would shrink them to ~0.71
    assert abs(float(out["samples"].std()) - 1) < 0.1


def test_slerp_mask_mixes_only_where_it_is_set(registry):
    a, b = _latent(2, 4, 8, 8, seed=1), _latent(2, 4, 8, 8, seed=2)
    mask = torch.zeros(1, 64, 64)
    mask[:, :, :32] = 1.0  # the left half (the bilinear resize to 8 x 8 keeps the halves exact)
    out = call(registry, "SlerpLatents", latents1={"samples": a}, factor=0.3, latents2={"samples": b},
               mask=mask)["samples"]
    slerped = _slerp_reference(0.3, a, b)
    torch.testing.assert_close(out[..., :4], slerped[..., :4], rtol=1e-4, atol=1e-5)
    assert torch.equal(out[..., 4:], a[..., 4:])
    with pytest.raises(NodeInputError) as e:
        call(registry, "SlerpLatents", latents1={"samples": a}, factor=0.3, latents2={"samples": b},
             mask=torch.ones(3, 64, 64))
    assert e.value.input == "mask"


def test_slerp_edge_cases_pass_latents1_on(registry, caplog):
    a = _latent(1, 4, 8, 8, seed=1)
    assert torch.equal(call(registry, "SlerpLatents", latents1={"samples": a}, factor=0.5)["samples"], a)
    with caplog.at_level(logging.WARNING):
        out = call(registry, "SlerpLatents", latents1={"samples": a}, factor=0.5,
                   latents2={"samples": _latent(1, 4, 8, 16)})
    assert torch.equal(out["samples"], a) and "differ in shape" in caplog.text
    # the same direction (the angle 0, where the formula divides 0 by 0): the linear mix
    three_a = 3 * a
    parallel = call(registry, "SlerpLatents", latents1={"samples": a}, factor=0.25, latents2={"samples": three_a})
    torch.testing.assert_close(parallel["samples"], 0.75 * a + 0.25 * 3 * a)
    # the inputs are not written (the slerp runs on them as they are, uncopied)
    assert torch.equal(a, _latent(1, 4, 8, 8, seed=1)) and torch.equal(three_a, 3 * a)
    b, c = _latent(2, 4, 8, 8, seed=3), _latent(2, 4, 8, 8, seed=4)
    b_before, c_before = b.clone(), c.clone()
    call(registry, "SlerpLatents", latents1={"samples": b}, factor=0.6, latents2={"samples": c})
    assert torch.equal(b, b_before) and torch.equal(c, c_before)


# -- Get Sigma -----------------------------------------------------------------------------------

@pytest.mark.parametrize("scheduler", ["karras", "normal", "simple"])
@pytest.mark.parametrize("start,end", [(0, 20), (0, 10000), (5, 12), (7, 3)])
def test_get_sigma_is_the_schedules_sigma_difference_in_latent_scale(registry, scheduler, start, end):
    model = FakeModel(lambda x, t, c, y: x)
    sigmas = compute_sigmas(model_sampling_for(model), scheduler, 20)
    end_step = min(20, end)
    start_step = min(start, end_step)
    want = (float(sigmas[start_step]) - float(sigmas[end_step])) / SD1_SCALE
    got = call(registry, "GetSigma", model=model, sampler_name="euler", scheduler=scheduler, steps=20,
               start_at_step=start, end_at_step=end)
    assert isinstance(got, float) and math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9)
    if start == 0 and end >= 20:
        assert math.isclose(got, float(sigmas[0]) / SD1_SCALE, rel_tol=1e-6)  # the whole schedule: sigma_max


def test_get_sigma_drops_the_penultimate_sigma_for_dpm_2_and_is_0_without_steps(registry):
    model = FakeModel(lambda x, t, c, y: x)
    longer = compute_sigmas(model_sampling_for(model), "karras", 11)  # dpm_2 / uni_pc: steps + 1, one dropped
    sigmas = torch.cat([longer[:-2], longer[-1:]])
    got = call(registry, "GetSigma", model=model, sampler_name="dpm_2", scheduler="karras", steps=10,
               start_at_step=2, end_at_step=9)
    assert math.isclose(got, (float(sigmas[2]) - float(sigmas[9])) / SD1_SCALE, rel_tol=1e-6)
    assert call(registry, "GetSigma", model=model, sampler_name="euler", scheduler="karras", steps=0,
                start_at_step=0, end_at_step=10) == 0.0



@pytest.mark.parametrize("scheduler,steps", [("beta", 200), ("ddim_uniform", 10000)])
def test_get_sigma_on_a_schedule_shorter_than_steps(registry, scheduler, steps):
    """beta drops repeated timesteps at 200 steps and ddim_uniform stops at the model's 1000 (the
    node's default steps and end_at_step, 10000): end_at_step is held to the schedule's last sigma."""
    model = FakeModel(lambda x, t, c, y: x)
    sigmas = compute_sigmas(model_sampling_for(model), scheduler, steps)
    assert len(sigmas) < steps + 1  # the case itself
    whole = call(registry, "GetSigma", model=model, sampler_name="euler", scheduler=scheduler, steps=steps,
                 start_at_step=0, end_at_step=10000)
    assert math.isclose(whole, (float(sigmas[0]) - float(sigmas[-1])) / SD1_SCALE, rel_tol=1e-6)
    past_the_end = call(registry, "GetSigma", model=model, sampler_name="euler", scheduler=scheduler, steps=steps,
                        start_at_step=steps, end_at_step=steps)
    assert past_the_end == 0.0  # start held to the held end
    inside = call(registry, "GetSigma", model=model, sampler_name="euler", scheduler=scheduler, steps=steps,
                  start_at_step=3, end_at_step=len(sigmas) - 2)
    assert math.isclose(inside, (float(sigmas[3]) - float(sigmas[-2])) / SD1_SCALE, rel_tol=1e-6)


# -- Inject Noise --------------------------------------------------------------------------------

def test_inject_noise_formula_and_mask(registry, caplog):
    latents, noise = _latent(2, 4, 8, 8, seed=1), _latent(2, 4, 8, 8, seed=2)
    out = call(registry, "InjectNoise", latents={"samples": latents, "noise_mask": torch.ones(8, 8)}, strength=2.5,
               noise={"samples": noise})
    torch.testing.assert_close(out["samples"], latents + 2.5 * noise)
    assert "noise_mask" in out
    mask = torch.full((64, 64), 0.25)  # one mask for the batch, a quarter strength everywhere
    masked = call(registry, "InjectNoise", latents={"samples": latents}, strength=2.5, noise={"samples": noise},
                  mask=mask)["samples"]
    torch.testing.assert_close(masked, latents + 0.25 * 2.5 * noise)
    assert torch.equal(call(registry, "InjectNoise", latents={"samples": latents}, strength=2.5)["samples"], latents)
    with caplog.at_level(logging.WARNING):
        unchanged = call(registry, "InjectNoise", latents={"samples": latents}, strength=2.5,
                         noise={"samples": noise[:1]})
    assert torch.equal(unchanged["samples"], latents) and "differ in shape" in caplog.text
    with pytest.raises(NodeInputError) as e:
        call(registry, "InjectNoise", latents={"samples": latents}, strength=1.0, noise={"samples": noise},
             mask=torch.ones(2, 3, 4, 64))
    assert e.value.input == "mask"



def _float_into(registry, value, node, linked=True):
    """value, from a PrimitiveFloat linked in or typed in, as Inject Noise's strength or Slerp
    Latents' factor; the run's result."""
    from graphflow.executor import Executor

    noise = {"class_type": "BNK_NoisyLatentImage", "inputs": {"source": "CPU", "seed": 1, "width": 64, "height": 64,
                                                            "batch_size": 1}}
    other = {**noise, "inputs": {**noise["inputs"], "seed": 2}}
    given = ["1", 0] if linked else value
    uses = {"inject": {"class_type": "BNK_InjectNoise", "inputs": {"latents": ["2", 0], "strength": given,
                                                                   "noise": ["3", 0]}},
            "slerp": {"class_type": "BNK_SlerpLatent", "inputs": {"latents1": ["2", 0], "factor": given,
                                                                  "latents2": ["3", 0]}}}
    api = {"1": {"class_type": "PrimitiveFloat", "inputs": {"value": value}}, "2": noise, "3": other, "4": uses[node]}
    return Executor(registry).run(parse_workflow(api, registry), outputs=["4"])


def test_a_linked_strength_or_factor_goes_past_the_widgets_max_as_in_the_pack(registry):
    """ComfyUI checks no bounds on a linked value: Get Sigma's ~921 for an EDM model (CosXL) into
    Inject Noise, a factor of 1.5 into Slerp Latents (the formula extrapolates); typed in, the
    widget's bounds hold."""
    first, second = _pack_noise(1, (1, 4, 8, 8)), _pack_noise(2, (1, 4, 8, 8))
    injected = _float_into(registry, 921.0, "inject")
    assert injected.ok, injected.error
    torch.testing.assert_close(injected.values["4"][0]["samples"], first + 921.0 * second)
    slerped = _float_into(registry, 1.5, "slerp")
    assert slerped.ok, slerped.error
    torch.testing.assert_close(slerped.values["4"][0]["samples"], _slerp_reference(1.5, first, second), rtol=1e-4,
                               atol=1e-5)
    negative = _float_into(registry, -1.0, "inject")  # the min still holds
    assert not negative.ok and negative.error["input"] == "strength"
    for value, node, name in ((300.0, "inject", "strength"), (1.5, "slerp", "factor")):
        typed = _float_into(registry, value, node, linked=False)
        assert not typed.ok and any(p.node_id == "4" and p.input == name for p in typed.problems), typed.problems


def test_masks_fewer_than_latents_repeat_whole(registry):
    """2 masks for 3 latents: the pack's order, [m0, m1, m0] (repeated whole, then cut to the batch)."""
    latents, noise = _latent(3, 4, 8, 8, seed=1), _latent(3, 4, 8, 8, seed=2)
    masks = torch.stack([torch.full((64, 64), 0.25), torch.full((64, 64), 0.75)])
    out = call(registry, "InjectNoise", latents={"samples": latents}, strength=2.0, noise={"samples": noise},
               mask=masks)["samples"]
    per_latent = torch.tensor([0.25, 0.75, 0.25]).reshape(3, 1, 1, 1)
    torch.testing.assert_close(out, latents + per_latent * 2.0 * noise)


def test_too_many_masks_are_refused_before_any_is_resized(registry, monkeypatch):
    """2000 one-pixel masks for one 256 x 256 latent: counted and refused before the resize, which
    would first make each of them latent-sized (half a GiB here)."""
    import torch.nn.functional as F

    def no_resize(*args, **kwargs):
        raise AssertionError("the masks were resized before they were counted")

    monkeypatch.setattr(F, "interpolate", no_resize)
    latents, other = {"samples": torch.zeros(1, 4, 256, 256)}, {"samples": torch.ones(1, 4, 256, 256)}
    for node, inputs in (("InjectNoise", dict(latents=latents, strength=1.0, noise=other)),
                         ("SlerpLatents", dict(latents1=latents, factor=0.5, latents2=other))):
        with pytest.raises(NodeInputError) as e:
            call(registry, node, mask=torch.ones(2000, 1, 1), **inputs)
        assert e.value.input == "mask" and "2000 masks for a batch of 1" in str(e.value)


# -- Unsampler -----------------------------------------------------------------------------------

def _linear_eps(x_in, t, context, y):
    """eps = k * x_in with k the prompt's mean: the denoised estimate is then x - sigma k x / sqrt(sigma^2 + 1)."""
    return context.float().mean(dim=(1, 2)).reshape(-1, 1, 1, 1) * x_in


def _euler_unsample(latent, sigmas, k):
    """Euler's steps in model space over the given (rising) sigmas with eps = k * x / sqrt(sigma^2 + 1)."""
    x = latent.double() * SD1_SCALE
    for sigma, sigma_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        denoised = x - sigma * k * x / math.sqrt(sigma ** 2 + 1)
        x = x + (x - denoised) / sigma * (sigma_next - sigma)
    return (x / SD1_SCALE).float()


@pytest.mark.parametrize("cfg,end_at_step", [(1.0, 0), (2.5, 0), (2.5, 4), (1.0, 50)])
def test_unsampler_is_euler_over_the_flipped_sigmas(registry, cfg, end_at_step):
    model = FakeModel(_linear_eps)
    latent = _latent(2, 4, 8, 8, seed=5)
    steps = 12
    sigmas = compute_sigmas(model_sampling_for(model), "karras", steps).double().flip(0) + 0.0001
    sigmas = sigmas[:steps - min(end_at_step, steps - 1) + 1]
    k_pos, k_neg = 0.6, -0.4
    want = _euler_unsample(latent, sigmas, k_neg + cfg * (k_pos - k_neg))
    out = call(registry, "Unsampler", model=model, steps=steps, end_at_step=end_at_step, cfg=cfg,
               sampler_name="euler", scheduler="karras", normalize="disable", positive=prompt(k_pos),
               negative=prompt(k_neg), latent_image={"samples": latent, "batch_index": [0, 1]})
    torch.testing.assert_close(out["samples"], want, rtol=1e-4, atol=1e-4)
    assert out["batch_index"] == [0, 1]
    # the sigmas themselves: every one offset (not only the flipped 0, as FlipSigmas does), cut at the top
    torch.testing.assert_close(unsampling_sigmas(model, "euler", "karras", steps, end_at_step).double(), sigmas,
                               rtol=0, atol=1e-6)
    assert float(sigmas[0]) == pytest.approx(0.0001) and len(sigmas) == steps - min(end_at_step, steps - 1) + 1


def test_unsampler_normalize_and_noise_mask(registry):
    model = FakeModel(_linear_eps)
    latent = _latent(1, 4, 8, 8, seed=5)
    inputs = dict(model=model, steps=6, end_at_step=0, cfg=1.0, sampler_name="euler", scheduler="normal",
                  positive=prompt(0.6), negative=prompt(0.0))
    plain = call(registry, "Unsampler", normalize="disable", latent_image={"samples": latent}, **inputs)["samples"]
    normal = call(registry, "Unsampler", normalize="enable", latent_image={"samples": latent}, **inputs)["samples"]
    torch.testing.assert_close(normal, (plain - plain.mean()) / plain.std())
    mask = torch.zeros(64, 64)
    mask[:, 32:] = 1.0
    masked = call(registry, "Unsampler", normalize="disable", latent_image={"samples": latent, "noise_mask": mask},
                  **inputs)["samples"]
    torch.testing.assert_close(masked[..., :4], latent[..., :4], rtol=1e-5, atol=1e-5)  # known: kept
    torch.testing.assert_close(masked[..., 4:], plain[..., 4:], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("sampler_name", SAMPLER_NAMES)
def test_unsampler_refuses_exactly_the_samplers_that_cant_run_on_rising_sigmas(registry, sampler_name):
    """Every sampler run on the Unsampler's flipped sigmas with the closed-form model: one that gives
    a non-finite result or fails there is refused by name, every other runs."""
    from graphflow.sampling.guidance import CFGGuider
    from graphflow.sampling.noise import NoiseSource
    from graphflow.sampling.samplers import SamplerChoice
    from nodes.custom_sampling import _run

    assert set(UNSAMPLER_REFUSED) <= set(SAMPLER_NAMES)  # no stale name
    model = FakeModel(_linear_eps)
    latent = {"samples": _latent(1, 4, 8, 8, seed=5)}
    sigmas = unsampling_sigmas(model, sampler_name, "karras", 4, 0)
    try:
        out, _ = _run(CFGGuider(model, prompt(0.6), prompt(-0.4), 1.0), NoiseSource(0, enabled=False),
                      SamplerChoice(sampler_name), sigmas, latent)
        runs = bool(torch.isfinite(out["samples"]).all())
    except Exception:  # noqa: BLE001 - sa_solver's math domain error, say
        runs = False
    inputs = dict(model=model, steps=4, end_at_step=0, cfg=1.0, sampler_name=sampler_name, scheduler="karras",
                  normalize="disable", positive=prompt(0.6), negative=prompt(-0.4), latent_image=latent)
    if runs:
        assert sampler_name not in UNSAMPLER_REFUSED
        assert torch.isfinite(call(registry, "Unsampler", **inputs)["samples"]).all()
    else:
        assert sampler_name in UNSAMPLER_REFUSED
        with pytest.raises(NodeInputError) as e:
            call(registry, "Unsampler", **inputs)
        assert e.value.input == "sampler_name" and "rising sigmas" in str(e.value)


def test_unsampler_normalize_leaves_a_constant_result_as_it_is(registry, caplog):
    """A model that predicts no noise unsamples zeros to zeros: there is no spread to scale to 1
    (the pack divides by 0 and gives NaN); passed on as it is, with a warning."""
    model = FakeModel(lambda x, t, c, y: 0 * x)
    zeros = torch.zeros(1, 4, 8, 8)
    with caplog.at_level(logging.WARNING):
        out = call(registry, "Unsampler", model=model, steps=2, end_at_step=0, cfg=1.0, sampler_name="euler",
                   scheduler="karras", normalize="enable", positive=prompt(0.5), negative=prompt(0.1),
                   latent_image={"samples": zeros})["samples"]
    assert torch.equal(out, zeros) and "normalize skipped" in caplog.text



def _demo_graph(steps=6):
    """The unsampling recipe on the demo model, API format: an image's latent, unsampled, then
    sampled back without added noise at cfg 1 (dpmpp_2m: its inversion at 6 steps is closer than
    Euler's at 25, and each step is one run of the model)."""
    link = lambda node, index=0: [str(node), index]  # noqa: E731
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": DEMO}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle on a blue background",
                                                         "clip": link(1, 1)}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": link(1, 1)}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": link(1), "seed": 3, "steps": steps, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
            "positive": link(2), "negative": link(3), "latent_image": link(4), "denoise": 1.0}},
        "6": {"class_type": "BNK_Unsampler", "inputs": {
            "model": link(1), "steps": steps, "end_at_step": 0, "cfg": 1.0, "sampler_name": "dpmpp_2m",
            "scheduler": "normal", "normalize": "disable", "positive": link(2), "negative": link(3),
            "latent_image": link(5)}},
        "7": {"class_type": "KSamplerAdvanced", "inputs": {
            "model": link(1), "add_noise": "disable", "noise_seed": 0, "steps": steps, "cfg": 1.0,
            "sampler_name": "dpmpp_2m", "scheduler": "normal", "positive": link(2), "negative": link(3),
            "latent_image": link(6), "start_at_step": 0, "end_at_step": 10000,
            "return_with_leftover_noise": "disable"}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": link(5), "vae": link(1, 2)}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": link(7), "vae": link(1, 2)}},
    }


def test_unsample_then_resample_gives_the_image_back_on_the_demo_model(registry):
    result = run_graph(registry, _demo_graph(), ["5", "6", "7", "8", "9"])
    values = result.values
    original = values["5"][0]["samples"]
    unsampled = values["6"][0]["samples"]
    back = values["7"][0]["samples"]
    image, image_back = values["8"][0], values["9"][0]
    # the unsampled latent is noise-like: about the schedule's top sigma in spread (in model space)
    model, _, vae = values["1"]
    assert float((unsampled * model.latent_format.scale_factor).std()) > 3.0
    rel = float((back - original).norm() / original.norm())
    pixel_error = float((image_back - image).abs().mean())
    assert rel < 0.15, rel  # 0.08 here: the inversion is not exact
    assert pixel_error < 0.02, pixel_error  # 0.007 here
    # a bound that means something: other noise of the same spread, sampled the same way (the
    # graph's own model and prompts reused), gives another picture
    other_noise = _pack_noise(99, tuple(unsampled.shape)) * unsampled.std()
    sampler = _demo_graph()["7"]["inputs"]
    other = call(registry, "KSamplerAdvanced", model=model, positive=values["2"][0], negative=values["3"][0],
                 latent_image={"samples": other_noise},
                 **{k: v for k, v in sampler.items() if k not in ("model", "positive", "negative", "latent_image")})
    other_rel = float((other["samples"] - original).norm() / original.norm())
    assert other_rel > 3 * rel, (other_rel, rel)
    assert float((call(registry, "VAEDecode", samples=other, vae=vae) - image).abs().mean()) > 3 * pixel_error


# -- UI save, API prompt, export -----------------------------------------------------------------

def test_ui_save_of_the_variations_recipe_reads_runs_and_round_trips(registry):
    """As the pack's example lays it out: a seed's noise duplicated, other noise slerped in, injected
    into an empty latent at Get Sigma's strength (a widget turned into an input), sampled without
    added noise; Noisy Latent Image saves control_after_generate after its seed."""
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", [DEMO], outputs=[("MODEL", "MODEL", [1, 2]), ("CLIP", "CLIP", [3, 4]),
                                                              ("VAE", "VAE", [])]),
        ui_node(2, "CLIPTextEncode", ["a red circle"], [("clip", "CLIP", 3, False)],
                [("CONDITIONING", "CONDITIONING", [5])]),
        ui_node(3, "CLIPTextEncode", [""], [("clip", "CLIP", 4, False)], [("CONDITIONING", "CONDITIONING", [6])]),
        ui_node(4, "BNK_NoisyLatentImage", ["CPU", 5, "fixed", 64, 64, 1], outputs=[("LATENT", "LATENT", [7])]),
        ui_node(5, "BNK_DuplicateBatchIndex", [0, 2], [("latents", "LATENT", 7, False)],
                [("LATENT", "LATENT", [8])]),
        ui_node(6, "BNK_NoisyLatentImage", ["CPU", 6, "fixed", 64, 64, 2], outputs=[("LATENT", "LATENT", [9])]),
        ui_node(7, "BNK_SlerpLatent", [0.05], [("latents1", "LATENT", 8, False), ("latents2", "LATENT", 9, False),
                                               ("mask", "MASK", None, False)], [("LATENT", "LATENT", [10])]),
        ui_node(8, "BNK_GetSigma", ["euler", "karras", 8, 0, 8], [("model", "MODEL", 2, False)],
                [("FLOAT", "FLOAT", [11])]),
        ui_node(9, "EmptyLatentImage", [64, 64, 2], outputs=[("LATENT", "LATENT", [12])]),
        ui_node(10, "BNK_InjectNoise", [1.0], [("latents", "LATENT", 12, False), ("noise", "LATENT", 10, False),
                                              ("mask", "MASK", None, False), ("strength", "FLOAT", 11, True)],
                [("LATENT", "LATENT", [13])]),
        ui_node(11, "KSamplerAdvanced", ["disable", 0, "fixed", 8, 4.0, "euler", "karras", 0, 10000, "disable"],
                [("model", "MODEL", 1, False), ("positive", "CONDITIONING", 5, False),
                 ("negative", "CONDITIONING", 6, False), ("latent_image", "LATENT", 13, False)],
                [("LATENT", "LATENT", [])]),
    ]
    links = [[1, 1, 0, 11, 0, "MODEL"], [2, 1, 0, 8, 0, "MODEL"], [3, 1, 1, 2, 0, "CLIP"], [4, 1, 1, 3, 0, "CLIP"],
             [5, 2, 0, 11, 1, "CONDITIONING"], [6, 3, 0, 11, 2, "CONDITIONING"], [7, 4, 0, 5, 0, "LATENT"],
             [8, 5, 0, 7, 0, "LATENT"], [9, 6, 0, 7, 1, "LATENT"], [10, 7, 0, 10, 1, "LATENT"],
             [11, 8, 0, 10, 3, "FLOAT"], [12, 9, 0, 10, 0, "LATENT"], [13, 10, 0, 11, 3, "LATENT"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["10", "11"])

    seed_noise = _pack_noise(5, (1, 4, 8, 8)).expand(2, -1, -1, -1)
    slerped = _slerp_reference(0.05, seed_noise, _pack_noise(6, (2, 4, 8, 8)))
    model = call(registry, "LoadCheckpoint", checkpoint=DEMO)[0]
    sigma_max = float(compute_sigmas(model_sampling_for(model), "karras", 8)[0])
    injected = result.values["10"][0]["samples"]
    torch.testing.assert_close(injected, slerped * sigma_max / model.latent_format.scale_factor, rtol=1e-4, atol=1e-4)
    assert result.values["11"][0]["samples"].shape == (2, 4, 8, 8)

    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert saved[4]["type"] == "BNK_NoisyLatentImage"
    assert saved[4]["widgets_values"] == ["CPU", 5, "fixed", 64, 64, 1]
    assert saved[5]["widgets_values"] == [0, 2]
    assert saved[7]["type"] == "BNK_SlerpLatent" and saved[7]["widgets_values"] == [0.05]
    assert saved[8]["widgets_values"] == ["euler", "karras", 8, 0, 8]
    assert saved[10]["type"] == "BNK_InjectNoise"
    assert any(i["name"] == "strength" and i.get("link") is not None for i in saved[10]["inputs"])


@pytest.mark.parametrize("widgets,want", [
    ([6, 1.0, "euler", "normal"], dict(steps=6, end_at_step=0, cfg=1.0, scheduler="normal", normalize="disable")),
    ([6, 2, 1.5, "euler", "karras", "enable"],
     dict(steps=6, end_at_step=2, cfg=1.5, scheduler="karras", normalize="enable")),
])
def test_ui_save_of_the_unsampler_reads_both_layouts_and_round_trips(registry, widgets, want):
    """Today's six widgets, and the pack's first Unsampler's four (steps, cfg, sampler, scheduler),
    read with today's defaults for the two it lacked (the whole schedule, not normalized); written
    back in today's layout."""
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", [DEMO], outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2, 3]),
                                                              ("VAE", "VAE", [])]),
        ui_node(2, "CLIPTextEncode", ["a red circle"], [("clip", "CLIP", 2, False)],
                [("CONDITIONING", "CONDITIONING", [4])]),
        ui_node(3, "CLIPTextEncode", [""], [("clip", "CLIP", 3, False)], [("CONDITIONING", "CONDITIONING", [5])]),
        ui_node(4, "BNK_NoisyLatentImage", ["CPU", 2, "fixed", 64, 64, 1], outputs=[("LATENT", "LATENT", [6])]),
        ui_node(5, "BNK_Unsampler", widgets, [("model", "MODEL", 1, False), ("positive", "CONDITIONING", 4, False),
                                              ("negative", "CONDITIONING", 5, False),
                                              ("latent_image", "LATENT", 6, False)], [("LATENT", "LATENT", [])]),
    ]
    links = [[1, 1, 0, 5, 0, "MODEL"], [2, 1, 1, 2, 0, "CLIP"], [3, 1, 1, 3, 0, "CLIP"],
             [4, 2, 0, 5, 1, "CONDITIONING"], [5, 3, 0, 5, 2, "CONDITIONING"], [6, 4, 0, 5, 3, "LATENT"]]
    graph = ui_graph(nodes, links)
    got = run_graph(registry, graph, ["5"]).values["5"][0]["samples"]
    model, clip = call(registry, "LoadCheckpoint", checkpoint=DEMO)[:2]
    expected = call(registry, "Unsampler", model=model, sampler_name="euler",
                    positive=call(registry, "CLIPEncode", clip=clip, text="a red circle"),
                    negative=call(registry, "CLIPEncode", clip=clip, text=""),
                    latent_image={"samples": _pack_noise(2, (1, 4, 8, 8))}, **want)["samples"]
    torch.testing.assert_close(got, expected)
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert saved[5]["type"] == "BNK_Unsampler"
    assert saved[5]["widgets_values"] == [want["steps"], want["end_at_step"], want["cfg"], "euler", want["scheduler"],
                                          want["normalize"]]


API_PROMPT = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": DEMO}},
    "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["1", 1]}},
    "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
    "4": {"class_type": "BNK_NoisyLatentImage", "inputs": {"source": "CPU", "seed": 8, "width": 64, "height": 64,
                                                           "batch_size": 2}},
    "5": {"class_type": "BNK_DuplicateBatchIndex", "inputs": {"latents": ["10", 0], "batch_index": 1, "batch_size": 2}},
    "6": {"class_type": "BNK_SlerpLatent", "inputs": {"latents1": ["5", 0], "factor": 0.4, "latents2": ["4", 0]}},
    "7": {"class_type": "BNK_GetSigma", "inputs": {"model": ["1", 0], "sampler_name": "euler", "scheduler": "normal",
                                                   "steps": 6, "start_at_step": 2, "end_at_step": 6}},
    "8": {"class_type": "BNK_InjectNoise", "inputs": {"latents": ["4", 0], "strength": ["7", 0], "noise": ["6", 0]}},
    "9": {"class_type": "BNK_Unsampler", "inputs": {
        "model": ["1", 0], "steps": 4, "end_at_step": 1, "cfg": 1.0, "sampler_name": "euler", "scheduler": "normal",
        "normalize": "enable", "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["8", 0]}},
    "10": {"class_type": "BNK_NoisyLatentImage", "inputs": {"source": "CPU", "seed": 9, "width": 64, "height": 64,
                                                            "batch_size": 3}},
}


def test_api_prompt_with_the_packs_classes_runs_and_round_trips(registry):
    result = run_graph(registry, API_PROMPT, ["9"])
    values = result.values
    noise = _pack_noise(8, (2, 4, 8, 8))
    assert torch.equal(values["4"][0]["samples"], noise)
    duplicated = _pack_noise(9, (3, 4, 8, 8))[1:2].expand(2, -1, -1, -1)
    assert torch.equal(values["5"][0]["samples"], duplicated)
    torch.testing.assert_close(values["6"][0]["samples"], _slerp_reference(0.4, duplicated, noise), rtol=1e-4,
                               atol=1e-5)
    model = call(registry, "LoadCheckpoint", checkpoint=DEMO)[0]
    sigmas = compute_sigmas(model_sampling_for(model), "normal", 6)
    scale = model.latent_format.scale_factor  # the demo model's own
    assert values["7"][0] == pytest.approx((float(sigmas[2]) - float(sigmas[6])) / scale, rel=1e-6)
    torch.testing.assert_close(values["8"][0]["samples"], noise + values["7"][0] * values["6"][0]["samples"])
    unsampled = values["9"][0]["samples"]
    assert abs(float(unsampled.mean())) < 1e-5 and abs(float(unsampled.std()) - 1) < 1e-5  # normalized
    api = export_api(parse_workflow(API_PROMPT, registry), registry)
    assert {k: v["class_type"] for k, v in api.items()} == {k: v["class_type"] for k, v in API_PROMPT.items()}
    for node_id, entry in API_PROMPT.items():
        assert api[node_id]["inputs"] == entry["inputs"], node_id


def test_the_packs_classes_are_named_whole():
    for name in ("BNK_NoisyLatentImage", "BNK_DuplicateBatchIndex", "BNK_SlerpLatent", "BNK_GetSigma",
                 "BNK_InjectNoise", "BNK_Unsampler"):
        assert custom_pack(name) == "ComfyUI_Noise"
    for other in ("BNK_TiledKSampler", "BNK_CLIPTextEncodeAdvanced", "BNK_CutoffBasePrompt", "BNK_Unsampler2"):
        assert custom_pack(other) != "ComfyUI_Noise"


def test_sizes_are_declared_before_running(registry):
    """Noisy Latent Image's size and batch, Duplicate Batch Index's batch and the Unsampler's steps
    are known to the resource limits, so a huge request is refused before it runs."""
    from graphflow.resource_limits import RunLimits
    from graphflow.validation import validate

    graph = dict(API_PROMPT)
    graph["4"] = {**API_PROMPT["4"], "inputs": {**API_PROMPT["4"]["inputs"], "width": 8192, "height": 8192}}
    graph["5"] = {**API_PROMPT["5"], "inputs": {**API_PROMPT["5"]["inputs"], "batch_size": 64}}
    graph["9"] = {**API_PROMPT["9"], "inputs": {**API_PROMPT["9"]["inputs"], "steps": 5000}}
    problems = validate(parse_workflow(graph, registry), registry, outputs=["9"],
                        limits=RunLimits(max_pixels=1024 * 1024, max_steps=1000, max_batch=32))
    found = {(p.node_id, p.input) for p in problems}
    assert {("4", "width"), ("5", "batch_size"), ("9", "steps")} <= found, problems


def test_an_empty_mask_is_refused_by_name():
    from nodes.pack_nodes_bnk_noise import latent_mask

    for empty in (torch.ones(0, 8, 8), torch.ones(2, 0, 8)):
        with pytest.raises(NodeInputError) as refused:
            latent_mask(empty, torch.zeros(4, 4, 8, 8))
        assert refused.value.input == "mask" and "empty" in str(refused.value)
