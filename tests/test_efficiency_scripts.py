"""Efficiency Nodes' HighRes-Fix Script and Noise Control Script (nodes/efficiency_nodes.py) on the
demo model, against the core nodes the pack runs for the same settings: latent mode against
KSampler -> LatentUpscaleBy -> KSampler, pixel mode against VAEDecode -> ImageUpscaleWithModel ->
ImageScaleBy, both against that -> VAEEncode -> KSampler, the ControlNet pass against the
preprocessor and ControlNetApply; Noise Control's starting noise against its rule computed here from
torch.randn draws and fed to the sampling engine. UI-format fixtures are written as the pack's
editor saves them (the seed's control replaced by the pack's button, saved as null; "_" for
use_controlnet / preprocessor where comfyui_controlnet_aux is missing)."""

from dataclasses import dataclass, field

import pytest
import torch

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.resource_limits import SERVER_LIMITS, RunLimits
from graphflow.testing import write_checkpoint, write_controlnet, write_esrgan
from graphflow.validation import validate
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph

SEED, STEPS, CFG = 5, 2, 7.0


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.fixture
def models(tmp_folders):
    for sub in ("checkpoints", "upscale_models", "controlnet"):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    write_checkpoint(tmp_folders.models / "checkpoints" / "other.safetensors", "sd1", seed=3)
    write_esrgan(tmp_folders.models / "upscale_models" / "x4.safetensors", scale=4)
    write_esrgan(tmp_folders.models / "upscale_models" / "x2.safetensors", scale=2, seed=1)
    write_controlnet(tmp_folders.models / "controlnet" / "control.safetensors", "sd1")
    return tmp_folders


def hires(**settings):
    inputs = {"upscale_type": "latent", "hires_ckpt_name": "(use same)", "latent_upscaler": "bilinear",
              "pixel_upscaler": "x4.safetensors", "upscale_by": 1.5, "use_same_seed": True, "seed": 11,
              "hires_steps": 2, "denoise": 0.5, "iterations": 1, "use_controlnet": False,
              "control_net_name": "control.safetensors", "strength": 1.0, "preprocessor": "none",
              "preprocessor_imgs": False}
    return {"class_type": "HighRes-Fix Script", "inputs": {**inputs, **settings}}


def noise_control(**settings):
    inputs = {"rng_source": "cpu", "cfg_denoiser": False, "add_seed_noise": False, "seed": 9, "weight": 0.015}
    return {"class_type": "Noise Control Script", "inputs": {**inputs, **settings}}


def loaders(batch=1):
    return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a red cat"}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
            "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": batch}}}


def efficient(script=None, batch=1, vae_decode="true", sampler="KSampler (Efficient)", **scripts):
    """Loaders, KSampler (Efficient) as node 5, the script nodes as given (script: the link in)."""
    inputs = {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
              "optional_vae": ["1", 2], "seed": SEED, "steps": STEPS, "cfg": CFG, "sampler_name": "euler",
              "scheduler": "normal", "denoise": 1.0, "preview_method": "none", "vae_decode": vae_decode}
    if sampler == "KSampler Adv. (Efficient)":
        inputs.update(add_noise="enable", noise_seed=inputs.pop("seed"), start_at_step=0, end_at_step=10000,
                      return_with_leftover_noise="disable")
        del inputs["denoise"]
    if script is not None:
        inputs["script"] = script
    return {**loaders(batch), "5": {"class_type": sampler, "inputs": inputs}, **scripts}


def ksampler(latent, seed=SEED, steps=STEPS, denoise=1.0, model=("1", 0), positive=("2", 0)):
    return {"class_type": "KSampler", "inputs": {
        "model": list(model), "positive": list(positive), "negative": ["3", 0], "latent_image": latent, "seed": seed,
        "steps": steps, "cfg": CFG, "sampler_name": "euler", "scheduler": "normal", "denoise": denoise}}


def latent_hires(graph, source, method="bilinear", scale=1.5, iterations=1, seed=SEED, model=("1", 0),
                 positive=("2", 0)):
    """Core nodes c<i>u / c<i>k: LatentUpscaleBy then KSampler at the hires settings, iterations times
    after node `source`; returns the last KSampler's id."""
    for i in range(iterations):
        graph[f"c{i}u"] = {"class_type": "LatentUpscaleBy", "inputs": {"samples": [source, 0],
                                                                      "upscale_method": method, "scale_by": scale}}
        graph[f"c{i}k"] = ksampler([f"c{i}u", 0], seed=seed, denoise=0.5, model=model, positive=positive)
        source = f"c{i}k"
    return source


def outputs(result, node="5"):
    values = result.values[node]
    return values[3]["samples"], values[5]


def decoded(graph, source):
    graph["dec"] = {"class_type": "VAEDecode", "inputs": {"samples": [source, 0], "vae": ["1", 2]}}
    return "dec"


@pytest.mark.parametrize("iterations, method", [(1, "bilinear"), (2, "bislerp")])
def test_latent_hires_equals_the_core_chain(registry, models, iterations, method):
    got = run_graph(registry, efficient(["6", 0], **{"6": hires(iterations=iterations, latent_upscaler=method)}),
                    ["5"])
    core = {**loaders(), "c": ksampler(["4", 0])}
    last = latent_hires(core, "c", method=method, iterations=iterations)
    want = run_graph(registry, core, [last, decoded(core, last)])
    latent, image = outputs(got)
    assert torch.equal(latent, want.values[last][0]["samples"])
    side = 8
    for _ in range(iterations):
        side = round(side * 1.5)
    assert latent.shape == (1, 4, side, side)
    assert torch.equal(image, want.values["dec"][0])


def test_hires_seed_and_checkpoint(registry, models):
    """use_same_seed off samples the hires pass with the script's seed; hires_ckpt_name with that
    checkpoint's model (the prompts stay the sampler's)."""
    graph = efficient(["6", 0], **{"6": hires(use_same_seed=False, seed=11, hires_ckpt_name="other.safetensors")})
    got = run_graph(registry, graph, ["5"])
    core = {**loaders(), "c": ksampler(["4", 0]),
            "h": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "other.safetensors"}}}
    last = latent_hires(core, "c", seed=11, model=("h", 0))
    want = run_graph(registry, core, [last])
    assert torch.equal(outputs(got)[0], want.values[last][0]["samples"])
    same = run_graph(registry, efficient(["6", 0], **{"6": hires(seed=11)}), ["5"])
    assert not torch.equal(outputs(same)[0], outputs(got)[0])


def test_pixel_hires_upscales_the_image_only(registry, models):
    """pixel: the first pass decoded, upscaled by the model, resized by upscale_by / 4 (nearest-exact);
    the LATENT stays the first pass's, as the pack gives it."""
    got = run_graph(registry, efficient(["6", 0], vae_decode="false",
                                        **{"6": hires(upscale_type="pixel", pixel_upscaler="x2.safetensors")}), ["5"])
    core = {**loaders(), "c": ksampler(["4", 0]),
            "u": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "x2.safetensors"}},
            "m": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["u", 0], "image": ["dec", 0]}},
            "s": {"class_type": "ImageScaleBy", "inputs": {"image": ["m", 0], "upscale_method": "nearest-exact",
                                                           "scale_by": 1.5 / 4}}}
    decoded(core, "c")
    want = run_graph(registry, core, ["c", "s"])
    latent, image = outputs(got)
    assert torch.equal(latent, want.values["c"][0]["samples"])
    assert image.shape == (1, 48, 48, 3)  # 64 * 2 (the model) * 1.5 / 4
    assert torch.equal(image, want.values["s"][0])


@pytest.mark.parametrize("iterations", [1, 2])
def test_both_hires_equals_the_core_chain(registry, models, iterations):
    """both: each iteration decodes, upscales with the model and by upscale_by / 4, encodes and samples
    (the pack's LatentUpscaleBy by 1 in between leaves the latent as it is)."""
    graph = efficient(["6", 0], **{"6": hires(upscale_type="both", upscale_by=2.0, iterations=iterations)})
    got = run_graph(registry, graph, ["5"])
    core = {**loaders(), "c": ksampler(["4", 0]),
            "u": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "x4.safetensors"}}}
    source = "c"
    for i in range(iterations):
        core.update({
            f"d{i}": {"class_type": "VAEDecode", "inputs": {"samples": [source, 0], "vae": ["1", 2]}},
            f"m{i}": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["u", 0],
                                                                        "image": [f"d{i}", 0]}},
            f"s{i}": {"class_type": "ImageScaleBy", "inputs": {"image": [f"m{i}", 0],
                                                               "upscale_method": "nearest-exact", "scale_by": 0.5}},
            f"e{i}": {"class_type": "VAEEncode", "inputs": {"pixels": [f"s{i}", 0], "vae": ["1", 2]}},
            f"k{i}": ksampler([f"e{i}", 0], denoise=0.5)})
        source = f"k{i}"
    want = run_graph(registry, core, [source, decoded(core, source)])
    latent, image = outputs(got)
    assert latent.shape == (1, 4, 8 * 2 ** iterations, 8 * 2 ** iterations)
    assert torch.equal(latent, want.values[source][0]["samples"])
    assert torch.equal(image, want.values["dec"][0])


def test_controlnet_pass_equals_the_core_chain(registry, models):
    """use_controlnet: the first pass decoded, the preprocessor's map of it applied with the
    ControlNet to the positive prompt (Apply ControlNet) for the hires pass."""
    graph = efficient(["6", 0], **{"6": hires(use_controlnet=True, preprocessor="CannyEdgePreprocessor",
                                              strength=0.8)})
    got = run_graph(registry, graph, ["5"])
    core = {**loaders(), "c": ksampler(["4", 0]),
            "p": {"class_type": "CannyEdgePreprocessor", "inputs": {"image": ["cd", 0], "low_threshold": 100,
                                                                    "high_threshold": 200, "resolution": 512}},
            "n": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "control.safetensors"}},
            "a": {"class_type": "ControlNetApply", "inputs": {"conditioning": ["2", 0], "control_net": ["n", 0],
                                                              "image": ["p", 0], "strength": 0.8}},
            "cd": {"class_type": "VAEDecode", "inputs": {"samples": ["c", 0], "vae": ["1", 2]}}}
    last = latent_hires(core, "c", positive=("a", 0))
    want = run_graph(registry, core, [last])
    assert torch.equal(outputs(got)[0], want.values[last][0]["samples"])
    plain = run_graph(registry, efficient(["6", 0], **{"6": hires()}), ["5"])
    assert not torch.equal(outputs(plain)[0], outputs(got)[0])  # the ControlNet did act


def test_adv_sampler_with_hires(registry, models):
    """KSampler Adv. (Efficient): its pass as KSamplerAdvanced, then the hires pass as KSampler with
    its noise_seed."""
    graph = efficient(["6", 0], sampler="KSampler Adv. (Efficient)", **{"6": hires()})
    got = run_graph(registry, graph, ["5"])
    core = {**loaders(), "c": {"class_type": "KSamplerAdvanced", "inputs": {
        "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "add_noise": "enable",
        "noise_seed": SEED, "steps": STEPS, "cfg": CFG, "sampler_name": "euler", "scheduler": "normal",
        "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable"}}}
    last = latent_hires(core, "c")
    want = run_graph(registry, core, [last])
    assert torch.equal(outputs(got)[0], want.values[last][0]["samples"])


def test_sdxl_sampler_with_noise_and_hires(registry, models):
    """KSampler SDXL (Eff.) without a refiner: its base pass as KSamplerAdvanced (leftover noise kept)
    from the script's starting noise, then the hires pass on the base model and prompts."""
    graph = efficient(None, **{"6": hires(), "7": noise_control(add_seed_noise=True, seed=9, weight=0.25),
                              "8": {"class_type": "Pack SDXL Tuple", "inputs": {
                                  "base_model": ["1", 0], "base_clip": ["1", 1], "base_positive": ["2", 0],
                                  "base_negative": ["3", 0], "refiner_model": ["1", 0], "refiner_clip": ["1", 1],
                                  "refiner_positive": ["2", 0], "refiner_negative": ["3", 0]}}})
    graph["6"]["inputs"]["script"] = ["7", 0]
    graph["5"] = {"class_type": "KSampler SDXL (Eff.)", "inputs": {
        "sdxl_tuple": ["8", 0], "noise_seed": SEED, "steps": STEPS, "cfg": CFG, "sampler_name": "euler",
        "scheduler": "normal", "latent_image": ["4", 0], "start_at_step": 0, "refine_at_step": -1,
        "preview_method": "none", "vae_decode": "false", "optional_vae": ["1", 2], "script": ["6", 0]}}
    got = run_graph(registry, graph, ["5"]).values["5"][1]["samples"]
    base = engine(registry, mixed(SEED, 9, 0.25, (1, 4, 8, 8)), {"samples": torch.zeros(1, 4, 8, 8)},
                  leftover=True)
    upscaled = call(registry, "LatentUpscaleBy", samples={"samples": base}, upscale_method="bilinear", scale_by=1.5)
    want = engine(registry, mixed(SEED, 9, 0.25, (1, 4, 12, 12)), upscaled, denoise=0.5)
    assert torch.equal(got, want)


# -- Noise Control -------------------------------------------------------------------------------

@dataclass(frozen=True)
class GivenNoise:
    """Starting noise computed in the test, for the sampling engine (a NoiseSource's interface)."""
    seed: int
    noise: torch.Tensor = field(compare=False)
    enabled: bool = True

    def generate(self, samples, batch_index=None):
        assert tuple(samples.shape) == tuple(self.noise.shape)
        return self.noise


def randn(seed, shape):
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))


def mixed(seed, second_seed, weight, shape):
    """The pack's add_seed_noise rule: the first image's noise for each seed; image i of the batch
    gets noise * (1 - weight * i) + second * (weight * i), one image noise * (1 - w) + second * w."""
    one = [1] + list(shape[1:])
    noise, second = randn(seed, one), randn(second_seed, one)
    if shape[0] == 1:
        return noise * (1 - weight) + second * weight
    return torch.cat([noise * (1 - weight * i) + second * (weight * i) for i in range(shape[0])])


def engine(registry, noise, latent, seed=SEED, steps=STEPS, denoise=1.0, leftover=False):
    """The sampling engine run as KSampler runs it (leftover: as KSamplerAdvanced keeping the
    leftover noise), starting from the given noise."""
    from graphflow.sampling.pipeline import sample

    base = run_graph(registry, loaders(), ["1", "2", "3"]).values
    options = {"start_step": 0, "end_step": steps, "return_with_leftover_noise": True} if leftover else {}
    return sample(base["1"][0], seed, steps, CFG, "euler", "normal", base["2"][0], base["3"][0], latent,
                  denoise=denoise, starting_noise=GivenNoise(seed, noise), **options)["samples"]


def test_cpu_noise_is_ksamplers(registry, models):
    got = run_graph(registry, efficient(["7", 0], **{"7": noise_control(cfg_denoiser=True)}), ["5"])
    want = run_graph(registry, {**loaders(), "c": ksampler(["4", 0])}, ["c"])
    assert torch.equal(outputs(got)[0], want.values["c"][0]["samples"])


@pytest.mark.parametrize("batch, weight", [(1, 0.3), (3, 0.2)])
def test_add_seed_noise_follows_the_rule(registry, models, batch, weight):
    got = run_graph(registry, efficient(["7", 0], batch=batch,
                                        **{"7": noise_control(add_seed_noise=True, seed=9, weight=weight)}), ["5"])
    shape = (batch, 4, 8, 8)
    want = engine(registry, mixed(SEED, 9, weight, shape), {"samples": torch.zeros(shape)})
    assert torch.equal(outputs(got)[0], want)
    if batch == 1:  # weight 1: the second seed's noise alone, KSampler's for that seed
        got = run_graph(registry, efficient(["7", 0], **{"7": noise_control(add_seed_noise=True, seed=9,
                                                                            weight=1.0)}), ["5"])
        want = run_graph(registry, {**loaders(), "c": ksampler(["4", 0], seed=9)}, ["c"])
        assert torch.equal(outputs(got)[0], want.values["c"][0]["samples"])


def test_noise_and_hires_chain_in_either_order(registry, models):
    """The starting noise of every pass is the script's (the hires pass's drawn for its seed, at
    its size); chained either way round the result is the same."""
    scripts = {"6": hires(use_same_seed=False, seed=11), "7": noise_control(add_seed_noise=True, seed=9, weight=0.4)}
    scripts["6"]["inputs"]["script"] = ["7", 0]
    first = run_graph(registry, efficient(["6", 0], **scripts), ["5"])
    scripts = {"6": hires(use_same_seed=False, seed=11), "7": noise_control(add_seed_noise=True, seed=9, weight=0.4)}
    scripts["7"]["inputs"]["script"] = ["6", 0]
    second = run_graph(registry, efficient(["7", 0], **scripts), ["5"])
    assert torch.equal(outputs(first)[0], outputs(second)[0])
    assert first.values["6"][0].hiresfix is not None and first.values["6"][0].noise is not None
    latent = engine(registry, mixed(SEED, 9, 0.4, (1, 4, 8, 8)), {"samples": torch.zeros(1, 4, 8, 8)})
    upscaled = call(registry, "LatentUpscaleBy", samples={"samples": latent}, upscale_method="bilinear", scale_by=1.5)
    want = engine(registry, mixed(11, 9, 0.4, (1, 4, 12, 12)), upscaled, seed=11, denoise=0.5)
    assert torch.equal(outputs(first)[0], want)


def test_gpu_noise(registry, models, caplog):
    """gpu: the CUDA generator's noise where there is CUDA; elsewhere the CPU's, with a warning
    (one per sampler run, however many passes draw noise)."""
    result = run_graph(registry, efficient(["7", 0], **{"7": noise_control(rng_source="gpu")}), ["5"])
    if torch.cuda.is_available():
        noise = torch.randn((1, 4, 8, 8), generator=torch.Generator("cuda").manual_seed(SEED), device="cuda").cpu()
        want = engine(registry, noise, {"samples": torch.zeros(1, 4, 8, 8)})
        assert torch.allclose(outputs(result)[0], want.to(outputs(result)[0].device), atol=1e-5)
    else:
        want = run_graph(registry, {**loaders(), "c": ksampler(["4", 0])}, ["c"])
        assert torch.equal(outputs(result)[0], want.values["c"][0]["samples"])
        assert any("rng_source gpu" in r.getMessage() and "no CUDA" in r.getMessage() for r in caplog.records)
        caplog.clear()
        scripts = {"6": hires(iterations=2, script=["7", 0]), "7": noise_control(rng_source="gpu")}
        hired = run_graph(registry, efficient(["6", 0], **scripts), ["5"])
        assert len([r for r in caplog.records if "rng_source gpu" in r.getMessage()]) == 1
        scripts["7"]["inputs"]["rng_source"] = "cpu"
        assert torch.equal(outputs(hired)[0], outputs(run_graph(registry, efficient(["6", 0], **scripts), ["5"]))[0])


def test_api_inputs_leave_the_prompt_as_read():
    from nodes.efficiency_nodes import hires_api_inputs

    prompt = {"use_controlnet": "_", "preprocessor": "_", "upscale_by": 1.5}
    assert hires_api_inputs(prompt) == {"use_controlnet": False, "preprocessor": "none", "upscale_by": 1.5}
    assert prompt == {"use_controlnet": "_", "preprocessor": "_", "upscale_by": 1.5}


# -- clear errors ---------------------------------------------------------------------------------

def failure(registry, graph, node="5"):
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=[node])
    assert not result.ok
    return result


@pytest.mark.parametrize("settings, name, words", [
    ({"latent_upscaler": "city96.v1"}, "latent_upscaler", "city96.v1"),
    ({"latent_upscaler": "ttl_nn.SD 1.x"}, "latent_upscaler", "ttl_nn.SD 1.x"),
    ({"use_controlnet": True, "preprocessor": "DWPreprocessor"}, "preprocessor", "DWPreprocessor")])
def test_hires_refusals(registry, models, settings, name, words):
    with pytest.raises(NodeInputError) as e:
        call(registry, "HighResFixScript", **{**hires(**settings)["inputs"]})
    assert e.value.input == name and words in str(e.value)
    # an NN upscaler is not refused where the pack doesn't use it (both mode takes nearest-exact)
    call(registry, "HighResFixScript", **{**hires(**settings)["inputs"], "upscale_type": "both",
                                          "use_controlnet": False})


def test_nv_rng_and_unbuilt_scripts_are_refused(registry, models):
    with pytest.raises(NodeInputError) as e:
        call(registry, "NoiseControlScript", rng_source="nv")
    assert e.value.input == "rng_source" and "nv" in str(e.value)
    for key, name in (("tile", "Tiled Upscaler Script"), ("anim", "AnimateDiff Script")):
        with pytest.raises(NodeInputError) as e:
            call(registry, "KSamplerEfficient", model=None, positive=None, negative=None, latent_image=None,
                 script={"noise": {}, key: {}})
        assert e.value.input == "script" and name in str(e.value) and "HighRes" not in str(e.value)


def test_a_script_from_another_node_is_refused(registry, models, monkeypatch):
    """Only the script nodes' SCRIPT is taken: a dict linked from an ANY output (Crystools' JSON
    extractor, holding settings no script node checked: hires_steps 10**9) is refused by name before
    anything is sampled, as is a dict given to a script node's script input."""
    import json

    from graphflow.sampling import pipeline

    sampled = []
    monkeypatch.setattr(pipeline, "sample", lambda *args, **kwargs: sampled.append(args))
    settings = {**hires()["inputs"], "hires_steps": 10**9}
    (models.inputs / "s.json").write_text(json.dumps({"s": {"hiresfix": settings}}))
    read = {"j": {"class_type": "Read JSON file [Crystools]", "inputs": {"path_to_json": "s.json"}},
            "x": {"class_type": "JSON extractor [Crystools]", "inputs": {"json": ["j", 0], "key": "s", "default": ""}}}
    result = failure(registry, efficient(["x", 0], **read))
    assert result.error["node_id"] == "5" and result.error["input"] == "script"
    assert "HighRes-Fix Script" in result.error["message"] and "'hiresfix'" in result.error["message"]
    assert sampled == []
    chained = failure(registry, efficient(["6", 0], **read, **{"6": noise_control(script=["x", 0])}))
    assert chained.error["node_id"] == "6" and chained.error["input"] == "script"
    with pytest.raises(NodeInputError) as e:
        call(registry, "KSamplerEfficient", model=None, positive=None, negative=None, latent_image=None,
             script={"noise": {"rng_source": "nv"}})
    assert e.value.input == "script"


def test_pixel_hires_needs_a_vae_and_huge_upscales_are_refused_first(registry, models, monkeypatch):
    """Refused before anything is sampled: a pixel upscale without a VAE, hires sizes over the
    pixels an image may have (16384² without a server limit, the server's max_pixels with one);
    hires_steps is held to the server's max_steps when the graph is validated."""
    from graphflow.sampling import pipeline

    sampled = []
    monkeypatch.setattr(pipeline, "sample", lambda *args, **kwargs: sampled.append(args))
    graph = efficient(["6", 0], **{"6": hires(upscale_type="pixel")})
    del graph["5"]["inputs"]["optional_vae"]
    result = failure(registry, graph)
    assert result.error["input"] == "optional_vae" and "connect a VAE" in result.error["message"]
    graph = efficient(["6", 0], **{"6": hires(upscale_by=8.0, iterations=5)})
    result = failure(registry, graph)
    assert result.error["input"] == "script" and "HighRes-Fix Script" in result.error["message"]
    graph = efficient(["6", 0], **{"6": hires(upscale_type="both", upscale_by=8.0)})  # 64 * 4, then * 8 / 4
    result = Executor(registry, limits=RunLimits(max_pixels=300 * 300)).run(parse_workflow(graph, registry),
                                                                           outputs=["5"])
    assert not result.ok and result.error["input"] == "script" and "512x512" in result.error["message"]
    assert sampled == []
    graph = efficient(["6", 0], **{"6": hires(upscale_by=8.0)})  # a video's 5-D latent: its frames 64 * 8 pixels
    graph["4"] = {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64, "length": 1,
                                                                     "batch_size": 1}}
    result = Executor(registry, limits=RunLimits(max_pixels=300 * 300)).run(parse_workflow(graph, registry),
                                                                           outputs=["5"])
    assert not result.ok and result.error["input"] == "script" and "512x512" in result.error["message"]
    assert len(sampled) == 0
    problems = validate(parse_workflow(efficient(["6", 0], **{"6": hires(hires_steps=2000)}), registry), registry,
                        limits=SERVER_LIMITS)
    assert [(p.node_id, p.input) for p in problems] == [("6", "hires_steps")]


def test_hires_passes_are_held_to_the_memory_before_the_first_pass(registry, models, monkeypatch):
    """By the planner's rule (check_run_memory): sampling a batch of 16 upscaled from 512x512 by 8
    (16 x 4096x4096, about 15 GB of working memory) is refused under 2 GiB before the first pass, as
    the core KSampler -> LatentUpscaleBy -> KSampler chain is refused by validation; pixel mode's
    upscaled images (16 x 4096x4096 x 12 bytes) are held to the RAM."""
    from graphflow.sampling import pipeline

    sampled = []

    def sample(model, seed, steps, cfg, sampler, scheduler, positive, negative, latent, **options):
        sampled.append(tuple(latent["samples"].shape))
        return {**latent, "samples": torch.zeros_like(latent["samples"])}

    monkeypatch.setattr(pipeline, "sample", sample)
    limits = RunLimits(ram_bytes=2 * 2**30, device_bytes=2 * 2**30)
    for settings, words in (({}, "working memory on device"), ({"upscale_type": "pixel"}, "the images")):
        graph = efficient(["6", 0], batch=16, vae_decode="false", **{"6": hires(upscale_by=8.0, **settings)})
        graph["4"]["inputs"].update(width=512, height=512)
        result = Executor(registry, limits=limits).run(parse_workflow(graph, registry), outputs=["5"])
        assert not result.ok and result.error["input"] == "script", (result.problems, result.error)
        assert "16 × 4096×4096" in result.error["message"] and words in result.error["message"]
        assert "4096x4096" in result.error["message"] and "HighRes-Fix Script" in result.error["message"]
    assert sampled == []
    core = {**loaders(16), "c": ksampler(["4", 0]), "k": ksampler(["u", 0], denoise=0.5),
            "u": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["c", 0], "upscale_method": "bilinear",
                                                             "scale_by": 8.0}}}
    core["4"]["inputs"].update(width=512, height=512)
    core["d"] = {"class_type": "VAEDecode", "inputs": {"samples": ["k", 0], "vae": ["1", 2]}}
    core["p"] = {"class_type": "PreviewImage", "inputs": {"images": ["d", 0]}}
    found = validate(parse_workflow(core, registry), registry, limits=limits)
    assert any(p.node_id == "k" and "16 × 4096×4096" in p.message for p in found), found
    graph = efficient(["6", 0], batch=16, vae_decode="false", **{"6": hires(upscale_by=8.0)})
    graph["4"]["inputs"].update(width=64, height=64)  # 16 x 512x512 fits
    result = Executor(registry, limits=limits).run(parse_workflow(graph, registry), outputs=["5"])
    assert result.ok, result.error
    assert sampled == [(16, 4, 8, 8), (16, 4, 64, 64)]


def test_both_mode_below_the_vaes_8_pixels_is_refused_naming_upscale_by(registry, models):
    result = failure(registry, efficient(["6", 0], **{"6": hires(upscale_type="both", upscale_by=0.01)}))
    assert result.error["input"] == "script" and "upscale_by" in result.error["message"]
    assert "8x8" in result.error["message"] and "1x1" in result.error["message"]
    result = run_graph(registry, efficient(["6", 0], **{"6": hires(upscale_type="latent", upscale_by=0.01)}), ["5"])
    assert outputs(result)[0].shape == (1, 4, 1, 1)  # a latent pass makes it, as LatentUpscaleBy does


# -- the pack's saves ----------------------------------------------------------------------------

def ui_node(id, type, widgets, inputs=(), outputs=()):
    return {"id": id, "type": type, "pos": [0, 0], "size": [300, 200], "flags": {}, "order": id, "mode": 0,
            "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
            "outputs": [{"name": n, "type": t, "links": links} for n, t, links in outputs],
            "properties": {"Node name for S&R": type}, "widgets_values": widgets}


def saved_graph(noise_seed_control=None):
    """As the editor saves it: the seeds followed by the pack's button (null) or, for an editor
    without the pack's seed control on scripts, control_after_generate; "_" for use_controlnet and
    preprocessor (comfyui_controlnet_aux not installed)."""
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"], [],
                [("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2, 3]), ("VAE", "VAE", [4])]),
        ui_node(2, "CLIPTextEncode", ["a red cat"], [("clip", "CLIP", 2)], [("CONDITIONING", "CONDITIONING", [5])]),
        ui_node(3, "CLIPTextEncode", ["blurry"], [("clip", "CLIP", 3)], [("CONDITIONING", "CONDITIONING", [6])]),
        ui_node(4, "EmptyLatentImage", [64, 64, 1], [], [("LATENT", "LATENT", [7])]),
        ui_node(5, "KSampler (Efficient)", [SEED, None, STEPS, CFG, "euler", "normal", 1.0, "none", "true"],
                [("model", "MODEL", 1), ("positive", "CONDITIONING", 5), ("negative", "CONDITIONING", 6),
                 ("latent_image", "LATENT", 7), ("optional_vae", "VAE", 4), ("script", "SCRIPT", 8)],
                [("MODEL", "MODEL", []), ("CONDITIONING+", "CONDITIONING", []),
                 ("CONDITIONING-", "CONDITIONING", []), ("LATENT", "LATENT", []), ("VAE", "VAE", []),
                 ("IMAGE", "IMAGE", [])]),
        ui_node(6, "HighRes-Fix Script", ["latent", "(use same)", "bilinear", "x4.safetensors", 1.5, False, 11, None,
                                          2, 0.5, 1, "_", "control.safetensors", 1.0, "_", False],
                [("script", "SCRIPT", 9)], [("SCRIPT", "SCRIPT", [8])]),
        ui_node(7, "Noise Control Script", ["cpu", False, True, 9, noise_seed_control, 0.4],
                [("script", "SCRIPT", None)], [("SCRIPT", "SCRIPT", [9])]),
    ]
    links = [[1, 1, 0, 5, 0, "MODEL"], [2, 1, 1, 2, 0, "CLIP"], [3, 1, 1, 3, 0, "CLIP"], [4, 1, 2, 5, 4, "VAE"],
             [5, 2, 0, 5, 1, "CONDITIONING"], [6, 3, 0, 5, 2, "CONDITIONING"], [7, 4, 0, 5, 3, "LATENT"],
             [8, 6, 0, 5, 5, "SCRIPT"], [9, 7, 0, 6, 0, "SCRIPT"]]
    return ui_graph(nodes, links)


@pytest.mark.parametrize("control", [None, "fixed"])
def test_ui_save_reads_runs_and_round_trips(registry, models, control):
    graph = saved_graph(control)
    workflow = parse_workflow(graph, registry)
    nodes = workflow.to_json()["nodes"]
    assert {k: nodes["6"]["inputs"][k] for k in ("use_same_seed", "seed", "hires_steps", "use_controlnet",
                                                 "preprocessor", "preprocessor_imgs")} == \
        {"use_same_seed": False, "seed": 11, "hires_steps": 2, "use_controlnet": False, "preprocessor": "none",
         "preprocessor_imgs": False}
    assert {k: nodes["7"]["inputs"][k] for k in ("add_seed_noise", "seed", "weight")} == \
        {"add_seed_noise": True, "seed": 9, "weight": 0.4}
    result = Executor(registry).run(workflow, outputs=["5"])
    assert result.ok, (result.problems, result.error)
    api = {**efficient(["6", 0], **{"6": hires(use_same_seed=False, seed=11),
                                    "7": noise_control(add_seed_noise=True, seed=9, weight=0.4)})}
    api["6"]["inputs"]["script"] = ["7", 0]
    want = run_graph(registry, api, ["5"])
    assert torch.equal(result.values["5"][3]["samples"], want.values["5"][3]["samples"])
    for exported in (export_ui(workflow, registry), export_api(workflow, registry)):
        again = parse_workflow(exported, registry)
        assert again.to_json()["nodes"] == workflow.to_json()["nodes"]


def test_api_prompt_with_the_packs_classes_round_trips(registry, models):
    api = efficient(["6", 0], **{"6": hires(use_controlnet="_", preprocessor="_", upscale_type="both",
                                            seed=-1), "7": noise_control(seed=3)})
    api["6"]["inputs"]["script"] = ["7", 0]
    workflow = parse_workflow(api, registry)
    inputs = workflow.to_json()["nodes"]["6"]["inputs"]
    assert inputs["use_controlnet"] is False and inputs["preprocessor"] == "none" and inputs["seed"] == -1
    exported = export_api(workflow, registry)
    assert exported["6"]["class_type"] == "HighRes-Fix Script" and exported["7"]["class_type"] == "Noise Control Script"
    assert exported["6"]["inputs"]["use_controlnet"] is False
    assert parse_workflow(exported, registry).to_json()["nodes"] == workflow.to_json()["nodes"]
    run_graph(registry, api, ["5"])
