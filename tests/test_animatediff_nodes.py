"""AnimateDiff-Evolved's nodes (nodes/animatediff.py) on a tiny random SD1 checkpoint and motion module:
API prompts and UI saves with the pack's class names, the beta schedules against ComfyUI's formula,
context options against graphflow's context windows, and the clear errors."""

import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from graphflow.comfy_format import export_api, export_ui
from graphflow.sampling.context_windows import ContextWindows
from graphflow.sampling.model_sampling import DiscreteSchedule
from graphflow.testing import unet_config, write_checkpoint, write_motion_lora, write_motion_module
from graphflow.workflow import parse_workflow
from graphflow.executor import Executor
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry(builtin_registry):
    return builtin_registry  # no test adds to it: the session's, not a second load


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """The models written once a module; each test gets copies in a models folder of its own."""
    root = tmp_path_factory.mktemp("animatediff_models")
    for sub in ("checkpoints", "animatediff_models", "animatediff_motion_lora"):
        (root / sub).mkdir()
    write_checkpoint(root / "checkpoints" / "tiny.safetensors", "sd1")
    write_checkpoint(root / "checkpoints" / "tiny_xl.safetensors", "sdxl")
    folder = root / "animatediff_models"
    write_motion_module(folder / "mm_v2.safetensors", unet_config("sd1"), "v2", seed=5)
    write_motion_module(folder / "mm_v1.safetensors", unet_config("sd1"), "v1", seed=6)
    write_motion_lora(root / "animatediff_motion_lora" / "v2_lora_ZoomIn.ckpt", unet_config("sd1"), "v2", seed=8)
    return root


@pytest.fixture
def models(tmp_folders, model_files):
    shutil.copytree(model_files, tmp_folders.models, dirs_exist_ok=True)
    return tmp_folders


def prompt(frames: int = 6, context: dict | None = None, schedule: str = "autoselect", mm: str = "mm_v2.safetensors",
           checkpoint: str = "tiny.safetensors"):
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "ADE_LoadAnimateDiffModel", "inputs": {"model_name": mm}},
        "3": {"class_type": "ADE_MultivalDynamic", "inputs": {"float_val": 1.2}},
        "4": {"class_type": "ADE_ApplyAnimateDiffModelSimple", "inputs": {"motion_model": ["2", 0],
                                                                          "scale_multival": ["3", 0]}},
        "5": {"class_type": "ADE_UseEvolvedSampling", "inputs": {"model": ["1", 0], "beta_schedule": schedule,
                                                                 "m_models": ["4", 0]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a cat walking"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "8": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": frames}},
        "9": {"class_type": "KSampler", "inputs": {"model": ["5", 0], "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["8", 0], "seed": 3, "steps": 2, "cfg": 5.0,
                                                   "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
    }
    if context is not None:
        graph["10"] = context
        graph["5"]["inputs"]["context_options"] = ["10", 0]
    return graph


def alphas_cumprod_comfy(kind: str, start: float = 0.00085, end: float = 0.012) -> np.ndarray:
    """ComfyUI's make_beta_schedule: 'linear' spaces sqrt(beta) evenly, 'sqrt_linear' beta itself."""
    if kind == "linear":
        betas = np.linspace(start ** 0.5, end ** 0.5, 1000, dtype=np.float64) ** 2
    else:
        betas = np.linspace(start, end, 1000, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def sigmas_of(model) -> np.ndarray:
    return DiscreteSchedule.for_model(model).sigmas.double().numpy()


@pytest.mark.parametrize("alias, kind, end", [("autoselect", "sqrt_linear", 0.012),
                                              ("sqrt_linear (AnimateDiff)", "sqrt_linear", 0.012),
                                              ("linear (HotshotXL/default)", "linear", 0.012),
                                              ("linear (AnimateDiff-SDXL)", "linear", 0.020)])
def test_api_prompt_samples_with_the_packs_beta_schedule(registry, models, alias, kind, end):
    result = run_graph(registry, prompt(schedule=alias), ["5", "9"])
    model = result.values["5"][0]
    ac = alphas_cumprod_comfy(kind, end=end)
    np.testing.assert_allclose(sigmas_of(model), ((1 - ac) / ac) ** 0.5, rtol=1e-6)
    samples = result.values["9"][0]["samples"]
    assert samples.shape == (6, 4, 8, 8) and torch.isfinite(samples).all()
    assert model.unet.temporal_layers and model.unet.motion[1].scale == pytest.approx(1.2)


def test_motion_changes_the_frames_and_use_existing_keeps_the_schedule(registry, models):
    graph = prompt(schedule="use existing")
    with_motion = run_graph(registry, graph, ["1", "5", "9"])
    plain = dict(graph, **{"9": {**graph["9"], "inputs": {**graph["9"]["inputs"], "model": ["1", 0]}}})
    without = run_graph(registry, plain, ["9"])
    base = with_motion.values["1"][0]
    np.testing.assert_array_equal(sigmas_of(with_motion.values["5"][0]), sigmas_of(base))
    moved = with_motion.values["9"][0]["samples"]
    still = without.values["9"][0]["samples"]
    assert (moved - still).abs().max() > 1e-3
    # the input MODEL is unchanged: its UNet has no temporal layers
    assert base.unet.temporal_layers is None


def test_context_options_become_context_windows(registry, models):
    static = {"class_type": "ADE_StandardStaticContextOptions",
              "inputs": {"context_length": 4, "context_overlap": 1, "fuse_method": "relative"}}
    result = run_graph(registry, prompt(frames=6, context=static), ["5", "9"])
    assert result.values["5"][0].context_windows == ContextWindows(4, 1, "standard_static", 1, False, "relative", 0, True)
    looped = {"class_type": "ADE_AnimateDiffUniformContextOptions",
              "inputs": {"context_length": 4, "context_stride": 2, "context_overlap": 2, "context_schedule": "uniform",
                         "closed_loop": True}}
    result = run_graph(registry, prompt(frames=6, context=looped), ["5", "9"])
    assert result.values["5"][0].context_windows == ContextWindows(4, 2, "looped_uniform", 2, True, "flat", 0, True)
    assert torch.isfinite(result.values["9"][0]["samples"]).all()


def test_windows_let_a_module_take_more_frames_than_its_positions(registry, models):
    """mm_v1 holds 24 positions: 25 frames without context options are refused when sampling, as the
    pack refuses them; with 16-frame windows they sample."""
    result = Executor(registry).run(parse_workflow(prompt(frames=25, mm="mm_v1.safetensors"), registry), outputs=["9"])
    assert not result.ok and "takes at most 24 frames" in str(result.error) and "got 25" in str(result.error)
    static = {"class_type": "ADE_StandardStaticContextOptions", "inputs": {"context_length": 16, "context_overlap": 4}}
    result = run_graph(registry, prompt(frames=25, mm="mm_v1.safetensors", context=static), ["9"])
    assert result.values["9"][0]["samples"].shape[0] == 25


def test_a_context_length_beyond_the_modules_positions(registry, models):
    """The pack's check: windows of 32 frames are refused for mm_v1 (24 positions), with an error about
    the context length; a video no longer than context_length runs whole, so 20 frames sample."""
    static = {"class_type": "ADE_StandardStaticContextOptions", "inputs": {"context_length": 32, "context_overlap": 4}}
    text = failure(registry, prompt(frames=40, mm="mm_v1.safetensors", context=static), "9")
    assert "with context options of context_length 32" in text and "got 32" in text, text
    assert "without context options" not in text and "context_length to at most 24" in text
    result = run_graph(registry, prompt(frames=20, mm="mm_v1.safetensors", context=static), ["9"])
    assert result.values["9"][0]["samples"].shape[0] == 20


def test_cond_and_uncond_batched_together_are_separate_videos(registry, models, monkeypatch):
    """CFG runs the prompt and the negative prompt in one UNet call of 2 x frames; each half must be its
    own video (Cond.video_frames -> the UNet's num_frames), for the temporal attention and for mm_v1's
    GroupNorms over the frames: the same as running them in separate calls."""
    import graphflow.sampling.guidance as guidance
    from graphflow.models.unet import UNet

    graph = prompt(frames=6, mm="mm_v1.safetensors")
    batches = []
    forward = UNet.forward

    def counted(self, x, *args, **kwargs):
        batches.append(x.shape[0])
        return forward(self, x, *args, **kwargs)

    monkeypatch.setattr(UNet, "forward", counted)
    batched = run_graph(registry, graph, ["9"]).values["9"][0]["samples"]
    assert set(batches) == {12}  # both sides in each call
    batches.clear()
    monkeypatch.setattr(guidance, "_can_batch", lambda a, b: a[3] is b[3])  # each side in a call of its own
    separate = run_graph(registry, graph, ["9"]).values["9"][0]["samples"]
    assert set(batches) == {6}
    torch.testing.assert_close(batched, separate, rtol=1e-4, atol=1e-4)


def failure(registry, graph, output):
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=[output])
    assert not result.ok
    return str(result.error) + str(result.problems)


def test_clear_errors(registry, models, tmp_folders):
    # an SD1.5 motion module on an SDXL model
    text = failure(registry, prompt(checkpoint="tiny_xl.safetensors"), "5")
    assert "m_models" in text and "made for SD1.5" in text
    # the same through the Gen1 loader names its model_name
    gen1 = {"1": prompt()["1"] | {"inputs": {"ckpt_name": "tiny_xl.safetensors"}},
            "2": {"class_type": "ADE_AnimateDiffLoaderGen1",
                  "inputs": {"model": ["1", 0], "model_name": "mm_v2.safetensors", "beta_schedule": "autoselect"}}}
    text = failure(registry, gen1, "2")
    assert "model_name" in text and "made for SD1.5" in text
    # files that are no motion module: a checkpoint (validation names its folder), an unknown one
    (tmp_folders.models / "animatediff_models" / "sd15.safetensors").write_bytes(
        (tmp_folders.models / "checkpoints" / "tiny.safetensors").read_bytes())
    text = failure(registry, prompt(mm="sd15.safetensors"), "2")
    assert "model_name" in text and "models/checkpoints/" in text
    save_file({"weight": torch.zeros(2)}, str(tmp_folders.models / "animatediff_models" / "odd.safetensors"))
    text = failure(registry, prompt(mm="odd.safetensors"), "2")
    assert "model_name" in text and "no AnimateDiff motion module" in text
    # a beta schedule not built here, an experimental fuse method, a masked multival
    assert "not built here" in failure(registry, prompt(schedule="cosine"), "5")
    bad_fuse = {"class_type": "ADE_StandardStaticContextOptions",
                "inputs": {"context_length": 4, "context_overlap": 1, "fuse_method": "🔬random"}}
    assert "fuse_method" in failure(registry, prompt(context=bad_fuse), "10")
    overlap = {"class_type": "ADE_StandardUniformContextOptions",
               "inputs": {"context_length": 4, "context_stride": 1, "context_overlap": 4}}
    assert "context_overlap" in failure(registry, prompt(context=overlap), "10")


def test_damaged_files_are_refused_naming_their_input(registry, models, tmp_folders):
    from graphflow.testing import motion_lora_state, motion_module_state

    folder = tmp_folders.models / "animatediff_models"
    good = motion_module_state(unet_config("sd1"), "v2", seed=5)
    proj_in = "down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight"
    pe = next(k for k in good if k.endswith("pos_encoder.pe"))
    damaged = {"only_proj_in": ({proj_in: good[proj_in]}, "without transformer_blocks"),
               "flat_proj_in": (good | {proj_in: good[proj_in][0]}, "a 2-D tensor was expected"),
               "flat_pe": (good | {pe: good[pe][0, 0]}, "a 3-D tensor was expected")}
    for name, (state, message) in damaged.items():
        save_file(state, str(folder / f"{name}.safetensors"))
        text = failure(registry, prompt(mm=f"{name}.safetensors"), "2")
        assert "'input': 'model_name'" in text and "'exception_type': 'NodeInputError'" in text, text
        assert message in text
    lora = motion_lora_state(unet_config("sd1"), "v2", seed=8)
    down = next(k for k in lora if ".down." in k)
    save_file(lora | {down: lora[down][0]}, str(tmp_folders.models / "animatediff_motion_lora" / "flat.safetensors"))
    graph = {"11": {"class_type": "ADE_AnimateDiffLoRALoader", "inputs": {"name": "flat.safetensors", "strength": 1.0}}}
    text = failure(registry, graph, "11")
    assert "'input': 'name'" in text and "'exception_type': 'NodeInputError'" in text, text
    assert "flat.safetensors" in text and "a 2-D tensor was expected" in text


def test_ui_save_with_the_packs_nodes_runs_and_round_trips(registry, models):
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2, 3]), ("VAE", "VAE", [])]),
        ui_node(2, "ADE_AnimateDiffLoaderGen1", ["mm_v2.safetensors", "autoselect"],
                [("model", "MODEL", 1, False), ("context_options", "CONTEXT_OPTIONS", 4, False)],
                [("MODEL", "MODEL", [5])]),
        ui_node(3, "ADE_StandardUniformContextOptions", [4, 1, 1, "pyramid", False, 0, 1],
                outputs=[("CONTEXT_OPTS", "CONTEXT_OPTIONS", [4])]),
        ui_node(4, "CLIPTextEncode", ["waves"], [("clip", "CLIP", 2, False)], [("CONDITIONING", "CONDITIONING", [6])]),
        ui_node(5, "CLIPTextEncode", [""], [("clip", "CLIP", 3, False)], [("CONDITIONING", "CONDITIONING", [7])]),
        ui_node(6, "EmptyLatentImage", [64, 64, 6], outputs=[("LATENT", "LATENT", [8])]),
        ui_node(7, "KSampler", [3, "fixed", 2, 5.0, "euler", "normal", 1.0],
                [("model", "MODEL", 5, False), ("positive", "CONDITIONING", 6, False),
                 ("negative", "CONDITIONING", 7, False), ("latent_image", "LATENT", 8, False)],
                [("LATENT", "LATENT", [])]),
        ui_node(8, "ADE_AnimateDiffLoaderWithContext", ["mm_v1.safetensors", "sqrt_linear (AnimateDiff)", 0.8, False],
                [("model", "MODEL", 9, False)], [("MODEL", "MODEL", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "MODEL"], [2, 1, 1, 4, 0, "CLIP"], [3, 1, 1, 5, 0, "CLIP"],
             [4, 3, 0, 2, 1, "CONTEXT_OPTIONS"], [5, 2, 0, 7, 0, "MODEL"], [6, 4, 0, 7, 1, "CONDITIONING"],
             [7, 5, 0, 7, 2, "CONDITIONING"], [8, 6, 0, 7, 3, "LATENT"], [9, 1, 0, 8, 0, "MODEL"]]
    graph = ui_graph(nodes, links)
    nodes[0]["outputs"][0]["links"] = [1, 9]
    workflow = parse_workflow(graph, registry)
    assert workflow.nodes["3"].inputs["context_stride"] == 1 and workflow.nodes["8"].inputs["motion_scale"] == 0.8
    result = run_graph(registry, graph, ["2", "7", "8"])
    model = result.values["2"][0]
    assert model.context_windows == ContextWindows(4, 1, "standard_uniform", 1, False, "pyramid", 0, True)
    assert result.values["7"][0]["samples"].shape == (6, 4, 8, 8)
    legacy = result.values["8"][0]
    assert legacy.unet.motion[1].scale == pytest.approx(0.8)
    saved = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    assert saved[2]["type"] == "ADE_AnimateDiffLoaderGen1" and saved[2]["widgets_values"] == ["mm_v2.safetensors",
                                                                                             "autoselect"]
    assert saved[3]["widgets_values"] == [4, 1, 1, "pyramid", False, 0, 1]
    assert saved[8]["widgets_values"] == ["mm_v1.safetensors", "sqrt_linear (AnimateDiff)", 0.8, False]
    api = export_api(workflow, registry)
    assert api["2"]["class_type"] == "ADE_AnimateDiffLoaderGen1" and api["2"]["inputs"]["context_options"] == ["3", 0]
    back = export_api(parse_workflow(api, registry), registry)
    assert {k: v["class_type"] for k, v in back.items()} == {k: v["class_type"] for k, v in api.items()}


def test_api_prompt_round_trips(registry, models):
    graph = prompt(context={"class_type": "ADE_LoopedUniformContextOptions",
                            "inputs": {"context_length": 4, "context_stride": 1, "context_overlap": 1,
                                       "closed_loop": False}})
    back = export_api(parse_workflow(graph, registry), registry)
    assert {k: v["class_type"] for k, v in back.items()} == {k: v["class_type"] for k, v in graph.items()}
    assert back["5"]["inputs"]["m_models"] == ["4", 0] and back["10"]["inputs"]["context_length"] == 4


def test_motion_lora_loader(registry, models):
    def with_lora(strength):
        graph = prompt(schedule="sqrt_linear (AnimateDiff)")
        graph["11"] = {"class_type": "ADE_AnimateDiffLoRALoader", "inputs": {"name": "v2_lora_ZoomIn.ckpt",
                                                                              "strength": strength}}
        graph["4"]["inputs"]["motion_lora"] = ["11", 0]
        return run_graph(registry, graph, ["9"]).values["9"][0]["samples"]

    plain = run_graph(registry, prompt(schedule="sqrt_linear (AnimateDiff)"), ["9"]).values["9"][0]["samples"]
    assert torch.equal(with_lora(0.0), plain)
    assert (with_lora(1.0) - plain).abs().max() > 1e-4


def test_motion_model_for_part_of_the_steps(registry, models):
    """ADE_ApplyAnimateDiffModel's start / end percent: the motion model runs only at the steps whose
    sigma lies within those percents' sigmas; a range holding every step equals the whole range."""
    def sample(start, end):
        graph = prompt(schedule="sqrt_linear (AnimateDiff)")
        graph["4"] = {"class_type": "ADE_ApplyAnimateDiffModel",
                      "inputs": {"motion_model": ["2", 0], "start_percent": start, "end_percent": end}}
        graph["9"]["inputs"]["steps"] = 4
        result = run_graph(registry, graph, ["5", "9"])
        return result.values["5"][0], result.values["9"][0]["samples"]

    model, whole = sample(0.0, 1.0)
    _, half = sample(0.0, 0.5)
    _, none = sample(1.0, 1.0)  # start at sigma 0: no step
    plain = prompt(schedule="sqrt_linear (AnimateDiff)")
    del plain["5"]["inputs"]["m_models"]
    plain["9"]["inputs"]["steps"] = 4
    without = run_graph(registry, plain, ["9"]).values["9"][0]["samples"]
    assert torch.equal(none, without) and not torch.equal(half, whole) and not torch.equal(half, without)
    schedule = DiscreteSchedule.for_model(model)
    settings = sample(0.25, 0.75)[0].unet.motion[1]
    assert settings.sigma_range == (schedule.percent_to_sigma(0.25), schedule.percent_to_sigma(0.75))


def test_big_batch_latent_and_its_bound(registry):
    graph = {"1": {"class_type": "ADE_EmptyLatentImageLarge", "inputs": {"width": 64, "height": 96, "batch_size": 40}}}
    samples = run_graph(registry, graph, ["1"]).values["1"][0]["samples"]
    assert torch.equal(samples, torch.zeros(40, 4, 12, 8))
    huge = {"1": {"class_type": "ADE_EmptyLatentImageLarge",
                  "inputs": {"width": 16384, "height": 16384, "batch_size": 262144}}}
    assert "needs at least" in failure(registry, huge, "1")  # refused before it runs


def test_gen2_ui_save_widgets_read_and_written_back(registry, models):
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", []), ("VAE", "VAE", [])]),
        ui_node(2, "ADE_LoadAnimateDiffModel", ["mm_v2.safetensors"],
                outputs=[("MOTION_MODEL", "MOTION_MODEL_ADE", [2])]),
        ui_node(3, "ADE_AnimateDiffLoRALoader", ["v2_lora_ZoomIn.ckpt", 0.8],
                outputs=[("MOTION_LORA", "MOTION_LORA", [3])]),
        ui_node(4, "ADE_ApplyAnimateDiffModel", [0.1, 0.9],
                [("motion_model", "MOTION_MODEL_ADE", 2, False), ("motion_lora", "MOTION_LORA", 3, False)],
                [("M_MODELS", "M_MODELS", [4])]),
        ui_node(5, "ADE_UseEvolvedSampling", ["sqrt_linear (AnimateDiff)"],
                [("model", "MODEL", 1, False), ("m_models", "M_MODELS", 4, False)], [("MODEL", "MODEL", [])]),
        ui_node(6, "ADE_BatchedContextOptions", [8, 0, 1], outputs=[("CONTEXT_OPTS", "CONTEXT_OPTIONS", [])]),
    ]
    links = [[1, 1, 0, 5, 0, "MODEL"], [2, 2, 0, 4, 0, "MOTION_MODEL_ADE"], [3, 3, 0, 4, 1, "MOTION_LORA"],
             [4, 4, 0, 5, 1, "M_MODELS"]]
    workflow = parse_workflow(ui_graph(nodes, links), registry)
    assert workflow.nodes["4"].inputs["start_percent"] == 0.1 and workflow.nodes["3"].inputs["strength"] == 0.8
    result = run_graph(registry, ui_graph(nodes, links), ["5", "6"])
    assert result.values["6"][0] == ContextWindows(8, 0, "batched", 1, False, "flat", 0, True)
    assert result.values["5"][0].unet.motion[1].sigma_range is not None
    saved = {n["id"]: n["widgets_values"] for n in export_ui(workflow, registry)["nodes"]}
    assert saved[3] == ["v2_lora_ZoomIn.ckpt", 0.8] and saved[4] == [0.1, 0.9] and saved[6] == [8, 0, 1]
    assert saved[5] == ["sqrt_linear (AnimateDiff)"]


def test_lcm_schedules_sample_the_distilled_table(registry, models):
    for alias, kind in (("lcm", "linear"), ("lcm >> sqrt_linear", "sqrt_linear")):
        model = run_graph(registry, prompt(schedule=alias), ["5"]).values["5"][0]
        schedule = DiscreteSchedule.for_model(model)
        ac = alphas_cumprod_comfy(kind)
        full = ((1 - ac) / ac) ** 0.5
        # ComfyUI's ModelSamplingDiscreteDistilled: every 20th of the 1000 sigmas (50 original timesteps)
        assert schedule.prediction == "lcm"
        np.testing.assert_allclose(schedule.sigmas.double().numpy(), full[19::20], rtol=1e-6)


def test_several_motion_models_run_in_the_order_applied(registry, models):
    from graphflow.models.animatediff import MotionSettings, attach_motion

    graph = prompt(schedule="use existing")
    graph["12"] = {"class_type": "ADE_LoadAnimateDiffModel", "inputs": {"model_name": "mm_v1.safetensors"}}
    graph["13"] = {"class_type": "ADE_ApplyAnimateDiffModel",
                   "inputs": {"motion_model": ["12", 0], "start_percent": 0.0, "end_percent": 1.0,
                              "prev_m_models": ["4", 0]}}
    graph["5"]["inputs"]["m_models"] = ["13", 0]
    result = run_graph(registry, graph, ["1", "2", "5", "12"])
    stacked = result.values["5"][0].unet
    v2, v1 = result.values["2"][0], result.values["12"][0]
    # the last applied (v1) picks the GroupNorm hack; v2 (applied first) runs first
    by_hand = attach_motion(attach_motion(result.values["1"][0].unet, v2, MotionSettings(scale=1.2),
                                          frames_group_norm=True), v1, frames_group_norm=True)
    x, t, context = torch.randn(6, 4, 8, 8), torch.full((6,), 400.0), torch.randn(6, 7, stacked.config.context_dim)
    with torch.no_grad():
        got = stacked(x, t, context, num_frames=6)
        torch.testing.assert_close(got, by_hand(x, t, context, num_frames=6), rtol=0, atol=0)
        swapped = attach_motion(attach_motion(result.values["1"][0].unet, v1, frames_group_norm=True), v2,
                                MotionSettings(scale=1.2), frames_group_norm=True)
        assert not torch.equal(got, swapped(x, t, context, num_frames=6))
    graph["14"] = {"class_type": "ADE_UseEvolvedSampling", "inputs": {"model": ["5", 0], "beta_schedule": "autoselect",
                                                                      "m_models": ["4", 0]}}
    assert "already samples with AnimateDiff" in failure(registry, graph, "14")


def test_older_saves_with_fewer_widgets_read(registry, models):
    """A 2023 save (the legacy loader with its model and schedule only, the legacy context options with
    five widgets): the missing widgets take their defaults, as the pack's editor fills them in."""
    nodes = [ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                     outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", []), ("VAE", "VAE", [])]),
             ui_node(2, "ADE_AnimateDiffLoaderWithContext", ["mm_v1.safetensors", "sqrt_linear (AnimateDiff)"],
                     [("model", "MODEL", 1, False), ("context_options", "CONTEXT_OPTIONS", 2, False)],
                     [("MODEL", "MODEL", [])]),
             ui_node(3, "ADE_AnimateDiffUniformContextOptions", [16, 1, 4, "uniform", False],
                     outputs=[("CONTEXT_OPTIONS", "CONTEXT_OPTIONS", [2])])]
    graph = ui_graph(nodes, [[1, 1, 0, 2, 0, "MODEL"], [2, 3, 0, 2, 1, "CONTEXT_OPTIONS"]])
    model = run_graph(registry, graph, ["2"]).values["2"][0]
    assert model.context_windows == ContextWindows(16, 4, "looped_uniform", 1, False, "flat", 0, True)
    assert model.unet.motion[1].scale == 1.0 and model.unet.temporal_layers


def test_unload_gives_the_model_back(registry, models):
    graph = prompt(context={"class_type": "ADE_StandardStaticContextOptions",
                            "inputs": {"context_length": 4, "context_overlap": 1}})
    graph["11"] = {"class_type": "ADE_AnimateDiffUnload", "inputs": {"model": ["5", 0]}}
    result = run_graph(registry, graph, ["1", "5", "11"])
    base, evolved, unloaded = (result.values[k][0] for k in ("1", "5", "11"))
    assert unloaded.unet is base.unet and unloaded.context_windows is None
    np.testing.assert_array_equal(sigmas_of(unloaded), sigmas_of(evolved))  # the schedule chosen stays
