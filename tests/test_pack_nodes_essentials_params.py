"""ComfyUI_essentials' parameter sampler (nodes/pack_nodes_essentials_params.py): its lists against
the pack's parse rules written out here; each sweep run against the core nodes' single run with
that combination's values (ModelSamplingFlux / ModelSamplingAuraFlow, FluxGuidance, BasicGuider,
RandomNoise, KSamplerSelect, BasicScheduler, SamplerCustomAdvanced's denoised output) on tiny
FLUX dev, FLUX schnell and SD3 checkpoints; the plot's layout; errors by name; a UI save, an API
prompt with the pack's class names and the export round trip."""

import contextlib
import itertools
import re
import signal
import threading

import numpy
import pytest
import torch
from safetensors.torch import save_file

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.resource_limits import RunLimits
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_essentials_params import MAX_RUNS, _params_text, name_list, number_list, seed_list
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import ui_graph, ui_node
from tests.test_pack_nodes_kj import run


@pytest.fixture(scope="module")
def registry(builtin_registry):
    return builtin_registry


# -- the lists ------------------------------------------------------------------------------------


@contextlib.contextmanager
def within_seconds(seconds):
    """A test failure, not a hang, when the block runs longer than `seconds` (a loop without end)."""
    def stop(*_):
        raise TimeoutError(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def pack_numbers(text):
    """utils.py's parse_string_to_list (@1ab2482e) written out for valid input: each comma item
    stripped; "a...b+s": from a while <= b adding s (turned towards b), rounded to s's decimals;
    else the number (float with a '.', else int) rounded to its own decimals."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        def number(t):
            return float(t) if "." in t else int(t)

        def places(t):
            return len(t.split(".")[1]) if "." in t else 0
        if "..." in item:
            a, rest = item.split("...")
            b, s = rest.split("+")
            start, end, step = number(a), number(b), number(s)
            if (start > end and step > 0) or (start < end and step < 0):
                step = -step
            x = start
            while x <= end:
                out.append(round(x, places(s)))
                x += step
        else:
            out.append(round(number(item), places(item)))
    return out


@pytest.mark.parametrize("text", ["20", "3.5", " 1.50 , 2,3.25", "0...1+0.1", "1...5+2", "1...5+-1", "0.5...1+0.25",
                                  "1.0...3+1", "4, 1...3+1, 0.333", "-1...1+0.5", "2...2+1", "0...0.3+0.1",
                                  "10...1+-3, 7"])
def test_number_lists_follow_the_packs_rules(text):
    got, want = number_list(text, "steps"), pack_numbers(text)
    assert got == want and [type(v) for v in got] == [type(v) for v in want]


def test_number_list_ranges_end_where_the_accumulated_sum_passes_the_end():
    assert number_list("0...1+0.1", "guidance")[-1] == 1.0 and len(number_list("0...1+0.1", "guidance")) == 11
    assert number_list("0...0.3+0.1", "guidance") == [0, 0.1, 0.2]  # 0.1 + 0.1 + 0.1 > 0.3, as in the pack


@pytest.mark.parametrize("text, expected", [("abc", "not a number"), ("1, ,2", "not a number"),
                                            ("1e-3", "decimal point"), ("1...5", "start...end+step"),
                                            ("1...5+0", "must not be 0"), ("5...1+1", "gives no values"),
                                            ("1...2...3+1", "start...end+step"), ("0...5000+1", "at most"),
                                            ("nan", "not a number"), ("1.0e999", "not a finite"),
                                            ("9" * 400, "too large"), ("1...1" + "0" * 400 + "+1", "too large"),
                                            # float sums that adding the step leaves unchanged: the pack loops
                                            ("1.0...1.0+0.00000000000000001", "changes nothing"),
                                            ("9007199254740992.0...9007199254740994.0+1.0", "changes nothing"),
                                            # 2.9 adds 2 at 2**53: 1001 values where 2000 / 2.9 promised 690
                                            ("9007199254740992.0...9007199254742992.0+2.9", "more than 1000")])
def test_number_lists_refuse_what_the_pack_reads_as_0_or_loops_on_by_name(text, expected):
    with within_seconds(5), pytest.raises(NodeInputError) as e:
        number_list(text, "guidance")
    assert e.value.input == "guidance" and expected in str(e.value)


def test_seeds_take_whole_numbers_and_question_marks_for_random_ones():
    assert seed_list("1, 22\n333") == [1, 22, 333]
    seeds = seed_list("?, 7, ?")
    assert seeds[1] == 7 and all(0 <= s <= 999999 for s in seeds)
    for bad in ("", "1.5", "x", "-1"):
        with pytest.raises(NodeInputError) as e:
            seed_list(bad)
        assert e.value.input == "seed"


def test_sampler_and_scheduler_lists_follow_the_packs_rules():
    assert name_list("*", SAMPLER_NAMES, "ipndm", "sampler") == list(SAMPLER_NAMES)
    assert name_list("!euler,\n ddim", SAMPLER_NAMES, "ipndm", "sampler") == \
        [s for s in SAMPLER_NAMES if s not in ("euler", "ddim")]
    assert name_list("karras, nope\nsimple", SCHEDULER_NAMES, "simple", "scheduler") == ["karras", "simple"]
    assert name_list("nope", SAMPLER_NAMES, "ipndm", "sampler") == ["ipndm"]  # the pack's fallbacks
    assert name_list("", SCHEDULER_NAMES, "simple", "scheduler") == ["simple"]
    assert name_list(" *", SAMPLER_NAMES, "ipndm", "sampler") == ["ipndm"]  # only "*" itself means all


# -- the sweep --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flow_files(tmp_path_factory):
    """Tiny all-in-one FLUX dev / FLUX schnell / SD3 checkpoints, and a FLUX LoRA in ComfyUI's layout."""
    from graphflow import folders as folders_module
    from graphflow.testing import write_flow_checkpoint
    saved = dict(folders_module.folders.__dict__)
    folders = folders_module.configure(home=tmp_path_factory.mktemp("params"))
    checkpoints = folders.models / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    for family in ("flux_dev", "flux_schnell", "sd3_medium"):
        write_flow_checkpoint(checkpoints / f"{family}.safetensors", family)
    loras = folders.models / "loras"
    loras.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(4)
    tensors = {}
    for module, (out_dim, in_dim) in {"double_blocks.0.img_attn.qkv": (192, 64),
                                      "single_blocks.0.linear1": (448, 64)}.items():
        tensors[f"diffusion_model.{module}.lora_down.weight"] = torch.randn(4, in_dim, generator=generator) * 0.3
        tensors[f"diffusion_model.{module}.lora_up.weight"] = torch.randn(out_dim, 4, generator=generator) * 0.3
    save_file(tensors, str(loras / "flux_tiny_lora.safetensors"))
    yield checkpoints
    folders_module.folders.__dict__.update(saved)


def loader(ckpt):
    return {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}}


def sweep_graph(ckpt, prompt_node=None, **widgets):
    """API prompt: the checkpoint, a prompt (or TextEncodeForSamplerParams+), a 32x32 latent and
    FluxSamplerParams+ with these widgets."""
    graph = {"1": loader(ckpt),
             "2": prompt_node or {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a fox"}},
             "3": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
             "4": {"class_type": "FluxSamplerParams+", "inputs": {
                 "model": ["1", 0], "conditioning": ["2", 0], "latent_image": ["3", 0],
                 **{"seed": "1", "sampler": "euler", "scheduler": "simple", "steps": "2", "guidance": "3.5",
                    "max_shift": "", "base_shift": "", "denoise": "1.0", **widgets}}}}
    return graph


def core_run(registry, model, cond, latent, seed, sampler, scheduler, steps, guidance, max_shift, base_shift, denoise,
             flow_type=False):
    """The single run with these values through the core nodes (the reference)."""
    if flow_type:
        shifted = call(registry, "ModelSamplingAuraFlow", model=model, shift=base_shift)
    else:
        shifted = call(registry, "ModelSamplingFlux", model=model, max_shift=max_shift, base_shift=base_shift,
                       width=latent["samples"].shape[-1] * 8, height=latent["samples"].shape[-2] * 8)
    guider = call(registry, "BasicGuider", model=shifted,
                  conditioning=call(registry, "FluxGuidance", conditioning=cond, guidance=guidance))
    _, denoised = call(registry, "SamplerCustomAdvanced", noise=call(registry, "RandomNoise", noise_seed=seed),
                       guider=guider, sampler=call(registry, "KSamplerSelect", sampler_name=sampler),
                       sigmas=call(registry, "BasicScheduler", model=shifted, scheduler=scheduler, steps=steps,
                                   denoise=denoise),
                       latent_image=latent)
    return denoised["samples"]


def test_each_flux_dev_run_equals_the_core_nodes_single_run_in_the_packs_order(registry, flow_files):
    lists = {"seed": [3, 5], "max_shift": [1.15, 0.5], "base_shift": [0.5], "guidance": [3.5, 6.0],
             "sampler": ["euler", "dpmpp_2m"], "scheduler": ["simple"], "steps": [2], "denoise": [0.5, 1.0]}
    graph = sweep_graph("flux_dev.safetensors", seed="3, 5", max_shift="1.15, 0.5", base_shift="",
                        guidance="3.5, 6.0", sampler="euler, dpmpp_2m, nope", scheduler="simple", steps="2",
                        denoise="0.5...1.0+0.5")
    workflow, values = run(registry, graph, ["1", "2", "3", "4"])
    latent, params = values["4"]
    model, cond, empty = values["1"][0], values["2"][0], values["3"][0]
    combos = list(itertools.product(*lists.values()))
    assert latent["samples"].shape == (len(combos), 16, 4, 4) and len(params) == len(combos)
    assert latent["batch_index"] == [0] * len(combos)  # LatentBatch's indices, as the pack batches them
    for i, combo in enumerate(combos):
        named = dict(zip(lists, combo))
        assert {k: params[i][k] for k in named} == named
        assert params[i]["width"] == params[i]["height"] == 32 and params[i]["prompt"] is None
        assert params[i]["lora"] is None and params[i]["lora_strength"] == 0 and params[i]["time"] >= 0
        want = core_run(registry, model, cond, empty, **named)
        assert torch.allclose(latent["samples"][i], want[0], atol=1e-5), named
    assert not torch.allclose(latent["samples"][0], latent["samples"][1], atol=1e-4)  # the settings matter


@pytest.mark.parametrize("ckpt", ["flux_schnell.safetensors", "sd3_medium.safetensors"])
def test_flow_models_run_at_the_aura_flow_shift_of_base_shift_with_the_packs_defaults(registry, flow_files, ckpt):
    """ComfyUI's FLOW models (FLUX schnell, SD3): ModelSamplingAuraFlow at base_shift (empty: 1.0),
    max_shift 0, steps empty: 4."""
    graph = sweep_graph(ckpt, seed="7", steps="", base_shift="", max_shift="2.0", guidance="", denoise="")
    _, values = run(registry, graph, ["1", "2", "3", "4"])
    latent, params = values["4"]
    assert len(params) == 1 and params[0]["steps"] == 4 and params[0]["max_shift"] == 0
    assert params[0]["base_shift"] == 1.0 and params[0]["guidance"] == 3.5 and params[0]["denoise"] == 1.0
    want = core_run(registry, values["1"][0], values["2"][0], values["3"][0], 7, "euler", "simple", 4, 3.5, 0, 1.0,
                    1.0, flow_type=True)
    assert torch.allclose(latent["samples"][0], want[0], atol=1e-5)
    graph = sweep_graph(ckpt, seed="7", steps="2", base_shift="0.5, 3.0")
    _, values = run(registry, graph, ["1", "2", "3", "4"])
    for i, shift in enumerate((0.5, 3.0)):
        want = core_run(registry, values["1"][0], values["2"][0], values["3"][0], 7, "euler", "simple", 2, 3.5, 0,
                        shift, 1.0, flow_type=True)
        assert torch.allclose(values["4"][0]["samples"][i], want[0], atol=1e-5)


def test_prompts_from_text_encode_for_sampler_params_each_run_in_turn(registry, flow_files):
    text = "a red fox\n---\n\n  a blue bird  \n-----\n~~~~\nlast one"
    encode = {"class_type": "TextEncodeForSamplerParams+", "inputs": {"clip": ["1", 1], "text": text}}
    graph = sweep_graph("flux_dev.safetensors", prompt_node=encode, seed="1, 2")
    _, values = run(registry, graph, ["1", "2", "3", "4"])
    prompts = values["2"][0]
    assert prompts["text"] == ["a red fox", "a blue bird", "last one"]  # 4+ dashes or tildes end a prompt too
    for t, c in zip(prompts["text"], prompts["encoded"]):
        plain = call(registry, "CLIPEncode", text=t, clip=values["1"][1])
        assert torch.equal(c[0][0], plain[0][0])
    latent, params = values["4"]
    assert [(p["prompt"], p["seed"]) for p in params] == list(itertools.product(prompts["text"], [1, 2]))
    for i, (t, seed) in enumerate(itertools.product(range(3), [1, 2])):
        want = core_run(registry, values["1"][0], prompts["encoded"][t], values["3"][0], seed, "euler", "simple", 2,
                        3.5, 1.15, 0.5, 1.0)
        assert torch.allclose(latent["samples"][i], want[0], atol=1e-5)
    with pytest.raises(NodeInputError) as e:
        call(registry, "TextEncodeForSamplerParams", text="---\n  \n---\n", clip=values["1"][1])
    assert e.value.input == "text"


def test_lora_strengths_each_run_on_the_model_with_the_lora_at_that_strength(registry, flow_files):
    graph = sweep_graph("flux_dev.safetensors", seed="4")
    graph["4"]["inputs"]["loras"] = ["5", 0]
    graph["5"] = {"class_type": "LorasForFluxParams+", "inputs": {"lora_1": "flux_tiny_lora.safetensors",
                                                                  "strength_model_1": "0.0, 1.0...2+1"}}
    _, values = run(registry, graph, ["1", "2", "3", "4", "5"])
    assert values["5"][0] == {"loras": ["flux_tiny_lora.safetensors"], "strengths": [[0, 1.0, 2.0]]}
    latent, params = values["4"]
    assert [(p["lora"], p["lora_strength"]) for p in params] == [("flux_tiny_lora.safetensors", s) for s in (0, 1, 2)]
    assert [repr(p["lora_strength"]) for p in params] == ["0.0", "1.0", "2.0"]  # 0.0 stays a float, as in the pack
    assert _params_text(params[0]).endswith("LoRA: flux_tiny_lora.safetensors, str: 0.0")
    for i, strength in enumerate((0, 1.0, 2.0)):
        model = call(registry, "LoadLoRA", model=values["1"][0], lora_name="flux_tiny_lora.safetensors",
                     strength_model=strength, strength_clip=0.0)[0]
        want = core_run(registry, model, values["2"][0], values["3"][0], 4, "euler", "simple", 2, 3.5, 1.15, 0.5, 1.0)
        assert torch.allclose(latent["samples"][i], want[0], atol=1e-5)
    assert not torch.allclose(latent["samples"][0], latent["samples"][2], atol=1e-4)


def test_sweep_errors_name_their_input(registry, flow_files):
    from graphflow.executor import Executor
    cases = [({"steps": "0"}, "steps"), ({"steps": "2.5"}, "steps"), ({"denoise": "1.5"}, "denoise"),
             ({"seed": "1, x"}, "seed"), ({"guidance": "high"}, "guidance"),
             ({"steps": "1...600+1", "sampler": "euler, ddim"}, "steps"), ({"steps": "9" * 400}, "steps"),
             ({"guidance": "1.0...1.0+0.00000000000000001"}, "guidance")]
    messages = []
    for widgets, name in cases:
        with within_seconds(20):  # validation's estimate reads the lists too: it must not loop
            result = Executor(registry).run(parse_workflow(sweep_graph("flux_dev.safetensors", **widgets), registry),
                                            outputs=["4"])
        assert not result.ok and result.error["input"] == name, (widgets, result.error)
        messages.append(result.error["message"])
    assert str(MAX_RUNS) in messages[5] and "1200 runs" in messages[5]
    graph = sweep_graph("flux_dev.safetensors")
    sd_model = type("EpsModel", (), {"prediction": "eps"})()
    with pytest.raises(NodeInputError) as e:
        call(registry, "FluxSamplerParams", model=sd_model, conditioning=[], latent_image={
            "samples": torch.zeros(1, 4, 4, 4)}, **{k: v for k, v in graph["4"]["inputs"].items()
                                                   if not isinstance(v, list)})
    assert e.value.input == "model"
    with pytest.raises(NodeInputError) as e:
        call(registry, "FluxSamplerParams", model=sd_model, conditioning=[], latent_image=[1])
    assert e.value.input == "latent_image"


def test_sweep_estimate_counts_the_runs_so_a_large_one_is_refused_before_it_starts(registry, flow_files, monkeypatch):
    from graphflow.executor import Executor
    from graphflow.resource_limits import RunLimits, Size
    cls = registry.get("FluxSamplerParams")
    widgets = {"seed": "1, 2, ?", "sampler": "euler, ddim", "scheduler": "*", "steps": "1...4+1", "guidance": "3.5",
               "max_shift": "", "base_shift": "", "denoise": "1.0"}
    estimate = cls.estimate(widgets, {"latent_image": Size(2, 64, 64)})
    assert estimate.size == Size(2 * 3 * 2 * len(SCHEDULER_NAMES) * 4, 64, 64) and estimate.memory > 0
    graph = sweep_graph("flux_dev.safetensors", seed="1, 2, 3", sampler="euler, ddim")
    graph["3"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}}
    result = Executor(registry, limits=RunLimits(max_batch=4)).run(parse_workflow(graph, registry), outputs=["4"])
    assert result.status == "invalid" and "batch of 6" in result.problems[0].message  # before anything ran
    assert result.problems[0].node_id == "4"
    # a latent whose size validation doesn't know (a node without an estimate): refused as the node starts
    from graphflow.api import Estimate
    from nodes.flow import EmptySD3Latent
    monkeypatch.setattr(EmptySD3Latent, "estimate", classmethod(lambda cls, widgets, inputs: Estimate(None)))
    graph["3"] = {"class_type": "EmptySD3LatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}}
    result = Executor(registry, limits=RunLimits(max_batch=4)).run(parse_workflow(graph, registry), outputs=["4"])
    assert result.status == "error" and result.error["input"] == "seed" and "batch of 6" in result.error["message"]


# -- the plot ---------------------------------------------------------------------------------------


def plot_params(count, **fixed):
    base = {"time": 1.0, "seed": 1, "width": 64, "height": 48, "sampler": "euler", "scheduler": "simple", "steps": 2,
            "guidance": 3.5, "max_shift": 1.15, "base_shift": 0.5, "denoise": 1.0, "prompt": None, "lora": None,
            "lora_strength": 0}
    return [{**base, **{k: v[i] if isinstance(v, list) else v for k, v in fixed.items()}} for i in range(count)]


def cells(images, width=64):
    """Each image a flat grey of its own (i + 1) / 10, to find it in the grid."""
    return torch.stack([torch.full((48, width, 3), (i + 1) / 10) for i in range(images)])


def test_plot_grid_has_a_cell_per_image_with_its_label_below(registry):
    images = cells(5)
    params = plot_params(5, seed=[5, 4, 3, 2, 1], time=[0.5, 0.25, 1.0, 2.0, 3.0])
    out = call(registry, "PlotParameters", images=images, params=params, order_by="seed", cols_value="none",
               cols_num=2, add_prompt="false", add_params="true")
    assert out.shape[0] == 1 and out.shape[2] == 2 * 64
    cell_h = out.shape[1] // 3  # 5 images in 2 columns: 3 rows, the last cell black
    assert out.shape[1] == 3 * cell_h and cell_h > 48
    order = [4, 3, 2, 1, 0]  # by seed
    for k, i in enumerate(order):
        r, c = divmod(k, 2)
        cell = out[0, r * cell_h:(r + 1) * cell_h, c * 64:(c + 1) * 64]
        assert torch.allclose(cell[:48], images[i])
        label = cell[48:]
        assert label.max() > 0.5 and ((label == 0).all(-1)).float().mean() > 0.5  # white text on black
    assert (out[0, 2 * cell_h:, 64:] == 0).all()  # the padding cell
    square = call(registry, "PlotParameters", images=images, params=params, order_by="none", cols_value="none",
                  cols_num=0, add_prompt="false", add_params="false")
    assert square.shape == (1, 3 * 48, 2 * 64, 3)  # sqrt(5) -> 2 columns, no labels
    batch = call(registry, "PlotParameters", images=images, params=params, order_by="none", cols_value="none",
                 cols_num=-1, add_prompt="false", add_params="false")
    assert torch.equal(batch, images)


def test_plot_columns_by_value_interleave_the_groups_and_changes_only_lists_what_differs(registry):
    images = cells(6)
    params = plot_params(6, sampler=["euler", "ddim", "euler", "ddim", "euler", "ddim"], seed=[1, 1, 2, 2, 3, 3])
    out = call(registry, "PlotParameters", images=images, params=params, order_by="none", cols_value="sampler",
               cols_num=0, add_prompt="false", add_params="changes only")
    cell_h = out.shape[1] // 3
    assert out.shape[2] == 2 * 64  # one column per sampler
    for r in range(3):
        for c, i in enumerate((2 * r, 2 * r + 1)):
            assert torch.allclose(out[0, r * cell_h:r * cell_h + 48, c * 64:(c + 1) * 64], images[i])
    plain = call(registry, "PlotParameters", images=images, params=params, order_by="none", cols_value="none",
                 cols_num=-1, add_prompt="false", add_params="true")
    # changes only: two lines (sampler, seed) against the full label's three
    assert (out.shape[1] // 3 - 48) * 3 == (plain.shape[1] - 48) * 2
    # a group shorter than the others cuts every column to its length, as the pack's zip does
    uneven = plot_params(3, sampler=["euler", "ddim", "euler"])
    cut = call(registry, "PlotParameters", images=cells(3), params=uneven, order_by="none", cols_value="sampler",
               cols_num=0, add_prompt="false", add_params="false")
    assert cut.shape == (1, 48, 128, 3)


@contextlib.contextmanager
def run_context(limits, interrupt=None):
    """A node context with the running server's policy limits, as the executor gives them."""
    from graphflow.context import NodeContext, _current
    token = _current.set(NodeContext("run", "1", "test", lambda event: None, interrupt or threading.Event(),
                                     limits=limits))
    try:
        yield
    finally:
        _current.reset(token)


def test_plot_prompt_rows_and_errors(registry):
    images = cells(2, width=512)  # the pack's font size: 32 x 512 / 1024 = 16
    params = plot_params(2, prompt=["short", " ".join(["word"] * 200)])
    full = call(registry, "PlotParameters", images=images, params=params, order_by="none", cols_value="none",
                cols_num=-1, add_prompt="true", add_params="false")
    excerpt = call(registry, "PlotParameters", images=images, params=params, order_by="none", cols_value="none",
                   cols_num=-1, add_prompt="excerpt", add_params="false")
    assert full.shape[1] > excerpt.shape[1] > 48  # the long prompt wraps onto more rows; all padded alike
    assert (full[0, 48:].amax() > 0.5) and (full[0, -5:] == 0).all()  # the short prompt's cell is padded black
    with pytest.raises(NodeInputError) as e:
        call(registry, "PlotParameters", images=images, params=params[:1], order_by="none", cols_value="none",
             cols_num=-1, add_prompt="false", add_params="true")
    assert e.value.input == "params"
    with pytest.raises(NodeInputError) as e:
        call(registry, "PlotParameters", images=torch.zeros(2, 8, 8, 4), params=params, order_by="none",
             cols_value="none", cols_num=-1, add_prompt="false", add_params="true")
    assert e.value.input == "images"
    with pytest.raises(NodeInputError) as e:
        with run_context(RunLimits(max_pixels=64 * 48)):
            call(registry, "PlotParameters", images=cells(2), params=plot_params(2), order_by="none",
                 cols_value="none", cols_num=2, add_prompt="false", add_params="false")
    assert e.value.input == "cols_num"
    for order_by, add_params in (("steps", "false"), ("seed", "true")):
        with pytest.raises(NodeInputError) as e:
            call(registry, "PlotParameters", images=images, params=[{"seed": 1}, {"seed": 2}], order_by=order_by,
                 cols_value="none", cols_num=-1, add_prompt="false", add_params=add_params)
        assert e.value.input == "params"


def test_plot_text_is_sized_before_it_is_drawn_and_refused_by_the_input_that_makes_it(registry, monkeypatch):
    import nodes.pack_nodes_essentials_params as module
    from graphflow.context import Interrupted
    wide = torch.zeros(1, 64, 1024, 3)
    long_prompt = plot_params(1, prompt=" ".join(["word"] * 4000))  # 20,000 characters: 570 lines at 1024 wide
    with within_seconds(10), pytest.raises(NodeInputError) as e:  # no grid: each labelled image on its own
        call(registry, "PlotParameters", images=wide, params=long_prompt, order_by="none", cols_value="none",
             cols_num=-1, add_prompt="true", add_params="false")
    assert e.value.input == "add_prompt" and "16384 pixels tall" in str(e.value)
    excerpt = call(registry, "PlotParameters", images=wide, params=long_prompt, order_by="none", cols_value="none",
                   cols_num=-1, add_prompt="excerpt", add_params="true")
    assert 64 < excerpt.shape[1] < 1000
    # the line height of the pack's font size at 512 wide, from a drawn label (3 lines of settings)
    images = cells(4, width=512)
    labelled = call(registry, "PlotParameters", images=images[:1], params=plot_params(1), order_by="none",
                    cols_value="none", cols_num=-1, add_prompt="false", add_params="true")
    line = (labelled.shape[1] - 48) // 3
    params = plot_params(4, seed=[1, 2, 1, 2], prompt=" ".join(["word"] * 300))
    for cols_num, cols_value in ((2, "none"), (0, "none"), (5, "seed"), (-1, "none")):
        cells_in_grid = 1 if cols_num == -1 else 4
        with run_context(RunLimits(max_pixels=cells_in_grid * 512 * (48 + 4 * line))):
            fits = call(registry, "PlotParameters", images=images, params=params, order_by="none",
                        cols_value=cols_value, cols_num=cols_num, add_prompt="false", add_params="true")
            assert fits.shape[-3] == (48 + 3 * line) * (1 if cols_num == -1 else 2)
            with pytest.raises(NodeInputError) as e:
                call(registry, "PlotParameters", images=images, params=params, order_by="none",
                     cols_value=cols_value, cols_num=cols_num, add_prompt="true", add_params="true")
            assert e.value.input == "add_prompt" and "lines of text" in str(e.value), (cols_num, cols_value)
        with run_context(RunLimits(max_pixels=cells_in_grid * 512 * (48 + 2 * line))):
            with pytest.raises(NodeInputError) as e:
                call(registry, "PlotParameters", images=images, params=params, order_by="none",
                     cols_value=cols_value, cols_num=cols_num, add_prompt="false", add_params="true")
            assert e.value.input == "add_params", (cols_num, cols_value)
    # an interrupt is seen between cells: the second cell's text isn't drawn
    interrupt, drawn = threading.Event(), []

    def draw_then_interrupt(*args):
        drawn.append(args[0])
        interrupt.set()
        return module_text_rows(*args)
    module_text_rows = module._text_rows
    monkeypatch.setattr(module, "_text_rows", draw_then_interrupt)
    with run_context(None, interrupt), pytest.raises(Interrupted):
        call(registry, "PlotParameters", images=images, params=plot_params(4), order_by="none", cols_value="none",
             cols_num=2, add_prompt="false", add_params="true")
    assert len(drawn) == 1


def test_plot_refuses_no_images_by_name(registry):
    for cols_num in (2, 0, -1):
        with pytest.raises(NodeInputError) as e:
            call(registry, "PlotParameters", images=torch.zeros(0, 48, 64, 3), params=[], order_by="none",
                 cols_value="none", cols_num=cols_num, add_prompt="false", add_params="true")
        assert e.value.input == "images" and "no images" in str(e.value)


def test_plot_without_a_grid_checks_the_whole_padded_batch_against_the_runs_memory(registry):
    """With cols_num -1 the output is every labelled image padded to the tallest: its bytes
    (batch x tallest x width x 3 x 4) are checked against the run's memory before any text is
    drawn, naming the input whose text makes it too big."""
    images = torch.zeros(6, 16, 64, 3)
    params = plot_params(6, prompt=[" ".join(["word"] * 200)] + [None] * 5)  # one long prompt: all padded to it
    for add_prompt, add_params in (("true", "false"), ("false", "true")):
        out = call(registry, "PlotParameters", images=images, params=params, order_by="none", cols_value="none",
                   cols_num=-1, add_prompt=add_prompt, add_params=add_params)
        assert out.shape[0] == 6 and out.shape[1] > 16
        needed = out.numel() * 4  # float32 bytes of the output the node makes
        with run_context(RunLimits(ram_bytes=needed)):
            fits = call(registry, "PlotParameters", images=images, params=params, order_by="none",
                        cols_value="none", cols_num=-1, add_prompt=add_prompt, add_params=add_params)
        assert torch.equal(fits, out)
        with run_context(RunLimits(ram_bytes=needed - 1)), pytest.raises(NodeInputError) as e:
            call(registry, "PlotParameters", images=images, params=params, order_by="none", cols_value="none",
                 cols_num=-1, add_prompt=add_prompt, add_params=add_params)
        assert e.value.input == ("add_prompt" if add_prompt == "true" else "add_params"), e.value
        assert "6 cells of 64x" in str(e.value) and "memory" in str(e.value)
    with run_context(RunLimits(ram_bytes=images.numel() * 4 - 1)), pytest.raises(NodeInputError) as e:
        call(registry, "PlotParameters", images=images, params=params, order_by="none", cols_value="none",
             cols_num=-1, add_prompt="false", add_params="false")
    assert e.value.input == "images"
    # a grid: the one grid image's bytes
    grid = call(registry, "PlotParameters", images=images, params=params, order_by="none", cols_value="none",
                cols_num=3, add_prompt="false", add_params="true")
    with run_context(RunLimits(ram_bytes=grid.numel() * 4 - 1)), pytest.raises(NodeInputError) as e:
        call(registry, "PlotParameters", images=images, params=params, order_by="none", cols_value="none",
             cols_num=3, add_prompt="false", add_params="true")
    assert e.value.input == "add_params"


def test_plot_stops_wrapping_prompts_at_the_first_label_too_tall(registry, monkeypatch):
    import textwrap
    wrapped = []
    real_wrap = textwrap.wrap
    monkeypatch.setattr(textwrap, "wrap", lambda *a, **k: wrapped.append(1) or real_wrap(*a, **k))
    long_prompt = " ".join(["word"] * 4000)  # 570 lines at 1024 wide: over 16384 pixels tall
    with pytest.raises(NodeInputError) as e:
        call(registry, "PlotParameters", images=torch.zeros(3, 8, 1024, 3), params=plot_params(3, prompt=long_prompt),
             order_by="none", cols_value="none", cols_num=-1, add_prompt="true", add_params="false")
    assert e.value.input == "add_prompt" and "16384 pixels tall" in str(e.value)
    assert len(wrapped) == 1  # the first prompt's lines were enough to refuse


# -- histogram match ---------------------------------------------------------------------------------


def numpy_cdf_match(source, template):
    """The closed form of CDF matching in numpy: distinct source values to the template's values at
    the same cumulative share (np.unique's counts), np.interp between them."""
    values, inverse, counts = numpy.unique(source.ravel(), return_inverse=True, return_counts=True)
    ref_values, ref_counts = numpy.unique(template.ravel(), return_counts=True)
    mapped = numpy.interp(numpy.cumsum(counts) / source.size, numpy.cumsum(ref_counts) / template.size, ref_values)
    return mapped[inverse.ravel()].reshape(source.shape)


def pack_table_match(image, reference):
    """The pack's 256-level tables (histogram_matching.py @b0cfa1bf, differentiable) written out for
    one [H, W, C] image, in torch at the pack's precisions, all pixels at once: centres
    arange(256) in bfloat16 + 0.5; x = 255 v less each centre, cast to bfloat16; sigmoid(75 (x + 1/2))
    - sigmoid(75 (x - 1/2)) in bfloat16, summed over the pixels in bfloat16; in float32 over their L1
    norm, times an upper triangle of ones; level j -> #(reference levels i with cdf_j - ref_i >= 0) - 1,
    clamped to 0..255; every channel through tables[b * c] = tables[0] (b = 0), over 255."""
    def cdf(channel):
        x = (channel.reshape(1, -1) * 255)[:, None, :]  # [1, 1, H*W]
        centers = (1.0 * (torch.arange(256, dtype=torch.bfloat16) + 0.5))[None, :, None]
        x = (x - centers).type(torch.bfloat16)
        hist = (torch.sigmoid(75 * (x + 0.5)) - torch.sigmoid(75 * (x - 0.5))).sum(dim=2).float()
        hist = torch.nn.functional.normalize(hist, p=1)
        return torch.bmm(hist[:, None, :], torch.ones(1, 256, 256).triu())[0, 0]
    source, target = cdf(image[..., 0]), cdf(reference[..., 0])
    table = torch.where(source[None, :] - target[:, None] >= 0, 1.0, 0.0).sum(0).sub(1).clamp(0, 255)
    return table[(image * 255).long()] / 255


def two_pictures():
    generator = torch.Generator().manual_seed(11)
    image = torch.rand(2, 12, 10, 3, generator=generator) ** 2
    reference = (torch.rand(3, 8, 9, 3, generator=generator) * 0.5 + 0.3)
    return image, reference


@pytest.mark.parametrize("factor", [1.0, 0.35])
def test_histogram_match_skimage_equals_scikit_image_and_the_numpy_closed_form(registry, factor):
    from skimage.exposure import match_histograms
    image, reference = two_pictures()
    out = call(registry, "ImageHistogramMatch", image=image, reference=reference, method="skimage", factor=factor)
    matched = match_histograms(image.numpy(), reference.numpy(), channel_axis=3)
    want = factor * torch.from_numpy(matched) + (1 - factor) * image
    assert out.shape == image.shape and torch.allclose(out, want, atol=1e-6)
    closed = numpy.stack([numpy_cdf_match(image.numpy()[..., c], reference.numpy()[..., c]) for c in range(3)], -1)
    assert torch.allclose(out, factor * torch.from_numpy(closed).float() + (1 - factor) * image, atol=1e-6)


def test_histogram_match_pytorch_is_the_packs_table_of_the_first_channel(registry):
    image, reference = two_pictures()
    out = call(registry, "ImageHistogramMatch", image=image, reference=reference, method="pytorch", factor=0.8)
    want = torch.stack([pack_table_match(picture, reference[0]) for picture in image])
    assert torch.allclose(out, (0.8 * want + 0.2 * image).clamp(0, 1), atol=1e-6)
    assert not torch.allclose(out, image, atol=1e-2)
    # larger pictures (taken in chunks of pixels here), with most levels above 128, where the pack's
    # bfloat16 centres are 128, 130, 130, ...
    generator = torch.Generator().manual_seed(5)
    for image, reference in ((torch.rand(1, 160, 150, 3, generator=generator) ** 0.5,
                              torch.rand(1, 90, 80, 3, generator=generator) * 0.4 + 0.6),
                             (torch.rand(1, 64, 64, 3, generator=generator) * 0.5,
                              torch.rand(1, 64, 64, 3, generator=generator) ** 0.3)):
        out = call(registry, "ImageHistogramMatch", image=image, reference=reference, method="pytorch", factor=1.0)
        assert torch.equal(out[0], pack_table_match(image[0], reference[0]))
    with pytest.raises(NodeInputError) as e:
        call(registry, "ImageHistogramMatch", image=image, reference=reference[..., :1], method="pytorch")
    assert e.value.input == "reference"


# -- blocks buster ---------------------------------------------------------------------------------


def pack_factors(names, text):
    """conditioning.py's FluxBlocksBuster.patch (@ef704350) written out: each parameter key
    "diffusion_model.<name>" times the factor of every line whose pattern it matches ("## n" and
    "# n" expanded to the double / single blocks' weights), lines at 1.0 skipped."""
    factors = {}
    for name in names:
        key = "diffusion_model." + name
        for line in (x.strip() for x in text.split("\n") if x.strip()):
            block, _, value = line.partition("=")
            value = float(value) if value else 1.0
            block = block.strip()
            if block.startswith("##"):
                block = (r"double_blocks\." + block[2:].strip()
                         + r"\.(img|txt)_(mod|attn|mlp)\.(lin|qkv|proj|0|2)\.(weight|bias)")
            elif block.startswith("#"):
                block = r"single_blocks\." + block[1:].strip() + r"\.(linear[12]|modulation\.lin)\.(weight|bias)"
            if value != 1.0 and re.search(block, key):
                factors[name] = factors.get(name, 1.0) * value
    return factors


BUSTED = "## 0 = 0.5\n# 1 = 2.0\n\nfinal_layer\\.linear = 3\n# 1 = 1.5\n## 0 = 1.0\n# 0"


def test_blocks_buster_scales_each_matched_weight_as_the_pack_patches_it(registry, flow_files):
    from graphflow.memory import manager
    _, values = run(registry, {"1": loader("flux_dev.safetensors")}, ["1"])
    model = values["1"][0]
    busted, listed = call(registry, "FluxBlocksBuster", model=model, blocks=BUSTED)
    names = [name for name, _ in model.unet.named_parameters()]
    factors = pack_factors(names, BUSTED)
    assert factors["double_blocks.0.img_attn.qkv.weight"] == 0.5 and factors["single_blocks.1.linear1.bias"] == 3.0
    assert factors["final_layer.linear.weight"] == 3.0
    assert "double_blocks.0.img_attn.norm.query_norm.scale" not in factors  # not one of the block's weights
    before, after = manager().weights(model.unet, model.patches), manager().weights(busted.unet, busted.patches)
    for name in names:
        want = (before[name].float() * factors.get(name, 1.0)).to(before[name].dtype)
        assert torch.equal(after[name], want), name
    assert listed.split("\n")[0] == "diffusion_model.double_blocks.0.img_mod.lin.weight: 0.5"
    assert sum(line.startswith("diffusion_model.single_blocks.1.linear1.weight: ") for line in listed.split("\n")) == 2
    assert len(listed.split("\n")) == sum(2 if n.startswith("single_blocks.1.") and "norm" not in n else 1
                                          for n in factors)
    assert torch.equal(manager().weights(model.unet, model.patches)["final_layer.linear.weight"],
                       before["final_layer.linear.weight"])  # the input model is unchanged
    unchanged, empty = call(registry, "FluxBlocksBuster", model=model, blocks="")
    assert unchanged is model and empty == ""
    default, nothing = call(registry, "FluxBlocksBuster", model=model)  # the default text: every block at 1.0
    assert default is model and nothing == ""


def test_blocks_buster_samples_as_a_manually_patched_copy(registry, flow_files):
    from graphflow.memory import manager
    from graphflow.models.lora import patched_copy
    _, values = run(registry, {"1": loader("flux_dev.safetensors"),
                               "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a fox"}},
                               "3": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 32, "height": 32,
                                                                                     "batch_size": 1}}},
                    ["1", "2", "3"])
    model, cond, latent = values["1"][0], values["2"][0], values["3"][0]
    busted, _ = call(registry, "FluxBlocksBuster", model=model, blocks=BUSTED)
    state = manager().weights(model.unet, model.patches)
    factors = pack_factors([n for n, _ in model.unet.named_parameters()], BUSTED)
    manual = model.with_patches(())
    manual.unet = patched_copy(model.unet, {n: (state[n].float() * f).to(state[n].dtype) for n, f in factors.items()})
    args = (cond, latent, 2, "euler", "simple", 2, 3.5, 1.15, 0.5, 1.0)
    got, want, plain = (core_run(registry, m, *args) for m in (busted, manual, model))
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, plain, atol=1e-4)


def test_blocks_buster_errors_name_their_input(registry):
    for text in ("## 0 = lots", "([ = 2", "# 1 = inf"):
        with pytest.raises(NodeInputError) as e:
            call(registry, "FluxBlocksBuster", model=type("M", (), {"unet": torch.nn.Linear(1, 1), "patches": (),
                                                                   "with_patches": lambda self, p: self})(),
                 blocks=text)
        assert e.value.input == "blocks", text
    with pytest.raises(NodeInputError) as e:
        call(registry, "FluxBlocksBuster", model=object(), blocks="## 0 = 2")
    assert e.value.input == "model"
    # the first key matches at once, the next ones backtrack without end: the trial searches every key
    unet = torch.nn.Module()
    unet.img_in = torch.nn.Linear(1, 1)
    unet.double_blocks = torch.nn.ModuleList([torch.nn.ModuleDict({"img_attn": torch.nn.Linear(1, 1)})])
    with within_seconds(10), pytest.raises(NodeInputError) as e:
        call(registry, "FluxBlocksBuster", model=fake_model(unet),
             blocks=r"^diffusion_model\.img_in\.weight|([\w.]|[\w.])+! = 2")
    assert e.value.input == "blocks" and "backtracks" in str(e.value)


def test_blocks_buster_caps_its_changing_lines_and_checks_for_interruption(registry, monkeypatch):
    import nodes.pack_nodes_essentials_params as module
    import nodes.strings
    unet = torch.nn.Module()
    unet.img_in = torch.nn.Linear(1, 1)
    trials = []
    real_guarded = nodes.strings._guarded
    monkeypatch.setattr(nodes.strings, "_guarded", lambda *a, **k: trials.append(1) or real_guarded(*a, **k))
    at_one = "\n".join(f"x{i} = 1.0" for i in range(300))  # lines at 1.0 change nothing and don't count
    lines = "\n".join(f"x{i} = 2" for i in range(module.MAX_BLOCK_LINES))
    with pytest.raises(NodeInputError) as e:
        call(registry, "FluxBlocksBuster", model=fake_model(unet), blocks=at_one + "\n" + lines + "\nimg_in = 3")
    assert e.value.input == "blocks" and f"{module.MAX_BLOCK_LINES + 1} lines" in str(e.value)
    assert not trials  # refused before any regex trial
    checks = []
    monkeypatch.setattr(module, "check_interrupted", lambda: checks.append(1))
    busted, listed = call(registry, "FluxBlocksBuster", model=fake_model(unet),
                          blocks=at_one + "\nimg_in = 3\nbias = 2")
    assert listed == "diffusion_model.img_in.weight: 3.0\ndiffusion_model.img_in.bias: 3.0\n" \
                     "diffusion_model.img_in.bias: 2.0"
    assert len(trials) == 2 and len(checks) == 2 + 2  # a check per changing line and per parameter


def fake_model(unet):
    """A MODEL as FluxBlocksBuster+ reads one: its unet, its patches and with_patches."""
    class Model:
        def __init__(self, patches=()):
            self.unet, self.patches = unet, patches

        def with_patches(self, patches):
            return Model(patches)
    return Model()


def test_blocks_buster_rounds_stacked_patches_of_an_fp8_weight_seeded_by_its_key(registry):
    """ComfyUI patches a weight in float32 (every matching line in turn) and rounds it into fp8 once,
    stochastically, seeded by the CRC-32 of its key ("diffusion_model.<name>")."""
    import zlib
    from graphflow.memory import manager
    from graphflow.models.cast_layers import stochastic_round
    unet = torch.nn.Module()
    unet.final_layer = torch.nn.ModuleDict({"linear": torch.nn.Linear(64, 64)})
    unet.final_layer.linear.weight.data = unet.final_layer.linear.weight.data.to(torch.float8_e4m3fn)
    original = unet.final_layer.linear.weight.data.clone()
    busted, listed = call(registry, "FluxBlocksBuster", model=fake_model(unet),
                          blocks="final_layer\\.linear\\.weight = 1.3\nlinear\\.weight = 0.7")
    assert listed.split("\n")[:2] == ["diffusion_model.final_layer.linear.weight: 1.3",
                                       "diffusion_model.final_layer.linear.weight: 0.7"]
    got = manager().weights(unet, busted.patches)["final_layer.linear.weight"]
    scaled = original.float() * 1.3 * 0.7
    want = stochastic_round(scaled, torch.float8_e4m3fn, zlib.crc32(b"diffusion_model.final_layer.linear.weight"))
    assert got.dtype == torch.float8_e4m3fn and torch.equal(got.float(), want.float())
    assert not torch.equal(got.float(), stochastic_round(scaled, torch.float8_e4m3fn, 0).float())
    assert torch.equal(unet.final_layer.linear.weight.data.float(), original.float())  # the input unchanged


# -- workflows -------------------------------------------------------------------------------------


def test_ui_save_with_the_packs_classes_runs_and_exports_back(registry, flow_files):
    nodes = [ui_node(1, "CheckpointLoaderSimple", ["flux_dev.safetensors"],
                     outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2]), ("VAE", "VAE", [6])]),
             ui_node(2, "TextEncodeForSamplerParams+", ["a fox\n---\na cat"], [("clip", "CLIP", 2, False)],
                     [("CONDITIONING", "CONDITIONING", [3])]),
             ui_node(3, "EmptySD3LatentImage", [32, 32, 1], outputs=[("LATENT", "LATENT", [4])]),
             ui_node(4, "FluxSamplerParams+", ["9", "euler", "simple", "1", "3.5", "", "", "1.0"],
                     [("model", "MODEL", 1, False), ("conditioning", "CONDITIONING", 3, False),
                      ("latent_image", "LATENT", 4, False), ("loras", "LORA_PARAMS", None, False)],
                     [("latent", "LATENT", [5]), ("params", "SAMPLER_PARAMS", [7])]),
             ui_node(5, "VAEDecode", [], [("samples", "LATENT", 5, False), ("vae", "VAE", 6, False)],
                     [("IMAGE", "IMAGE", [8])]),
             ui_node(6, "PlotParameters+", ["none", "none", 2, "true", "true"],
                     [("images", "IMAGE", 8, False), ("params", "SAMPLER_PARAMS", 7, False)],
                     [("IMAGE", "IMAGE", [])])]
    links = [[1, 1, 0, 4, 0, "MODEL"], [2, 1, 1, 2, 0, "CLIP"], [3, 2, 0, 4, 1, "CONDITIONING"],
             [4, 3, 0, 4, 2, "LATENT"], [5, 4, 0, 5, 0, "LATENT"], [6, 1, 2, 5, 1, "VAE"],
             [7, 4, 1, 6, 1, "SAMPLER_PARAMS"], [8, 5, 0, 6, 0, "IMAGE"]]
    workflow, values = run(registry, ui_graph(nodes, links), ["4", "5", "6"])
    latent, params = values["4"]
    assert [p["prompt"] for p in params] == ["a fox", "a cat"] and latent["samples"].shape[0] == 2
    grid = values["6"][0]
    assert grid.shape[0] == 1 and grid.shape[2] == 2 * 32 and grid.shape[1] > 32  # two cells side by side
    assert torch.allclose(grid[0, :32, :32], values["5"][0][0].clamp(0, 1), atol=1e-6)
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[4] == ["9", "euler", "simple", "1", "3.5", "", "", "1.0"]
    assert saved[6] == ["none", "none", 2, "true", "true"] and saved[2] == ["a fox\n---\na cat"]
    api = export_api(workflow, registry)
    assert api["4"]["class_type"] == "FluxSamplerParams+" and api["6"]["class_type"] == "PlotParameters+"
    assert api["2"]["class_type"] == "TextEncodeForSamplerParams+"


def test_api_prompt_with_the_packs_classes_runs_and_exports_back(registry, flow_files):
    graph = sweep_graph("flux_dev.safetensors", seed="2", steps="1", denoise="1.0, 0.5")
    graph["4"]["inputs"]["loras"] = ["5", 0]
    graph["5"] = {"class_type": "LorasForFluxParams+", "inputs": {"lora_1": "flux_tiny_lora.safetensors",
                                                                  "strength_model_1": "0.5"}}
    graph["8"] = {"class_type": "FluxBlocksBuster+", "inputs": {"model": ["1", 0], "blocks": "## 0 = 1.2\n# 1 = 0.8"}}
    graph["4"]["inputs"]["model"] = ["8", 0]
    graph["6"] = {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}}
    graph["7"] = {"class_type": "PlotParameters+", "inputs": {
        "images": ["6", 0], "params": ["4", 1], "order_by": "denoise", "cols_value": "denoise", "cols_num": 0,
        "add_prompt": "false", "add_params": "changes only"}}
    workflow, values = run(registry, graph, ["4", "6", "7", "8"])
    assert [p["denoise"] for p in values["4"][1]] == [1.0, 0.5]
    grid = values["7"][0]
    assert grid.shape[2] == 64 and torch.allclose(grid[0, :32, :32], values["6"][0][1].clamp(0, 1), atol=1e-6)
    exported = export_api(workflow, registry)
    for node_id in ("4", "5", "7", "8"):
        assert exported[node_id] == graph[node_id]
    ui = export_ui(workflow, registry)
    assert next(n for n in ui["nodes"] if n["id"] == 8)["widgets_values"] == ["## 0 = 1.2\n# 1 = 0.8"]
    again = export_api(parse_workflow(ui, registry), registry)
    assert {k: again[k] for k in ("4", "5", "7", "8")} == {k: exported[k] for k in ("4", "5", "7", "8")}
    assert len(values["8"][1].split("\n")) == 20 + 6  # double block 0's 20 weights and biases, single block 1's 6


def test_histogram_match_in_an_api_prompt_and_a_ui_save(registry):
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 8, "batch_size": 2,
                                                          "color": 0x336699}},
             "2": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0xCC8844}},
             "3": {"class_type": "ImageHistogramMatch+", "inputs": {"image": ["1", 0], "reference": ["2", 0],
                                                                    "method": "skimage", "factor": 1.0,
                                                                    "device": "auto"}}}
    workflow, values = run(registry, graph, ["3"])
    want = torch.tensor([0xCC, 0x88, 0x44]) / 255  # a flat picture takes the flat reference's colour
    assert torch.allclose(values["3"][0], want.expand(2, 8, 16, 3), atol=1e-6)
    assert export_api(workflow, registry)["3"] == graph["3"]
    ui = export_ui(workflow, registry)
    assert next(n for n in ui["nodes"] if n["id"] == 3)["widgets_values"] == ["skimage", 1.0, "auto"]
    assert export_api(parse_workflow(ui, registry), registry)["3"] == graph["3"]


def test_module_docstring_no_longer_lists_the_built_classes_as_left_out():
    import nodes.pack_nodes_essentials as image_module
    import nodes.pack_nodes_essentials_misc as misc_module
    for doc in (image_module.__doc__, misc_module.__doc__):
        left_out = doc.split("Left out")[1]
        for name in ("FluxSamplerParams+", "PlotParameters+", "TextEncodeForSamplerParams+", "LorasForFluxParams+",
                     "ImageHistogramMatch+", "FluxBlocksBuster+"):
            assert name not in left_out
    from nodes.pack_nodes_essentials_params import FluxSamplerParams
    assert MAX_RUNS == 1000 and "at most 1000 runs" in FluxSamplerParams.__doc__  # the cap the help states
