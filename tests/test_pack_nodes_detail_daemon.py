"""ComfyUI-Detail-Daemon's nodes (nodes/pack_nodes_detail_daemon.py): the schedule against the
pack's formulas worked out here, the sigma the model is called with through the real sampling
pipeline (a stub guider recording it) against sigma x (1 - schedule x 0.1 x cfg) and sigma x
(1 + dishonesty_factor), Multiply Sigmas against slicing, the graph, the clear errors, a demo-model
run, and UI-format saves and API prompts with the pack's class names that run and round-trip."""

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from PIL import Image

from graphflow.comfy_format import comfy_catalogue, custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.sampling.noise import NoiseSource
from graphflow.sampling.pipeline import sample_custom
from graphflow.sampling.samplers import SamplerChoice
from graphflow.sampling.sigma_adjust import guider_cfg
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_detail_daemon import (GRAPH_SIZE, LINE_COLOUR, DetailDaemonAdjuster, detail_schedule,
                                            graph_point, schedule_graph)
from sampling_fakes import SD, FakeModel, gaussian_eps
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

PACK_NAMES = ("DetailDaemonSamplerNode", "DetailDaemonGraphSigmasNode", "MultiplySigmas", "LyingSigmaSampler")
DEFAULTS = {"detail_amount": 0.1, "start": 0.2, "end": 0.8, "bias": 0.5, "exponent": 1.0, "start_offset": 0.0,
            "end_offset": 0.0, "fade": 0.0, "smooth": True}


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def node(registry, name, **inputs):
    return call(registry, registry.comfy_node(name).node_type, **inputs)


def test_the_packs_names_are_ours_and_clash_with_no_core_class(registry):
    for name in (*PACK_NAMES, "DetailDaemonSampler", "DetailDaemonGraphSigmas", "DetailDaemonSamplerGUINode"):
        assert name not in comfy_catalogue()
        assert registry.comfy_node(name).__module__ == "nodes.pack_nodes_detail_daemon"
        assert custom_pack(name) == "ComfyUI-Detail-Daemon"
    assert custom_pack("AdvancedLyingSigmaSamplerNode") == "ComfyUI-Detail-Daemon"  # a fork's, not ours: named
    assert custom_pack("MultiplySigmasX") is None  # whole names only
    inputs = {name: list(registry.comfy_node(name).input_specs) for name in PACK_NAMES}
    assert inputs["DetailDaemonSamplerNode"] == ["sampler", *DEFAULTS, "cfg_scale_override"]
    assert inputs["DetailDaemonGraphSigmasNode"] == ["sigmas", *DEFAULTS, "cfg_scale"]
    assert inputs["MultiplySigmas"] == ["sigmas", "factor", "start", "end"]
    assert inputs["LyingSigmaSampler"] == ["sampler", "dishonesty_factor", "start_percent", "end_percent"]
    assert list(registry.comfy_node("DetailDaemonSamplerGUINode").input_specs) == \
        ["sampler", "sigmas", *DEFAULTS, "cfg_scale_override"]
    assert [o.name for o in registry.comfy_node("DetailDaemonSamplerGUINode").output_specs] == ["sampler", "sigmas"]
    specs = registry.comfy_node("DetailDaemonSamplerNode").input_specs
    assert {k: specs[k].widget.default for k in DEFAULTS} == DEFAULTS
    assert specs["cfg_scale_override"].widget.default == 0


# -- the schedule ---------------------------------------------------------------------------------


def reference_schedule(steps, start, end, bias, amount, exponent, start_offset, end_offset, fade, smooth):
    """The pack's schedule from its description, step by step: indices round(fraction x (steps - 1));
    a rise over [first, peak] and a fall over [peak, last] (the fall's value at the peak), each
    u in 0..1 along its run, eased to (1 - cos(pi u)) / 2 when smooth, raised to `exponent`, then
    mapped from 0..1 onto offset..amount unless the whole ramp is 0; offsets outside; x (1 - fade)."""
    start = min(start, end)
    first, peak, last = (int(round(f * (steps - 1))) for f in (start, start + bias * (end - start), end))

    def ramp(length, rising, offset):
        us = [i / (length - 1) if length > 1 else 0.0 for i in range(length)]
        if not rising:
            us = [1.0 - u if length > 1 else 1.0 for u in us]
        values = [((1 - math.cos(math.pi * u)) / 2 if smooth else u) ** exponent for u in us]
        if any(values):
            values = [v * (amount - offset) + offset for v in values]
        return values

    rise, fall = ramp(peak - first + 1, True, start_offset), ramp(last - peak + 1, False, end_offset)
    out = []
    for i in range(steps):
        if i < first:
            value = start_offset
        elif i > last:
            value = end_offset
        elif i >= peak:
            value = fall[i - peak]
        else:
            value = rise[i - first]
        out.append(value * (1 - fade))
    return out


@pytest.mark.parametrize("steps", [1, 2, 5, 20, 33])
@pytest.mark.parametrize("settings", [
    {}, {"smooth": False}, {"detail_amount": -0.7, "bias": 0.2, "exponent": 2.5},
    {"start": 0.0, "end": 1.0, "start_offset": 0.3, "end_offset": -0.2, "fade": 0.25},
    {"start": 0.9, "end": 0.3, "exponent": 0.0}, {"bias": 1.0, "smooth": False, "exponent": 0.5},
    {"detail_amount": 0.0}, {"start": 0.5, "end": 0.5, "start_offset": 0.1}])
def test_schedule_is_the_packs_formula(steps, settings):
    values = {**DEFAULTS, **settings}
    got = detail_schedule(steps, values["start"], values["end"], values["bias"], values["detail_amount"],
                          values["exponent"], values["start_offset"], values["end_offset"], values["fade"],
                          values["smooth"])
    want = reference_schedule(steps, values["start"], values["end"], values["bias"], values["detail_amount"],
                              values["exponent"], values["start_offset"], values["end_offset"], values["fade"],
                              values["smooth"])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_linear_schedule_by_hand():
    """11 steps over the whole range, peak in the middle: a straight rise 0..1 and fall 1..0."""
    got = detail_schedule(11, 0.0, 1.0, 0.5, 1.0, 1.0, 0.0, 0.0, 0.0, False)
    np.testing.assert_allclose(got, [0, .2, .4, .6, .8, 1, .8, .6, .4, .2, 0], atol=1e-12)
    faded = detail_schedule(11, 0.0, 1.0, 0.5, 1.0, 1.0, 0.0, 0.0, 0.5, False)
    np.testing.assert_allclose(faded, np.asarray(got) * 0.5, atol=1e-12)


# -- the sigma the model is called with ---------------------------------------------------------------


@dataclass
class RecordingGuider:
    """A GUIDER whose denoiser records each sigma (and x) it is called with and predicts x0 = x / 2."""
    model: object
    cfg: float = 1.0
    seen: list = field(default_factory=list)
    inputs: list = field(default_factory=list)

    def denoiser(self, model_denoiser, prepare):
        def denoise(x, sigma, **extra):
            self.seen.append(float(sigma.max()))
            self.inputs.append(x.clone())
            return x * 0.5
        return denoise


def recorded(sampler, sigmas, cfg=1.0, mask=None, inputs=None):
    """The sigmas the model is called with, and the sampled latent; `inputs`, a list, gets each
    x the model is called with."""
    guider = RecordingGuider(FakeModel(gaussian_eps(0.0, 1.0)), cfg)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    if mask is not None:
        latent["noise_mask"] = mask
    out, _ = sample_custom(guider, NoiseSource(3), sampler, sigmas, latent)
    if inputs is not None:
        inputs.extend(guider.inputs)
    return guider.seen, out["samples"]


def karras(steps):
    from graphflow.sampling.schedules import karras_sigmas
    return karras_sigmas(steps, 0.0291675, 14.614642, 7.0)


def want_dd(raw, sigmas, schedule, cfg):
    """The pack's adjustment of each raw sigma: its schedule value (mixed linearly between the two
    steps' sigmas around it, the end values beyond) x 0.1 x cfg off the sigma, not below 1e-6 x
    sigma; sigmas outside the run's (or at its last + 1e-5) untouched."""
    sig = sigmas.double().numpy()
    out = []
    for s in raw:
        if not sig[-1] + 1e-5 <= s <= sig[0]:
            out.append(s)
            continue
        value = np.interp(s, sig[:-1][::-1], np.asarray(schedule)[::-1])
        out.append(s * max(1e-6, 1 - value * 0.1 * cfg))
    return out


@pytest.mark.parametrize("name", ["euler", "heun", "dpm_2", "euler_ancestral", "dpmpp_2m"])
@pytest.mark.parametrize("override, guider_cfg_value, cfg", [(0.0, 1.0, 1.0), (0.0, 5.0, 5.0), (3.0, 5.0, 3.0)])
def test_detail_daemon_calls_the_model_with_the_packs_sigma(registry, name, override, guider_cfg_value, cfg):
    sigmas = karras(8)
    settings = {**DEFAULTS, "detail_amount": 0.6, "start": 0.1, "end": 0.9}
    wrapped = node(registry, "DetailDaemonSamplerNode", sampler=SamplerChoice(name), cfg_scale_override=override,
                   **settings)
    raw, _ = recorded(SamplerChoice(name), sigmas, guider_cfg_value)
    got, _ = recorded(wrapped, sigmas, guider_cfg_value)
    schedule = reference_schedule(8, settings["start"], settings["end"], settings["bias"], settings["detail_amount"],
                                  settings["exponent"], settings["start_offset"], settings["end_offset"],
                                  settings["fade"], settings["smooth"])
    # the sampler's own steps are unchanged: with x0 = x / 2 its sigmas don't depend on the model
    assert len(got) == len(raw)
    np.testing.assert_allclose(got, want_dd(raw, sigmas, schedule, cfg), rtol=2e-6)
    assert any(g < r for g, r in zip(got, raw))  # a positive amount lowers some


def test_detail_daemon_at_amount_zero_samples_as_the_sampler(registry):
    sigmas = karras(6)
    plain, plain_out = recorded(SamplerChoice("euler_ancestral"), sigmas, 4.0)
    wrapped = node(registry, "DetailDaemonSamplerNode", sampler=SamplerChoice("euler_ancestral"),
                   cfg_scale_override=0.0, **{**DEFAULTS, "detail_amount": 0.0})
    got, out = recorded(wrapped, sigmas, 4.0)
    assert got == plain and torch.equal(out, plain_out)


def test_gui_sampler_is_the_sampler_and_passes_the_sigmas_on(registry):
    sigmas = karras(5)
    settings = {**DEFAULTS, "detail_amount": 0.4, "fade": 0.1}
    sampler, passed = node(registry, "DetailDaemonSamplerGUINode", sampler=SamplerChoice("euler"), sigmas=sigmas,
                           cfg_scale_override=2.0, **settings)
    assert passed is sigmas
    assert sampler == node(registry, "DetailDaemonSamplerNode", sampler=SamplerChoice("euler"),
                           cfg_scale_override=2.0, **settings)


def test_a_huge_amount_keeps_the_sigma_above_zero(registry):
    wrapped = node(registry, "DetailDaemonSamplerNode", sampler=SamplerChoice("euler"), cfg_scale_override=100.0,
                   **{**DEFAULTS, "detail_amount": 5.0})
    sigmas = karras(5)
    got, _ = recorded(wrapped, sigmas)
    raw = sigmas[:-1].tolist()
    assert all(g > 0 for g in got) and min(g / r for g, r in zip(got, raw)) == pytest.approx(1e-6, rel=1e-3)


def test_lying_sigma_multiplies_inside_the_percent_range_only(registry):
    sigmas = karras(10)
    start_percent, end_percent, factor = 0.2, 0.7, -0.1
    wrapped = node(registry, "LyingSigmaSampler", sampler=SamplerChoice("heun"), dishonesty_factor=factor,
                   start_percent=start_percent, end_percent=end_percent)
    raw, _ = recorded(SamplerChoice("heun"), sigmas)
    got, _ = recorded(wrapped, sigmas)
    high = round(SD.percent_to_sigma(start_percent), 4)
    low = round(SD.percent_to_sigma(end_percent), 4)
    want = [s * (1 + factor) if low <= s <= high else s for s in raw]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert any(g != r for g, r in zip(got, raw)) and any(g == r for g, r in zip(got, raw))


def test_wrappers_nest_as_comfyuis_model_wrappers(registry):
    """Detail Daemon around Lying Sigma: the sampler's sigma is lied about first, then the Detail
    Daemon adjusts the lie (its wrapper is the one nearest the model)."""
    sigmas = karras(6)
    lying = node(registry, "LyingSigmaSampler", sampler=SamplerChoice("euler"), dishonesty_factor=-0.2,
                 start_percent=0.0, end_percent=1.0)
    both = node(registry, "DetailDaemonSamplerNode", sampler=lying, cfg_scale_override=2.0,
                **{**DEFAULTS, "detail_amount": 0.8})
    assert [type(a).__name__ for a in both.sigma_adjusters] == ["DetailDaemonAdjuster", "LyingSigmaAdjuster"]
    got, _ = recorded(both, sigmas)
    schedule = detail_schedule(6, 0.2, 0.8, 0.5, 0.8, 1.0, 0.0, 0.0, 0.0, True)
    lied = [s * 0.8 for s in sigmas[:-1].tolist()]
    np.testing.assert_allclose(got, want_dd(lied, sigmas, schedule, 2.0), rtol=2e-6)


def test_the_adjusted_sigma_reaches_the_inpainting_mask_too(registry):
    """As ComfyUI's wrapper around the masked model: the known region is noised to the told sigma.
    The latent is 0, so the known region the model gets is noise x the sigma it was noised to:
    divided by the sigma the model is told, the same noise at every call (the adjusters inside
    the mask would noise it to the sampler's sigma, and the steps whose sigma is adjusted would
    give noise x raw / told)."""
    sigmas = karras(4)
    mask = torch.ones(8, 8)
    mask[:, :4] = 0
    wrapped = node(registry, "DetailDaemonSamplerNode", sampler=SamplerChoice("euler"), cfg_scale_override=1.0,
                   **{**DEFAULTS, "detail_amount": 2.0})
    inputs = []
    got, _ = recorded(wrapped, sigmas, mask=mask, inputs=inputs)
    raw, _ = recorded(SamplerChoice("euler"), sigmas, mask=mask)
    assert len(got) == len(raw) and any(g != r for g, r in zip(got, raw))  # some sigma adjusted
    noise = [x[..., :4] / told for x, told in zip(inputs, got)]  # the known columns
    assert noise[0].abs().min() > 0
    for seen in noise[1:]:
        torch.testing.assert_close(seen, noise[0], rtol=1e-5, atol=0)


def test_sampler_values_compare_by_settings_and_cfg_comes_from_the_guider(registry):
    def wrapped_with(factor):
        return node(registry, "LyingSigmaSampler", sampler=node(registry, "DetailDaemonSamplerNode",
                    sampler=SamplerChoice("euler", {"s_noise": 1.0}), cfg_scale_override=0.0, **DEFAULTS),
                    dishonesty_factor=factor, start_percent=0.1, end_percent=0.9)

    wrapped = wrapped_with(-0.05)
    assert wrapped_with(-0.05) == wrapped and wrapped_with(-0.06) != wrapped  # frozen dataclasses: by value
    assert wrapped.name == "euler" and wrapped.options == {"s_noise": 1.0}
    assert guider_cfg(RecordingGuider(None, 7.5)) == 7.5
    assert guider_cfg(object()) == 1.0  # DualCFGGuider has no single cfg: the pack's 1.0
    adjust = DetailDaemonAdjuster(**DEFAULTS, cfg_scale_override=0.0).for_run(torch.tensor([1.0]), 1.0, SD)
    assert torch.equal(adjust(torch.tensor([0.5])), torch.tensor([0.5]))  # no step: nothing to adjust


def test_sampler_input_errors(registry):
    with pytest.raises(NodeInputError) as caught:
        node(registry, "DetailDaemonSamplerNode", sampler="euler", cfg_scale_override=0.0, **DEFAULTS)
    assert caught.value.input == "sampler"
    with pytest.raises(NodeInputError) as caught:
        node(registry, "LyingSigmaSampler", sampler=None, dishonesty_factor=-0.05)
    assert caught.value.input == "sampler"


# -- Multiply Sigmas, the graph ---------------------------------------------------------------------


@pytest.mark.parametrize("factor, start, end", [(1.0, 0.0, 1.0), (0.5, 0.0, 1.0), (2.0, 0.25, 0.75),
                                                (3.0, 0.9, 0.2), (0.0, 0.5, 1.0)])
def test_multiply_sigmas_is_a_slice_times_factor(registry, factor, start, end):
    sigmas = karras(9)
    before = sigmas.clone()
    got = node(registry, "MultiplySigmas", sigmas=sigmas, factor=factor, start=start, end=end)
    want = before.clone()
    n = len(before)
    for i in range(int(start * n), int(end * n)):
        want[i] = before[i] * factor
    assert torch.equal(got, want) and torch.equal(sigmas, before)  # stateless: the input untouched


def test_graph_draws_each_steps_value():
    schedule = detail_schedule(12, 0.1, 0.9, 0.3, 0.6, 1.0, -0.2, 0.1, 0.0, False)
    image = schedule_graph(schedule)
    assert image.shape == (GRAPH_SIZE[1], GRAPH_SIZE[0], 3) and image.dtype == np.float32
    pixels = (image * 255).round().astype(int)
    for step, value in enumerate(schedule):
        x, y = (round(v) for v in graph_point(step, value, len(schedule)))
        patch = pixels[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3)
        assert any(tuple(p) == LINE_COLOUR for p in patch), (step, value)
    beyond = schedule_graph(np.array([0.0, 3.0, 0.0]))  # cut at the axes, as the pack's ylim
    top_rows = (beyond[:39] * 255).round().astype(int).reshape(-1, 3)
    assert not any(tuple(p) == LINE_COLOUR for p in top_rows)


def test_graph_node_shows_one_picture_and_names_bad_sigmas(registry):
    prompt = {"1": {"class_type": "KarrasScheduler", "inputs": {"steps": 10, "sigma_max": 14.6, "sigma_min": 0.03,
                                                                "rho": 7.0}},
              "2": {"class_type": "DetailDaemonGraphSigmasNode", "inputs": {"sigmas": ["1", 0], **DEFAULTS,
                                                                            "cfg_scale": 1.0}}}
    result = run_graph(registry, prompt)
    shown = result.outputs["2"]["images"]
    assert len(shown) == 1 and shown[0]["type"] == "temp"
    from graphflow.api import folders
    with Image.open(folders.temp / shown[0]["filename"]) as picture:
        assert picture.size == GRAPH_SIZE
    with pytest.raises(NodeInputError) as caught:
        node(registry, "DetailDaemonGraphSigmasNode", sigmas=torch.tensor([1.0]), cfg_scale=1.0, **DEFAULTS)
    assert caught.value.input == "sigmas"


# -- the demo model, saves and prompts ------------------------------------------------------------


def demo_prompt(detail_amount):
    link = lambda node, index=0: [str(node), index]  # noqa: E731
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "graphflow-demo.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle on a blue background", "clip": link(1, 1)}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": link(1, 1)}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "6": {"class_type": "BasicScheduler", "inputs": {"model": link(1), "scheduler": "karras", "steps": 6,
                                                         "denoise": 1.0}},
        "7": {"class_type": "DetailDaemonSamplerNode", "inputs": {
            "sampler": link(5), **DEFAULTS, "detail_amount": detail_amount, "start": 0.0, "end": 1.0,
            "cfg_scale_override": 0}},
        "8": {"class_type": "LyingSigmaSampler", "inputs": {"sampler": link(5), "dishonesty_factor": 0.0,
                                                            "start_percent": 0.1, "end_percent": 0.9}},
        "9": {"class_type": "MultiplySigmas", "inputs": {"sigmas": link(6), "factor": 1.0, "start": 0.0, "end": 1.0}},
        "10": {"class_type": "SamplerCustom", "inputs": {
            "model": link(1), "add_noise": True, "noise_seed": 5, "cfg": 4.0, "positive": link(2),
            "negative": link(3), "sampler": link(5), "sigmas": link(6), "latent_image": link(4)}},
        "11": {"class_type": "SamplerCustom", "inputs": {
            "model": link(1), "add_noise": True, "noise_seed": 5, "cfg": 4.0, "positive": link(2),
            "negative": link(3), "sampler": link(7), "sigmas": link(9), "latent_image": link(4)}},
        "12": {"class_type": "SamplerCustom", "inputs": {
            "model": link(1), "add_noise": True, "noise_seed": 5, "cfg": 4.0, "positive": link(2),
            "negative": link(3), "sampler": link(8), "sigmas": link(6), "latent_image": link(4)}},
    }


@pytest.fixture(scope="module")
def demo_runs(registry):
    runs = {}
    for amount in (0.0, 0.5):
        result = run_graph(registry, demo_prompt(amount), ["10", "11", "12"])
        runs[amount] = {k: result.values[k][0]["samples"] for k in ("10", "11", "12")}
    return runs


def test_demo_model_run_differs_from_the_plain_sampler_and_equals_it_at_zero(demo_runs):
    plain = demo_runs[0.0]["10"]
    assert torch.isfinite(demo_runs[0.5]["11"]).all()
    assert (demo_runs[0.5]["11"] - plain).abs().max() > 1e-3
    assert torch.equal(demo_runs[0.0]["11"], plain)  # amount 0 (and Multiply by 1)
    assert torch.equal(demo_runs[0.0]["12"], plain)  # no dishonesty


def test_api_prompt_round_trips(registry):
    prompt = demo_prompt(0.5)
    api = export_api(parse_workflow(prompt, registry), registry)
    assert {k: (v["class_type"], v["inputs"]) for k, v in api.items()} == \
        {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()}


def test_api_prompt_without_the_optional_percents_takes_the_functions_defaults(registry):
    prompt = {"1": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
              "2": {"class_type": "LyingSigmaSampler", "inputs": {"sampler": ["1", 0], "dishonesty_factor": -0.1}}}
    result = Executor(registry).run(parse_workflow(prompt, registry), outputs=["2"])
    assert result.ok, result.problems
    adjuster = result.values["2"][0].sigma_adjusters[0]
    assert (adjuster.start_percent, adjuster.end_percent) == (0.0, 1.0)


def test_ui_save_with_the_packs_nodes_runs_and_round_trips(registry):
    nodes = [
        ui_node(1, "KarrasScheduler", [6, 14.614642, 0.0291675, 7.0], outputs=[("SIGMAS", "SIGMAS", [1, 2, 6])]),
        ui_node(2, "MultiplySigmas", [0.5, 0.25, 0.75], [("sigmas", "SIGMAS", 1, False)],
                [("SIGMAS", "SIGMAS", [])]),
        ui_node(3, "DetailDaemonGraphSigmasNode", [0.3, 0.1, 0.9, 0.5, 1.0, 0.0, 0.0, 0.0, True, 1.0],
                [("sigmas", "SIGMAS", 2, False)]),
        ui_node(4, "KSamplerSelect", ["euler"], outputs=[("SAMPLER", "SAMPLER", [3, 5])]),
        ui_node(5, "LyingSigmaSampler", [-0.05, 0.1, 0.9], [("sampler", "SAMPLER", 3, False)],
                [("SAMPLER", "SAMPLER", [4])]),
        ui_node(6, "DetailDaemonSamplerNode", [0.25, 0.2, 0.8, 0.5, 1.0, 0.0, 0.0, 0.0, True, 0],
                [("sampler", "SAMPLER", 4, False)], [("SAMPLER", "SAMPLER", [])]),
        ui_node(7, "DetailDaemonSamplerGUINode", [0.5, 0.1, 0.9, 0.4, 1.5, 0.0, 0.1, 0.0, False, 3.0],
                [("sampler", "SAMPLER", 5, False), ("sigmas", "SIGMAS", 6, False)],
                [("sampler", "SAMPLER", []), ("sigmas", "SIGMAS", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "SIGMAS"], [2, 1, 0, 3, 0, "SIGMAS"], [3, 4, 0, 5, 0, "SAMPLER"],
             [4, 5, 0, 6, 0, "SAMPLER"], [5, 4, 0, 7, 0, "SAMPLER"], [6, 1, 0, 7, 1, "SIGMAS"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["2", "3", "6", "7"])
    assert result.values["7"][0].sigma_adjusters == (
        DetailDaemonAdjuster(0.5, 0.1, 0.9, 0.4, 1.5, 0.0, 0.1, 0.0, False, 3.0),)
    assert torch.equal(result.values["7"][1], result.values["1"][0])
    sigmas = result.values["1"][0]
    want = sigmas.clone()
    want[int(0.25 * 7):int(0.75 * 7)] *= 0.5
    assert torch.equal(result.values["2"][0], want)
    sampler = result.values["6"][0]
    assert sampler.name == "euler"
    assert sampler.sigma_adjusters == (
        DetailDaemonAdjuster(0.25, 0.2, 0.8, 0.5, 1.0, 0.0, 0.0, 0.0, True, 0.0),
        result.values["5"][0].sigma_adjusters[0])
    assert len(result.outputs["3"]["images"]) == 1
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    for n in nodes:
        assert saved[n["id"]]["type"] == n["type"]
        assert saved[n["id"]]["widgets_values"] == n["widgets_values"], n["type"]


def test_first_multiply_sigmas_save_multiplies_them_all(registry):
    """The pack's first MultiplySigmas had only `factor`: its one widget value is read, the range whole."""
    nodes = [ui_node(1, "KarrasScheduler", [4, 10.0, 0.1, 7.0], outputs=[("SIGMAS", "SIGMAS", [1])]),
             ui_node(2, "MultiplySigmas", [2.0], [("sigmas", "SIGMAS", 1, False)], [("SIGMAS", "SIGMAS", [])])]
    result = run_graph(registry, ui_graph(nodes, [[1, 1, 0, 2, 0, "SIGMAS"]]), ["2"])
    assert torch.equal(result.values["2"][0], result.values["1"][0] * 2.0)
