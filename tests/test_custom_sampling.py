"""The custom-sampler nodes (ComfyUI's SamplerCustomAdvanced family): they share KSampler's engine,
so the same choices must give KSampler's latent exactly; schedules, splits and guiders are checked
against the functions and formulas they stand for."""

import pytest
import torch

from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.sampling import SCHEDULERS, DiscreteSchedule, ModelDenoiser, compute_sigmas, prepare_conds
from graphflow.sampling.noise import NoiseSource
from graphflow.sampling.pipeline import sample_custom
from graphflow.sampling.samplers import SamplerChoice
from graphflow.workflow import parse_workflow
from nodes import custom_sampling as cs
from sampling_fakes import SD, FakeModel, context_eps, gaussian_eps, prompt


def run_node(cls, **inputs):
    node = cls.__new__(cls)
    node.__dict__.update(inputs)
    return node.run()


def link(node, index=0):
    return [str(node), index]


def demo_graph():
    """ComfyUI API format on the bundled demo model: KSampler next to the same choices made with
    the custom-sampler nodes."""
    common = {"steps": 3, "cfg": 5.0, "seed": 7}
    g = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "graphflow-demo.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle on a blue background", "clip": link(1, 1)}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": link(1, 1)}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}},
        "10": {"class_type": "KSampler", "inputs": {
            "model": link(1), "seed": common["seed"], "steps": common["steps"], "cfg": common["cfg"],
            "sampler_name": "euler", "scheduler": "normal", "positive": link(2), "negative": link(3),
            "latent_image": link(4), "denoise": 1.0}},
        "11": {"class_type": "KSampler", "inputs": {
            "model": link(1), "seed": common["seed"], "steps": common["steps"], "cfg": common["cfg"],
            "sampler_name": "euler_ancestral", "scheduler": "karras", "positive": link(2), "negative": link(3),
            "latent_image": link(4), "denoise": 1.0}},
        "12": {"class_type": "KSampler", "inputs": {
            "model": link(1), "seed": common["seed"], "steps": common["steps"], "cfg": 1.0,
            "sampler_name": "euler", "scheduler": "normal", "positive": link(2), "negative": link(3),
            "latent_image": link(4), "denoise": 1.0}},
        # the same with custom nodes
        "20": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "21": {"class_type": "BasicScheduler", "inputs": {"model": link(1), "scheduler": "normal", "steps": 3, "denoise": 1.0}},
        "22": {"class_type": "SamplerCustom", "inputs": {
            "model": link(1), "add_noise": True, "noise_seed": common["seed"], "cfg": common["cfg"],
            "positive": link(2), "negative": link(3), "sampler": link(20), "sigmas": link(21), "latent_image": link(4)}},
        "23": {"class_type": "RandomNoise", "inputs": {"noise_seed": common["seed"]}},
        "24": {"class_type": "CFGGuider", "inputs": {"model": link(1), "positive": link(2), "negative": link(3), "cfg": common["cfg"]}},
        "25": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": link(23), "guider": link(24), "sampler": link(20), "sigmas": link(21), "latent_image": link(4)}},
        "30": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler_ancestral"}},
        "31": {"class_type": "BasicScheduler", "inputs": {"model": link(1), "scheduler": "karras", "steps": 3, "denoise": 1.0}},
        "32": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": link(23), "guider": link(24), "sampler": link(30), "sigmas": link(31), "latent_image": link(4)}},
        "40": {"class_type": "BasicGuider", "inputs": {"model": link(1), "conditioning": link(2)}},
        "41": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": link(23), "guider": link(40), "sampler": link(20), "sigmas": link(21), "latent_image": link(4)}},
        # SplitSigmas: high part with noise, low part from its output without
        "50": {"class_type": "SplitSigmas", "inputs": {"sigmas": link(21), "step": 1}},
        "51": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": link(23), "guider": link(24), "sampler": link(20), "sigmas": link(50, 0), "latent_image": link(4)}},
        "52": {"class_type": "DisableNoise", "inputs": {}},
        "53": {"class_type": "SamplerCustomAdvanced", "inputs": {
            "noise": link(52), "guider": link(24), "sampler": link(20), "sigmas": link(50, 1), "latent_image": link(51, 0)}},
    }
    return g


@pytest.fixture(scope="module")
def demo_results():
    from graphflow.registry import Registry

    registry = Registry().load_builtin()
    wf = parse_workflow(demo_graph(), registry)
    result = Executor(registry).run(wf, outputs=["10", "11", "12", "22", "25", "32", "41", "51", "53"])
    assert result.ok, result.error or result.problems
    return result.values


def samples(values, node, index=0):
    return values[node][index]["samples"]


def test_custom_samplers_give_ksamplers_latent_exactly(demo_results):
    ksampler = samples(demo_results, "10")
    assert torch.equal(samples(demo_results, "22"), ksampler)  # SamplerCustom
    assert torch.equal(samples(demo_results, "25"), ksampler)  # SamplerCustomAdvanced + CFGGuider
    assert ksampler.abs().max() > 0.1


def test_custom_ancestral_sampler_draws_ksamplers_noise(demo_results):
    assert torch.equal(samples(demo_results, "32"), samples(demo_results, "11"))
    assert not torch.allclose(samples(demo_results, "32"), samples(demo_results, "25"), atol=1e-2)


def test_basic_guider_is_cfg_one(demo_results):
    assert torch.equal(samples(demo_results, "41"), samples(demo_results, "12"))


def test_split_sigmas_then_disabled_noise_equals_one_run(demo_results):
    full = samples(demo_results, "25")
    two_parts = samples(demo_results, "53")
    # the halves meet through process_out / process_in (the scaling factor): float rounding only,
    # which the fp16 UNet turns into differences of ~1e-5 of the latent's range
    assert (two_parts - full).abs().max() < 1e-5 * full.abs().max() * 10
    assert not torch.allclose(samples(demo_results, "51"), full, atol=1e-2)  # the high half alone is not done


def test_denoised_output_is_the_last_x0_estimate(demo_results):
    out, denoised = demo_results["25"]
    # euler's last step goes to sigma 0, landing exactly on the last denoised estimate
    torch.testing.assert_close(denoised["samples"], out["samples"], atol=1e-5, rtol=1e-5)
    high_out, high_denoised = demo_results["51"]
    assert not torch.allclose(high_denoised["samples"], high_out["samples"], atol=1e-2)


# ---- schedulers and sigma nodes --------------------------------------------------------------

@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
@pytest.mark.parametrize("denoise", [1.0, 0.6])
def test_basic_scheduler_is_the_models_schedule(scheduler, denoise):
    model = FakeModel(gaussian_eps(0.0, 1.0))
    got = run_node(cs.BasicScheduler, model=model, scheduler=scheduler, steps=7, denoise=denoise)
    want = compute_sigmas(DiscreteSchedule.for_model(model), scheduler, 7, denoise)
    assert torch.equal(got, want)
    if denoise == 1.0:
        assert torch.equal(got, SCHEDULERS[scheduler](SD, 7))


def test_karras_and_exponential_scheduler_nodes_equal_the_scheduler_functions():
    sigma_min, sigma_max = float(SD.sigma_min), float(SD.sigma_max)
    assert torch.equal(run_node(cs.KarrasScheduler, steps=9, sigma_max=sigma_max, sigma_min=sigma_min, rho=7.0),
                       SCHEDULERS["karras"](SD, 9))
    assert torch.equal(run_node(cs.ExponentialScheduler, steps=9, sigma_max=sigma_max, sigma_min=sigma_min),
                       SCHEDULERS["exponential"](SD, 9))
    # closed form: rho = 1 is linear in sigma, exponential is geometric
    lin = run_node(cs.KarrasScheduler, steps=5, sigma_max=9.0, sigma_min=1.0, rho=1.0)
    torch.testing.assert_close(lin, torch.tensor([9.0, 7.0, 5.0, 3.0, 1.0, 0.0]))
    geo = run_node(cs.ExponentialScheduler, steps=3, sigma_max=16.0, sigma_min=1.0)
    torch.testing.assert_close(geo, torch.tensor([16.0, 4.0, 1.0, 0.0]))


def test_karras_and_exponential_refuse_bad_inputs():
    with pytest.raises(NodeInputError) as e:
        run_node(cs.ExponentialScheduler, steps=3, sigma_max=10.0, sigma_min=0.0)
    assert e.value.input == "sigma_min"
    with pytest.raises(NodeInputError):
        run_node(cs.KarrasScheduler, steps=3, sigma_max=10.0, sigma_min=0.1, rho=0.0)


@pytest.mark.parametrize("steps,denoise,timesteps", [(1, 1.0, [999]), (4, 1.0, [999, 899, 799, 699]),
                                                     (2, 0.5, [499, 399]), (10, 1.0, list(range(999, 0, -100)))])
def test_sd_turbo_scheduler_takes_the_distilled_timesteps(steps, denoise, timesteps):
    model = FakeModel(gaussian_eps(0.0, 1.0))
    got = run_node(cs.SDTurboScheduler, model=model, steps=steps, denoise=denoise)
    torch.testing.assert_close(got, torch.cat([SD.sigmas[timesteps], torch.zeros(1)]), rtol=1e-6, atol=0)


def test_split_sigmas_share_the_step_sigma():
    sigmas = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    high, low = run_node(cs.SplitSigmas, sigmas=sigmas, step=2)
    assert high.tolist() == [5.0, 4.0, 3.0] and low.tolist() == [3.0, 2.0, 1.0, 0.0]
    high, low = run_node(cs.SplitSigmasDenoise, sigmas=sigmas, denoise=0.4)  # round(5 * 0.4) = 2 low steps
    assert high.tolist() == [5.0, 4.0, 3.0, 2.0] and low.tolist() == [2.0, 1.0, 0.0]
    flipped = run_node(cs.FlipSigmas, sigmas=sigmas)
    assert flipped.tolist() == pytest.approx([0.0001, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert sigmas[0] == 5.0  # the input is not changed in place
    with pytest.raises(NodeInputError):
        run_node(cs.SplitSigmas, sigmas=torch.zeros(2, 2), step=0)


# ---- guiders -------------------------------------------------------------------------------

def _guided(guider, model, x, sigma, **kwargs):
    def prepare(conditioning, negative=False):
        return prepare_conds(conditioning, model, tuple(x.shape), x.device, negative=negative)

    return guider.denoiser(ModelDenoiser(model), prepare)(x, sigma, **kwargs)


@pytest.mark.parametrize("style", ["regular", "nested"])
@pytest.mark.parametrize("cfg1,cfg2", [(3.0, 5.0), (2.5, 1.0), (1.0, 1.0)])
def test_dual_cfg_guider_formula(style, cfg1, cfg2):
    """With eps = the prompt embedding's mean, each side's x0 estimate is x - sigma * value."""
    model = FakeModel(context_eps)
    guider = run_node(cs.DualCFGGuider, model=model, cond1=prompt(0.3), cond2=prompt(-0.2), negative=prompt(0.9),
                      cfg_conds=cfg1, cfg_cond2_negative=cfg2, style=style)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    sigma = SD.sigmas[500].reshape(1)
    got = _guided(guider, model, x, sigma)
    c1, c2, neg = (x - sigma * v for v in (0.3, -0.2, 0.9))
    if style == "regular":
        want = neg + (c2 - neg) * cfg2 + (c1 - c2) * cfg1
    else:
        want = neg + cfg2 * (c2 + (c1 - c2) * cfg1 - neg)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    evaluated = sum(call["x"].shape[0] for call in model.unet.calls)
    if style == "regular" and cfg2 == 1.0:  # the negative (and at cfg1 = 1 also cond2) cancels: not run
        assert evaluated == (1 if cfg1 == 1.0 else 2)
    else:
        assert evaluated == 3


def test_post_cfg_hook_sees_the_unconditional_prediction_even_at_cfg_one():
    model = FakeModel(context_eps)
    guider = run_node(cs.CFGGuider, model=model, positive=prompt(0.5), negative=prompt(-0.5), cfg=1.0)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    sigma = SD.sigmas[300].reshape(1)
    seen = {}

    def hook(args):
        seen.update(args)
        return args["denoised"]

    out = _guided(guider, model, x, sigma, post_cfg=hook)
    torch.testing.assert_close(seen["uncond_denoised"], x - sigma * -0.5)
    torch.testing.assert_close(seen["cond_denoised"], x - sigma * 0.5)
    torch.testing.assert_close(out, x - sigma * 0.5)
    # BasicGuider has no negative: its "unconditional" prediction is 0, as in ComfyUI
    basic = run_node(cs.BasicGuider, model=model, conditioning=prompt(0.5))
    _guided(basic, model, x, sigma, post_cfg=hook)
    assert torch.count_nonzero(seen["uncond_denoised"]) == 0


# ---- inputs ----------------------------------------------------------------------------------

COMFY_SAMPLERS = [  # ComfyUI's KSampler sampler_name choices, in its order (its /object_info)
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm",
    "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
    "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2"]

# ComfyUI's inputs of these nodes, in order: name, type, default (None: a link or no default)
COMFY_INPUTS = {
    "SamplerCustomAdvanced": [("noise", "NOISE", None), ("guider", "GUIDER", None), ("sampler", "SAMPLER", None),
                              ("sigmas", "SIGMAS", None), ("latent_image", "LATENT", None)],
    "SamplerCustom": [("model", "MODEL", None), ("add_noise", "BOOLEAN", True), ("noise_seed", "INT", 0),
                      ("cfg", "FLOAT", 8.0), ("positive", "CONDITIONING", None), ("negative", "CONDITIONING", None),
                      ("sampler", "SAMPLER", None), ("sigmas", "SIGMAS", None), ("latent_image", "LATENT", None)],
    "BasicGuider": [("model", "MODEL", None), ("conditioning", "CONDITIONING", None)],
    "CFGGuider": [("model", "MODEL", None), ("positive", "CONDITIONING", None), ("negative", "CONDITIONING", None),
                  ("cfg", "FLOAT", 8.0)],
    "DualCFGGuider": [("model", "MODEL", None), ("cond1", "CONDITIONING", None), ("cond2", "CONDITIONING", None),
                      ("negative", "CONDITIONING", None), ("cfg_conds", "FLOAT", 8.0),
                      ("cfg_cond2_negative", "FLOAT", 8.0), ("style", "CHOICE", "regular")],
    "RandomNoise": [("noise_seed", "INT", 0)],
    "DisableNoise": [],
    "KSamplerSelect": [("sampler_name", "CHOICE", "euler")],
    "BasicScheduler": [("model", "MODEL", None), ("scheduler", "CHOICE", "simple"), ("steps", "INT", 20),
                       ("denoise", "FLOAT", 1.0)],
    "KarrasScheduler": [("steps", "INT", 20), ("sigma_max", "FLOAT", 14.614642), ("sigma_min", "FLOAT", 0.0291675),
                        ("rho", "FLOAT", 7.0)],
    "ExponentialScheduler": [("steps", "INT", 20), ("sigma_max", "FLOAT", 14.614642),
                             ("sigma_min", "FLOAT", 0.0291675)],
    "SDTurboScheduler": [("model", "MODEL", None), ("steps", "INT", 1), ("denoise", "FLOAT", 1.0)],
    "SplitSigmas": [("sigmas", "SIGMAS", None), ("step", "INT", 0)],
    "SplitSigmasDenoise": [("sigmas", "SIGMAS", None), ("denoise", "FLOAT", 1.0)],
    "FlipSigmas": [("sigmas", "SIGMAS", None)],
}


def test_sampler_choices_are_comfyuis():
    from graphflow.sampling import SAMPLER_NAMES, SAMPLERS, SCHEDULER_NAMES, SCHEDULERS

    assert list(SAMPLER_NAMES) == COMFY_SAMPLERS
    # the torch-free lists the nodes declare (graphflow.choices) are exactly what is implemented
    assert list(SAMPLERS) == list(SAMPLER_NAMES) and list(SCHEDULERS) == list(SCHEDULER_NAMES)
    assert cs.KSamplerSelect.input_specs["sampler_name"].widget.choices() == COMFY_SAMPLERS


@pytest.mark.parametrize("node_type", list(COMFY_INPUTS))
def test_nodes_have_comfyuis_names_inputs_and_defaults(node_type, builtin_registry):
    from graphflow.node import node_catalogue

    cls = builtin_registry.comfy_node(node_type)
    assert cls is not None and cls.node_type == node_type
    got = [(i["name"], i["type"], i.get("default")) for i in node_catalogue(cls)["inputs"]]
    assert got == COMFY_INPUTS[node_type]

def test_sample_custom_names_bad_inputs():
    model = FakeModel(gaussian_eps(0.0, 1.0))
    guider = run_node(cs.CFGGuider, model=model, positive=prompt(0.1), negative=prompt(0.0), cfg=2.0)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    good = dict(guider=guider, noise=NoiseSource(1), sampler=SamplerChoice("euler"), sigmas=SD.sigmas[[999, 500]],
                latent=latent)
    for name, bad in [("sigmas", torch.zeros(2, 3)), ("sampler", "euler"), ("noise", 3), ("guider", model)]:
        with pytest.raises(NodeInputError) as e:
            sample_custom(**{**good, name: bad})
        assert e.value.input == name
    with pytest.raises(NodeInputError) as e:
        sample_custom(**{**good, "latent": {"samples": torch.ones(1, 3, 8, 8)}})
    assert e.value.input == "latent_image"


def test_no_sigmas_returns_the_latent_and_disabled_noise_keeps_seed_zero():
    model = FakeModel(gaussian_eps(0.0, 1.0))
    guider = run_node(cs.BasicGuider, model=model, conditioning=prompt(0.1))
    latent = {"samples": torch.randn(1, 4, 8, 8)}
    out, denoised = sample_custom(guider, run_node(cs.DisableNoise), run_node(cs.KSamplerSelect, sampler_name="euler"),
                                  torch.zeros(0), latent)
    assert torch.equal(out["samples"], latent["samples"]) and denoised is out
    assert run_node(cs.DisableNoise) == NoiseSource(0, enabled=False)
    assert len(model.unet.calls) == 0


@pytest.mark.parametrize("name", COMFY_SAMPLERS)
def test_every_sampler_runs_in_the_pipeline_and_keeps_a_masks_known_region(name):
    """Through KSampler's engine with a noise mask (the masked denoiser passes the CFG++ hook on)."""
    model = FakeModel(gaussian_eps(0.2, 0.5))
    known = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    mask = torch.zeros(8, 8)
    mask[:, 4:] = 1.0
    latent = {"samples": known, "noise_mask": mask}
    guider = run_node(cs.CFGGuider, model=model, positive=prompt(0.1), negative=prompt(-0.1), cfg=3.0)
    sigmas = run_node(cs.BasicScheduler, model=model, scheduler="karras", steps=5, denoise=1.0)
    out, denoised = sample_custom(guider, NoiseSource(2), SamplerChoice(name), sigmas, latent)
    samples = out["samples"]
    assert samples.shape == known.shape and torch.isfinite(samples).all()
    # uni_pc ends at sigma 0.001, DPM-Solver fast / adaptive at the last nonzero sigma (0.03): a
    # trace of noise is left there (at the scaling factor 0.18215, ~5x that in the raw latent)
    tolerance = {"uni_pc": 0.05, "uni_pc_bh2": 0.05, "dpm_fast": 0.5, "dpm_adaptive": 0.5}.get(name, 1e-4)
    torch.testing.assert_close(samples[..., :4], known[..., :4], rtol=0, atol=tolerance)
    assert (samples[..., 4:] - known[..., 4:]).abs().max() > 1e-2


def test_custom_samplers_declare_their_memory_and_schedulers_their_steps(builtin_registry):
    from graphflow.resource_limits import RunLimits
    from graphflow.validation import validate

    graph = demo_graph()
    graph["21"]["inputs"]["steps"] = 5000
    wf = parse_workflow(graph, builtin_registry)
    problems = validate(wf, builtin_registry, outputs=["25"], limits=RunLimits(max_steps=1000))
    assert [(p.node_id, p.input) for p in problems] == [("21", "steps")]
    graph = demo_graph()
    graph["4"]["inputs"].update(width=16384, height=16384, batch_size=64)
    for node in ("22", "25"):  # SamplerCustom, SamplerCustomAdvanced: the UNet's working memory
        problems = validate(parse_workflow(graph, builtin_registry), builtin_registry, outputs=[node],
                            limits=RunLimits(ram_bytes=10**10, device_bytes=10**10))
        assert [(p.node_id, p.input) for p in problems] == [(node, "latent_image")]
