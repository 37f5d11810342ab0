"""Efficiency Nodes' XY Plot (nodes/pack_nodes_efficiency_xy.py): the XY inputs' values as the
pack computes them (its generate_ints / generate_floats formulas, written out here), grid cells
equal to KSampler (Efficient) run alone with each cell's settings, the grid's layout by the pack's
formulas, the axes swapped, UI and API saves with the pack's class names and the refusals."""

import os
import shutil
import time

import numpy as np
import pytest
import torch

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.resource_limits import SERVER_LIMITS
from graphflow.testing import write_checkpoint, write_controlnet, write_esrgan, write_lora, write_vae
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


MODEL_FILES = (("checkpoints", "tiny.safetensors", lambda p: write_checkpoint(p, "sd1")),
               ("checkpoints", "other.safetensors", lambda p: write_checkpoint(p, "sd1", seed=3)),
               ("loras", "first.safetensors", lambda p: write_lora(p, "sd1", seed=1)),
               ("loras", "second.safetensors", lambda p: write_lora(p, "sd1", seed=2)),
               ("upscale_models", "x4.safetensors", lambda p: write_esrgan(p, scale=4)),
               ("controlnet", "control.safetensors", lambda p: write_controlnet(p, "sd1")),
               ("vae", "other_vae.safetensors", lambda p: write_vae(p, seed=4)))


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """The test models, written once for the module (each test gets copies)."""
    home = tmp_path_factory.mktemp("xy_models")
    for sub, name, write in MODEL_FILES:
        (home / sub).mkdir(exist_ok=True)
        write(home / sub / name)
    return home


@pytest.fixture
def models(tmp_folders, model_files):
    for sub, name, _ in MODEL_FILES:
        (tmp_folders.models / sub).mkdir(exist_ok=True)
        shutil.copy(model_files / sub / name, tmp_folders.models / sub / name)  # a copy: a test may rewrite it
    return tmp_folders


def pack_ints(count, first, last):
    """The pack's generate_ints, as its source reads."""
    if count > 1:
        values = [int(first + i * ((last - first) / (count - 1))) for i in range(count)]
    else:
        values = [first] if count == 1 else []
    return sorted(set(values))


def pack_floats(count, first, last):
    if count > 1:
        return [round(first + i * ((last - first) / (count - 1)), 3) for i in range(count)]
    return [first] if count == 1 else []


def values(axis):
    return None if axis is None else (axis.kind, list(axis.values))


def test_xy_inputs_give_the_packs_values(registry, models):
    assert values(call(registry, "XYSeedsBatch", batch_count=4)) == ("Seeds++ Batch", [0, 1, 2, 3])
    assert call(registry, "XYSeedsBatch", batch_count=0) is None
    for count, first, last in ((3, 10, 20), (4, 20, 10), (5, 1, 3), (1, 7, 9)):
        assert values(call(registry, "XYSteps", batch_count=count, first_step=first, last_step=last)) == \
            ("Steps", pack_ints(count, first, last))
    assert values(call(registry, "XYSteps", target_parameter="end_at_step", batch_count=2, first_end_step=3,
                       last_end_step=9)) == ("EndStep", [3, 9])
    assert values(call(registry, "XYCFG", batch_count=4, first_cfg=7.0, last_cfg=8.0)) == \
        ("CFG Scale", pack_floats(4, 7.0, 8.0))
    assert values(call(registry, "XYDenoise", batch_count=3)) == ("Denoise", [0.0, 0.5, 1.0])
    rows = {"sampler_1": "euler", "scheduler_1": "karras", "sampler_2": "None", "scheduler_2": "normal",
            "sampler_3": "dpm_2", "scheduler_3": "None"}
    assert values(call(registry, "XYSamplerScheduler", target_parameter="sampler", **rows)) == \
        ("Sampler", [("euler", None), ("dpm_2", None)])
    assert values(call(registry, "XYSamplerScheduler", target_parameter="scheduler", **rows)) == \
        ("Scheduler", ["karras", "normal"])
    assert values(call(registry, "XYSamplerScheduler", target_parameter="sampler & scheduler", **rows)) == \
        ("Sampler", [("euler", "karras"), ("dpm_2", None)])
    assert values(call(registry, "XYPromptSR", search_txt="cat", replace_count=2, replace_1="dog",
                       replace_2="fox")) == ("Positive Prompt S/R", [("cat", None), ("cat", "dog"), ("cat", "fox")])
    assert call(registry, "XYPromptSR", search_txt="") is None
    ckpts = {"ckpt_name_1": "tiny.safetensors", "clip_skip_1": -2, "ckpt_name_2": "None",
             "ckpt_name_3": "other.safetensors", "clip_skip_3": -3}
    assert values(call(registry, "XYCheckpoint", **ckpts)) == \
        ("Checkpoint", [("tiny.safetensors", None, None), ("other.safetensors", None, None)])
    assert values(call(registry, "XYCheckpoint", input_mode="Ckpt Names+ClipSkip+VAE", **ckpts)) == \
        ("Checkpoint", [("tiny.safetensors", -2, "Baked VAE"), ("other.safetensors", -3, "Baked VAE")])
    assert values(call(registry, "XYClipSkip", batch_count=3, first_clip_skip=-1, last_clip_skip=-3)) == \
        ("Clip Skip", pack_ints(3, -1, -3))
    stack = [("second.safetensors", 0.5, 0.25)]
    assert values(call(registry, "XYLoRA", lora_count=2, lora_name_1="first.safetensors", model_str_1=0.3,
                       lora_name_2="None", model_strength=0.7, clip_strength=0.6, lora_stack=stack)) == \
        ("LoRA", [(("first.safetensors", 0.7, 0.6), ("second.safetensors", 0.5, 0.25))])
    assert values(call(registry, "XYLoRA", input_mode="LoRA Names+Weights", lora_count=1,
                       lora_name_1="first.safetensors", model_str_1=0.3, clip_str_1=0.2)) == \
        ("LoRA", [(("first.safetensors", 0.3, 0.2),)])
    assert values(call(registry, "XYAddReturnNoise", XY_type="return_with_leftover_noise")) == \
        ("ReturnNoise", ["enable", "disable"])
    assert values(call(registry, "XYRefinerOnOff", refine_at_percent=0.6)) == ("Refiner On/Off", [0.6, 1])
    assert values(call(registry, "XYLoRAStacks", lora_stack_2=stack, lora_stack_4=[])) == \
        ("LoRA Stacks", [tuple(stack), ()])
    assert call(registry, "XYLoRAStacks", lora_stack_1=[]) is None
    steps = call(registry, "XYSteps", batch_count=2, first_step=3, last_step=4)
    assert values(call(registry, "XYJoinInputs", XY_1=steps, XY_2=steps)) == ("Steps", [3, 4, 3, 4])
    seeds = call(registry, "XYSeedsBatch", batch_count=2)
    assert values(call(registry, "XYJoinInputs", XY_1=seeds, XY_2=seeds)) == ("Seeds++ Batch", [0, 1, 2, 3])
    with pytest.raises(NodeInputError) as e:
        call(registry, "XYJoinInputs", XY_1=steps, XY_2=seeds)
    assert e.value.input == "XY_2"
    for node, inputs, name in (("XYVAE", {"input_mode": "VAE Batch"}, "input_mode"),
                               ("XYCheckpoint", {"input_mode": "Checkpoint Batch"}, "input_mode"),
                               ("XYLoRA", {"input_mode": "LoRA Batch"}, "input_mode"),
                               ("XYCheckpoint", {"target_ckpt": "Refiner"}, "target_ckpt")):
        with pytest.raises(NodeInputError) as e:
            call(registry, node, **inputs)
        assert e.value.input == name


@pytest.mark.parametrize("plot_type, text, want", [
    ("Steps", " 10; 20 ;30;", [10, 20, 30]),
    ("Steps", "0;20000", [1, 10000]),  # clamped to the bounds, as the pack
    ("CFG Scale", "7.5;150", [7.5, 100.0]),
    ("Denoise", "0.5;-1", [0.5, 0.0]),
    ("Seeds++ Batch", "3", [0, 1, 2]),
    ("Sampler", "euler;dpm_2, Karras", [("euler", None), ("dpm_2", "karras")]),
    ("Sampler", "euler;dpm_2;,normal", [("euler", "normal"), ("dpm_2", "normal")]),
    ("Scheduler", "karras;AYS SD1", ["karras", "AYS SD1"]),
    ("Checkpoint", "tiny.safetensors;other.safetensors, -2", [("tiny.safetensors", None, None),
                                                              ("other.safetensors", -2, None)]),
    ("Checkpoint", "tiny.safetensors;other.safetensors;,-3", [("tiny.safetensors", -3, None),
                                                              ("other.safetensors", -3, None)]),
    ("LoRA", "first.safetensors;second.safetensors,0.5", [(("first.safetensors", 1.0, 1.0),),
                                                          (("second.safetensors", 0.5, 1.0),)]),
    ("Positive Prompt S/R", "red cat;blue cat;green cat", [("red cat", None), ("red cat", "blue cat"),
                                                          ("red cat", "green cat")]),
    ("Clip Skip", "-1;-30", [-1, -24]),
])
def test_manual_entry_reads_the_text_by_the_packs_rules(registry, models, plot_type, text, want):
    assert values(call(registry, "XYManualEntry", plot_type=plot_type, plot_value=text)) == (plot_type, want)


@pytest.mark.parametrize("plot_type, text", [("Steps", "ten"), ("Sampler", "nope"), ("Seeds++ Batch", "2;3"),
                                             ("Seeds++ Batch", "2.5"), ("Seeds++ Batch", "80"),
                                             ("Seeds++ Batch", "0"), ("Checkpoint", "missing.safetensors"),
                                             ("Positive Prompt S/R", ";x"), ("LoRA", "first.safetensors,20"),
                                             ("Seeds++ Batch", "nan"), ("Seeds++ Batch", "inf"),
                                             ("Seeds++ Batch", "1e400"), ("CFG Scale", "nan"), ("Denoise", "nan"),
                                             ("CFG Scale", "1e400"), ("Steps", "9" * 5000)])
def test_manual_entry_refuses_what_the_pack_rejects(registry, models, plot_type, text):
    with pytest.raises(NodeInputError) as e:
        call(registry, "XYManualEntry", plot_type=plot_type, plot_value=text)
    assert e.value.input == "plot_value"


def loader(**changes):
    inputs = {"ckpt_name": "tiny.safetensors", "vae_name": "Baked VAE", "clip_skip": -1, "lora_name": "None",
              "lora_model_strength": 1.0, "lora_clip_strength": 1.0, "positive": "a red cat on a red mat",
              "negative": "blurry", "token_normalization": "none", "weight_interpretation": "comfy",
              "empty_latent_width": 64, "empty_latent_height": 64, "batch_size": 1}
    return {"class_type": "Efficient Loader", "inputs": {**inputs, **changes}}


def sampler(script=None, **changes):
    inputs = {"model": ["1", 0], "positive": ["1", 1], "negative": ["1", 2], "latent_image": ["1", 3],
              "optional_vae": ["1", 4], "seed": 5, "steps": 1, "cfg": 7.0, "sampler_name": "euler",
              "scheduler": "normal", "denoise": 1.0, "preview_method": "auto", "vae_decode": "true"}
    if script:
        inputs["script"] = script
    return {"class_type": "KSampler (Efficient)", "inputs": {**inputs, **changes}}


def xy_prompt(x, y, output="Images", flip="False", spacing=0, orientation="Horizontal", **sampler_changes):
    graph = {"1": loader(), "2": {"class_type": "XY Plot", "inputs": {
                 "grid_spacing": spacing, "XY_flip": flip, "Y_label_orientation": orientation, "cache_models": "True",
                 "ksampler_output_image": output, "dependencies": ["1", 6], "X": ["3", 0], "Y": ["4", 0]}},
             "3": x, "4": y, "5": sampler(["2", 0], **sampler_changes)}
    return graph


CFG_AXIS = {"class_type": "XY Input: CFG Scale", "inputs": {"batch_count": 2, "first_cfg": 4.0, "last_cfg": 8.0}}
SEED_AXIS = {"class_type": "XY Input: Seeds++ Batch", "inputs": {"batch_count": 2}}


def single(registry, loader_changes=None, **sampler_changes):
    """KSampler (Efficient) run alone: (latent, image)."""
    got = run_graph(registry, {"1": loader(**(loader_changes or {})), "5": sampler(**sampler_changes)}, ["5"])
    return got.values["5"][3]["samples"], got.values["5"][5]


def as_bytes(image):
    return np.clip(image.numpy() * 255.0, 0, 255).astype(np.uint8)


def test_a_2x2_grid_equals_the_single_runs(registry, models):
    """X CFG 4 / 8, Y seeds 5 / 6: the Images batch and latents row by row (Y outer), each equal to
    KSampler (Efficient) alone with that cell's seed and cfg; the plot holds each cell's 8-bit image
    where the pack's layout puts it."""
    result = run_graph(registry, xy_prompt(CFG_AXIS, SEED_AXIS), ["5"])
    _, _, _, latent, _, images = result.values["5"]
    cells = [(seed, cfg) for seed in (5, 6) for cfg in (4.0, 8.0)]
    assert images.shape[0] == latent["samples"].shape[0] == 4
    singles = [single(registry, seed=seed, cfg=cfg) for seed, cfg in cells]
    for i, (want_latent, want_image) in enumerate(singles):
        assert torch.equal(latent["samples"][i:i + 1], want_latent)
        assert torch.equal(images[i:i + 1], want_image)
    assert not torch.equal(images[0], images[1]) and not torch.equal(images[0], images[2])
    assert len(result.outputs["5"]["images"]) == 1  # the plot is shown

    spacing = 10
    plot = run_graph(registry, xy_prompt(CFG_AXIS, SEED_AXIS, output="Plot", spacing=spacing), ["5"]).values["5"][5]
    # The pack's layout: top border width // 15 (three of it above the cells); Horizontal Y labels
    # take min(w, h) + 20% of |w - h|, scaled by (longest label + 4) / 24 at most 1.
    w = h = 64
    top = w // 15
    left = int((min(w, h) + int(0.2 * abs(w - h))) * (min(len("Seed: 5") + 4, 24) / 24))
    assert plot.shape == (1, 2 * h + spacing + 3 * top, 2 * w + spacing + left, 4)
    grid = as_bytes(plot[0])
    for i, (_, want_image) in enumerate(singles):
        row, column = divmod(i, 2)
        x0, y0 = left + column * (w + spacing), 3 * top + row * (h + spacing)
        assert np.array_equal(grid[y0:y0 + h, x0:x0 + w, :3], as_bytes(want_image[0]))
        assert (grid[y0:y0 + h, x0:x0 + w, 3] == 255).all()
    # the labels are drawn: dark pixels in the header and the left border, none in the spacing
    assert (grid[:3 * top, left:, :3] < 128).any() and (grid[3 * top:, :left, :3] < 128).any()
    assert (grid[3 * top:3 * top + h, left + w:left + w + spacing] == 255).all()


def test_flip_and_a_single_axis(registry, models):
    straight = run_graph(registry, xy_prompt(CFG_AXIS, SEED_AXIS), ["5"]).values["5"][5]
    flipped = run_graph(registry, xy_prompt(CFG_AXIS, SEED_AXIS, flip="True"), ["5"]).values["5"][5]
    # flipped: seeds across, cfg down; the batch is still row by row
    assert torch.equal(flipped, straight[[0, 2, 1, 3]])
    plot = run_graph(registry, xy_prompt(CFG_AXIS, SEED_AXIS, output="Plot", flip="True",
                                         orientation="Vertical"), ["5"]).values["5"][5]
    top = 64 // 15
    assert plot.shape == (1, 2 * 64 + 3 * top, 2 * 64 + 3 * top, 4)  # Vertical: three top borders at the left
    graph = xy_prompt(CFG_AXIS, SEED_AXIS, output="Plot")
    del graph["2"]["inputs"]["Y"]
    row = run_graph(registry, graph, ["5"]).values["5"][5]
    assert row.shape == (1, 64 + 3 * top, 2 * 64, 4)  # no Y labels: no left border
    # a value given twice (Join) is a cell of its own
    graph["3"] = {"class_type": "Join XY Inputs of Same Type", "inputs": {"XY_1": ["6", 0], "XY_2": ["6", 0]}}
    graph["6"] = CFG_AXIS
    graph["2"]["inputs"]["ksampler_output_image"] = "Images"
    joined = run_graph(registry, graph, ["5"]).values["5"][5]
    assert joined.shape[0] == 4 and torch.equal(joined[:2], joined[2:]) and torch.equal(joined[:2], straight[:2])


def ui_node(id, type, widgets, inputs=(), outputs=()):
    return {"id": id, "type": type, "pos": [0, 0], "size": [300, 200], "flags": {}, "order": id, "mode": 0,
            "inputs": [{"name": n, "type": t, "link": link} for n, t, link in inputs],
            "outputs": [{"name": n, "type": t, "links": links} for n, t, links in outputs],
            "properties": {"Node name for S&R": type}, "widgets_values": widgets}


def sr_widgets(search, replacements):
    return ["positive", search, len(replacements)] + replacements + [""] * (49 - len(replacements))


def test_ui_save_with_prompt_sr_and_seeds(registry, models):
    """The editor's save: Efficient Loader -> DEPENDENCIES -> XY Plot <- Prompt S/R (X) and Seeds++
    (Y), its SCRIPT into KSampler (Efficient). Each cell equals the loader with that prompt (the first
    "red" replaced) and the sampler with that seed; exported back to both formats it reads the same."""
    loader_widgets = ["tiny.safetensors", "Baked VAE", -1, "None", 1.0, 1.0, "a red cat on a red mat", "blurry",
                      "none", "comfy", 64, 64, 1]
    nodes = [
        ui_node(1, "Efficient Loader", loader_widgets, [("lora_stack", "LORA_STACK", None),
                                                        ("cnet_stack", "CONTROL_NET_STACK", None)],
                [("MODEL", "MODEL", [1]), ("CONDITIONING+", "CONDITIONING", [2]),
                 ("CONDITIONING-", "CONDITIONING", [3]), ("LATENT", "LATENT", [4]), ("VAE", "VAE", [5]),
                 ("CLIP", "CLIP", []), ("DEPENDENCIES", "DEPENDENCIES", [6])]),
        ui_node(2, "XY Plot", [0, "False", "Horizontal", "True", "Images"],
                [("dependencies", "DEPENDENCIES", 6), ("X", "XY", 7), ("Y", "XY", 8)], [("SCRIPT", "SCRIPT", [9])]),
        ui_node(3, "XY Input: Prompt S/R", sr_widgets("red", ["blue", "green"]), [], [("X or Y", "XY", [7])]),
        ui_node(4, "XY Input: Seeds++ Batch", [2], [], [("X or Y", "XY", [8])]),
        ui_node(5, "KSampler (Efficient)", [5, None, 1, 7.0, "euler", "normal", 1.0, "auto", "true"],
                [("model", "MODEL", 1), ("positive", "CONDITIONING", 2), ("negative", "CONDITIONING", 3),
                 ("latent_image", "LATENT", 4), ("optional_vae", "VAE", 5), ("script", "SCRIPT", 9)],
                [("MODEL", "MODEL", []), ("CONDITIONING+", "CONDITIONING", []), ("CONDITIONING-", "CONDITIONING", []),
                 ("LATENT", "LATENT", []), ("VAE", "VAE", []), ("IMAGE", "IMAGE", [])]),
    ]
    links = [[1, 1, 0, 5, 0, "MODEL"], [2, 1, 1, 5, 1, "CONDITIONING"], [3, 1, 2, 5, 2, "CONDITIONING"],
             [4, 1, 3, 5, 3, "LATENT"], [5, 1, 4, 5, 4, "VAE"], [6, 1, 6, 2, 0, "DEPENDENCIES"],
             [7, 3, 0, 2, 1, "XY"], [8, 4, 0, 2, 2, "XY"], [9, 2, 0, 5, 5, "SCRIPT"]]
    nodes.append(ui_node(6, "Manual XY Entry Info", ["my notes"]))  # notes only: read, never run
    workflow = parse_workflow(ui_graph(nodes, links), registry)
    assert workflow.to_json()["nodes"]["6"]["inputs"]["notes"] == "my notes"
    result = Executor(registry).run(workflow)
    assert result.ok, (result.problems, result.error)
    images = result.values["5"][5]
    prompts = ["a red cat on a red mat", "a blue cat on a red mat", "a green cat on a red mat"]
    for i, (seed, prompt) in enumerate((s, p) for s in (5, 6) for p in prompts):
        assert torch.equal(images[i:i + 1], single(registry, {"positive": prompt}, seed=seed)[1]), (seed, prompt)
    assert not torch.equal(images[0], images[1]) and not torch.equal(images[1], images[2])  # the prompts count
    for exported in (export_ui(workflow, registry), export_api(workflow, registry)):
        assert parse_workflow(exported, registry).to_json()["nodes"] == workflow.to_json()["nodes"]
    api = export_api(workflow, registry)
    assert {n["class_type"] for n in api.values()} >= {"XY Plot", "XY Input: Prompt S/R", "XY Input: Seeds++ Batch"}


def test_lora_and_checkpoint_axes_load_as_the_loader(registry, models):
    """X LoRA (first / second at 0.8, 0.4), Y Checkpoint (tiny / other with clip skip -2): each cell
    equals the Efficient Loader loading that checkpoint with that LoRA and clip skip."""
    lora = {"class_type": "XY Input: LoRA", "inputs": {
        "input_mode": "LoRA Names", "batch_path": "/example_folder", "subdirectories": False, "batch_sort": "ascending",
        "batch_max": -1, "lora_count": 2, "model_strength": 0.8, "clip_strength": 0.4,
        "lora_name_1": "first.safetensors", "lora_name_2": "second.safetensors"}}
    ckpt = {"class_type": "XY Input: Manual XY Entry", "inputs": {
        "plot_type": "Checkpoint", "plot_value": "tiny.safetensors;other.safetensors;,-2"}}
    images = run_graph(registry, xy_prompt(lora, ckpt), ["5"]).values["5"][5]
    for i, (name, lora_name) in enumerate((c, l) for c in ("tiny.safetensors", "other.safetensors")
                                          for l in ("first.safetensors", "second.safetensors")):
        want = single(registry, {"ckpt_name": name, "clip_skip": -2, "lora_name": lora_name,
                                 "lora_model_strength": 0.8, "lora_clip_strength": 0.4})[1]
        assert torch.equal(images[i:i + 1], want), (name, lora_name)
    assert len({images[i].numpy().tobytes() for i in range(4)}) == 4


def test_labels_as_the_pack_writes_them():
    from nodes.pack_nodes_efficiency_xy import XYAxis, _labels

    cell = {"seed": 5, "scheduler": "normal", "sampler_name": "euler"}
    assert _labels(XYAxis("Seeds++ Batch", (0, 1)), cell) == ["Seed: 5", "Seed: 6"]
    assert _labels(XYAxis("CFG Scale", (7.123, 8.0)), cell) == ["CFG: 7.12", "CFG: 8.0"]
    assert _labels(XYAxis("Sampler", (("euler_ancestral", None), ("dpm_2", "exponential"))), cell) == \
        ["euler_a (normal)", "dpm_2 (exp)"]
    assert _labels(XYAxis("Scheduler", (("karras", None),)), cell) == ["euler (karras)"]
    assert _labels(XYAxis("Negative Prompt S/R", (("x", None), ("x", "y"))), cell) == ["(-) x", "(-) y"]
    assert _labels(XYAxis("LoRA", ((("dir/first.safetensors", 0.5, 0.5),), (("b.pt", 1.0, 0.25),))), cell) == \
        ["LoRA: first(0.5)", "LoRA: b(1,0.25)"]
    long = "c" * 60 + ".safetensors"
    assert _labels(XYAxis("Checkpoint", ((long, None, None), ("short.ckpt", None, None))), cell) == \
        ["c" * 42 + "...", "short"]


def test_refusals(registry, models):
    def refused(graph, node="5"):
        result = Executor(registry).run(parse_workflow(graph, registry), outputs=["5"])
        assert not result.ok
        return result.error

    steps = {"class_type": "XY Input: Steps", "inputs": {"target_parameter": "steps", "batch_count": 50,
                                                         "first_step": 1, "last_step": 50}}
    join = {"class_type": "Join XY Inputs of Same Type", "inputs": {"XY_1": ["6", 0], "XY_2": ["6", 0]}}
    graph = xy_prompt(join, SEED_AXIS)
    graph["6"] = steps
    error = refused(graph)
    assert "X" in str(error) and "100 values" in str(error) and "at most 50" in str(error)
    # a 50x50 grid of 2048x2048 cells: refused before anything is sampled
    big = xy_prompt({**steps}, {"class_type": "XY Input: Seeds++ Batch", "inputs": {"batch_count": 50}})
    big["1"]["inputs"].update(empty_latent_width=2048, empty_latent_height=2048)
    assert "XY Plot's 50x50 grid" in str(refused(big))
    # a server's batch limit (64) holds the cells: 9 x 8 = 72 are refused there before anything is sampled
    many = xy_prompt({"class_type": "XY Input: Seeds++ Batch", "inputs": {"batch_count": 9}},
                     {"class_type": "XY Input: CFG Scale", "inputs": {"batch_count": 8, "first_cfg": 1.0,
                                                                      "last_cfg": 8.0}})
    result = Executor(registry, limits=SERVER_LIMITS).run(parse_workflow(many, registry), outputs=["5"])
    assert not result.ok and "72 images" in str(result.error) and "5" not in result.executed
    noise = {"class_type": "XY Input: Add/Return Noise", "inputs": {"XY_type": "add_noise"}}
    assert "AddNoise" in str(refused(xy_prompt(noise, SEED_AXIS)))
    assert "must be different" in str(refused(xy_prompt(SEED_AXIS, SEED_AXIS)))
    no_vae = xy_prompt(CFG_AXIS, SEED_AXIS)
    del no_vae["5"]["inputs"]["optional_vae"]
    assert "connect a VAE" in str(refused(no_vae))
    no_deps = xy_prompt({"class_type": "XY Input: Clip Skip", "inputs": {"target_ckpt": "Base", "batch_count": 2,
                                                                        "first_clip_skip": -1,
                                                                        "last_clip_skip": -2}}, SEED_AXIS)
    del no_deps["2"]["inputs"]["dependencies"]
    assert "DEPENDENCIES" in str(refused(no_deps))


def hires_fix(script=None, **settings):
    inputs = {"upscale_type": "latent", "hires_ckpt_name": "(use same)", "latent_upscaler": "bilinear",
              "pixel_upscaler": "x4.safetensors", "upscale_by": 1.5, "use_same_seed": True, "seed": 11,
              "hires_steps": 2, "denoise": 0.5, "iterations": 1, "use_controlnet": False,
              "control_net_name": "control.safetensors", "strength": 1.0, "preprocessor": "none",
              "preprocessor_imgs": False}
    return {"class_type": "HighRes-Fix Script", "inputs": {**inputs, **settings,
                                                             **({"script": script} if script else {})}}


def test_a_highres_fix_script_chained_after_the_plot_runs_in_every_cell(registry, models):
    """XY Plot -> HighRes-Fix Script -> sampler: each cell is the sampler with the hires pass at
    that cell's seed (96x96 from 64x64 latents), as the pack applies its scripts per run."""
    graph = xy_prompt(SEED_AXIS, CFG_AXIS)
    graph["6"] = hires_fix(["2", 0])
    graph["5"]["inputs"]["script"] = ["6", 0]
    _, _, _, latent, _, images = run_graph(registry, graph, ["5"]).values["5"]
    assert images.shape == (4, 96, 96, 3) and latent["samples"].shape == (4, 4, 12, 12)
    for i, (cfg, seed) in enumerate((c, s) for c in (4.0, 8.0) for s in (5, 6)):
        alone = run_graph(registry, {"1": loader(), "6": hires_fix(), "5": sampler(["6", 0], seed=seed, cfg=cfg)},
                          ["5"]).values["5"]
        assert torch.equal(images[i:i + 1], alone[5]) and torch.equal(latent["samples"][i:i + 1], alone[3]["samples"])


def adv_sampler(script, **changes):
    inputs = {"model": ["1", 0], "positive": ["1", 1], "negative": ["1", 2], "latent_image": ["1", 3],
              "optional_vae": ["1", 4], "add_noise": "enable", "noise_seed": 5, "steps": 3, "cfg": 7.0,
              "sampler_name": "euler", "scheduler": "normal", "start_at_step": 0, "end_at_step": 10000,
              "return_with_leftover_noise": "disable", "preview_method": "none", "vae_decode": "true"}
    if script:
        inputs["script"] = script
    return {"class_type": "KSampler Adv. (Efficient)", "inputs": {**inputs, **changes}}


def test_adv_sampler_axes_and_sampler_by_scheduler(registry, models):
    """KSampler Adv. (Efficient) with X EndStep 1 / 3 and Y add_noise enable / disable; then
    KSampler (Efficient) with X samplers and Y schedulers: each cell its own pair."""
    end = {"class_type": "XY Input: Steps", "inputs": {"target_parameter": "end_at_step", "batch_count": 2,
                                                       "first_end_step": 1, "last_end_step": 3}}
    noise = {"class_type": "XY Input: Add/Return Noise", "inputs": {"XY_type": "add_noise"}}
    graph = xy_prompt(end, noise)
    graph["5"] = adv_sampler(["2", 0])
    images = run_graph(registry, graph, ["5"]).values["5"][5]
    for i, (add, stop) in enumerate((a, e) for a in ("enable", "disable") for e in (1, 3)):
        alone = run_graph(registry, {"1": loader(), "5": adv_sampler(None, add_noise=add, end_at_step=stop)}, ["5"])
        assert torch.equal(images[i:i + 1], alone.values["5"][5]), (add, stop)
    samplers = {"class_type": "XY Input: Sampler/Scheduler", "inputs": {
        "target_parameter": "sampler & scheduler", "input_count": 2, "sampler_1": "euler", "scheduler_1": "karras",
        "sampler_2": "heun", "scheduler_2": "None"}}
    schedulers = {"class_type": "XY Input: Sampler/Scheduler", "inputs": {
        "target_parameter": "scheduler", "input_count": 2, "scheduler_1": "simple", "scheduler_2": "exponential"}}
    images = run_graph(registry, xy_prompt(samplers, schedulers), ["5"]).values["5"][5]
    for i, (scheduler, name) in enumerate((s, n) for s in ("simple", "exponential") for n in ("euler", "heun")):
        want = single(registry, sampler_name=name, scheduler=scheduler)[1]
        assert torch.equal(images[i:i + 1], want), (name, scheduler)  # the Scheduler axis wins over karras


def test_no_axis_gives_no_script(registry, models):
    """Both X and Y unconnected: the pack's XY Plot gives None and the sampler runs once, as here."""
    graph = xy_prompt(CFG_AXIS, SEED_AXIS)
    del graph["2"]["inputs"]["X"], graph["2"]["inputs"]["Y"], graph["3"], graph["4"]
    got = run_graph(registry, graph, ["2", "5"])
    assert got.values["2"][0] is None
    assert torch.equal(got.values["5"][5], single(registry)[1])


def test_vae_axis_decodes_with_each_vae(registry, models):
    vaes = {"class_type": "XY Input: VAE", "inputs": {
        "input_mode": "VAE Names", "batch_path": "/example_folder", "subdirectories": False, "batch_sort": "ascending",
        "batch_max": -1, "vae_count": 2, "vae_name_1": "Baked VAE", "vae_name_2": "other_vae.safetensors"}}
    images = run_graph(registry, xy_prompt(vaes, SEED_AXIS), ["5"]).values["5"][5]
    for i, (seed, vae) in enumerate((s, v) for s in (5, 6) for v in ("Baked VAE", "other_vae.safetensors")):
        assert torch.equal(images[i:i + 1], single(registry, {"vae_name": vae}, seed=seed)[1]), (seed, vae)
    assert not torch.equal(images[0], images[1])


def test_sdxl_sampler_refiner_on_off(registry, tmp_folders):
    """KSampler SDXL (Eff.) with X Refiner On/Off (0.5 of the steps, then off) and Y seeds: each cell
    the sampler alone at refine_at_step int(0.5 x 4) = 2 or 4 (no refiner pass)."""
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "base.safetensors", "sdxl")
    write_checkpoint(tmp_folders.models / "checkpoints" / "refiner.safetensors", "sdxl_refiner", seed=3)
    sdxl_loader = {"class_type": "Eff. Loader SDXL", "inputs": {
        "base_ckpt_name": "base.safetensors", "base_clip_skip": -2, "refiner_ckpt_name": "refiner.safetensors",
        "refiner_clip_skip": -1, "positive_ascore": 6.0, "negative_ascore": 2.0, "vae_name": "Baked VAE",
        "positive": "a cat", "negative": "blurry", "token_normalization": "none", "weight_interpretation": "comfy",
        "empty_latent_width": 64, "empty_latent_height": 64, "batch_size": 1}}

    def sdxl(script=None, **changes):
        inputs = {"sdxl_tuple": ["1", 0], "latent_image": ["1", 1], "optional_vae": ["1", 2], "noise_seed": 7,
                  "steps": 4, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "start_at_step": 0,
                  "refine_at_step": -1, "preview_method": "none", "vae_decode": "true", **changes}
        return {"class_type": "KSampler SDXL (Eff.)", "inputs": {**inputs, **({"script": script} if script else {})}}

    graph = {"1": sdxl_loader, "2": {"class_type": "XY Plot", "inputs": {
                 "grid_spacing": 0, "XY_flip": "False", "Y_label_orientation": "Horizontal", "cache_models": "True",
                 "ksampler_output_image": "Images", "X": ["3", 0], "Y": ["4", 0]}},
             "3": {"class_type": "XY Input: Refiner On/Off", "inputs": {"refine_at_percent": 0.5}},
             "4": SEED_AXIS, "5": sdxl(["2", 0])}
    images = run_graph(registry, graph, ["5"]).values["5"][3]
    for i, (seed, refine) in enumerate((s, r) for s in (7, 8) for r in (2, 4)):
        alone = run_graph(registry, {"1": sdxl_loader, "5": sdxl(noise_seed=seed, refine_at_step=refine)}, ["5"])
        assert torch.equal(images[i:i + 1], alone.values["5"][3]), (seed, refine)
    graph["3"] = {"class_type": "XY Input: Clip Skip", "inputs": {"target_ckpt": "Base", "batch_count": 2,
                                                                 "first_clip_skip": -1, "last_clip_skip": -2}}
    graph["2"]["inputs"]["dependencies"] = ["1", 3]
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["5"])
    assert not result.ok and "Clip Skip" in str(result.error)  # left out: SDXL re-encoding


def test_control_net_axis_equals_the_loader_with_that_stack(registry, models):
    """X ControlNet strength 0 / 1.5 (start 0, end 0.9), Y seeds: each cell is the Efficient Loader
    with a Control Net Stacker of that strength; Control Net Plot gives both axes' values."""
    graph = xy_prompt({"class_type": "XY Input: Control Net", "inputs": {
        "control_net": ["7", 0], "image": ["8", 0], "target_parameter": "strength", "batch_count": 2,
        "first_strength": 0.0, "last_strength": 1.5, "first_start_percent": 0.0, "last_start_percent": 1.0,
        "first_end_percent": 0.0, "last_end_percent": 1.0, "strength": 1.0, "start_percent": 0.0,
        "end_percent": 0.9}}, SEED_AXIS)
    graph["7"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "control.safetensors"}}
    graph["8"] = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                         "color": 0x8040C0}}
    images = run_graph(registry, graph, ["5"]).values["5"][5]
    for i, (seed, strength) in enumerate((s, c) for s in (5, 6) for c in (0.0, 1.5)):
        alone = {"1": {**loader(), "inputs": {**loader()["inputs"], "cnet_stack": ["9", 0]}},
                 "5": sampler(seed=seed), "7": graph["7"], "8": graph["8"],
                 "9": {"class_type": "Control Net Stacker", "inputs": {
                     "control_net": ["7", 0], "image": ["8", 0], "strength": strength, "start_percent": 0.0,
                     "end_percent": 0.9}}}
        assert torch.equal(images[i:i + 1], run_graph(registry, alone, ["5"]).values["5"][5]), (seed, strength)
    assert not torch.equal(images[0], images[1])
    model = call(registry, "LoadControlNet", control_net_name="control.safetensors")
    image = torch.zeros(1, 8, 8, 3)
    x, y = call(registry, "XYControlNetPlot", control_net=model, image=image, plot_type="X: Start%, Y: Strength",
                X_batch_count=3, X_first_value=0.5, X_last_value=1.5, Y_batch_count=2, Y_first_value=0.0,
                Y_last_value=2.0, strength=0.7, end_percent=0.8)
    assert x.kind == "ControlNetStart%" and [v[0][3] for v in x.values] == [0.5, 0.75, 1]  # start held to 1
    assert y.kind == "ControlNetStrength" and [v[0][2:] for v in y.values] == [(0.0, 0.0, 0.8), (2.0, 0.0, 0.8)]


def test_lora_plot_model_by_clip_strength(registry, models):
    """LoRA Plot "X: Model Strength, Y: Clip Strength": each cell is the Efficient Loader with that
    LoRA at that model and clip strength (the loader's own LoRA replaced); labels as the pack."""
    from nodes.pack_nodes_efficiency_xy import _labels

    graph = xy_prompt({"class_type": "XY Input: LoRA Plot", "inputs": {
        "input_mode": "X: Model Strength, Y: Clip Strength", "lora_name": "first.safetensors", "model_strength": 1.0,
        "clip_strength": 1.0, "X_batch_count": 2, "X_batch_path": "/example_folder", "X_subdirectories": False,
        "X_batch_sort": "ascending", "X_first_value": 0.25, "X_last_value": 1.5, "Y_batch_count": 2,
        "Y_first_value": 0.0, "Y_last_value": 2.0}}, None)
    graph["2"]["inputs"]["Y"] = ["3", 1]
    del graph["4"]
    graph["1"]["inputs"].update(lora_name="second.safetensors")  # replaced by the plot's LoRA
    images = run_graph(registry, graph, ["5"]).values["5"][5]
    for i, (clip, model) in enumerate((c, m) for c in (0.0, 2.0) for m in (0.25, 1.5)):
        want = single(registry, {"lora_name": "first.safetensors", "lora_model_strength": model,
                                 "lora_clip_strength": clip})[1]
        assert torch.equal(images[i:i + 1], want), (model, clip)
    x, y = call(registry, "XYLoRAPlot", input_mode="X: Model Strength, Y: Clip Strength",
                lora_name="first.safetensors", X_batch_count=2, X_first_value=0.25, X_last_value=1.5)
    assert _labels(x, {}) == ["LoRA Mstr: 0.25", "LoRA Mstr: 1.5"] and _labels(y, {})[1] == "LoRA Cstr: 0.5"
    with pytest.raises(NodeInputError) as e:
        call(registry, "XYLoRAPlot", lora_name="first.safetensors")  # X: LoRA Batch
    assert e.value.input == "input_mode"
    del graph["2"]["inputs"]["Y"]
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["5"])
    assert not result.ok and "both of LoRA Plot's outputs" in str(result.error)


def rewrite(path, write):
    """A model file written again under its name, with another modification time."""
    stamp = path.stat().st_mtime_ns
    write(path)
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))


CKPT_AXIS = {"class_type": "XY Input: Checkpoint", "inputs": {
    "target_ckpt": "Base", "input_mode": "Ckpt Names", "batch_path": "/example_folder", "subdirectories": False,
    "batch_sort": "ascending", "batch_max": -1, "ckpt_count": 2, "ckpt_name_1": "tiny.safetensors",
    "ckpt_name_2": "other.safetensors"}}
MANUAL_CKPT_AXIS = {"class_type": "XY Input: Manual XY Entry", "inputs": {
    "plot_type": "Checkpoint", "plot_value": "tiny.safetensors;other.safetensors"}}


@pytest.mark.parametrize("axis", [CKPT_AXIS, MANUAL_CKPT_AXIS], ids=["Checkpoint", "Manual XY Entry"])
def test_an_axis_file_rewritten_under_its_name_runs_the_plot_again(registry, models, axis):
    """The XY inputs naming model files fingerprint them (as the Efficient Loader does): a
    checkpoint rewritten under the same name makes the sampler run again, with the new weights."""
    graph = xy_prompt(axis, None)
    del graph["2"]["inputs"]["Y"], graph["4"]
    executor = Executor(registry)
    first = executor.run(parse_workflow(graph, registry), outputs=["5"])
    assert first.ok, first.error
    assert "5" not in executor.run(parse_workflow(graph, registry), outputs=["5"]).executed  # cached
    rewrite(models.models / "checkpoints" / "other.safetensors", lambda p: write_checkpoint(p, "sd1", seed=9))
    again = executor.run(parse_workflow(graph, registry), outputs=["5"])
    assert again.ok and {"3", "5"} <= set(again.executed)
    assert torch.equal(again.values["5"][5][0], first.values["5"][5][0])  # tiny.safetensors: unchanged
    assert not torch.equal(again.values["5"][5][1], first.values["5"][5][1])


@pytest.mark.parametrize("node, widgets, folder, name", [
    ("XYCheckpoint", {"ckpt_count": 1, "ckpt_name_1": "other.safetensors"}, "checkpoints", "other.safetensors"),
    ("XYCheckpoint", {"input_mode": "Ckpt Names+ClipSkip+VAE", "ckpt_count": 1, "ckpt_name_1": "tiny.safetensors",
                      "vae_name_1": "other_vae.safetensors"}, "vae", "other_vae.safetensors"),
    ("XYVAE", {"vae_count": 2, "vae_name_1": "Baked VAE", "vae_name_2": "other_vae.safetensors"}, "vae",
     "other_vae.safetensors"),
    ("XYLoRA", {"lora_count": 1, "lora_name_1": "second.safetensors"}, "loras", "second.safetensors"),
    ("XYLoRAPlot", {"lora_name": "second.safetensors"}, "loras", "second.safetensors"),
    ("XYManualEntry", {"plot_type": "Checkpoint", "plot_value": "tiny.safetensors;other.safetensors, -2"},
     "checkpoints", "other.safetensors"),
    ("XYManualEntry", {"plot_type": "LoRA", "plot_value": "first.safetensors;second.safetensors,0.5"}, "loras",
     "second.safetensors"),
    ("XYManualEntry", {"plot_type": "VAE", "plot_value": "other_vae.safetensors"}, "vae", "other_vae.safetensors"),
    ("LoRAStacker", {"lora_count": 2, "lora_name_2": "second.safetensors"}, "loras", "second.safetensors"),
])
def test_fingerprints_follow_the_named_files(registry, models, node, widgets, folder, name):
    """Each node's fingerprint (with its widgets, as the executor calls it) changes when a file in
    use is rewritten, and gives a marker, not an error, once it is gone (run() reports it)."""
    cls = registry.get(node)
    before = cls.fingerprint(**widgets)
    path = models.models / folder / name
    rewrite(path, lambda p: p.write_bytes(p.read_bytes() + b" "))
    after = cls.fingerprint(**widgets)
    assert after != before
    path.unlink()
    assert cls.fingerprint(**widgets) not in (before, after)


def test_manual_entry_fingerprint_takes_any_linked_value(registry):
    """A linked plot_type may be anything (a list, say): the fingerprint gives no state rather than
    failing the run; run() judges the value."""
    cls = registry.get("XYManualEntry")
    assert cls.fingerprint(plot_type=["Checkpoint"], plot_value="a.safetensors") is None
    assert cls.fingerprint(plot_type="Checkpoint", plot_value=None) is None


def test_prompt_sr_on_both_axes_applies_x_then_y(registry, models):
    """Prompt S/R on X ("red" -> "cat") and on Y ("cat" -> "dog"): a cell applies X's replacement,
    then Y's, as the pack does: "a red cat on a red mat" -> "a cat cat ..." -> "a dog cat ..."."""
    def sr(search, replacement):
        return {"class_type": "XY Input: Prompt S/R", "inputs": {
            "target_prompt": "positive", "search_txt": search, "replace_count": 1, "replace_1": replacement}}

    images = run_graph(registry, xy_prompt(sr("red", "cat"), sr("cat", "dog"), steps=1), ["5"]).values["5"][5]
    for i, prompt in enumerate(("a red cat on a red mat", "a cat cat on a red mat", "a red dog on a red mat",
                                "a dog cat on a red mat")):
        assert torch.equal(images[i:i + 1], single(registry, {"positive": prompt}, steps=1)[1]), prompt


def test_the_grid_estimate_is_the_drawn_size(registry):
    """grid_layout, which the checks use, gives draw_grid's size, tall and wide cells, both
    orientations, labels or none."""
    from nodes.pack_nodes_efficiency_xy import draw_grid, grid_layout

    for height, width, columns, rows, orientation in ((256, 16, 1, 3, "Horizontal"), (16, 200, 2, 2, "Vertical"),
                                                      (40, 40, 3, 1, "Horizontal")):
        for x_labels, y_labels in ((["CFG: 7.0"] * columns, [f"Seed: {i}" for i in range(rows)]), (None, None),
                                   (None, ["x" * 300] * rows)):
            grid = draw_grid([torch.zeros(height, width, 3)] * (columns * rows), columns, rows, x_labels, y_labels, 5,
                             orientation)
            assert grid.shape[1:3] == grid_layout(columns, rows, height, width, 5, orientation, x_labels,
                                                  y_labels)[1::-1]


def test_the_grid_limit_counts_the_hires_scale(registry, models):
    """A HighRes-Fix Script chained after the plot makes 96x96 cells from 64x64 latents: the plot
    (draw_grid's size for those) is refused before any cell runs where it passes max_pixels, and
    the cells hold the size the estimate took."""
    from graphflow.resource_limits import RunLimits
    from nodes.efficiency_nodes import Script, hires_image_size
    from nodes.pack_nodes_efficiency_xy import grid_layout

    graph = xy_prompt(SEED_AXIS, CFG_AXIS, output="Plot")
    graph["6"] = hires_fix(["2", 0])
    graph["5"]["inputs"]["script"] = ["6", 0]
    real = grid_layout(2, 2, 96, 96, 0, "Horizontal", ["Seed: 5", "Seed: 6"], ["CFG: 4.0", "CFG: 8.0"])[:2]
    result = Executor(registry, limits=RunLimits(max_pixels=real[0] * real[1] - 1)).run(
        parse_workflow(graph, registry), outputs=["5"])
    assert not result.ok and f"{real[0]}x{real[1]}" in str(result.error) and "5" not in result.executed
    hires = call(registry, "HighResFixScript", **hires_fix()["inputs"])
    assert hires_image_size(hires, 8, 8) == (96, 96)
    pixel = call(registry, "HighResFixScript", **{**hires_fix()["inputs"], "upscale_type": "pixel",
                                                  "upscale_by": 2.0})
    assert hires_image_size(pixel, 8, 8) == (round(64 * 4 * 2.0 / 4),) * 2 and hires_image_size(Script(), 8, 8) == \
        (64, 64)
    both = call(registry, "HighResFixScript", **{**hires_fix()["inputs"], "upscale_type": "both", "upscale_by": 1.3})
    assert hires_image_size(both, 8, 8) == (round(64 * 4 * 1.3 / 4) // 8 * 8,) * 2  # decoded again: 80, not 83


def test_the_memory_counted_is_what_the_grid_holds(registry, models, monkeypatch):
    """The memory check counts the cells' float32 images and then the larger of the grid drawn
    (8-bit RGBA + float32 RGBA) and, for "Images", the cells' batch."""
    import nodes.pack_nodes_efficiency_xy as xy
    from nodes.pack_nodes_efficiency_xy import grid_layout

    counted = []
    monkeypatch.setattr(xy, "check_run_memory", lambda name, what, sampled=None, images=None: counted.append(images))
    for output in ("Plot", "Images"):
        counted.clear()
        run_graph(registry, xy_prompt(CFG_AXIS, SEED_AXIS, output=output, steps=1), ["5"])
        w, h = grid_layout(2, 2, 64, 64, 0, "Horizontal", ["CFG: 4.0", "CFG: 8.0"], ["Seed: 5", "Seed: 6"])[:2]
        cells = 4 * 64 * 64 * 3 * 4
        want = cells + max(w * h * (4 + 4 * 4), cells if output == "Images" else 0)
        assert len(counted) == 2  # before the first cell, and with the cells made
        for size in counted:
            got = size.batch * size.height * size.width * 3 * 4
            assert want <= got < want + size.height * size.width * 3 * 4


def test_a_long_label_is_cut_before_it_is_measured():
    from nodes.pack_nodes_efficiency_xy import LABEL_MAX, draw_grid

    cells = [torch.zeros(64, 64, 3)] * 2
    start = time.monotonic()
    long = draw_grid(cells, 2, 1, ["cat", "x" * 1_000_000], None, 0, "Horizontal")
    tall = draw_grid(cells, 1, 2, None, ["cat", "x" * 1_000_000], 0, "Horizontal")
    assert time.monotonic() - start < 5  # uncut: about 20 s a header
    assert torch.equal(long, draw_grid(cells, 2, 1, ["cat", "x" * LABEL_MAX], None, 0, "Horizontal"))
    assert torch.equal(tall, draw_grid(cells, 1, 2, None, ["cat", "x" * LABEL_MAX], 0, "Horizontal"))


def test_seeds_past_the_largest_seed_are_refused_before_a_cell_runs(registry, models):
    result = Executor(registry).run(parse_workflow(xy_prompt(SEED_AXIS, CFG_AXIS, seed=2**64 - 1), registry),
                                    outputs=["5"])
    assert not result.ok and result.error["input"] == "seed" and "largest seed" in result.error["message"]
    ok = Executor(registry).run(parse_workflow(xy_prompt(SEED_AXIS, CFG_AXIS, seed=2**64 - 2, steps=1), registry),
                                outputs=["5"])
    assert ok.ok, ok.error
