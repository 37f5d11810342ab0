"""LoraSave: a LoRA extracted from a model difference (ComfyUI's node of that name) and read back
by our LoRA loader. References are computed here independently: the fine-tune's own weights, and
torch.linalg.svd / torch.quantile on the difference of the files' tensors."""

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parent))
from test_nodes_image_mask import call  # noqa: E402

from graphflow.context import NodeInputError  # noqa: E402
from graphflow.executor import Executor  # noqa: E402
from graphflow.memory import manager  # noqa: E402
from graphflow.models.checkpoint import load_checkpoint  # noqa: E402
from graphflow.models.file_kind import identify  # noqa: E402
from graphflow.models.lora import LoraError, apply_lora  # noqa: E402
from graphflow.models.lora_extract import extract_lora, save_lora  # noqa: E402
from graphflow.testing import write_checkpoint, write_flow_checkpoint  # noqa: E402
from graphflow.workflow import parse_workflow  # noqa: E402
from tests.test_flow_models import flux_any_width  # noqa: E402,F401

PREFIX = "loras/ComfyUI_extracted_lora"  # ComfyUI's default, as its graphs carry it


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """arch -> (base, fine-tune, their files), loaded in float32."""
    folder = tmp_path_factory.mktemp("lora_save")
    made = {}
    for arch in ("sd1", "sdxl"):
        files = [write_checkpoint(folder / f"{arch}_{seed}.safetensors", arch, seed=seed) for seed in (0, 5)]
        made[arch] = tuple(load_checkpoint(p, device="cpu", dtype=torch.float32) for p in files) + (files,)
    return made


def differences(registry, base, tuned):
    model = call(registry, "ModelMergeSubtract", model1=tuned.model, model2=base.model, multiplier=1.0)
    clip = call(registry, "CLIPMergeSubtract", clip1=tuned.clip, clip2=base.clip, multiplier=1.0)
    return model, clip


def patched(module, patches):
    return {k: v for k, v in manager().weights(module, patches).items() if v.is_floating_point()}


def assert_matches(got: dict, want: dict, keys=None):
    """Equal to the fp16 rounding of the stored difference (relative to each tensor's scale)."""
    for key in keys or want:
        scale = want[key].abs().max().clamp(min=1e-3)
        torch.testing.assert_close(got[key] / scale, want[key] / scale, rtol=0, atol=3e-3, msg=key)


def held_whole(state: dict) -> list[str]:
    """The weights a full-rank LoRA holds whole: all but the convs (kernel > 1) with fewer input than
    output channels, whose rank ComfyUI caps at the input channels, dropping part of the difference."""
    return [k for k, v in state.items() if not (v.dim() == 4 and v.shape[2:] != (1, 1) and v.shape[1] < v.shape[0])]


def lora_on(path, base):
    return apply_lora(base.model, base.clip, path)


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_full_rank_lora_loads_back_as_the_fine_tune(builtin_registry, pairs, tmp_path, arch):
    base, tuned, _ = pairs[arch]
    model_diff, clip_diff = differences(builtin_registry, base, tuned)
    # the factors unclamped: the truncated SVD alone at full rank holds the whole difference
    path = save_lora(tmp_path / "full.safetensors", model_diff, clip_diff, 4096, "standard", True, clamp_quantile=None)
    file = load_file(str(path))
    assert {v.dtype for v in file.values()} == {torch.float16}
    conv = file["diffusion_model.input_blocks.0.0.lora_down.weight"]  # 3x3 conv, 4 in < 32 out channels:
    assert conv.shape[0] == 4 and conv.shape[2:] == (3, 3)  # ComfyUI's rank cap, the input channels
    assert file["diffusion_model.input_blocks.0.0.lora_up.weight"].shape[2:] == (1, 1)
    assert "diffusion_model.middle_block.1.proj_in.lora_up.weight" in file  # linear (or 1x1 conv)
    assert "diffusion_model.middle_block.0.in_layers.0.diff" in file  # a GroupNorm's weight
    assert "diffusion_model.middle_block.0.in_layers.0.diff_b" in file
    towers = [t.name for t in tuned.clip.towers]
    for name in towers:
        assert f"text_encoders.{name}.transformer.text_model.encoder.layers.0.self_attn.q_proj.lora_up.weight" in file
        assert f"text_encoders.{name}.transformer.text_model.encoder.layers.0.self_attn.q_proj.diff_b" in file
        assert f"text_encoders.{name}.transformer.text_model.final_layer_norm.diff" in file
    if arch == "sdxl":
        assert "text_encoders.clip_g.transformer.text_projection.lora_up.weight" in file

    model, clip = lora_on(path, base)
    want = tuned.model.unet.state_dict()
    whole = held_whole(want)
    assert len(whole) < len(want)
    assert_matches(patched(model.unet, model.patches), want, whole)
    for tower, tuned_tower in zip(clip.towers, tuned.clip.towers):
        got, want = patched(tower.model, tower.patches), {k: v for k, v in tuned_tower.model.state_dict().items()
                                                          if v.is_floating_point()}
        assert_matches(got, want)


def test_low_rank_factors_are_comfyuis_clamped_truncated_svd(builtin_registry, pairs, tmp_folders):
    base, tuned, files = pairs["sd1"]
    model_diff, clip_diff = differences(builtin_registry, base, tuned)
    call(builtin_registry, "LoraSave", model_diff=model_diff, text_encoder_diff=clip_diff, rank=3)
    [path] = (tmp_folders.outputs / "loras").glob("graphflow_extracted_lora_*_.safetensors")  # the default prefix
    assert path.name == "graphflow_extracted_lora_00001_.safetensors"
    file = load_file(str(path))
    a, b = load_file(str(files[0])), load_file(str(files[1]))
    names = {"diffusion_model.input_blocks.0.0": "model.diffusion_model.input_blocks.0.0.weight",  # conv 3x3
             "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q":
                 "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight",
             "text_encoders.clip_l.transformer.text_model.encoder.layers.0.mlp.fc1":
                 "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight"}
    clamped = 0
    for lora, key in names.items():
        diff = b[key].float() - a[key].float()
        U, S, Vh = torch.linalg.svd(diff.reshape(diff.shape[0], -1))
        up, down = U[:, :3] @ torch.diag(S[:3]), Vh[:3]
        high = torch.quantile(torch.cat([up.flatten(), down.flatten()]), 0.99)
        clamped += int((up.abs() > high).sum() + (down.abs() > high).sum())
        up, down = up.clamp(-high, high), down.clamp(-high, high)
        saved_up, saved_down = file[lora + ".lora_up.weight"].float(), file[lora + ".lora_down.weight"].float()
        assert saved_up.shape == (diff.shape[0], 3, *[1] * (diff.dim() - 2))
        assert saved_down.shape == (3, *diff.shape[1:])
        torch.testing.assert_close(saved_up.flatten(1), up, rtol=2e-3, atol=2e-3, msg=lora)
        torch.testing.assert_close(saved_down.flatten(1), down, rtol=2e-3, atol=2e-3, msg=lora)
    assert clamped > 0  # the clamp did something to check

    # unclamped, up @ down is the best rank-k approximation: its error is the dropped singular values
    diff = b["model.diffusion_model.input_blocks.1.1.proj_in.weight"].float() - a[
        "model.diffusion_model.input_blocks.1.1.proj_in.weight"].float()
    matrix = diff.reshape(diff.shape[0], -1)
    S = torch.linalg.svdvals(matrix)
    for k in (1, 3, 7):
        up, down = extract_lora(diff, k, clamp_quantile=None)
        approx = up.flatten(1) @ down.flatten(1)
        torch.testing.assert_close(torch.linalg.norm(matrix - approx), S[k:].square().sum().sqrt(), rtol=1e-4,
                                   atol=1e-5)
        assert torch.linalg.matrix_rank(approx) == k


def test_full_diff_writes_whole_differences_and_loads_back(builtin_registry, pairs, tmp_folders):
    base, tuned, _ = pairs["sdxl"]
    model_diff, clip_diff = differences(builtin_registry, base, tuned)
    call(builtin_registry, "LoraSave", model_diff=model_diff, text_encoder_diff=clip_diff, lora_type="full_diff",
         filename_prefix="loras/full")
    [path] = (tmp_folders.outputs / "loras").glob("full_*_.safetensors")
    file = load_file(str(path))
    assert all(k.endswith((".diff", ".diff_b")) for k in file)
    assert identify({k: tuple(v.shape) for k, v in file.items()}).folder == "loras"  # inspect / validation say LoRA
    unet = tuned.model.unet.state_dict()
    assert {k[len("diffusion_model."):-len(".diff")] + ".weight" for k in file
            if k.startswith("diffusion_model.") and k.endswith(".diff")} == {k for k in unet if k.endswith(".weight")}
    model, clip = lora_on(path, base)
    assert_matches(patched(model.unet, model.patches), unet)
    for tower, tuned_tower in zip(clip.towers, tuned.clip.towers):
        assert_matches(patched(tower.model, tower.patches),
                       {k: v for k, v in tuned_tower.model.state_dict().items() if v.is_floating_point()})


def test_without_bias_diff_biases_and_norms_stay_the_base_ones(builtin_registry, pairs, tmp_folders):
    base, tuned, _ = pairs["sd1"]
    model_diff, _ = differences(builtin_registry, base, tuned)
    call(builtin_registry, "LoraSave", model_diff=model_diff, rank=4096, bias_diff=False, filename_prefix="nobias")
    [path] = tmp_folders.outputs.glob("nobias_*_.safetensors")
    file = load_file(str(path))
    assert file and all(k.endswith((".lora_up.weight", ".lora_down.weight")) for k in file)
    model, _ = apply_lora(base.model, None, path)
    got, before = patched(model.unet, model.patches), base.model.unet.state_dict()
    for key in ("out.0.weight", "out.0.bias", "input_blocks.0.0.bias", "middle_block.1.proj_in.bias"):
        assert torch.equal(got[key], before[key]), key
    assert not torch.equal(got["input_blocks.0.0.weight"], before["input_blocks.0.0.weight"])


def test_reader_takes_comfyui_text_encoder_names_and_bias_diffs(pairs, tmp_path):
    base, _, _ = pairs["sdxl"]
    g = torch.Generator().manual_seed(3)
    proj = base.clip.tower("clip_g").model.text_projection.weight
    norm = base.model.unet.out[0]
    tensors = {"text_encoders.clip_g.transformer.text_projection.diff": torch.randn(proj.shape, generator=g),
               "text_encoders.clip_l.transformer.text_model.encoder.layers.0.self_attn.k_proj.diff_b":
                   torch.randn(base.clip.tower("clip_l").transformer.encoder.layers[0].self_attn.k_proj.bias.shape,
                               generator=g),
               "diffusion_model.out.0.diff": torch.randn(norm.weight.shape, generator=g),
               "diffusion_model.out.0.diff_b": torch.randn(norm.bias.shape, generator=g)}
    path = tmp_path / "comfy.safetensors"
    save_file(tensors, str(path))
    model, clip = apply_lora(base.model, base.clip, path, strength_model=0.5, strength_clip=-2.0)
    unet = patched(model.unet, model.patches)
    torch.testing.assert_close(unet["out.0.weight"], norm.weight + 0.5 * tensors["diffusion_model.out.0.diff"])
    torch.testing.assert_close(unet["out.0.bias"], norm.bias + 0.5 * tensors["diffusion_model.out.0.diff_b"])
    g_tower, l_tower = clip.tower("clip_g"), clip.tower("clip_l")
    torch.testing.assert_close(patched(g_tower.model, g_tower.patches)["text_projection.weight"],
                               proj - 2.0 * tensors["text_encoders.clip_g.transformer.text_projection.diff"])
    k_bias = [v for k, v in patched(l_tower.model, l_tower.patches).items()
              if k.endswith("layers.0.self_attn.k_proj.bias")]
    original = base.clip.tower("clip_l").transformer.encoder.layers[0].self_attn.k_proj.bias
    torch.testing.assert_close(k_bias[0], original - 2.0 * tensors[
        "text_encoders.clip_l.transformer.text_model.encoder.layers.0.self_attn.k_proj.diff_b"])

    # T5's keys (ComfyUI writes them for FLUX/SD3 encoders) match nothing here: skipped with a warning
    save_file({**tensors, "text_encoders.t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q.diff":
               torch.zeros(4, 4)}, str(path))
    warnings = []
    apply_lora(base.model, base.clip, path, strict=False, warn=warnings.append)
    assert len(warnings) == 1 and "t5xxl" in warnings[0]
    # a bias diff for a layer without a bias, or of the wrong size, is an error naming the layer
    attn = "diffusion_model.middle_block.1.transformer_blocks.0.attn1.to_q"  # no bias
    save_file({attn + ".diff_b": torch.zeros(8)}, str(path))
    with pytest.raises(LoraError, match="to_q.*no bias"):
        apply_lora(base.model, None, path)


def comfy_graph(prefix=PREFIX, model=True, clip=True):
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "base.safetensors"}},
             "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tuned.safetensors"}},
             "3": {"class_type": "ModelMergeSubtract", "inputs": {"model1": ["2", 0], "model2": ["1", 0],
                                                                  "multiplier": 1.0}},
             "4": {"class_type": "CLIPMergeSubtract", "inputs": {"clip1": ["2", 1], "clip2": ["1", 1],
                                                                 "multiplier": 1.0}},
             "5": {"class_type": "LoraSave", "inputs": {"filename_prefix": prefix, "rank": 8, "lora_type": "standard",
                                                        "bias_diff": True}}}
    if model:
        graph["5"]["inputs"]["model_diff"] = ["3", 0]
    if clip:
        graph["5"]["inputs"]["text_encoder_diff"] = ["4", 0]
    return graph


def test_comfyui_graph_extracts_a_lora_into_the_outputs(builtin_registry, tmp_folders):
    checkpoints = tmp_folders.models / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    write_checkpoint(checkpoints / "base.safetensors", "sd1", seed=0)
    write_checkpoint(checkpoints / "tuned.safetensors", "sd1", seed=5)
    for run in (1, 2):  # a fresh executor each time (one would take the second run from its cache)
        result = Executor(builtin_registry).run(parse_workflow(comfy_graph(), builtin_registry))
        assert result.status == "success", (result.problems, result.error)
        path = tmp_folders.outputs / "loras" / f"ComfyUI_extracted_lora_{run:05d}_.safetensors"
        assert path.is_file()
    file = load_file(str(path))
    assert any(k.startswith("diffusion_model.") for k in file)
    assert any(k.startswith("text_encoders.clip_l.") for k in file)
    assert file["diffusion_model.input_blocks.1.1.proj_in.lora_down.weight"].shape[0] == 8

    # the file is a LoRA our LoraLoader takes from models/loras, moving the base towards the fine-tune
    (tmp_folders.models / "loras").mkdir(exist_ok=True)
    path.rename(tmp_folders.models / "loras" / path.name)
    base = load_checkpoint(checkpoints / "base.safetensors", device="cpu", dtype=torch.float32)
    tuned = load_checkpoint(checkpoints / "tuned.safetensors", device="cpu", dtype=torch.float32)
    model, clip = call(builtin_registry, "LoadLoRA", model=base.model, clip=base.clip, lora_name=path.name)
    got = patched(model.unet, model.patches)
    key = "input_blocks.1.1.proj_in.weight"
    a, b = base.model.unet.state_dict()[key], tuned.model.unet.state_dict()[key]
    assert torch.linalg.norm(got[key] - b) < 0.9 * torch.linalg.norm(a - b)


def test_bad_inputs_name_the_node_and_input(builtin_registry, tmp_folders):
    checkpoints = tmp_folders.models / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    for name, seed in (("base", 0), ("tuned", 5)):
        write_checkpoint(checkpoints / f"{name}.safetensors", "sd1", seed=seed)
    executor = Executor(builtin_registry)
    result = executor.run(parse_workflow(comfy_graph(model=False, clip=False), builtin_registry))
    assert result.status == "error" and result.error["node_id"] == "5" and result.error["input"] == "model_diff"
    assert "text_encoder_diff" in result.error["message"]

    result = executor.run(parse_workflow(comfy_graph(prefix="../../escaped"), builtin_registry))
    problems = [(p.node_id, p.input, p.message) for p in result.problems] or [
        (result.error["node_id"], result.error["input"], result.error["message"])]
    assert result.status in ("invalid", "error")
    assert [(n, i) for n, i, _ in problems] == [("5", "filename_prefix")], problems
    assert not list(tmp_folders.home.parent.rglob("escaped*"))


def test_flux_lora_loads_in_diffusers_as_in_ours(tmp_path, flux_any_width):  # noqa: F811
    """diffusers reads ComfyUI-layout FLUX LoRAs (diffusion_model. -> its kohya conversion) for the
    double / single blocks; the same file in both gives the same transformer output."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.merge import merge_models
    from tests.test_flow_lora import kohya_flux_conversion, load_flux, run_flux

    model, theirs, cfg = load_flux(tmp_path)
    other = load_diffusion_model(write_flow_checkpoint(tmp_path / "b.safetensors", "flux_dev", dtype=torch.float32,
                                                       seed=9), device="cpu", dtype=torch.float32)
    diff = merge_models(other, model, lambda name: (0.1, -0.1))
    path = save_lora(tmp_path / "extracted.safetensors", diff, None, 4, "standard", False)
    blocks = {k: v.float() for k, v in load_file(str(path)).items()
              if k.startswith(("diffusion_model.double_blocks.", "diffusion_model.single_blocks."))}
    assert "diffusion_model.single_blocks.0.linear1.lora_up.weight" in blocks
    save_file(blocks, str(tmp_path / "blocks.safetensors"))
    theirs.load_lora_adapter(kohya_flux_conversion(cfg)(dict(blocks)), prefix="transformer", adapter_name="x")
    patched, _ = apply_lora(model, None, tmp_path / "blocks.safetensors", 1.0, 0.0)
    plain, _ = run_flux(model, theirs, cfg)
    ours, diffusers = run_flux(patched, theirs, cfg)
    assert (ours - plain).abs().max() > 1e-3
    assert (ours - diffusers).abs().max() <= 1e-4


@pytest.mark.parametrize("family", ["flux_dev", "sd3_medium"])
def test_flow_model_full_rank_round_trip(tmp_path, family):
    """FLUX / SD3 (and their CLIP towers) in their own module names, which ComfyUI's are; as in
    ComfyUI only .weight / .bias parameters are written (not RMSNorm scales or SD3's pos_embed)."""
    from graphflow.models.merge import merge_clips, merge_models

    base, tuned = (load_checkpoint(write_flow_checkpoint(tmp_path / f"{seed}.safetensors", family, seed=seed),
                                   device="cpu", dtype=torch.float32) for seed in (0, 5))
    model_diff = merge_models(tuned.model, base.model, lambda name: (1.0, -1.0))
    clip_diff = merge_clips(tuned.clip, base.clip, lambda name: (1.0, -1.0))
    path = save_lora(tmp_path / "full.safetensors", model_diff, clip_diff, 4096, "standard", True, clamp_quantile=None)
    file = load_file(str(path))
    assert not any(k.endswith((".scale.diff", "pos_embed.diff")) for k in file)
    model, clip = lora_on(path, base)
    want = {k: v for k, v in tuned.model.unet.state_dict().items() if k.endswith((".weight", ".bias"))}
    assert_matches(patched(model.unet, model.patches), want, held_whole(want))
    for tower, tuned_tower in zip(clip.towers, tuned.clip.towers):
        assert_matches(patched(tower.model, tower.patches),
                       {k: v for k, v in tuned_tower.model.state_dict().items() if v.is_floating_point()})


def test_a_gemma_text_encoder_difference_is_refused(builtin_registry, tmp_folders, tmp_path):
    """Lumina 2's Gemma-2 is neither CLIP nor T5: refused naming the input (T5 differences are
    written: test_parity_merge_save)."""
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_gemma2

    encoders = [load_text_encoders(write_gemma2(tmp_path / f"g{seed}.safetensors", seed=seed, dtype=torch.float32),
                                   "lumina2", device="cpu", dtype=torch.float32) for seed in (1, 2)]
    diff = call(builtin_registry, "CLIPMergeSubtract", clip1=encoders[1], clip2=encoders[0])
    with pytest.raises(NodeInputError, match="only CLIP and T5") as caught:
        call(builtin_registry, "LoraSave", text_encoder_diff=diff)
    assert caught.value.input == "text_encoder_diff"
    assert not list(tmp_folders.outputs.rglob("*.safetensors"))
