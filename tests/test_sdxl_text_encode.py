"""ComfyUI's CLIPTextEncodeSDXL / CLIPTextEncodeSDXLRefiner and ConditioningSetAreaStrength:
per-tower prompts against transformers' models on the same weights, the size / crop / target /
aesthetic-score vector against diffusers' time-id embedding, and SDXL API workflows end to end."""

import pytest
import torch
from diffusers.models.embeddings import get_timestep_embedding
from test_nodes_image_mask import call
from test_text_encoders import hf_ids, max_diff, reference_clip_l, reference_open_clip

from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.tokenizer import EOS, tokenize_prompt
from graphflow.testing import write_checkpoint
from graphflow.validation import validate
from graphflow.workflow import parse_workflow

TOL = 1e-4
LONG = ", ".join(f"detail number {i}" for i in range(40))  # several 77-token windows


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("sdxl")
    return {arch: write_checkpoint(root / f"{arch}.safetensors", arch, seed=5) for arch in ("sdxl", "sdxl_refiner")}


@pytest.fixture(scope="module")
def checkpoints(files):
    return {arch: load_checkpoint(path, device="cpu", dtype=torch.float32) for arch, path in files.items()}


def time_ids(values):
    """SDXL's added time ids as diffusers' UNet embeds them: 256 channels each, cos first."""
    emb = get_timestep_embedding(torch.tensor(values, dtype=torch.float32), 256, flip_sin_to_cos=True,
                                 downscale_freq_shift=0)
    return emb.reshape(1, -1)


@torch.no_grad()
def test_each_tower_encodes_its_own_text_and_the_shorter_is_padded(builtin_registry, files, checkpoints):
    ref_l = reference_clip_l(files["sdxl"], "sdxl")
    ref_g = reference_open_clip(files["sdxl"], "clip_g", "conditioner.embedders.1.model.")
    out = call(builtin_registry, "CLIPEncodeSDXL", clip=checkpoints["sdxl"].clip, text_g="a lighthouse",
               text_l=LONG, width=896, height=1152, crop_w=16, crop_h=32, target_width=768, target_height=1344)
    (cond, options), = out
    windows_l = tokenize_prompt(LONG, EOS).ids
    n = len(windows_l)
    assert n >= 2
    l_states = ref_l(torch.tensor(windows_l), output_hidden_states=True).hidden_states[-2].reshape(1, -1, 64)
    # clip_g: "a lighthouse" then the empty prompt's window (BOS, EOS, '!'-padding), as ComfyUI pads
    g_ids = torch.cat([hf_ids("a lighthouse", 0)] + [hf_ids("", 0)] * (n - 1))
    g_out = ref_g(g_ids, output_hidden_states=True)
    g_states = g_out.hidden_states[-2].reshape(1, -1, 128)
    assert cond.shape == (1, 77 * n, 64 + 128)
    assert max_diff(cond, torch.cat([l_states, g_states], dim=-1)) <= TOL
    assert max_diff(options["pooled_output"], g_out.text_embeds[:1]) <= TOL  # from text_g's first window
    assert {k: options[k] for k in ("width", "height", "crop_w", "crop_h", "target_width", "target_height")} == {
        "width": 896, "height": 1152, "crop_w": 16, "crop_h": 32, "target_width": 768, "target_height": 1344}
    # The UNet's vector: pooled + (orig h, orig w, crop top, crop left, target h, target w) embeddings.
    y = checkpoints["sdxl"].model.encode_adm(options, 512, 512)
    expected = torch.cat([options["pooled_output"], time_ids([1152, 896, 32, 16, 1344, 768])], dim=1)
    assert y.shape == (1, 128 + 6 * 256) and max_diff(y, expected) <= 1e-5
    # A longer text_g pads text_l instead: l gets the empty window.
    cond2, _ = call(builtin_registry, "CLIPEncodeSDXL", clip=checkpoints["sdxl"].clip, text_g=LONG, text_l="x")[0]
    l_short = ref_l(torch.cat([hf_ids("x", EOS)] + [hf_ids("", EOS)] * (n - 1)), output_hidden_states=True)
    l_short = l_short.hidden_states[-2]
    assert cond2.shape == (1, 77 * n, 192) and max_diff(cond2[..., :64], l_short.reshape(1, -1, 64)) <= TOL


@torch.no_grad()
def test_same_text_in_both_is_plain_clip_text_encode(builtin_registry, checkpoints):
    clip = checkpoints["sdxl"].clip
    (cond, options), = call(builtin_registry, "CLIPEncodeSDXL", clip=clip, text_g="a (red:1.3) car", text_l="a (red:1.3) car")
    (plain, plain_options), = call(builtin_registry, "CLIPEncode", clip=clip, text="a (red:1.3) car")
    assert torch.equal(cond, plain) and torch.equal(options["pooled_output"], plain_options["pooled_output"])


def test_sdxl_encode_refuses_other_text_encoders(builtin_registry, checkpoints):
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "CLIPEncodeSDXL", clip=checkpoints["sdxl_refiner"].clip, text_g="a", text_l="b")
    assert e.value.input == "clip" and "clip_g" in str(e.value)


@torch.no_grad()
def test_refiner_aesthetic_score_and_size(builtin_registry, files, checkpoints):
    ref_g = reference_open_clip(files["sdxl_refiner"], "clip_g", "conditioner.embedders.0.model.")
    ckpt = checkpoints["sdxl_refiner"]
    (cond, options), = call(builtin_registry, "CLIPEncodeSDXLRefiner", clip=ckpt.clip, text="a lighthouse",
                            ascore=2.0, width=768, height=640)
    out = ref_g(hf_ids("a lighthouse", 0), output_hidden_states=True)
    assert max_diff(cond, out.hidden_states[-2]) <= TOL and max_diff(options["pooled_output"], out.text_embeds) <= TOL
    # refiner vector: pooled + (orig h, orig w, crop top, crop left, aesthetic score); an explicit
    # score wins over the negative side's default 2.5
    for negative in (False, True):
        y = ckpt.model.encode_adm(options, 512, 512, negative=negative)
        expected = torch.cat([options["pooled_output"], time_ids([640, 768, 0, 0, 2.0])], dim=1)
        assert y.shape == (1, 128 + 5 * 256) and max_diff(y, expected) <= 1e-5
    default = call(builtin_registry, "CLIPEncodeSDXLRefiner", clip=ckpt.clip, text="x")[0][1]
    assert (default["aesthetic_score"], default["width"], default["height"]) == (6.0, 1024, 1024)


def test_set_area_strength_keeps_the_area(builtin_registry):
    base = [(torch.ones(1, 77, 8), {"area": (8, 8, 0, 0), "strength": 1.0})]
    out = call(builtin_registry, "ConditioningSetAreaStrength", conditioning=base, strength=2.5)
    assert out[0][1] == {"area": (8, 8, 0, 0), "strength": 2.5} and base[0][1]["strength"] == 1.0
    assert out[0][0] is base[0][0]
    # Combined with another prompt, the sampler weighs the predictions by strength (cfg 1: positive only).
    from sampling_fakes import FakeModel, context_eps, prompt

    from graphflow.sampling import CFGDenoiser, ModelDenoiser, prepare_conds
    strong = call(builtin_registry, "ConditioningSetAreaStrength", conditioning=prompt(0.3), strength=3.0)
    positive = call(builtin_registry, "ConditioningCombine", conditioning_1=strong, conditioning_2=prompt(0.9))
    model, shape = FakeModel(context_eps), (1, 4, 8, 8)
    denoiser = CFGDenoiser(ModelDenoiser(model), prepare_conds(positive, model, shape, "cpu"),
                           prepare_conds(prompt(0.0), model, shape, "cpu", negative=True), 1.0)
    x, sigma = torch.randn(shape), torch.tensor([2.0])
    torch.testing.assert_close(denoiser(x, sigma), x - sigma * (0.3 * 3.0 + 0.9) / 4.0)


def sdxl_graph(positive: dict, negative: dict) -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny_xl.safetensors"}},
        "6": positive, "7": negative,
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 2, "steps": 2, "cfg": 4.0, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["5", 0]}},
    }


def sdxl_encode(text, size=64, **sizes):
    inputs = {"clip": ["4", 1], "width": size, "height": size, "crop_w": 0, "crop_h": 0,
              "target_width": size, "target_height": size, "text_g": text, "text_l": text, **sizes}
    return {"class_type": "CLIPTextEncodeSDXL", "inputs": inputs}


def run_latent(registry, graph):
    workflow = parse_workflow(graph, registry)
    assert not validate(workflow, registry, ["3"])
    result = Executor(registry).run(workflow, outputs=["3"])
    assert result.ok, result.error or result.problems
    return result.values["3"][0]["samples"]


def test_sdxl_api_workflow_end_to_end(builtin_registry, tmp_folders, files):
    target = tmp_folders.models / "checkpoints" / "tiny_xl.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(files["sdxl"].read_bytes())
    # Sizes equal to the latent's are what plain CLIPTextEncode's entries default to: the same picture.
    sized = run_latent(builtin_registry, sdxl_graph(sdxl_encode("a red circle"), sdxl_encode("")))
    plain = run_latent(builtin_registry, sdxl_graph(
        {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}}))
    assert plain.std() > 0 and torch.equal(sized, plain)
    # Other sizes reach the UNet and change the result.
    bigger = run_latent(builtin_registry, sdxl_graph(sdxl_encode("a red circle", 1024, crop_w=64), sdxl_encode("")))
    assert (bigger - sized).abs().max() > 1e-3


def test_ui_format_widgets_read_and_written_in_comfyuis_order(builtin_registry):
    from graphflow.comfy_format import export_ui, import_ui

    sdxl_values = [896, 1152, 16, 32, 768, 1344, "a lighthouse", "watercolor"]
    refiner_values = [2.5, 640, 768, "blurry"]
    ui = {"nodes": [
        {"id": 1, "type": "CLIPTextEncodeSDXL", "mode": 0, "pos": [0, 0], "size": [400, 300], "flags": {}, "order": 0,
         "inputs": [{"name": "clip", "type": "CLIP", "link": None}],
         "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": []}], "properties": {},
         "widgets_values": sdxl_values},
        {"id": 2, "type": "CLIPTextEncodeSDXLRefiner", "mode": 0, "pos": [0, 400], "size": [400, 200], "flags": {},
         "order": 1, "inputs": [{"name": "clip", "type": "CLIP", "link": None}],
         "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": []}], "properties": {},
         "widgets_values": refiner_values},
        {"id": 3, "type": "ConditioningSetAreaStrength", "mode": 0, "pos": [500, 0], "size": [300, 60], "flags": {},
         "order": 2, "inputs": [{"name": "conditioning", "type": "CONDITIONING", "link": None}],
         "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": []}], "properties": {},
         "widgets_values": [0.75]},
    ], "links": []}
    workflow = import_ui(ui, builtin_registry)
    assert workflow.nodes["1"].type == "CLIPEncodeSDXL" and workflow.nodes["1"].inputs == {
        "width": 896, "height": 1152, "crop_w": 16, "crop_h": 32, "target_width": 768, "target_height": 1344,
        "text_g": "a lighthouse", "text_l": "watercolor"}
    assert workflow.nodes["2"].inputs == {"ascore": 2.5, "width": 640, "height": 768, "text": "blurry"}
    assert workflow.nodes["3"].inputs == {"strength": 0.75}
    written = {n["id"]: n for n in export_ui(workflow, builtin_registry)["nodes"]}
    assert written[1]["type"] == "CLIPTextEncodeSDXL" and written[1]["widgets_values"] == sdxl_values
    assert written[2]["type"] == "CLIPTextEncodeSDXLRefiner" and written[2]["widgets_values"] == refiner_values
    assert written[3]["widgets_values"] == [0.75]
