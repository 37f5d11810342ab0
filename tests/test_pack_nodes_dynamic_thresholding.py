"""sd-dynamic-thresholding's ComfyUI nodes (nodes/pack_nodes_dynamic_thresholding.py): the core math
against a numpy version written here from the pack's description (float64, numpy's quantile and
std), the schedule modes against their closed forms, the step's place in the run from the model
sampling's timestep (discrete and flow), the hook argument the engine now passes, sampling runs
(fake models and the demo checkpoint) that equal plain CFG when cfg is the mimic scale and differ
otherwise, the clear errors, and UI-format saves and API prompts with the pack's class names that run
and round-trip."""

import math

import numpy as np
import pytest
import torch

from graphflow.comfy_format import comfy_catalogue, custom_pack, export_api, export_ui
from graphflow.registry import Registry
from graphflow.sampling import FlowSchedule
from graphflow.sampling.pipeline import sample
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_dynamic_thresholding import MODES, dynamic_threshold, scheduled_scale, step_fraction
from flow_fakes import FakeFlowModel, gaussian_x0
from sampling_fakes import SD, FakeModel, prompt
from tests.test_custom_sampling_more import structured_eps
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

FULL_DEFAULTS = {"mimic_scale": 7.0, "threshold_percentile": 1.0, "mimic_mode": "Constant", "mimic_scale_min": 0.0,
                 "cfg_mode": "Constant", "cfg_scale_min": 0.0, "sched_val": 1.0, "separate_feature_channels": "enable",
                 "scaling_startpoint": "MEAN", "variability_measure": "AD", "interpolate_phi": 1.0}


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def node(registry, name, **inputs):
    return call(registry, registry.comfy_node(name).node_type, **inputs)


def predictions(seed=0, shape=(2, 4, 6, 5)):
    """cond / uncond x0 predictions whose channels differ in offset and spread (so per-channel and
    whole-batch statistics differ)."""
    g = torch.Generator().manual_seed(seed)
    per_channel = (1, 4) + (1,) * (len(shape) - 2)
    spread = torch.tensor([0.5, 1.0, 2.0, 4.0]).reshape(per_channel)
    offset = torch.tensor([0.3, -1.0, 0.0, 2.0]).reshape(per_channel)
    uncond = torch.randn(*shape, generator=g) * spread + offset
    cond = uncond + 0.4 * torch.randn(*shape, generator=g) * spread
    return cond, uncond


def reference(cond, uncond, cfg, mimic, percentile=1.0, separate=True, startpoint="MEAN", variability="AD", phi=1.0):
    """Dynamic thresholding as the pack describes it, in numpy float64: the CFG results at the mimic
    and the real scale; per image and channel (or over everything) the mimic's and the real one's
    spread about their means (largest |value| / the percentile's quantile of |values| for AD, the
    sample std for STD); the real one rescaled to the mimic's spread (about its mean, clamped at the
    larger spread for AD; or about zero), then blended with plain CFG by phi."""
    c, u = cond.double().numpy(), uncond.double().numpy()
    b, channels = c.shape[:2]
    mimic_out, cfg_out = u + (c - u) * mimic, u + (c - u) * cfg
    m, r = mimic_out.reshape(b, channels, -1), cfg_out.reshape(b, channels, -1)
    r_mean = r.mean(axis=-1, keepdims=True)
    m_centred, r_centred = m - m.mean(axis=-1, keepdims=True), r - r_mean
    axis = -1 if separate else None
    if variability == "STD":
        m_ref, r_ref = m_centred.std(axis=axis, ddof=1, keepdims=True), r_centred.std(axis=axis, ddof=1, keepdims=True)
    else:
        m_ref = np.abs(m_centred).max(axis=axis, keepdims=True)
        r_ref = np.quantile(np.abs(r_centred), percentile, axis=axis, keepdims=True)
    if startpoint == "ZERO":
        out = r * (m_ref / r_ref)
    elif variability == "STD":
        out = r_mean + r_centred * (m_ref / r_ref)
    else:
        limit = np.maximum(m_ref, r_ref)
        out = r_mean + np.clip(r_centred, -limit, limit) * (m_ref / limit)
    out = phi * out.reshape(c.shape) + (1 - phi) * cfg_out
    return torch.from_numpy(out).float()


# -- names and inputs ------------------------------------------------------------------------------


def test_the_packs_names_inputs_and_defaults(registry):
    for name in ("DynamicThresholdingFull", "DynamicThresholdingSimple"):
        assert name not in comfy_catalogue()
        cls = registry.comfy_node(name)
        assert cls.__module__ == "nodes.pack_nodes_dynamic_thresholding"
        assert custom_pack(name) == "sd-dynamic-thresholding"
        assert cls.category == "advanced/mcmonkey"
    full = registry.comfy_node("DynamicThresholdingFull").input_specs
    assert list(full) == ["model", *FULL_DEFAULTS]
    assert {k: full[k].widget.default for k in FULL_DEFAULTS} == FULL_DEFAULTS
    assert list(registry.comfy_node("DynamicThresholdingSimple").input_specs) == \
        ["model", "mimic_scale", "threshold_percentile"]
    assert MODES == ("Constant", "Linear Down", "Cosine Down", "Half Cosine Down", "Linear Up", "Cosine Up",
                     "Half Cosine Up", "Power Up", "Power Down", "Linear Repeating", "Cosine Repeating", "Sawtooth")


# -- the core math ---------------------------------------------------------------------------------


@pytest.mark.parametrize("separate", [True, False])
@pytest.mark.parametrize("startpoint", ["MEAN", "ZERO"])
@pytest.mark.parametrize("variability", ["AD", "STD"])
@pytest.mark.parametrize("percentile", [1.0, 0.9])
@pytest.mark.parametrize("phi", [1.0, 0.4])
def test_dynamic_threshold_is_the_described_rescale(separate, startpoint, variability, percentile, phi):
    cond, uncond = predictions()
    got = dynamic_threshold(cond, uncond, 15.0, 5.0, percentile, separate, startpoint, variability, phi)
    want = reference(cond, uncond, 15.0, 5.0, percentile, separate, startpoint, variability, phi)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    plain = uncond + (cond - uncond) * 15.0
    assert (got - plain).abs().max() > 0.1  # it does rescale


def test_the_quantile_does_not_go_through_torch_quantile(monkeypatch):
    """Older torch.quantile refuses more than 2**24 values, which a batch of video latents has over
    the whole batch: the reference comes from graphflow.quantile (torch.quantile's interpolation,
    tests/test_quantile.py), so with torch.quantile refusing everything the result is unchanged."""
    cond, uncond = predictions(5, (2, 4, 3, 6, 5))  # a video latent's [B, C, T, H, W]
    want = {separate: dynamic_threshold(cond, uncond, 12.0, 4.0, 0.9, separate) for separate in (True, False)}

    def refuse(*args, **kwargs):
        raise RuntimeError("quantile() input tensor is too large")
    monkeypatch.setattr(torch, "quantile", refuse)
    for separate in (True, False):
        got = dynamic_threshold(cond, uncond, 12.0, 4.0, 0.9, separate)
        assert torch.equal(got, want[separate])
        torch.testing.assert_close(got, reference(cond, uncond, 12.0, 4.0, 0.9, separate), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("separate", [True, False])
@pytest.mark.parametrize("startpoint", ["MEAN", "ZERO"])
@pytest.mark.parametrize("variability", ["AD", "STD"])
def test_percentile_one_and_mimic_equal_to_cfg_is_plain_cfg(separate, startpoint, variability):
    cond, uncond = predictions(1)
    got = dynamic_threshold(cond, uncond, 6.0, 6.0, 1.0, separate, startpoint, variability)
    torch.testing.assert_close(got, uncond + (cond - uncond) * 6.0, rtol=1e-5, atol=1e-5)


def test_each_option_changes_the_result_and_phi_blends_linearly():
    cond, uncond = predictions(2)

    def run(**settings):
        options = {"percentile": 0.95, "separate_channels": True, "startpoint": "MEAN", "variability": "AD",
                   "phi": 1.0, **settings}
        return dynamic_threshold(cond, uncond, 12.0, 4.0, **options)
    base = run()
    for change in ({"separate_channels": False}, {"startpoint": "ZERO"}, {"variability": "STD"}, {"percentile": 0.5}):
        assert (run(**change) - base).abs().max() > 1e-2, change
    plain = uncond + (cond - uncond) * 12.0
    torch.testing.assert_close(run(phi=0.25), 0.25 * base + 0.75 * plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(run(phi=0.0), plain, rtol=1e-6, atol=1e-6)
    # per-channel MEAN + AD: no channel strays from the real CFG's mean by more than the mimic's spread;
    # at percentile 1 nothing is clamped, so each keeps that mean and takes the mimic's spread exactly
    mimic = (uncond + (cond - uncond) * 4.0).flatten(2)
    spread = lambda t: (t - t.mean(2, keepdim=True)).abs().amax(2)  # noqa: E731
    cfg_mean = plain.flatten(2).mean(2, keepdim=True)
    assert ((base.flatten(2) - cfg_mean).abs().amax(2) <= spread(mimic) * (1 + 1e-5)).all()
    whole = run(percentile=1.0).flatten(2)
    torch.testing.assert_close(whole.mean(2), plain.flatten(2).mean(2), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(spread(whole), spread(mimic), rtol=1e-4, atol=1e-4)


def test_half_precision_predictions_keep_their_dtype():
    cond, uncond = predictions(3)
    got = dynamic_threshold(cond.half(), uncond.half(), 10.0, 5.0, 0.9)
    assert got.dtype == torch.float16
    torch.testing.assert_close(got.float(), reference(cond.half().float(), uncond.half().float(), 10.0, 5.0, 0.9),
                               rtol=2e-3, atol=2e-2)


# -- the schedule modes ----------------------------------------------------------------------------

def closed_form(mode, f, v):
    """Each mode's multiplier of (scale - min), as the pack's README / code describe them (the pack's
    own rounded pi / 2 = 1.5707 and 2 pi = 6.28318; its half cosines take cos(f) in radians)."""
    p = f * v - math.floor(f * v)
    return {"Constant": 1.0, "Linear Down": 1 - f, "Cosine Down": math.cos(1.5707 * f), "Half Cosine Down": math.cos(f),
            "Linear Up": f, "Cosine Up": 1 - math.cos(1.5707 * f), "Half Cosine Up": 1 - math.cos(f),
            "Power Up": f ** v, "Power Down": 1 - f ** v, "Linear Repeating": 1 - 2 * min(p, 1 - p),
            "Cosine Repeating": (1 + math.cos(6.28318 * f * v)) / 2, "Sawtooth": p}[mode]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sched_val", [1.0, 2.5])
def test_each_mode_moves_the_scale_by_its_closed_form(mode, sched_val):
    for f in (0.0, 0.1, 0.25, 0.5, 0.6, 0.8, 1.0):
        want = 3.0 + 7.0 * closed_form(mode, f, sched_val)
        assert scheduled_scale(10.0, mode, 3.0, f, sched_val) == pytest.approx(want, abs=1e-12), f


def test_modes_by_hand():
    assert scheduled_scale(10.0, "Linear Down", 2.0, 0.0, 1.0) == 10.0
    assert scheduled_scale(10.0, "Linear Down", 2.0, 1.0, 1.0) == 2.0
    assert scheduled_scale(10.0, "Linear Up", 2.0, 0.5, 1.0) == 6.0
    assert scheduled_scale(10.0, "Linear Repeating", 0.0, 0.25, 2.0) == pytest.approx(0.0)  # half a cycle: the bottom
    assert scheduled_scale(10.0, "Linear Repeating", 0.0, 0.5, 2.0) == pytest.approx(10.0)  # a whole one: the top
    assert scheduled_scale(10.0, "Linear Repeating", 0.0, 0.125, 2.0) == pytest.approx(5.0)
    assert scheduled_scale(10.0, "Sawtooth", 0.0, 0.3, 2.0) == pytest.approx(6.0)
    assert scheduled_scale(10.0, "Power Up", 0.0, 0.5, 2.0) == pytest.approx(2.5)


def test_a_fractional_power_before_the_start_is_refused_clearly():
    assert scheduled_scale(10.0, "Power Up", 0.0, -0.001, 2.0) == pytest.approx(10.0 * 1e-6)  # whole: fine
    with pytest.raises(ValueError, match="DynamicThresholdingFull: cfg_mode Power Down with the fractional "
                                         "sched_val 1.5"):
        scheduled_scale(10.0, "Power Down", 0.0, -0.001, 1.5, "cfg_mode")


def nearest_timestep(sigma):
    """ComfyUI's discrete timestep: the table entry nearest in log sigma."""
    return int((SD.sigmas.double().log() - math.log(sigma)).abs().argmin())


def test_step_fraction_is_999_minus_the_models_timestep_over_998():
    for t in (0, 1, 500, 998, 999):
        sigma = float(SD.sigmas[t])
        assert step_fraction(SD, torch.tensor([sigma, 0.5])) == pytest.approx((999 - t) / 998)
    for sigma in (3.0, 0.7, 14.0):
        assert step_fraction(SD, torch.tensor([sigma])) == pytest.approx((999 - nearest_timestep(sigma)) / 998)
    sd3 = FlowSchedule.sd3(3.0)
    assert step_fraction(sd3, torch.tensor([1.0])) == pytest.approx(-1 / 998)  # sigma x 1000
    assert step_fraction(sd3, torch.tensor([0.25])) == pytest.approx((999 - 250) / 998)
    flux = FlowSchedule.flux(1.15)
    assert step_fraction(flux, torch.tensor([0.5])) == pytest.approx((999 - 0.5) / 998)  # sigma itself


# -- in sampling -----------------------------------------------------------------------------------


def recording(model):
    """The patched MODEL with its CFG function wrapped to record each call's arguments and result."""
    seen = []
    inner = model.cfg_function

    def record(args):
        out = inner(args)
        seen.append((args, out))
        return out
    model.cfg_function = record
    return model, seen


FULL = dict(FULL_DEFAULTS, mimic_scale=4.0, threshold_percentile=0.95, mimic_mode="Linear Down", mimic_scale_min=1.0,
            cfg_mode="Cosine Up", cfg_scale_min=2.0, sched_val=2.0, separate_feature_channels="disable",
            scaling_startpoint="MEAN", variability_measure="STD", interpolate_phi=0.8)


def expected_at(args, fraction):
    cond, uncond = args["cond_denoised"], args["uncond_denoised"]
    mimic = 1.0 + 3.0 * (1 - fraction)
    cfg = 2.0 + (args["cond_scale"] - 2.0) * (1 - math.cos(1.5707 * fraction))
    return reference(cond, uncond, cfg, mimic, 0.95, False, "MEAN", "STD", 0.8)


def test_full_node_in_a_discrete_run_follows_the_steps_timestep(registry):
    model = FakeModel(structured_eps)
    patched, seen = recording(node(registry, "DynamicThresholdingFull", model=model, **FULL))
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    out = sample(patched, 3, 4, 9.0, "euler", "karras", prompt(0.3), prompt(-0.2), latent)["samples"]
    assert len(seen) == 4 and getattr(model, "cfg_function", None) is None
    for args, got in seen:
        assert args["model_sampling"].prediction == "eps"  # the run's discrete schedule
        sigma = float(args["sigma"][0])
        fraction = (999 - nearest_timestep(sigma)) / 998
        torch.testing.assert_close(got, expected_at(args, fraction), rtol=1e-4, atol=1e-4)
    plain = sample(model, 3, 4, 9.0, "euler", "karras", prompt(0.3), prompt(-0.2), latent)["samples"]
    assert (out - plain).abs().max() > 1e-3


def test_full_node_on_a_flow_model_takes_sigma_x_1000_as_comfyui(registry):
    model = FakeFlowModel(gaussian_x0(0.4, 0.3), arch="sd3")
    patched, seen = recording(node(registry, "DynamicThresholdingFull", model=model, **FULL))
    latent = {"samples": torch.zeros(1, 16, 4, 4)}
    sample(patched, 5, 3, 6.0, "euler", "simple", [(torch.randn(1, 5, 32), {})], [(torch.zeros(1, 5, 32), {})], latent)
    assert len(seen) == 3
    for args, got in seen:
        assert isinstance(args["model_sampling"], FlowSchedule)
        fraction = (999 - 1000 * float(args["sigma"][0])) / 998
        torch.testing.assert_close(got, expected_at(args, fraction), rtol=1e-4, atol=1e-4)
    assert float(seen[0][0]["sigma"][0]) == 1.0  # the first step sits before the schedule's start


def test_a_fractional_power_on_sd3_fails_only_where_the_pack_does(registry):
    """Power Up with sched_val 1.5 on an SD3-style model: the node accepts it; img2img (its first
    sigma below 1) and cfg equal to the mimic scale (plain CFG, no schedule) run; a full-denoise run
    fails at its first step (fraction -1 / 998) with an error naming the node's inputs."""
    model = FakeFlowModel(gaussian_x0(0.4, 0.3), arch="sd3")
    settings = dict(FULL_DEFAULTS, mimic_mode="Power Up", mimic_scale_min=1.0, sched_val=1.5)
    patched, seen = recording(node(registry, "DynamicThresholdingFull", model=model, **settings))
    latent = {"samples": torch.randn(1, 16, 4, 4, generator=torch.Generator().manual_seed(5))}
    positive, negative = [(torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(6)), {})], \
        [(torch.zeros(1, 5, 32), {})]

    def run(model_, cfg, denoise):  # 4 steps of a 5-step schedule at denoise 0.8
        return sample(model_, 5, 4, cfg, "euler", "simple", positive, negative, latent, denoise=denoise)["samples"]
    run(patched, 9.0, 0.8)
    assert len(seen) == 4
    for args, got in seen:
        fraction = (999 - 1000 * float(args["sigma"][0])) / 998
        assert fraction > 0
        want = reference(args["cond_denoised"], args["uncond_denoised"], 9.0, 1.0 + 6.0 * fraction ** 1.5)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert torch.equal(run(patched, 7.0, 1.0), run(model, 7.0, 1.0))
    with pytest.raises(ValueError, match="DynamicThresholdingFull: mimic_mode Power Up with the fractional "
                                         "sched_val 1.5 has no value at this step"):
        run(patched, 9.0, 1.0)


def test_dual_cfg_guider_passes_the_runs_schedule_to_the_cfg_function(registry):
    from graphflow.sampling.guidance import DualCFGGuider, prepare_conds
    from graphflow.sampling.model_sampling import ModelDenoiser
    patched, seen = recording(node(registry, "DynamicThresholdingFull", model=FakeModel(structured_eps), **FULL))
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4)) * 3
    sigma = torch.tensor([2.0])

    def prepare(conditioning, negative=False):
        return prepare_conds(conditioning, patched, x.shape, "cpu", negative=negative)
    for nested in (False, True):  # the CFG it replaces: cond2 vs the negative, or cond1 vs cond2
        seen.clear()
        guider = DualCFGGuider(patched, prompt(0.3), prompt(0.1), prompt(-0.2), 3.0, 5.0, nested=nested)
        out = guider.denoiser(ModelDenoiser(patched, SD), prepare)(x, sigma)
        assert len(seen) == 1 and torch.isfinite(out).all()
        args, got = seen[0]
        assert args["model_sampling"] is SD and args["cond_scale"] == (3.0 if nested else 5.0)
        torch.testing.assert_close(got, expected_at(args, (999 - nearest_timestep(2.0)) / 998), rtol=1e-4, atol=1e-4)


def fake_run(model, cfg):
    """Three euler steps of a fake SD model from an empty 8 x 8 latent."""
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    return sample(model, 3, 3, cfg, "euler", "karras", prompt(0.3), prompt(-0.2), latent)["samples"]


def test_mimic_equal_to_cfg_samples_as_plain_cfg_and_cfg_one_sees_a_zero_negative(registry):
    model = FakeModel(structured_eps)
    run = fake_run
    for name, extra in (("DynamicThresholdingFull", {**FULL, "mimic_scale": 7.0}), ("DynamicThresholdingSimple", {})):
        patched = node(registry, name, model=model, **{"mimic_scale": 7.0, "threshold_percentile": 0.9, **extra})
        assert torch.equal(run(patched, 7.0), run(model, 7.0)), name
        assert (run(patched, 12.0) - run(model, 12.0)).abs().max() > 1e-3, name
    # cfg 1: the negative is not evaluated and counts as 0 (as ComfyUI passes it)
    patched, seen = recording(node(registry, "DynamicThresholdingSimple", model=model, mimic_scale=3.0,
                                   threshold_percentile=1.0))
    run(patched, 1.0)
    args, got = seen[0]
    assert args["uncond_denoised"] is None or torch.count_nonzero(args["uncond_denoised"]) == 0
    cond = args["cond_denoised"]
    torch.testing.assert_close(got, reference(cond, torch.zeros_like(cond), 1.0, 3.0, 1.0, False), rtol=1e-4, atol=1e-4)


def test_simple_is_full_with_the_packs_fixed_settings(registry):
    model = FakeModel(structured_eps)
    simple = node(registry, "DynamicThresholdingSimple", model=model, mimic_scale=3.0, threshold_percentile=0.9)
    full = node(registry, "DynamicThresholdingFull", model=model, **dict(
        FULL_DEFAULTS, mimic_scale=3.0, threshold_percentile=0.9, separate_feature_channels="disable"))
    assert torch.equal(fake_run(simple, 9.0), fake_run(full, 9.0))


# -- errors ----------------------------------------------------------------------------------------


def test_errors_name_the_input(registry):
    prompt_ = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "graphflow-demo.safetensors"}},
               "2": {"class_type": "DynamicThresholdingFull", "inputs": {
                   "model": ["1", 0], **dict(FULL_DEFAULTS, mimic_mode="Linear Sideways", mimic_scale=120.0)}}}
    from graphflow.validation import validate
    problems = validate(parse_workflow(prompt_, registry), registry, outputs=["2"])
    assert {p.input for p in problems if p.node_id == "2"} >= {"mimic_mode", "mimic_scale"}


# -- the demo model, prompts and saves -------------------------------------------------------------


def demo_prompt(mimic_scale=4.0, cfg=9.0, steps=4):
    link = lambda node, index=0: [str(node), index]  # noqa: E731
    sampler = {"seed": 5, "steps": steps, "cfg": cfg, "sampler_name": "euler", "scheduler": "karras", "denoise": 1.0,
               "positive": link(2), "negative": link(3), "latent_image": link(4)}
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "graphflow-demo.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle on a blue background",
                                                         "clip": link(1, 1)}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": link(1, 1)}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "DynamicThresholdingFull", "inputs": {
            "model": link(1), **dict(FULL, mimic_scale=mimic_scale)}},
        "6": {"class_type": "DynamicThresholdingSimple", "inputs": {
            "model": link(1), "mimic_scale": mimic_scale, "threshold_percentile": 0.98}},
        "7": {"class_type": "KSampler", "inputs": {"model": link(1), **sampler}},
        "8": {"class_type": "KSampler", "inputs": {"model": link(5), **sampler}},
        "9": {"class_type": "KSampler", "inputs": {"model": link(6), **sampler}},
    }


def test_demo_model_runs_differ_from_plain_cfg_and_equal_it_at_the_mimic_scale(registry):
    prompt_ = demo_prompt(4.0, steps=2)  # plain CFG (7), Full (8) and Simple (9) at mimic 4, cfg 9
    at_cfg = demo_prompt(9.0, steps=2)  # the two nodes again at mimic 9 = cfg, sampled by 12 and 13
    prompt_.update({"10": at_cfg["5"], "11": at_cfg["6"],
                    "12": {"class_type": "KSampler", "inputs": {**at_cfg["8"]["inputs"], "model": ["10", 0]}},
                    "13": {"class_type": "KSampler", "inputs": {**at_cfg["9"]["inputs"], "model": ["11", 0]}}})
    result = run_graph(registry, prompt_, ["7", "8", "9", "12", "13"])
    samples = {k: v[0]["samples"] for k, v in result.values.items() if k in ("7", "8", "9", "12", "13")}
    plain = samples["7"]
    for lower, equal in (("8", "12"), ("9", "13")):
        assert torch.isfinite(samples[lower]).all()
        assert (samples[lower] - plain).abs().max() > 1e-3, lower
        assert torch.equal(samples[equal], plain), equal


def test_api_prompt_round_trips(registry):
    prompt_ = demo_prompt()
    api = export_api(parse_workflow(prompt_, registry), registry)
    assert {k: (v["class_type"], v["inputs"]) for k, v in api.items()} == \
        {k: (v["class_type"], v["inputs"]) for k, v in prompt_.items()}


def test_ui_save_with_the_packs_nodes_runs_and_round_trips(registry):
    full = [5.0, 0.95, "Half Cosine Down", 1.5, "Sawtooth", 0.5, 3.0, "disable", "ZERO", "STD", 0.7]
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["graphflow-demo.safetensors"],
                outputs=[("MODEL", "MODEL", [1, 2]), ("CLIP", "CLIP", []), ("VAE", "VAE", [])]),
        ui_node(2, "DynamicThresholdingFull", full, [("model", "MODEL", 1, False)], [("MODEL", "MODEL", [])]),
        ui_node(3, "DynamicThresholdingSimple", [6.5, 0.9], [("model", "MODEL", 2, False)], [("MODEL", "MODEL", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "MODEL"], [2, 1, 0, 3, 0, "MODEL"]]
    graph = ui_graph(nodes, links)
    workflow = parse_workflow(graph, registry)
    inputs = workflow.to_json()["nodes"]["2"]["inputs"]
    assert [inputs[k] for k in FULL_DEFAULTS] == full
    result = run_graph(registry, graph, ["2", "3"])
    thresholding = result.values["2"][0].cfg_function.__self__
    assert (thresholding.mimic_mode, thresholding.cfg_mode, thresholding.separate_feature_channels,
            thresholding.scaling_startpoint, thresholding.variability_measure) == \
        ("Half Cosine Down", "Sawtooth", False, "ZERO", "STD")
    assert result.values["3"][0].cfg_function.__self__.mimic_scale == 6.5
    saved = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    for n in nodes:
        assert saved[n["id"]]["type"] == n["type"]
        assert saved[n["id"]]["widgets_values"] == n["widgets_values"], n["type"]
