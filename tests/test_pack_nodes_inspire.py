"""Inspire Pack's nodes built in (nodes/pack_nodes_inspire.py). The samplers' starting noise is
checked against the pack's prepare_noise rebuilt here from torch's seeded generators and the
mixing formulas (linear rescaled to unit variance; slerp from the angle computed with numpy); the
samplers against the core KSampler / KSamplerAdvanced for the settings that make them the same, and
through a sampler that leaves its input unchanged (eps = 0) so that the output is the starting
noise times one scale. UI-format saves as the pack's editor writes them, and API prompts."""

import math

import numpy as np
import pytest
import torch

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.sampling.noise import NoiseSource
from graphflow.testing import write_checkpoint, write_lora
from graphflow.workflow import parse_workflow
from nodes import pack_nodes_inspire as inspire
from nodes import pack_nodes_inspire_lbw as lbw
from nodes import pack_nodes_inspire_utils as inspire_utils
from sampling_fakes import FakeModel, prompt
from test_custom_sampling import run_node
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.fixture
def models(tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    return tmp_folders


def randn(shape, seed):
    return torch.randn(shape, generator=torch.manual_seed(seed))


def linear_mix(a, b, s):
    return ((1 - s) * a + s * b) / math.sqrt((1 - s) ** 2 + s ** 2)


def slerp_reference(s, a, b):
    """Slerp of each image's flattened noise, its angle from numpy."""
    out = []
    for x, y in zip(a.reshape(a.shape[0], -1).double().numpy(), b.reshape(b.shape[0], -1).double().numpy()):
        omega = np.arccos(np.dot(x / np.linalg.norm(x), y / np.linalg.norm(y)))
        out.append(np.sin((1 - s) * omega) / np.sin(omega) * x + np.sin(s * omega) / np.sin(omega) * y)
    return torch.tensor(np.stack(out), dtype=torch.float32).reshape(a.shape)


SHAPE = (3, 4, 6, 5)


def noise(mode="comfy", seed=7, batch_index=None, **variation):
    return inspire.inspire_noise(torch.zeros(SHAPE), seed, batch_index, CPU, mode, **variation)


def test_cpu_noise_modes_follow_the_packs_prepare_noise():
    assert torch.equal(noise("comfy"), randn(SHAPE, 7))  # the core KSampler's noise
    assert torch.equal(noise("incremental"), torch.cat([randn((1, 4, 6, 5), 7 + i) for i in range(3)]))
    # "variation str inc": every image the seed's noise, the variation mixed in at 0.2 + 0.05 * i
    base, var = randn((1, 4, 6, 5), 7), randn((1, 4, 6, 5), 11)
    got = noise("variation str inc:0.05", variation_seed=11, variation_strength=0.2)
    want = torch.cat([linear_mix(base, var, 0.2 + 0.05 * i) for i in range(3)])
    torch.testing.assert_close(got, want)
    # a batch_index: each image the comfy draw at its index, no variation (as the pack)
    got = noise("incremental", batch_index=[2, 0, 2], variation_seed=11, variation_strength=0.5)
    generator = torch.manual_seed(7)
    drawn = [torch.randn((1, 4, 6, 5), generator=generator) for _ in range(3)]  # one image at a time
    assert torch.equal(got, torch.cat([drawn[2], drawn[0], drawn[2]]))
    for bad in ([2, -1, 0], [0, 1]):  # a negative index, one index too few
        with pytest.raises(NodeInputError) as caught:
            noise("comfy", batch_index=bad)
        assert caught.value.input == "latent_image" and "batch_index" in str(caught.value)


@pytest.mark.parametrize("mode", ["comfy", "incremental"])
def test_variation_noise_linear_and_slerp(mode):
    seeds = randn(SHAPE, 7) if mode == "comfy" else torch.cat([randn((1, 4, 6, 5), 7 + i) for i in range(3)])
    var = randn((1, 4, 6, 5), 99).expand(SHAPE)
    linear = noise(mode, variation_seed=99, variation_strength=0.3)
    torch.testing.assert_close(linear, linear_mix(seeds, var, 0.3))
    assert abs(float(linear.std()) - 1) < 0.1  # rescaled to unit variance
    slerped = noise(mode, variation_seed=99, variation_strength=0.3, variation_method="slerp")
    torch.testing.assert_close(slerped, slerp_reference(0.3, seeds, var), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(slerped, linear)
    # strength 0 leaves the seed's noise, 1 gives the variation's
    torch.testing.assert_close(noise(mode, variation_seed=99, variation_strength=1.0), var.contiguous())
    assert torch.equal(noise(mode, variation_seed=99, variation_strength=0.0), seeds)


def test_slerp_of_parallel_noises_is_the_linear_mix():
    a = randn((2, 4, 3, 3), 1)
    torch.testing.assert_close(inspire.slerp(0.4, a, a.clone()), a)


def test_noise_refusals():
    with pytest.raises(NodeInputError) as caught:
        noise("incremental", seed=2**64 - 2)
    assert caught.value.input == "seed"
    with pytest.raises(NodeInputError) as caught:
        noise("variation str inc:abc")
    assert caught.value.input == "batch_seed_mode"


def test_gpu_mode_without_cuda_falls_back_to_cpu_noise_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    from graphflow import device
    monkeypatch.setattr(device, "compute_device", lambda: torch.device("cpu"))
    with caplog.at_level("WARNING"):
        assert inspire._noise_device("GPU(=A1111)") == CPU
    assert "CUDA" in caplog.text
    assert inspire._noise_device("CPU") == CPU


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU(=A1111) noise is the CUDA generator's")
def test_gpu_mode_draws_with_the_cuda_generator_as_the_pack():
    """The pack: torch.cuda.manual_seed(seed), then randn on the device with the default generator."""
    device = inspire._noise_device("GPU(=A1111)")
    assert device.type == "cuda"
    torch.cuda.manual_seed(7)
    want = torch.randn(SHAPE, device=device).cpu()
    assert torch.equal(inspire.inspire_noise(torch.zeros(SHAPE), 7, None, device, "comfy"), want)
    torch.cuda.manual_seed(7)
    first = torch.randn((1, *SHAPE[1:]), device=device).cpu()
    assert torch.equal(inspire.inspire_noise(torch.zeros(SHAPE), 7, None, device, "incremental")[:1], first)
    assert not torch.equal(want, randn(SHAPE, 7))  # other noise than the CPU's
    torch.cuda.manual_seed(7)  # a batch_index: the images of a larger batch, drawn one at a time on the device
    drawn = [torch.randn((1, *SHAPE[1:]), device=device).cpu() for _ in range(3)]
    got = inspire.inspire_noise(torch.zeros(SHAPE), 7, [2, 0, 2], device, "incremental")
    assert torch.equal(got, torch.cat([drawn[2], drawn[0], drawn[2]]))


def still_eps(x, t, context, y):
    return torch.zeros_like(x[:, :4])


def fake_inputs(model, **more):
    return {"model": model, "positive": prompt(0.3), "negative": prompt(-0.2),
            "latent_image": {"samples": torch.zeros(2, 4, 8, 8)}, "steps": 3, "cfg": 5.0, **more}


def test_ksampler_cpu_comfy_is_the_core_ksampler(registry):
    """CPU noise, comfy batch mode, no variation and internal_seed = seed: the core KSampler's
    latent, an ancestral sampler's added noise included."""
    from sampling_fakes import gaussian_eps
    model = FakeModel(gaussian_eps(0.2, 0.5))
    ours = call(registry, "InspireKSampler", **fake_inputs(model, seed=5, sampler_name="euler_ancestral",
                                                            scheduler="karras", denoise=0.8, noise_mode="CPU",
                                                            batch_seed_mode="comfy", internal_seed=5))
    core = call(registry, "KSampler", **fake_inputs(model, seed=5, sampler_name="euler_ancestral",
                                                     scheduler="karras", denoise=0.8))
    assert torch.equal(ours["samples"], core["samples"])
    other = call(registry, "InspireKSampler", **fake_inputs(model, seed=5, sampler_name="euler_ancestral",
                                                             scheduler="karras", denoise=0.8, noise_mode="CPU",
                                                             batch_seed_mode="comfy", internal_seed=6))
    assert not torch.equal(other["samples"], core["samples"])  # internal_seed drives the added noise


@pytest.mark.parametrize("mode,variation", [("incremental", {}),
                                            ("comfy", {"variation_seed": 3, "variation_strength": 0.4,
                                                       "variation_method": "slerp"}),
                                            ("variation str inc:0.01", {"variation_seed": 3})])
def test_advanced_sampler_starts_from_the_packs_noise(registry, mode, variation):
    """eps = 0 leaves x as it starts, so the leftover-noise output is the starting noise times the
    scale the core sampler shows for its own (comfy) noise."""
    model = FakeModel(still_eps)
    common = dict(steps=4, sampler_name="euler", scheduler="normal", start_at_step=0, end_at_step=2)
    core = call(registry, "KSamplerAdvanced", **fake_inputs(model, noise_seed=9, return_with_leftover_noise="enable",
                                                             **common))
    scale = core["samples"] / randn((2, 4, 8, 8), 9)
    assert torch.allclose(scale, scale.flatten()[0].expand_as(scale), rtol=1e-4)
    ours = call(registry, "InspireKSamplerAdvanced", **fake_inputs(
        model, noise_seed=9, add_noise=True, return_with_leftover_noise=True, noise_mode="CPU",
        batch_seed_mode=mode, **variation, **common))
    want = inspire.inspire_noise(torch.zeros(2, 4, 8, 8), 9, None, CPU, mode, **variation)
    torch.testing.assert_close(ours["samples"], want * scale, rtol=1e-4, atol=1e-5)
    off = call(registry, "InspireKSamplerAdvanced", **fake_inputs(
        model, noise_seed=9, add_noise=False, return_with_leftover_noise=True, noise_mode="CPU",
        batch_seed_mode=mode, **variation, **common))
    assert not off["samples"].any()  # add_noise off: no noise at all


def test_random_noise_is_a_noise_source_for_custom_samplers(registry):
    source = call(registry, "InspireRandomNoise", noise_seed=4, noise_mode="CPU", batch_seed_mode="incremental",
                  variation_seed=1, variation_strength=0.5, internal_seed=12)
    assert isinstance(source, NoiseSource) and source.seed == 12
    samples = torch.zeros(2, 4, 8, 8)
    want = inspire.inspire_noise(samples, 4, None, CPU, "incremental", 1, 0.5)
    assert torch.equal(source.generate(samples), want)


def test_the_packs_schedulers(registry):
    from graphflow.sampling.schedules import align_your_steps, gits
    assert torch.equal(inspire._scheduler("AYS SDXL")(None, 10), align_your_steps("SDXL", 10))
    assert torch.equal(inspire._scheduler("GITS[coeff=1.2]")(None, 10), gits(1.2, 10))
    assert inspire._scheduler("karras") == "karras"


KS_WIDGETS = [5, "fixed", 2, 7.0, "euler", "normal", 1.0, "CPU", "comfy", 0, 0.0, "linear", 5]


def sampler_graph(class_type, widgets, seed_node=None):
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2, 3]), ("VAE", "VAE", [])]),
        ui_node(2, "CLIPTextEncode", ["a cat"], [("clip", "CLIP", 2, False)], [("CONDITIONING", "CONDITIONING", [4])]),
        ui_node(3, "CLIPTextEncode", ["blurry"], [("clip", "CLIP", 3, False)],
                [("CONDITIONING", "CONDITIONING", [5])]),
        ui_node(4, "EmptyLatentImage", [64, 64, 2], outputs=[("LATENT", "LATENT", [6])]),
        ui_node(5, class_type, widgets, [("model", "MODEL", 1, False), ("positive", "CONDITIONING", 4, False),
                                         ("negative", "CONDITIONING", 5, False), ("latent_image", "LATENT", 6, False)],
                [("LATENT", "LATENT", [])]),
    ]
    links = [[1, 1, 0, 5, 0, "MODEL"], [2, 1, 1, 2, 0, "CLIP"], [3, 1, 1, 3, 0, "CLIP"],
             [4, 2, 0, 5, 1, "CONDITIONING"], [5, 3, 0, 5, 2, "CONDITIONING"], [6, 4, 0, 5, 3, "LATENT"]]
    return ui_graph(nodes, links)


def core_api(class_type, inputs):
    return {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
            "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
            "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}},
            "5": {"class_type": class_type, "inputs": {"model": ["1", 0], "positive": ["2", 0],
                                                       "negative": ["3", 0], "latent_image": ["4", 0], **inputs}}}


def test_ui_save_of_ksampler_inspire_equals_the_core_ksampler(registry, models):
    workflow = parse_workflow(sampler_graph("KSampler //Inspire", KS_WIDGETS), registry)
    inputs = workflow.to_json()["nodes"]["5"]["inputs"]
    assert (inputs["seed"], inputs["noise_mode"], inputs["batch_seed_mode"], inputs["internal_seed"]) == \
        (5, "CPU", "comfy", 5)
    ours = run_graph(registry, sampler_graph("KSampler //Inspire", KS_WIDGETS), ["5"]).values["5"][0]
    core = run_graph(registry, core_api("KSampler", {"seed": 5, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
                                                     "scheduler": "normal", "denoise": 1.0}), ["5"]).values["5"][0]
    assert torch.equal(ours["samples"], core["samples"])
    # written back as the pack's editor saves it
    back = export_ui(workflow, registry)
    node = next(n for n in back["nodes"] if n["type"] == "KSampler //Inspire")
    assert node["widgets_values"] == KS_WIDGETS
    api = export_api(workflow, registry)
    assert api["5"]["class_type"] == "KSampler //Inspire" and api["5"]["inputs"]["batch_seed_mode"] == "comfy"


def test_old_ui_saves_take_the_seed_as_internal_seed(registry, models):
    old = [5, "randomize", 2, 7.0, "euler", "normal", 1.0, "CPU", "incremental", 0, 0.0]  # before variation_method
    inputs = parse_workflow(sampler_graph("KSampler //Inspire", old), registry).to_json()["nodes"]["5"]["inputs"]
    assert (inputs["variation_method"], inputs["internal_seed"]) == ("linear", 5)
    oldest = [5, "randomize", 2, 7.0, "euler", "normal", 1.0, "CPU"]  # before batch_seed_mode: one comfy draw
    inputs = parse_workflow(sampler_graph("KSampler //Inspire", oldest), registry).to_json()["nodes"]["5"]["inputs"]
    assert (inputs["batch_seed_mode"], inputs["variation_strength"], inputs["internal_seed"]) == ("comfy", 0.0, 5)
    adv = [True, 8, "fixed", 2, 7.0, "euler", "normal", 0, 10000, "CPU", False, "comfy", 0, 0.0, "linear"]
    workflow = parse_workflow(sampler_graph("KSamplerAdvanced //Inspire", adv), registry)
    inputs = workflow.to_json()["nodes"]["5"]["inputs"]
    assert (inputs["noise_seed"], inputs["internal_seed"], inputs["add_noise"]) == (8, 8, True)


def test_api_prompt_of_ksampler_advanced_inspire(registry, models):
    inputs = {"add_noise": True, "noise_seed": 3, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
              "scheduler": "normal", "start_at_step": 0, "end_at_step": 10000, "noise_mode": "CPU",
              "return_with_leftover_noise": False, "batch_seed_mode": "comfy", "variation_seed": 0,
              "variation_strength": 0.0, "variation_method": "linear", "internal_seed": 3}
    ours = run_graph(registry, core_api("KSamplerAdvanced //Inspire", inputs), ["5"]).values["5"][0]
    core = run_graph(registry, core_api("KSamplerAdvanced", {
        "add_noise": "enable", "noise_seed": 3, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
        "scheduler": "normal", "start_at_step": 0, "end_at_step": 10000,
        "return_with_leftover_noise": "disable"}), ["5"]).values["5"][0]
    torch.testing.assert_close(ours["samples"], core["samples"])  # the last estimate: the result, to rounding
    workflow = parse_workflow(core_api("KSamplerAdvanced //Inspire", inputs), registry)
    assert export_api(workflow, registry)["5"]["inputs"] == {**inputs, "model": ["1", 0], "positive": ["2", 0],
                                                              "negative": ["3", 0], "latent_image": ["4", 0]}


@pytest.mark.parametrize("class_type, seed_name", [
    ("KSampler //Inspire", "seed"), ("KSamplerAdvanced //Inspire", "noise_seed"), ("KSamplerPipe //Inspire", "seed"),
    ("KSamplerAdvancedPipe //Inspire", "noise_seed"), ("RandomNoise //Inspire", "noise_seed")])
def test_api_prompt_without_internal_seed_takes_the_seed(registry, class_type, seed_name):
    """As the pack's Python: an internal_seed left out is the seed (the widget's default 0 is the editor's)."""
    def parsed(inputs):
        graph = {"7": {"class_type": "PrimitiveInt", "inputs": {"value": 9}},
                 "5": {"class_type": class_type, "inputs": inputs}}
        return parse_workflow(graph, registry).to_json()["nodes"]["5"]["inputs"]

    assert parsed({seed_name: 42})["internal_seed"] == 42
    assert parsed({seed_name: ["7", 0]})["internal_seed"] == ["7", 0]  # a linked seed: the same link
    assert parsed({seed_name: 42, "internal_seed": 0})["internal_seed"] == 0  # given: kept


# -- prompts -------------------------------------------------------------------------------------------

PACK_SPLIT = r"\n\s*-+\s*\n"
PACK_PROMPT = r"^(?:(?:positive:(?P<positive>.*?)|negative:(?P<negative>.*?)|name:(?P<name>.*?))\n*)+$"
SPLIT_CASES = ["a\n---\nb", "a\n - \nb\n\n--\n\nc", "a---b\n-\nc", "\n---\n\n---\nx", "a\n \t--- \n", "a\n---x\nb",
               "x\n\n\n   \n-----\n\t\n\ny\n-\nz", "no separators at all", "-\n-\n-\n-", "a\n-\n-\n-\nb"]


@pytest.mark.parametrize("text", SPLIT_CASES)
def test_prompt_blocks_split_as_the_packs_pattern(text):
    import re
    assert inspire.prompt_blocks(text) == re.split(PACK_SPLIT, text)


BLOCKS = ["positive: a cat\nnegative: blurry", "positive:a\n\nnegative: b\nname: first",
          "name: n\npositive: p, negative: q",
          "positive: one\npositive: two\nnegative: x", "  positive: leading space\nnegative: x", "negative: only",
          "positive: my surname: x\nnegative: y", "positive:\nnegative:\n\n", "text without keywords"]


@pytest.mark.parametrize("block", BLOCKS)
def test_a_prompt_block_reads_as_the_packs_pattern(block):
    import re
    match = re.search(PACK_PROMPT, block, re.DOTALL)
    parts = inspire.parse_prompt(block)
    if match is None:
        assert parts is None
        return
    want = {k: v.strip() for k, v in match.groupdict().items() if v is not None}
    assert parts == want


PROMPT_FILE = """positive: a red cat
negative: blurry
name: cat
----
positive: a dog

negative: lowres
-----------
positive: a bird
negative: dark, noisy
"""


@pytest.fixture
def prompt_files(tmp_folders):
    base = tmp_folders.models / "inspire_prompts"
    (base / "set").mkdir(parents=True)
    (base / "set" / "animals.txt").write_text(PROMPT_FILE, encoding="utf-8")
    (base / "set" / "more.txt").write_text("POSITIVE: upper\nNEGATIVE: case", encoding="utf-8")
    (base / "broken.txt").write_text("positive: ok\nnegative: fine\n---\npositive: lost\n---\npositive: a\nnegative: b",
                                     encoding="utf-8")
    return tmp_folders


ANIMALS = [("a red cat", "blurry", "cat"), ("a dog", "lowres", "set/animals.txt"),
           ("a bird", "dark, noisy", "set/animals.txt")]


def test_load_prompts_from_file(registry, prompt_files):
    def load(**widgets):
        return call(registry, "InspireLoadPromptsFromFile", **{"prompt_file": "set/animals.txt", **widgets})

    assert load() == (ANIMALS, 3, 0)
    assert load(start_index=-1) == (ANIMALS[2:], 3, 0)
    assert load(start_index=1, load_cap=1) == (ANIMALS[1:2], 3, 1)
    assert load(text_data_opt="positive: t\nnegative: u")[0] == [("t", "u", "set/animals.txt")]
    prompts, count, _ = call(registry, "InspireLoadPromptsFromFile", prompt_file="broken.txt")
    assert prompts == [("ok", "fine", "broken.txt")] and count == 1  # stops at the block without negative:
    (prompt_files.models / "outside.txt").write_text("positive: a\nnegative: b")
    for name in ("../outside.txt", "missing.txt", "/etc/hostname"):  # read only inside the folder
        with pytest.raises(NodeInputError) as caught:
            inspire._read_prompt_file(name)
        assert caught.value.input == "prompt_file"
    single = call(registry, "InspireLoadSinglePromptFromFile", prompt_file="set/animals.txt", index=1)
    assert single == [ANIMALS[1]]
    assert call(registry, "InspireLoadSinglePromptFromFile", prompt_file="set/animals.txt", index=99) == [ANIMALS[2]]
    prompts, count, remaining = call(registry, "InspireLoadPromptsFromDir", prompt_dir="set", load_cap=2)
    assert prompts == ANIMALS[:2] and (count, remaining) == (4, 2)
    assert call(registry, "InspireLoadPromptsFromDir", prompt_dir="set", start_index=-1)[0] == [("upper", "case",
                                                                                          "set/more.txt")]


def test_prompt_files_fingerprint_without_reading_and_the_folder_reader_caps_its_text(registry, prompt_files,
                                                                                       monkeypatch):
    import os
    import pathlib
    node = registry.get("InspireLoadPromptsFromFile")
    folder_node = registry.get("InspireLoadPromptsFromDir")
    before, folder_before = node.fingerprint("set/animals.txt"), folder_node.fingerprint("set")
    path = prompt_files.models / "inspire_prompts" / "set" / "animals.txt"

    def no_reading(*args):
        raise AssertionError("the fingerprint read the file")

    with monkeypatch.context() as patched:
        for method in ("read_bytes", "read_text", "open"):
            patched.setattr(pathlib.Path, method, no_reading)
        assert node.fingerprint("set/animals.txt") == before
    text = path.read_text()
    path.write_text(text.replace("positive", "POSITIVE"))  # the same size: told apart by its time
    os.utime(path, ns=(1, 1))
    with monkeypatch.context() as patched:
        for method in ("read_bytes", "read_text", "open"):
            patched.setattr(pathlib.Path, method, no_reading)
        assert node.fingerprint("set/animals.txt") != before
        assert folder_node.fingerprint("set") != folder_before
    sizes = sorted(p.stat().st_size for p in path.parent.glob("*.txt"))
    monkeypatch.setattr(inspire, "MAX_TEXT", sum(sizes) - 1)  # each file fits, all together do not
    assert all(size <= inspire.MAX_TEXT for size in sizes)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "InspireLoadPromptsFromDir", prompt_dir="set")
    assert caught.value.input == "prompt_dir" and "add up to" in str(caught.value)


def test_prompt_list_ui_graph_unzips_each_prompt(registry, prompt_files):
    nodes = [ui_node(1, "LoadPromptsFromFile //Inspire", ["set/animals.txt", "", False, 0, 0],
                     outputs=[("zipped_prompt", "ZIPPED_PROMPT", [1]), ("count", "INT", []),
                              ("remaining_count", "INT", [])]),
             ui_node(2, "UnzipPrompt //Inspire", [], [("zipped_prompt", "ZIPPED_PROMPT", 1, False)],
                     [("positive", "STRING", []), ("negative", "STRING", []), ("name", "STRING", [])]),
             ui_node(3, "GlobalSeed //Inspire", [12, True, "fixed", ""])]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "ZIPPED_PROMPT"]])
    result = run_graph(registry, graph, ["2"])
    assert [tuple(v) for v in zip(*result.values["2"])] == ANIMALS
    workflow = parse_workflow(graph, registry)
    back = export_ui(workflow, registry)
    assert [n["widgets_values"] for n in back["nodes"] if n["type"] == "LoadPromptsFromFile //Inspire"] == \
        [["set/animals.txt", "", False, 0, 0]]
    # a save without text_data_opt's slot reads the same
    old = ui_graph([ui_node(1, "LoadPromptsFromFile //Inspire", ["set/animals.txt", False, 1, 0],
                            outputs=[("zipped_prompt", "ZIPPED_PROMPT", [])])])
    assert parse_workflow(old, registry).to_json()["nodes"]["1"]["inputs"]["load_cap"] == 1


def test_zip_prompt_api_graph_and_bind_list(registry, prompt_files):
    api = {"1": {"class_type": "LoadSinglePromptFromFile //Inspire",
                 "inputs": {"prompt_file": "set/animals.txt", "index": 0}},
           "2": {"class_type": "UnzipPrompt //Inspire", "inputs": {"zipped_prompt": ["1", 0]}},
           "3": {"class_type": "ZipPrompt //Inspire", "inputs": {"positive": ["2", 1], "negative": ["2", 0]}}}
    result = run_graph(registry, api, ["3"])
    assert result.values["3"][0] == [("blurry", "a red cat", "")]
    assert export_api(parse_workflow(api, registry), registry)["3"] == api["3"]
    images = [torch.zeros(1, 4, 4, 3), torch.ones(1, 4, 4, 3), torch.ones(1, 2, 2, 3)]
    bound = run_node(inspire.InspireBindImageListPromptList, images=images, zipped_prompts=ANIMALS[:2],
                 default_positive=["dp"], default_negative=["dn"])
    assert bound[1:] == (["a red cat", "a dog", "dp"], ["blurry", "lowres", "dn"],
                         ["cat", "set/animals.txt", "default"])
    assert run_node(inspire.InspireBindImageListPromptList, images=images[:1], zipped_prompts=ANIMALS,
                default_positive=["dp"], default_negative=["dn"])[1] == ["a red cat"]


def test_list_counter_random_generator_and_remove_controlnet(registry):
    assert run_node(inspire.InspireListCounter, signal=["a", "b", "c"], base_value=[10]) == [10, 11, 12]
    signal, value = call(registry, "InspireRandomGeneratorForList", signal="x", seed=3)
    assert signal == "x" and 0 <= value <= 2**50
    cond = [(torch.ones(1, 2, 3), {"control": object(), "control_apply_to_uncond": True, "strength": 1.0})]
    assert call(registry, "InspireRemoveControlNet", conditioning=cond)[0][1] == {"strength": 1.0}


# -- wildcard encoding and the basic pipe --------------------------------------------------------------

def test_wildcard_encode_weights_each_break_part_as_the_advanced_encoder(registry, models):
    from nodes.pack_nodes_adv_clip import advanced_encode
    from nodes.pack_nodes_impact import concat_all
    model, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    text = "a {red|blue} (cat:1.2) BREAK a hat"
    common = dict(model=model, clip=clip, wildcard_text=text, populated_text="", mode="populate", seed=4)
    plain = call(registry, "InspireWildcardEncode", token_normalization="none", weight_interpretation="comfy", **common)
    impact = call(registry, "ImpactWildcardEncode", **common)
    assert plain[3] == impact[3] and "{" not in plain[3]
    assert torch.equal(plain[2][0][0], impact[2][0][0])
    weighted = call(registry, "InspireWildcardEncode", token_normalization="mean", weight_interpretation="comfy++",
                    **common)
    parts = [p.strip() for p in weighted[3].split("BREAK")]
    want = concat_all([advanced_encode(clip, p, "mean", "comfy++") for p in parts])
    assert torch.equal(weighted[2][0][0], want[0][0]) and not torch.equal(weighted[2][0][0], plain[2][0][0])
    fixed = call(registry, "InspireWildcardEncode", **{**common, "mode": "fixed", "populated_text": "kept text"})
    assert fixed[3] == "kept text"


@pytest.mark.parametrize("side", ["positive", "negative"])
def test_make_basic_pipe_names_the_side_whose_text_fails(registry, models, tmp_folders, side):
    """A LoRA tag the pack refuses (block weights "A" used, no A= given) in one side's text is
    refused naming that side's populated text (the negative's was blamed on the positive's), not
    encode_with_loras' own default name."""
    (tmp_folders.models / "loras").mkdir(exist_ok=True)
    write_lora(tmp_folders.models / "loras" / "style.safetensors", "sd1", seed=3)
    texts = {"positive_populated_text": "a cat", "negative_populated_text": "blurry"}
    texts[f"{side}_populated_text"] = "<lora:style:1:LBW=A,1,1,1,1,1,1,1,1,1,1,1>"
    with pytest.raises(NodeInputError) as caught:
        call(registry, "InspireMakeBasicPipe", ckpt_name="tiny.safetensors", positive_wildcard_text="",
             negative_wildcard_text="", wildcard_mode="fixed", token_normalization="none",
             weight_interpretation="comfy", stop_at_clip_layer=-2, seed=1, **texts)
    assert caught.value.input == f"{side}_populated_text"


def test_make_basic_pipe_equals_loader_clip_skip_and_encodes(registry, models):
    pipe, key = call(registry, "InspireMakeBasicPipe", ckpt_name="tiny.safetensors", positive_wildcard_text="a cat",
                     negative_wildcard_text="blurry", wildcard_mode="populate", token_normalization="none",
                     weight_interpretation="comfy", stop_at_clip_layer=-2, seed=1)
    assert key == "tiny.safetensors"
    model, clip, vae = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    skipped = call(registry, "CLIPSetLastLayer", clip=clip, stop_at_clip_layer=-2)
    for got, text in ((pipe[3], "a cat"), (pipe[4], "blurry")):
        assert torch.equal(got[0][0], call(registry, "CLIPEncode", clip=skipped, text=text)[0][0])
    ui = ui_graph([ui_node(1, "MakeBasicPipe //Inspire",
                           ["tiny.safetensors", "k", "x", "y", True, "Select the LoRA to add to the text",
                            "Select the Wildcard to add to the text", "fixed", "a cat", "blurry", "none", "comfy", -2,
                            1, "fixed"], outputs=[("basic_pipe", "BASIC_PIPE", []), ("cache_key", "STRING", [])])])
    result = run_graph(registry, ui, ["1"])
    assert result.values["1"][1] == "k" and torch.equal(result.values["1"][0][3][0][0], pipe[3][0][0])


# -- lists, batches and masks ----------------------------------------------------------------------------

def float_range_reference(start, stop, step, limit, ensure_end):
    """The pack's loop, written out with numpy's float64 additions."""
    if start == stop or step == 0:
        return [start]
    lo, hi = min(start, stop), max(start, stop)
    values, x, room = [], np.float64(lo), limit
    while x <= hi and room > 0:
        values.append(float(x))
        room -= 1
        x = x + np.float64(step)
    if ensure_end and values[-1] != hi:
        if len(values) >= room:
            values.pop()
        values.append(hi)
    return values[::-1] if start > stop else values


@pytest.mark.parametrize("args", [(0.0, 1.0, 0.1, 100, True), (0.0, 1.0, 0.3, 100, True), (0.0, 1.0, 0.3, 3, True),
                                  (1.0, 0.0, 0.25, 100, False), (2.0, 2.0, 0.5, 10, True), (0.0, 1.0, 0.0, 10, True),
                                  (0.0, 10.0, 0.5, 4, True)])
def test_float_range(registry, args):
    names = ("start", "stop", "step", "limit", "ensure_end")
    assert call(registry, "InspireFloatRange", **dict(zip(names, args))) == float_range_reference(*args)


def test_batch_size_and_splitters(registry):
    images = torch.rand(3, 4, 5, 3)
    longer = call(registry, "InspireChangeImageBatchSize", image=images, batch_size=5)
    assert torch.equal(longer, torch.cat([images, images[2:], images[2:]]))
    assert torch.equal(call(registry, "InspireChangeImageBatchSize", image=images, batch_size=2), images[:2])
    latent = {"samples": torch.rand(2, 4, 3, 3), "batch_index": [4, 5]}
    grown = call(registry, "InspireChangeLatentBatchSize", latent=latent, batch_size=3)
    assert torch.equal(grown["samples"][2], latent["samples"][1]) and grown["batch_index"] == [4, 5]
    parts = call(registry, "InspireImageBatchSplitter", images=images, split_count=2)
    assert torch.equal(parts[0], images[:1]) and torch.equal(parts[1], images[1:2])
    assert torch.equal(parts[2], images[2:])
    assert parts[3] is None
    parts = call(registry, "InspireImageBatchSplitter", images=images, split_count=4)
    assert [tuple(p.shape) for p in parts[:5]] == [(1, 4, 5, 3)] * 3 + [(1, 64, 64, 3)] * 2 and not parts[4].any()
    parts = call(registry, "InspireLatentBatchSplitter", latent=latent, split_count=1)
    assert torch.equal(parts[0]["samples"], latent["samples"][:1]) and torch.equal(parts[1]["samples"],
                                                                                   latent["samples"][1:])
    assert parts[0]["batch_index"] == [4, 5]  # kept whole, as the pack keeps the other entries
    parts = call(registry, "InspireLatentBatchSplitter", latent=latent, split_count=3)
    assert parts[3]["samples"].shape == (1, 4, 8, 8) and parts[4] is None


def test_color_map_to_masks_and_select_nth_mask(registry):
    colors = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    index = torch.tensor([[0, 0, 0, 1], [0, 0, 1, 1], [2, 0, 1, 2]])  # red 6, green 4, blue 2 pixels
    color_map = torch.stack([colors[index], colors[index.flip(1)]])
    masks = call(registry, "InspireColorMapToMasks", color_map=color_map, min_pixels=3, max_count=5)
    want = torch.cat([torch.stack([(index == c).float(), (index.flip(1) == c).float()]) for c in (0, 1)])
    assert torch.equal(masks, want)
    top = call(registry, "InspireColorMapToMasks", color_map=color_map, min_pixels=1, max_count=1)
    assert torch.equal(top, want[:2])
    assert not call(registry, "InspireColorMapToMasks", color_map=color_map, min_pixels=100, max_count=5).any()
    # the masks counted once the colours are: held to a server's max_batch before they are made
    from graphflow.executor import Executor
    from graphflow.resource_limits import RunLimits
    from graphflow.workflow import parse_workflow
    graph = parse_workflow({"nodes": {
        "1": {"type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 0xFF0000}},
        "4": {"type": "PadImageForOutpaint", "inputs": {"image": ["1", 0], "left": 8}},  # red and grey
        "2": {"type": "InspireColorMapToMasks", "inputs": {"color_map": ["4", 0], "min_pixels": 1}},
        "3": {"type": "PreviewAny", "inputs": {"source": ["2", 0]}}}})
    result = Executor(registry, limits=RunLimits(max_batch=3)).run(graph)
    assert result.status == "error", result.problems
    assert result.error["input"] == "max_count" and "4 masks" in result.error["message"], result.error
    assert Executor(registry, limits=RunLimits(max_batch=4)).run(graph).values["2"][0].shape == (4, 8, 16)
    assert torch.equal(call(registry, "InspireSelectNthMask", masks=masks, idx=2), masks[2:3])
    with pytest.raises(NodeInputError) as caught:
        call(registry, "InspireSelectNthMask", masks=masks, idx=4)
    assert caught.value.input == "idx"


def test_concat_conditionings_with_multiplier(registry):
    first = [(torch.rand(1, 3, 4), {"pooled_output": torch.ones(1, 4)}), (torch.rand(1, 3, 4), {})]
    second = [(torch.rand(1, 2, 4), {"pooled_output": torch.ones(1, 4)})]
    out = call(registry, "InspireConcatConditioningsWithMultiplier", conditioning1=first, conditioning3=second,
               multiplier1=0.5, multiplier3=2.0)
    for (cond, options), (original, _) in zip(out, first):
        assert torch.equal(cond, torch.cat([original * 0.5, second[0][0] * 2.0], dim=1))
    assert torch.equal(out[0][1]["pooled_output"], torch.full((1, 4), 0.5))
    assert call(registry, "InspireConcatConditioningsWithMultiplier", conditioning1=first, multiplier1=0.5) is first
    widgets = [0.5, 1.0, 2.0] + [1.0] * 17
    graph = ui_graph([ui_node(1, "ConcatConditioningsWithMultiplier //Inspire", widgets,
                              [("conditioning1", "CONDITIONING", None, False)],
                              [("CONDITIONING", "CONDITIONING", [])])])
    inputs = parse_workflow(graph, registry).to_json()["nodes"]["1"]["inputs"]
    assert (inputs["multiplier1"], inputs["multiplier3"]) == (0.5, 2.0)


def test_rgb_hex_to_hsv(registry):
    import colorsys
    assert call(registry, "InspireRGBHexToHSV", rgb_hex="#3366cc") == pytest.approx(
        tuple(v * f for v, f in zip(colorsys.rgb_to_hsv(0x33 / 255, 0x66 / 255, 0xcc / 255), (360, 1, 1))))
    with pytest.raises(NodeInputError):
        call(registry, "InspireRGBHexToHSV", rgb_hex="blue")


# -- LoRA Block Weight -----------------------------------------------------------------------------------



def test_block_ratios_walk_the_blocks_as_the_pack():
    """Each new block takes the next element; several ratios in one element go to its modules in
    turn, the last repeating; R / U come from numpy's global generator seeded with seed % 2**31."""
    keys = [("t1", None, None), ("i1a", "input_blocks", 1), ("i1b", "input_blocks", 1), ("i1c", "input_blocks", 1),
            ("i2", "input_blocks", 2), ("m0", "middle_block", 0), ("o3", "output_blocks", 3),
            ("o5", "output_blocks", 5), ("o7", "output_blocks", 7), ("o8", "output_blocks", 8),
            ("o9", "output_blocks", 9), ("o10", "output_blocks", 10), ("o11", "output_blocks", 11)]
    vector = "R,0.5 0.25,A,a,B,b,U,1,0,2,3,4,5"
    ratios, shown = lbw.block_ratios(keys, vector, False, 2**31 + 7, 4.0, 1.0)
    np.random.seed(7)
    first_u = round(np.random.uniform(-1.5, 1.5), 2)  # the U of block 7 is drawn before the base's R
    base_r = round(np.random.uniform(0, 3.0), 2)
    want = {"t1": base_r, "i1a": 0.5, "i1b": 0.25, "i1c": 0.25, "i2": 4.0, "m0": 2.0, "o3": 1.0, "o5": 0.5,
            "o7": first_u, "o8": 1.0, "o9": 0.0, "o10": 2.0, "o11": 3.0}
    assert ratios == want
    assert shown == ",".join(map(str, [base_r, 0.5, 4.0, 2.0, 1, 0.5, first_u, 1, 0, 2.0, 3.0]))
    inverse, _ = lbw.block_ratios(keys, "SD-OUTALL", True, 0, 4.0, 1.0)  # a preset's name, inverted
    assert inverse["t1"] == 0 and inverse["i1a"] == 1 and inverse["o7"] == 1 and inverse["o9"] == 0
    with pytest.raises(NodeInputError) as caught:
        lbw.block_ratios(keys, "1,2,3", False, 0, 1.0, 1.0)
    assert caught.value.input == "block_vector"


def test_percent_spec_covers_the_loras_blocks():
    counts = {"input_blocks": 4, "middle_block": 1, "output_blocks": 3}
    assert lbw.spec_vector("%default=0.5,base=1,in2-3=0,out=1,mid1=0.25", counts) == \
        "1,0.5,0.0,0.0,0.5,0.25,1.0,1.0,1.0"
    assert lbw.spec_vector("1,0,1", counts) == "1,0,1"
    # a range past the LoRA's blocks stops at its last; a block number of thousands of digits is past them
    assert lbw.spec_vector(f"%in2-{'9' * 5000}=0,out{'9' * 5000}=0", counts) == "1.0,1.0,0.0,0.0,0.0,1.0,1.0,1.0,1.0"
    assert lbw.spec_vector(f"%in{'0' * 5000}2=0", counts) == "1.0,1.0,0.0,1.0,1.0,1.0,1.0,1.0,1.0"


@pytest.mark.parametrize("spec", ["%in1-3=1.2.3", "%in=.", "%in2=..", "%mid1=" + "1" * 400, "%in=" + "9" * 5000,
                                  "%" + "in1-10000=0.5," * 20000, "%base=" + "1" * 400])
def test_percent_spec_refuses_what_is_no_ratio_and_too_many_items(spec):
    keys = [(f"i{n}", "input_blocks", n) for n in range(1, 13)]
    with pytest.raises(NodeInputError) as caught:
        lbw.block_ratios(keys, spec, False, 0, 1.0, 1.0)
    assert caught.value.input == "block_vector"
    with pytest.raises(NodeInputError):  # a plain vector's numbers too: 400 ones are no finite ratio
        lbw.block_ratios(keys, ",".join(["1" * 400] * 12), False, 0, 1.0, 1.0)


@pytest.fixture
def lbw_models(tmp_folders):
    from graphflow.testing import write_lora
    for sub in ("checkpoints", "loras"):
        (tmp_folders.models / sub).mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    write_lora(tmp_folders.models / "loras" / "style.safetensors", "sd1", seed=3)
    return tmp_folders


def test_lora_block_weight_scales_each_blocks_change(registry, lbw_models):
    from graphflow import memory

    def weights(model, clip):
        tower = clip.towers[0]
        return memory.manager().weights(model.unet, model.patches), memory.manager().weights(tower.model,
                                                                                              tower.patches)

    model, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    full = call(registry, "LoadLoRA", model=model, clip=clip, lora_name="style.safetensors", strength_model=0.8,
                strength_clip=0.6)
    base_unet, base_text = weights(model, clip)
    full_unet, full_text = weights(*full[:2])
    changed = sorted({lbw._block(k)[0:2] for k in base_unet if not torch.equal(base_unet[k], full_unet[k])},
                     key=lambda b: (lbw.BLOCK_KINDS.index(b[0]), b[1]))
    values = [0.5, 0.0, 2.0, 1.5, 0.25, 1.0, 0.75, 0.0, 3.0, 1.0, 0.5, 2.5, 0.5, 1.25, 1.0, 0.0, 2.0, 1.0][:max(
        len(changed), 12)]
    vector = ",".join(["0.5"] + [str(v) for v in values])
    model_lbw, clip_lbw, shown = call(registry, "InspireLoraLoaderBlockWeight", model=model, clip=clip,
                                      lora_name="style.safetensors", strength_model=0.8, strength_clip=0.6,
                                      block_vector=vector)
    lbw_unet, lbw_text = weights(model_lbw, clip_lbw)
    block_value = dict(zip(changed, values))
    for key in base_unet:
        ratio = block_value.get(lbw._block(key)[0:2], 1.0)
        torch.testing.assert_close(lbw_unet[key] - base_unet[key], ratio * (full_unet[key] - base_unet[key]),
                                   rtol=1e-4, atol=1e-6)
    for key in base_text:  # the text encoder takes the first value
        torch.testing.assert_close(lbw_text[key] - base_text[key], 0.5 * (full_text[key] - base_text[key]),
                                   rtol=1e-4, atol=1e-6)
    assert shown.split(",")[0] == "0.5" and len(shown.split(",")) == len(changed) + 1
    bypassed = call(registry, "InspireLoraLoaderBlockWeight", model=model, clip=clip, lora_name="style.safetensors",
                    bypass=True)
    assert bypassed == (model, clip, "")
    ui = ui_graph([ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                           outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2]), ("VAE", "VAE", [])]),
                   ui_node(2, "LoraLoaderBlockWeight //Inspire",
                           ["All", "style.safetensors", 0.8, 0.6, False, 0, "fixed", 4.0, 1.0, "Preset", vector, False],
                           [("model", "MODEL", 1, False), ("clip", "CLIP", 2, False)],
                           [("model", "MODEL", []), ("clip", "CLIP", []), ("populated_vector", "STRING", [])])],
                  [[1, 1, 0, 2, 0, "MODEL"], [2, 1, 1, 2, 1, "CLIP"]])
    result = run_graph(registry, ui, ["2"])
    assert result.values["2"][2] == shown
    assert [n["widgets_values"] for n in export_ui(parse_workflow(ui, registry), registry)["nodes"]
            if n["type"] == "LoraLoaderBlockWeight //Inspire"][0][-2] == vector


def test_lbw_part_of_a_wildcard_lora_tag_applies_block_weights(registry, lbw_models):
    from graphflow import memory
    from nodes.pack_nodes_impact import lora_tag_entries

    assert lora_tag_entries("<lora:style:0.8:LBW=SD-X:1,0,0,0,0,0,0,0,1,1,1,1;A=0.5;B=bad>") == \
        [("style", 0.8, 0.8, "1,0,0,0,0,0,0,0,1,1,1,1", 0.5, 1.0)]
    model, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    vector = "0.5,1,0,2,1,0.5,1,1,0,1,1,1,1,1,1,1,1,1"
    text = f"a cat <lora:style:0.8:LBW={vector};A=1>"
    encoded = call(registry, "InspireWildcardEncode", model=model, clip=clip, wildcard_text=text, populated_text="",
                   mode="populate", seed=0, token_normalization="none", weight_interpretation="comfy")
    want = call(registry, "InspireLoraLoaderBlockWeight", model=model, clip=clip, lora_name="style.safetensors",
                strength_model=0.8, strength_clip=0.8, block_vector=vector)
    got_unet = memory.manager().weights(encoded[0].unet, encoded[0].patches)
    want_unet = memory.manager().weights(want[0].unet, want[0].patches)
    assert all(torch.equal(got_unet[k], want_unet[k]) for k in want_unet)
    assert encoded[3] == text
    with pytest.raises(NodeInputError) as caught:  # A used, no A= given: the pack fails there too
        call(registry, "InspireWildcardEncode", model=model, clip=clip, populated_text="",
             wildcard_text="<lora:style:1:LBW=A,1,1,1,1,1,1,1,1,1,1,1>", mode="populate", seed=0,
             token_normalization="none", weight_interpretation="comfy")
    assert caught.value.input == "populated_text"


def test_progress_samplers_give_the_latents_along_the_way(registry):
    from sampling_fakes import gaussian_eps
    model = FakeModel(gaussian_eps(0.2, 0.5))
    common = dict(seed=5, sampler_name="euler", scheduler="normal", noise_mode="CPU")
    latent, progress = call(registry, "InspireKSamplerProgress", **fake_inputs(model, **common, steps=4), denoise=1.0,
                            interval=2, omit_start_latent=False, omit_final_latent=False)
    plain = call(registry, "InspireKSampler", **fake_inputs(model, **common, steps=4), batch_seed_mode="comfy",
                 internal_seed=5)
    torch.testing.assert_close(latent["samples"], plain["samples"])
    frames = progress["samples"].reshape(-1, 2, 4, 8, 8)  # start, steps 0, 2 and 3 (the last), result
    assert frames.shape[0] == 5
    assert not frames[0].any() and torch.equal(frames[4], latent["samples"])
    first = frames[1] / randn((2, 4, 8, 8), 5)  # the starting x: the seed's comfy noise, scaled
    assert torch.allclose(first, first.flatten()[0].expand_as(first), rtol=1e-4)
    _, only_steps = call(registry, "InspireKSamplerAdvancedProgress", **fake_inputs(model, noise_seed=5, **{
        k: v for k, v in common.items() if k != "seed"}, steps=4), add_noise=True, start_at_step=0, end_at_step=4,
        return_with_leftover_noise=False, interval=1, omit_start_latent=True, omit_final_latent=True,
        prev_progress_latent_opt={"samples": torch.ones(1, 4, 8, 8)})
    assert only_steps["samples"].shape[0] == 1 + 4 * 2 and torch.equal(only_steps["samples"][0], torch.ones(4, 8, 8))
    with pytest.raises(NodeInputError):
        call(registry, "InspireKSamplerProgress", **fake_inputs(model, **common), denoise=0.0)
    # steps / denoise past 20,000 steps is refused by name before any schedule is made, as KSampler's
    with pytest.raises(NodeInputError) as refused:
        call(registry, "InspireKSamplerProgress", **fake_inputs(model, **common, steps=20), denoise=0.00002)
    assert refused.value.input == "denoise"


def test_prompt_builder_passes_its_text_on(registry):
    graph = ui_graph([ui_node(1, "PromptBuilder //Inspire", ["#PLACEHOLDER", "#PRESET", "a red cat"],
                              outputs=[("STRING", "STRING", [])])])
    assert run_graph(registry, graph, ["1"]).values["1"][0] == "a red cat"
    workflow = parse_workflow(graph, registry)
    assert export_ui(workflow, registry)["nodes"][0]["widgets_values"] == ["#PLACEHOLDER", "#PRESET", "a red cat"]
    assert export_api(workflow, registry)["1"]["inputs"] == {"category": "#PLACEHOLDER", "preset": "#PRESET",
                                                             "text": "a red cat"}


def test_advanced_sampler_without_leftover_noise_gives_the_last_estimate(registry):
    """Impact's separated_sample gives the last step's clean-latent estimate (SamplerCustom's
    denoised_output), which for uni_pc is not the sampler's result."""
    from graphflow.sampling import compute_sigmas, model_sampling_for
    from graphflow.sampling.pipeline import sample_custom
    from graphflow.sampling.samplers import SamplerChoice
    from nodes import custom_sampling as cs
    from sampling_fakes import gaussian_eps

    model = FakeModel(gaussian_eps(0.2, 0.5))
    inputs = fake_inputs(model, steps=5, noise_seed=3, add_noise=True, sampler_name="uni_pc", scheduler="normal",
                         start_at_step=0, end_at_step=10000, noise_mode="CPU", batch_seed_mode="comfy", internal_seed=3)
    estimate = call(registry, "InspireKSamplerAdvanced", **inputs, return_with_leftover_noise=False)["samples"]
    result = call(registry, "InspireKSamplerAdvanced", **inputs, return_with_leftover_noise=True)["samples"]
    guider = run_node(cs.CFGGuider, model=model, positive=inputs["positive"], negative=inputs["negative"], cfg=5.0)
    sigmas = compute_sigmas(model_sampling_for(model), "normal", 5, discard_penultimate=True)
    out, denoised = sample_custom(guider, NoiseSource(3), SamplerChoice("uni_pc"), sigmas, inputs["latent_image"])
    torch.testing.assert_close(estimate, denoised["samples"])
    torch.testing.assert_close(result, out["samples"])
    assert (estimate - result).abs().max() > 1e-3


def test_seed_explorer_noise_and_noise_opt(registry, caplog):
    latent = {"samples": torch.zeros(2, 4, 8, 8)}
    with caplog.at_level("WARNING"):
        noise = call(registry, "InspireSeedExplorer", latent=latent, seed_prompt="7, 11:0.3,\n 13:0.5, bad",
                     enable_additional=True, additional_seed=17, additional_strength=0.2, noise_mode="CPU",
                     initial_batch_seed_mode="incremental")
    assert "' bad' is not seed:strength" in caplog.text
    one = (1, 4, 8, 8)
    want = torch.cat([randn(one, 7), randn(one, 8)])  # incremental: seed + i per image
    for seed, strength in ((11, 0.3), (13, 0.5), (17, 0.2)):
        want = (1 - strength) * want + strength * randn(one, seed)  # the pack's plain mix
    torch.testing.assert_close(noise, want)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "InspireSeedExplorer", latent=latent, seed_prompt="x1", enable_additional=False)
    assert caught.value.input == "seed_prompt"
    model = FakeModel(still_eps)
    steps = dict(steps=4, sampler_name="euler", scheduler="normal", start_at_step=0, end_at_step=2)
    common = dict(steps, return_with_leftover_noise=True, noise_mode="CPU", batch_seed_mode="comfy")
    core = call(registry, "KSamplerAdvanced", **fake_inputs(model, noise_seed=9, return_with_leftover_noise="enable",
                                                             **steps))
    scale = core["samples"] / randn((2, 4, 8, 8), 9)
    # the given noise is the starting noise, add_noise off or not (as the pack uses it)
    ours = call(registry, "InspireKSamplerAdvanced", **fake_inputs(model, noise_seed=9, add_noise=False, **common),
                noise_opt=noise)
    torch.testing.assert_close(ours["samples"], noise * scale, rtol=1e-4, atol=1e-5)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "InspireKSamplerAdvanced", **fake_inputs(model, noise_seed=9, add_noise=True, **common),
             noise_opt=noise[:1])
    assert caught.value.input == "noise_opt"


def test_seed_explorer_refuses_too_many_entries_and_seeds_out_of_range(registry):
    latent = {"samples": torch.zeros(2, 4, 8, 8)}
    too_many = "1, " + ", ".join(f"{i}:0.1" for i in range(inspire.MAX_SEED_ENTRIES))
    bad_prompts = (too_many, str(2 ** 64), f"1, {2 ** 70}:0.5", "1, -3:0.5", f"{2 ** 64 - 1}",  # the last: +1 passes
                   "1, 2:inf", "1, 2:nan")
    for seed_prompt in bad_prompts:
        with pytest.raises(NodeInputError) as caught:
            call(registry, "InspireSeedExplorer", latent=latent, seed_prompt=seed_prompt, enable_additional=False,
                 noise_mode="CPU", initial_batch_seed_mode="incremental")
        assert caught.value.input == "seed_prompt", seed_prompt
    most = "1, " + ", ".join(f"{i}:0.1" for i in range(inspire.MAX_SEED_ENTRIES - 1))
    noise = call(registry, "InspireSeedExplorer", latent=latent, seed_prompt=most, enable_additional=False,
                 noise_mode="CPU", initial_batch_seed_mode="comfy")
    assert noise.shape == (2, 4, 8, 8)


def test_make_lbw_then_apply_lbw_equals_the_block_weight_loader(registry, lbw_models):
    from graphflow import memory
    model, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    vector = "0.5,1,0,2,1,0.5,R,1,0,1,1,1,1,1,1,1,1,1"
    loaded = call(registry, "InspireLoraLoaderBlockWeight", model=model, clip=clip, lora_name="style.safetensors",
                  strength_model=0.7, strength_clip=0.4, block_vector=vector, seed=3)
    lbw_model, shown = call(registry, "InspireMakeLBW", model=model, clip=clip, lora_name="style.safetensors",
                            block_vector=vector, seed=3)
    applied = call(registry, "InspireApplyLBW", model=model, clip=clip, strength_model=0.7, strength_clip=0.4,
                   lbw_model=lbw_model)
    assert shown == loaded[2]
    for got, want in ((applied[0], loaded[0]), (applied[1].towers[0], loaded[1].towers[0])):
        net = got.unet if hasattr(got, "unet") else got.model
        got_w, want_w = memory.manager().weights(net, got.patches), memory.manager().weights(net, want.patches)
        assert all(torch.equal(got_w[k], want_w[k]) for k in want_w)
    with pytest.raises(NodeInputError):
        call(registry, "InspireApplyLBW", model=model, clip=clip, lbw_model="nope")


def test_clip_text_encode_with_weight_weights_every_token(registry, models):
    _, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    plain = call(registry, "CLIPEncode", clip=clip, text="a red cat")
    empty = call(registry, "CLIPEncode", clip=clip, text="")[0][0]
    weighted = call(registry, "InspireCLIPTextEncodeWithWeight", clip=clip, text="a red cat", strength=1.5,
                    add_weight=0.25)
    w = 1.0 * 1.5 + 0.25  # every token's weight 1.0, the start, end and padding tokens' too
    torch.testing.assert_close(weighted[0][0], (plain[0][0] - empty) * w + empty, rtol=1e-4, atol=1e-5)
    assert torch.equal(weighted[0][1]["pooled_output"], plain[0][1]["pooled_output"])
    same = call(registry, "InspireCLIPTextEncodeWithWeight", clip=clip, text="a red cat", strength=1.0, add_weight=0.0)
    assert torch.equal(same[0][0], plain[0][0])


def test_image_folder_loaders_read_inside_the_inputs_folder(registry, tmp_folders):
    from PIL import Image
    folder = tmp_folders.inputs / "shots"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    second = rng.integers(0, 256, (10, 12, 4), dtype=np.uint8)
    Image.fromarray(first).save(folder / "a.png")
    Image.fromarray(second, "RGBA").save(folder / "b.png")
    (folder / "notes.txt").write_text("not a picture")
    images, masks, paths = call(registry, "InspireLoadImageListFromDir", directory="shots")
    assert paths == ["shots/a.png", "shots/b.png"]
    assert torch.equal(images[0][0], torch.from_numpy(first.astype(np.float32) / 255))
    assert torch.equal(masks[1][0], torch.from_numpy(1 - second[..., 3].astype(np.float32) / 255))
    assert masks[0].shape == (1, 64, 64) and not masks[0].any()
    batch, mask_batch, count = call(registry, "InspireLoadImagesFromDir", directory="shots")
    assert count == 2 and batch.shape == (2, 6, 8, 3) and mask_batch.shape == (2, 6, 8)
    want = call(registry, "ImageScale", image=images[1], upscale_method="bilinear", width=8, height=6, crop="center")
    assert torch.equal(batch[1:], want) and torch.equal(batch[:1], images[0])
    last, _, one = call(registry, "InspireLoadImagesFromDir", directory="shots", start_index=-1)
    assert one == 1 and torch.equal(last, images[1])
    for bad in ("../", "/etc", "missing", ""):
        with pytest.raises(NodeInputError) as caught:
            call(registry, "InspireLoadImageListFromDir", directory=bad)
        assert caught.value.input == "directory"


def test_image_folder_loaders_leave_out_links_leading_out_of_the_folder(registry, tmp_folders, tmp_path):
    from PIL import Image
    folder = tmp_folders.inputs / "linked"
    folder.mkdir(parents=True)
    secret = tmp_path / "secret.png"
    Image.fromarray(np.full((4, 4, 3), 200, dtype=np.uint8)).save(secret)
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(folder / "a.png")
    (folder / "b.png").symlink_to(secret)
    (folder / "c.png").symlink_to(folder / "a.png")  # a link inside the folder is read
    images, _, paths = call(registry, "InspireLoadImageListFromDir", directory="linked")
    assert paths == ["linked/a.png", "linked/c.png"] and not any(image.any() for image in images)
    _, _, count = call(registry, "InspireLoadImagesFromDir", directory="linked")
    assert count == 2
    (folder / "a.png").unlink()
    (folder / "c.png").unlink()
    with pytest.raises(NodeInputError) as caught:
        call(registry, "InspireLoadImagesFromDir", directory="linked")
    assert caught.value.input == "directory"


def test_image_folder_loaders_estimate_and_check_limits_before_decoding(registry, tmp_folders, monkeypatch):
    from PIL import Image

    from graphflow.resource_limits import RunLimits, Size
    folder = tmp_folders.inputs / "many"
    folder.mkdir(parents=True)
    for i in range(5):
        Image.fromarray(np.full((6 + i, 8, 3), i, dtype=np.uint8)).save(folder / f"{i}.png")
    frames = [Image.new("RGB", (8, 6), (255, 0, 0)), Image.new("RGB", (8, 6), (0, 255, 0))]
    frames[0].save(folder / "5.webp", save_all=True, append_images=frames[1:], lossless=True)
    batch = registry.get("InspireLoadImagesFromDir")
    assert batch.estimate({"directory": "many"}, {}).size == Size(6, 6, 8)  # the first picture's size
    assert batch.estimate({"directory": "many", "start_index": 2, "image_load_cap": 3}, {}).size == Size(3, 8, 8)
    assert batch.estimate({"directory": "missing"}, {}).size is None
    # an animated file gives its first frame
    images, _, _ = call(registry, "InspireLoadImageListFromDir", directory="many", start_index=5)
    assert images[0].shape == (1, 6, 8, 3) and torch.equal(images[0][0, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    import nodes.image
    load_picture, decoded = nodes.image._load_picture, []
    monkeypatch.setattr(nodes.image, "_load_picture", lambda *a, **k: decoded.append(a) or load_picture(*a, **k))
    for node in ("InspireLoadImagesFromDir", "InspireLoadImageListFromDir"):
        monkeypatch.setattr(nodes.image, "run_limits", lambda: RunLimits(max_batch=4))
        with pytest.raises(NodeInputError) as caught:
            call(registry, node, directory="many")
        assert caught.value.input == "image_load_cap" and "4" in str(caught.value)
        monkeypatch.setattr(nodes.image, "run_limits", lambda: RunLimits(max_pixels=8 * 8 - 1))
        with pytest.raises(NodeInputError) as caught:  # 1.png (8×7) passes, 2.png (8×8) does not
            call(registry, node, directory="many", start_index=1)
        assert caught.value.input == "directory" and "'2.png' is 8×8" in str(caught.value)
        assert not decoded  # refused before any picture is decoded
        monkeypatch.setattr(nodes.image, "run_limits", lambda: RunLimits(max_batch=4, max_pixels=10 * 8))
        assert len(call(registry, node, directory="many", image_load_cap=4)[0]) == 4
        decoded.clear()


def test_seed_logger_shows_the_seed_over_the_earlier_ones(registry):
    graph = ui_graph([ui_node(1, "SeedLogger //Inspire", [42, "randomize", "7\n6\n5\n4", 3])])
    result = run_graph(registry, graph, ["1"])
    assert result.outputs["1"]["text"] == ["42\n7\n6"]


def test_prompt_extractor_reads_the_pictures_saved_prompt(registry, tmp_folders, caplog):
    import json

    from PIL import Image, PngImagePlugin
    tmp_folders.inputs.mkdir(parents=True, exist_ok=True)
    prompt = {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red cat", "clip": ["4", 1]}},
              "7": {"class_type": "CLIPTextEncode", "inputs": {"text": ["12", 0], "clip": ["4", 1]}},
              "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "cats", "images": ["8", 0]}},
              "12": {"class_type": "SomePackNode", "inputs": {"text": "unknown class"}}}
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(prompt))
    info.add_text("workflow", json.dumps({"nodes": []}))
    Image.new("RGB", (8, 8)).save(tmp_folders.inputs / "made.png", pnginfo=info)
    Image.new("RGB", (8, 8)).save(tmp_folders.inputs / "plain.png")
    graph = ui_graph([ui_node(1, "PromptExtractor //Inspire", ["made.png", "6.text", "7.text", "", "image"],
                              outputs=[("positive", "STRING", []), ("negative", "STRING", [])])])
    result = run_graph(registry, graph, ["1"])
    assert tuple(result.values["1"]) == ("a red cat", "")  # 7.text is linked: no text, with a warning
    assert result.outputs["1"]["text"] == ["6.text [CLIPTextEncode] ==> a red cat\n"
                                           "7.text [CLIPTextEncode] ==> ['12', 0]\n"]
    assert "linked" in caplog.text
    assert call(registry, "InspirePromptExtractor", image="plain.png", positive_id="6.text", negative_id="") == ("", "")


def test_composite_noise_pastes_the_part_that_fits(registry):
    dest, src = torch.zeros(1, 4, 8, 8), torch.arange(1, 1 + 4 * 4 * 4, dtype=torch.float32).reshape(1, 4, 4, 4)

    def composite(mode, x=0, y=0, source=src):
        return call(registry, "InspireCompositeNoise", destination=dest, source=source, mode=mode, x=x, y=y)

    want = dest.clone()
    want[:, :, 2:6, 2:6] = src
    assert torch.equal(composite("center"), want)
    want = dest.clone()
    want[:, :, 4:8, 4:8] = src
    assert torch.equal(composite("right-bottom"), want)
    want = dest.clone()
    want[:, :, 6:8, 5:8] = src[:, :, :2, :3]  # at x 5, y 6: the part inside
    assert torch.equal(composite("xy", x=5, y=6), want)
    big = torch.ones(1, 4, 10, 10)
    assert torch.equal(composite("center", source=big), torch.ones(1, 4, 8, 8))
    assert not dest.any()  # the destination itself is left alone


def cfg_reference(from_cfg, to_cfg, i, steps, schedule):
    """The pack's interpolations written out."""
    if schedule == "linear":
        return from_cfg + (to_cfg - from_cfg) * i / steps
    if i == steps - 1:
        return to_cfg
    if schedule == "log":
        return from_cfg if i == 0 else from_cfg + (to_cfg - from_cfg) * np.log(i + 1) / np.log(steps + 1)
    if from_cfg == 0:
        return to_cfg * (1 - np.exp(-5 * i / steps)) / (1 - np.exp(-5))
    if to_cfg == 0:
        return from_cfg * (np.exp(-5 * i / steps) - np.exp(-5)) / (1 - np.exp(-5))
    return from_cfg * (to_cfg / from_cfg) ** (i / steps)


@pytest.mark.parametrize("schedule,from_cfg,to_cfg", [("linear", 6.5, 1.0), ("log", 6.5, 1.0), ("exp", 6.5, 2.0),
                                                      ("exp", 0.0, 4.0), ("exp", 3.0, 0.0)])
def test_scheduled_cfg_guider_scales_each_step(registry, schedule, from_cfg, to_cfg):
    """eps = the prompt's value, so an euler step moves x by (uncond + cfg (cond - uncond)) * dsigma:
    the result is the sum of the steps' guided eps times their sigma steps."""
    from graphflow.sampling import compute_sigmas
    from graphflow.sampling.pipeline import sample_custom
    from graphflow.sampling.samplers import SamplerChoice
    from nodes import custom_sampling as cs
    from sampling_fakes import SD, context_eps

    for i in range(6):
        assert inspire_utils.scheduled_cfg(from_cfg, to_cfg, i, 6, schedule) == pytest.approx(
            cfg_reference(from_cfg, to_cfg, i, 6, schedule))
    model, sigmas = FakeModel(context_eps), compute_sigmas(SD, "karras", 6)
    positive, negative, latent = prompt(0.3), prompt(-0.2), {"samples": torch.zeros(1, 4, 8, 8)}
    guider, passed = call(registry, "InspireScheduledCFGGuider", model=model, positive=positive, negative=negative,
                          sigmas=sigmas, from_cfg=from_cfg, to_cfg=to_cfg, schedule=schedule)
    assert passed is sigmas
    out = sample_custom(guider, NoiseSource(0, False), SamplerChoice("euler"), sigmas, latent)[0]["samples"]
    plain = run_node(cs.CFGGuider, model=model, positive=positive, negative=negative, cfg=2.0)
    unit = sample_custom(plain, NoiseSource(0, False), SamplerChoice("euler"), sigmas, latent)[0]["samples"]
    unit = unit / ((-0.2 + 2.0 * 0.5) * float(sigmas[-1] - sigmas[0]))  # the output per eps * sigma moved
    want = sum((-0.2 + cfg_reference(from_cfg, to_cfg, i, 6, schedule) * 0.5) * float(sigmas[i + 1] - sigmas[i])
               for i in range(6))
    torch.testing.assert_close(out, unit * want, rtol=1e-4, atol=1e-5)


def test_scheduled_perp_neg_guider_at_one_scale_is_perp_neg(registry):
    from graphflow.sampling import compute_sigmas
    from graphflow.sampling.pipeline import sample_custom
    from graphflow.sampling.samplers import SamplerChoice
    from nodes import custom_sampling as cs
    from sampling_fakes import SD, context_eps

    model, sigmas = FakeModel(context_eps), compute_sigmas(SD, "karras", 4)
    conds = dict(positive=prompt(0.3), negative=prompt(-0.2), empty_conditioning=prompt(0.05))
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    guider, _ = call(registry, "InspireScheduledPerpNegCFGGuider", model=model, sigmas=sigmas, from_cfg=3.0,
                     to_cfg=3.0, schedule="exp", neg_scale=0.7, **conds)
    plain = run_node(cs.PerpNegGuider, model=model, cfg=3.0, neg_scale=0.7, **conds)
    got, want = (sample_custom(g, NoiseSource(2), SamplerChoice("euler"), sigmas, latent)[0]["samples"]
                 for g in (guider, plain))
    torch.testing.assert_close(got, want)
    varying, _ = call(registry, "InspireScheduledPerpNegCFGGuider", model=model, sigmas=sigmas, from_cfg=6.0,
                      to_cfg=1.0, schedule="linear", neg_scale=0.7, **conds)
    assert not torch.allclose(sample_custom(varying, NoiseSource(2), SamplerChoice("euler"), sigmas, latent)[0]
                              ["samples"], want)


def test_conditioning_upscale_and_stretch_areas(registry):
    cond = [(torch.ones(1, 2, 3), {"area": (10, 12, 3, 5), "strength": 1.0}), (torch.ones(1, 2, 3), {})]
    up = call(registry, "InspireConditioningUpscale", conditioning=cond, scalar=3)
    assert up[0][1]["area"] == tuple(((v * 3 + 7) // 8) * 8 for v in (10, 12, 3, 5)) and up[1][1] == {}
    out = call(registry, "InspireConditioningStretch", conditioning=cond, resolutionX=512, resolutionY=512,
               newWidth=1024, newHeight=768)
    h, w, y, x = 10, 12, 3, 5
    want = [(h * 8) * 768 / 512 // 8, (w * 8) * 1024 / 512 // 8, (y * 8) * 768 / 512 // 8, (x * 8) * 1024 / 512 // 8]
    assert out[0][1]["area"] == tuple(math.ceil(v / 8) * 8 for v in want)
    assert cond[0][1]["area"] == (10, 12, 3, 5)  # the input is left alone
