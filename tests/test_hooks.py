"""ComfyUI's hooks: a hooked conditioning is evaluated by the LoRA-applied model (LoraLoader's
patches) and an un-hooked one in the same run by the plain model; keyframes schedule the strength
per step; a model taken as LoRA; SetClipHooks against LoraLoader's clip strength; the weights
are bit-identical after a run, also one that failed; patches applied only when the hook set
changes."""

import pytest
import torch
from test_nodes_image_mask import call

from graphflow.context import NodeInputError
from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.lora import apply_lora, read_lora
from graphflow.sampling.hooks import Hooks, Keyframe, Keyframes, WeightHook
from graphflow.sampling.model_sampling import DiscreteSchedule
from graphflow.sampling.pipeline import sample_with_sigmas
from graphflow.sampling.schedules import compute_sigmas
from graphflow.testing import write_checkpoint, write_lora

SHAPE = (1, 4, 8, 8)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("hooks")
    return {"a": write_checkpoint(root / "a.safetensors", "sd1", seed=0),
            "b": write_checkpoint(root / "b.safetensors", "sd1", seed=5),
            "lora": write_lora(root / "style.safetensors", "sd1", rank=4, alpha=2.0, seed=1, scale=0.3)}


@pytest.fixture(scope="module")
def ckpt(files):
    return load_checkpoint(files["a"], device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def prompts(ckpt):
    return ckpt.clip.encode("a red circle")[0], ckpt.clip.encode("")[0]


def lora_hooks(files, strength_model=1.0, strength_clip=1.0, keyframes=None):
    path = files["lora"]
    return Hooks((WeightHook(path.name, strength_model, strength_clip, lora=read_lora(path), keyframes=keyframes),))


def run(model, positive, negative, cfg, sigmas, seed=0, latent=None, noise=None, callback=None):
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed)) if noise is None else noise
    latent = torch.zeros(SHAPE) if latent is None else latent
    return sample_with_sigmas(model, sigmas, noise, latent, positive, negative, cfg, "euler", seed, callback=callback)


def sigmas_for(model, steps):
    return compute_sigmas(DiscreteSchedule.from_betas(), "normal", steps, 1.0)


def state(model):
    return {k: v.detach().clone() for k, v in model.unet.state_dict().items()}


def test_hooked_cond_sees_the_lora_model_and_the_plain_cond_the_plain_one(files, ckpt, prompts, fresh_manager):
    cond, uncond = prompts
    model = ckpt.model
    with_lora, _ = apply_lora(model, None, files["lora"], 1.0, 0.0)
    sigmas = sigmas_for(model, 1)  # one euler step to sigma 0: the output is the guided prediction
    before = state(model)
    hooked = [(cond, {"hooks": lora_hooks(files)})]
    got = run(model, hooked, [(uncond, {})], 3.0, sigmas)
    # each side alone (cfg 1: only the positive runs), on the model LoraLoader makes and the plain one
    lora_cond = run(with_lora, [(cond, {})], [], 1.0, sigmas)
    plain_uncond = run(model, [(uncond, {})], [], 1.0, sigmas)
    plain_cond = run(model, [(cond, {})], [], 1.0, sigmas)
    expected = plain_uncond + (lora_cond - plain_uncond) * 3.0
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(lora_cond, plain_cond, atol=1e-3)  # the LoRA does change the prediction
    fresh_manager.patch(with_lora.unet, ())
    assert all(torch.equal(v, before[k]) for k, v in state(model).items())


def test_weights_restored_after_a_run_and_after_a_failed_one(files, ckpt, prompts, fresh_manager):
    cond, uncond = prompts
    model = ckpt.model
    before = state(model)
    hooked = [(cond, {"hooks": lora_hooks(files)})]
    run(model, hooked, [(uncond, {})], 2.0, sigmas_for(model, 3))
    assert all(torch.equal(v, before[k]) for k, v in state(model).items())

    def stop(info):
        if info["i"] == 1:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run(model, hooked, [(uncond, {})], 2.0, sigmas_for(model, 3), callback=stop)
    assert all(torch.equal(v, before[k]) for k, v in state(model).items())
    assert fresh_manager.backup_bytes() == 0


def test_patches_applied_only_when_the_hook_set_changes(files, ckpt, prompts, fresh_manager):
    cond, _ = prompts
    hooked = [(cond, {"hooks": lora_hooks(files)})]
    run(ckpt.model, hooked, [], 1.0, sigmas_for(ckpt.model, 4))
    assert [e["action"] for e in fresh_manager.events].count("patch") == 1  # once for four steps


def test_two_keyframes_match_two_runs_with_split_sigmas(files, ckpt, prompts, fresh_manager):
    cond, _ = prompts
    model = ckpt.model
    keyframes = Keyframes().add(Keyframe(1.0, 0.0)).add(Keyframe(0.4, 0.5))
    hooked = [(cond, {"hooks": lora_hooks(files, strength_model=1.5, keyframes=keyframes)})]
    sigmas = sigmas_for(model, 4)
    got = run(model, hooked, [], 1.0, sigmas)
    # ComfyUI's rule: the second keyframe takes over at the first step whose sigma is at or below its start's
    switch = next(i for i, s in enumerate(sigmas.tolist()) if s <= DiscreteSchedule.from_betas().percent_to_sigma(0.5))
    assert 0 < switch < 4
    first, _ = apply_lora(model, None, files["lora"], 1.5, 0.0)
    second, _ = apply_lora(model, None, files["lora"], 1.5 * 0.4, 0.0)
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    part = run(first, [(cond, {})], [], 1.0, sigmas[:switch + 1], noise=noise)
    expected = run(second, [(cond, {})], [], 1.0, sigmas[switch:], latent=part, noise=torch.zeros(SHAPE))
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    constant = run(first, [(cond, {})], [], 1.0, sigmas, noise=noise)
    assert not torch.allclose(got, constant, atol=1e-3)  # the schedule mattered
    fresh_manager.patch(first.unet, ())


def test_model_as_lora_hook_evaluates_the_second_model(files, ckpt, prompts, fresh_manager):
    cond, _ = prompts
    other = load_checkpoint(files["b"], device="cpu", dtype=torch.float32)
    hooks = Hooks((WeightHook("b", 1.0, 0.0, model=other.model),))
    sigmas = sigmas_for(ckpt.model, 2)
    before = state(ckpt.model)
    got = run(ckpt.model, [(cond, {"hooks": hooks})], [], 1.0, sigmas)
    expected = run(other.model, [(cond, {})], [], 1.0, sigmas)
    plain = run(ckpt.model, [(cond, {})], [], 1.0, sigmas)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(plain, expected, atol=1e-3)
    assert all(torch.equal(v, before[k]) for k, v in state(ckpt.model).items())


def test_model_as_lora_change_is_taken_against_the_original_weights(files, ckpt, prompts, fresh_manager):
    # ComfyUI's model_as_lora adds strength (W2 - W0), W0 the unpatched weight, on top of whatever
    # else patches it: with a LoRA too (the model's own, or an earlier hook's), at strength 1 the
    # hooked prompt sees the second model plus that LoRA, not the second model alone
    cond, _ = prompts
    other = load_checkpoint(files["b"], device="cpu", dtype=torch.float32)
    as_lora = WeightHook("b", 1.0, 0.0, model=other.model)
    sigmas = sigmas_for(ckpt.model, 2)
    other_with_lora, _ = apply_lora(other.model, None, files["lora"], 1.0, 0.0)
    expected = run(other_with_lora, [(cond, {})], [], 1.0, sigmas)
    assert not torch.allclose(expected, run(other.model, [(cond, {})], [], 1.0, sigmas), atol=1e-3)
    own_lora, _ = apply_lora(ckpt.model, None, files["lora"], 1.0, 0.0)
    got = run(own_lora, [(cond, {"hooks": Hooks((as_lora,))})], [], 1.0, sigmas)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    got = run(ckpt.model, [(cond, {"hooks": lora_hooks(files).combine(Hooks((as_lora,)))})], [], 1.0, sigmas)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)
    fresh_manager.patch(other_with_lora.unet, ())
    fresh_manager.patch(own_lora.unet, ())


def test_model_as_lora_patches_carry_comfyuis_key_seeds(files, ckpt):
    """Each model-as-LoRA patch is seeded by the CRC-32 of its weight's ComfyUI key (what rounds a
    patched fp8 weight: tests/test_scaled_fp8.py), as LoRAs and attention multipliers are."""
    import zlib

    from graphflow.sampling.hooks import clip_with_hook, model_patches

    other = load_checkpoint(files["b"], device="cpu", dtype=torch.float32)
    patches = model_patches(ckpt.model, WeightHook("b", 1.0, 0.0, model=other.model), 1.0)
    assert patches and all(p.seed == zlib.crc32(f"diffusion_model.{p.param}".encode()) for p in patches)
    clip = clip_with_hook(ckpt.clip, WeightHook("b", 0.0, 1.0, clip=other.clip), 1.0)
    [tower] = clip.towers
    seeds = {p.param: p.seed for p in tower.patches}
    flat = tower.transformer is tower.model  # transformers >= 5.6: no text_model level in our paths
    inner = "" if flat else "text_model."
    assert seeds[inner + "encoder.layers.0.self_attn.q_proj.weight"] == \
        zlib.crc32(b"clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj.weight")
    ours_to_comfy = "text_model." if flat else ""
    assert all(seed == zlib.crc32(f"clip_l.transformer.{ours_to_comfy}{param}".encode())
               for param, seed in seeds.items())


@pytest.fixture
def models(tmp_folders, files):
    import shutil

    for kind, name in (("loras", "lora"), ("checkpoints", "b")):
        (tmp_folders.models / kind).mkdir(exist_ok=True)
        shutil.copy(files[name], tmp_folders.models / kind / files[name].name)
    return tmp_folders


def test_set_clip_hooks_encodes_as_lora_loader_clip_strength(builtin_registry, models, ckpt, files):
    hooks = call(builtin_registry, "CreateHookLora", lora_name="style.safetensors", strength_model=1.0,
                 strength_clip=0.7)
    clip = call(builtin_registry, "SetClipHooks", clip=ckpt.clip, apply_to_conds=True, schedule_clip=False,
                hooks=hooks)
    [(cond, options)] = call(builtin_registry, "CLIPEncode", clip=clip, text="a red circle")
    _, lora_clip = apply_lora(ckpt.model, ckpt.clip, files["lora"], 0.0, 0.7)
    expected = lora_clip.encode("a red circle")[0]
    assert torch.equal(cond, expected)
    assert not torch.allclose(cond, ckpt.clip.encode("a red circle")[0], atol=1e-4)
    assert options["hooks"] is hooks  # apply_to_conds
    clip = call(builtin_registry, "SetClipHooks", clip=ckpt.clip, apply_to_conds=False, schedule_clip=False,
                hooks=hooks)
    [(_, options)] = call(builtin_registry, "CLIPEncode", clip=clip, text="a red circle")
    assert "hooks" not in options


def test_a_second_set_clip_hooks_replaces_the_first_ones_hooks(builtin_registry, models, ckpt, files):
    # ComfyUI: the encoder's forced hooks are replaced; without apply_to_conds the conditioning
    # keeps the hooks an earlier node applied to it. A LoraLoader in between stays.
    first = call(builtin_registry, "CreateHookLora", lora_name="style.safetensors", strength_model=1.0,
                 strength_clip=1.0)
    second = call(builtin_registry, "CreateHookLora", lora_name="style.safetensors", strength_model=1.0,
                  strength_clip=0.5)
    clip = call(builtin_registry, "SetClipHooks", clip=ckpt.clip, apply_to_conds=True, schedule_clip=False,
                hooks=first)
    _, clip = apply_lora(ckpt.model, clip, files["lora"], 0.0, -0.3)  # LoraLoader's clip part
    clip = call(builtin_registry, "SetClipHooks", clip=clip, apply_to_conds=False, schedule_clip=False,
                hooks=second)
    [(cond, options)] = call(builtin_registry, "CLIPEncode", clip=clip, text="a red circle")
    _, expected_clip = apply_lora(ckpt.model, ckpt.clip, files["lora"], 0.0, -0.3)
    _, expected_clip = apply_lora(ckpt.model, expected_clip, files["lora"], 0.0, 0.5)
    assert torch.equal(cond, expected_clip.encode("a red circle")[0])
    assert options["hooks"] is first
    # scheduled, the second node's hooks alone are encoded at their keyframes' strengths too
    clip = call(builtin_registry, "SetClipHooks", clip=ckpt.clip, apply_to_conds=True, schedule_clip=False,
                hooks=first)
    clip = call(builtin_registry, "SetClipHooks", clip=clip, apply_to_conds=True, schedule_clip=True,
                hooks=second)
    [(cond, options)] = call(builtin_registry, "CLIPEncode", clip=clip, text="a red circle")
    _, expected_clip = apply_lora(ckpt.model, ckpt.clip, files["lora"], 0.0, 0.5)
    assert torch.equal(cond, expected_clip.encode("a red circle")[0])
    assert options["hooks"] is second and (options["clip_start_percent"], options["clip_end_percent"]) == (0.0, 1.0)


def test_scheduled_clip_hooks_encode_once_per_keyframe_stretch(builtin_registry, models, ckpt, files):
    kf = call(builtin_registry, "CreateHookKeyframe", strength_mult=1.0, start_percent=0.0)
    kf = call(builtin_registry, "CreateHookKeyframe", strength_mult=0.5, start_percent=0.6, prev_hook_kf=kf)
    hooks = call(builtin_registry, "CreateHookLora", lora_name="style.safetensors", strength_model=1.0,
                 strength_clip=0.8)
    hooks = call(builtin_registry, "SetHookKeyframes", hooks=hooks, hook_kf=kf)
    clip = call(builtin_registry, "SetClipHooks", clip=ckpt.clip, apply_to_conds=True, schedule_clip=True,
                hooks=hooks)
    out = call(builtin_registry, "CLIPEncode", clip=clip, text="a red circle")
    assert [(o["clip_start_percent"], o["clip_end_percent"]) for _, o in out] == [(0.0, 0.6), (0.6, 1.0)]
    for (cond, _), strength in zip(out, (0.8, 0.4)):
        _, lora_clip = apply_lora(ckpt.model, ckpt.clip, files["lora"], 0.0, strength)
        assert torch.equal(cond, lora_clip.encode("a red circle")[0])


def test_model_as_lora_node_and_bad_inputs(builtin_registry, models, ckpt, prompts, fresh_manager):
    hooks = call(builtin_registry, "CreateHookModelAsLoraModelOnly", ckpt_name="b.safetensors", strength_model=0.5)
    assert hooks.hooks[0].strength_model == 0.5 and hooks.hooks[0].clip is None
    import shutil

    shutil.copy(models.models / "checkpoints" / "b.safetensors", models.models / "loras" / "not_a_lora.safetensors")
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "CreateHookLora", lora_name="not_a_lora.safetensors", strength_model=1.0,
             strength_clip=1.0)
    assert e.value.input == "lora_name" and "LoRA" in str(e.value)
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "ConditioningSetProperties", cond_NEW=[(prompts[0], {})], strength=1.0,
             set_cond_area="default", timesteps="soon")
    assert e.value.input == "timesteps"


def test_comfyui_api_graph_with_hooks_runs_end_to_end(builtin_registry, models, files, fresh_manager):
    import shutil

    from graphflow.executor import Executor
    from graphflow.validation import validate
    from graphflow.workflow import parse_workflow

    shutil.copy(files["a"], models.models / "checkpoints" / "a.safetensors")
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"}},
        "2": {"class_type": "CreateHookLora", "inputs": {"lora_name": "style.safetensors", "strength_model": 1.0,
                                                         "strength_clip": 0.5}},
        "3": {"class_type": "CreateHookKeyframe", "inputs": {"strength_mult": 1.0, "start_percent": 0.0}},
        "4": {"class_type": "CreateHookKeyframe", "inputs": {"strength_mult": 0.5, "start_percent": 0.5,
                                                             "prev_hook_kf": ["3", 0]}},
        "5": {"class_type": "SetHookKeyframes", "inputs": {"hooks": ["2", 0], "hook_kf": ["4", 0]}},
        "6": {"class_type": "SetClipHooks", "inputs": {"clip": ["1", 1], "apply_to_conds": True,
                                                       "schedule_clip": False, "hooks": ["5", 0]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["6", 0], "text": "a red circle"}},
        "8": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a blue square"}},
        "9": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ""}},
        "10": {"class_type": "ConditioningTimestepsRange", "inputs": {"start_percent": 0.0, "end_percent": 0.6}},
        "11": {"class_type": "PairConditioningSetPropertiesAndCombine",
               "inputs": {"positive": ["7", 0], "negative": ["9", 0], "positive_NEW": ["8", 0],
                          "negative_NEW": ["9", 0], "strength": 1.0, "set_cond_area": "default",
                          "timesteps": ["10", 2]}},
        "12": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "13": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["11", 0], "negative": ["11", 1],
                                                    "latent_image": ["12", 0], "seed": 1, "steps": 3, "cfg": 4.0,
                                                    "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "14": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["1", 2]}},
        "15": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "hooks"}},
    }
    workflow = parse_workflow(graph, builtin_registry)
    assert validate(workflow, builtin_registry) == []
    result = Executor(builtin_registry).run(workflow)
    assert result.ok, result.error or result.problems
    image = result.values["14"][0]
    assert image.shape == (1, 64, 64, 3) and torch.isfinite(image).all()
    positive = result.values["11"][0]
    assert positive[0][1]["hooks"] is result.values["5"][0] and positive[1][1]["start_percent"] == 0.6
    # the same graph in the UI format ComfyUI's editor saves (positional widget values) draws the same
    import json

    from graphflow.comfy_format import export_ui, import_ui

    ui = json.loads(json.dumps(export_ui(workflow, builtin_registry)))
    widgets = {n["type"]: n.get("widgets_values") for n in ui["nodes"]}
    assert widgets["PairConditioningSetPropertiesAndCombine"] == [1.0, "default"]
    assert widgets["CreateHookKeyframe"] in ([1.0, 0.0], [0.5, 0.5])
    again = Executor(builtin_registry).run(import_ui(ui, builtin_registry))
    assert again.ok, again.error or again.problems
    assert torch.equal(again.values["14"][0], image)
    graph["7"]["inputs"]["clip"] = ["1", 1]  # the prompt without the hooks: another picture
    plain = Executor(builtin_registry).run(parse_workflow(graph, builtin_registry))
    assert not torch.allclose(plain.values["14"][0], image, atol=1e-3)


def test_model_as_lora_clip_part_encodes_as_the_second_text_encoder(builtin_registry, models, ckpt, files):
    hooks = call(builtin_registry, "CreateHookModelAsLora", ckpt_name="b.safetensors", strength_model=1.0,
                 strength_clip=1.0)
    clip = call(builtin_registry, "SetClipHooks", clip=ckpt.clip, apply_to_conds=True, schedule_clip=False,
                hooks=hooks)
    [(cond, _)] = call(builtin_registry, "CLIPEncode", clip=clip, text="a red circle")
    other = load_checkpoint(files["b"], device="cpu", dtype=torch.float32)
    expected = other.clip.encode("a red circle")[0]
    assert torch.allclose(cond, expected, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(ckpt.clip.encode("a red circle")[0], expected, atol=1e-3)
    # on an encoder with a LoRA (LoraLoader's clip part), the second encoder plus that LoRA
    _, lora_clip = apply_lora(ckpt.model, ckpt.clip, files["lora"], 0.0, 1.0)
    clip = call(builtin_registry, "SetClipHooks", clip=lora_clip, apply_to_conds=True, schedule_clip=False,
                hooks=hooks)
    [(cond, _)] = call(builtin_registry, "CLIPEncode", clip=clip, text="a red circle")
    _, expected_clip = apply_lora(other.model, other.clip, files["lora"], 0.0, 1.0)
    assert torch.allclose(cond, expected_clip.encode("a red circle")[0], atol=1e-4, rtol=1e-4)


def test_hooks_that_do_not_fit_the_model_name_the_input(tmp_path, ckpt, prompts, fresh_manager):
    cond, uncond = prompts
    sdxl_lora = write_lora(tmp_path / "xl.safetensors", "sdxl", rank=2, seed=3)
    bad = Hooks((WeightHook("xl.safetensors", lora=read_lora(sdxl_lora)),))
    before = state(ckpt.model)
    with pytest.raises(NodeInputError) as e:
        run(ckpt.model, [(cond, {})], [(uncond, {"hooks": bad})], 2.0, sigmas_for(ckpt.model, 2))
    assert e.value.input == "negative" and "xl.safetensors" in str(e.value)
    sd2 = load_checkpoint(write_checkpoint(tmp_path / "sd2.safetensors", "sd2"), device="cpu", dtype=torch.float32)
    with pytest.raises(NodeInputError) as e:
        run(ckpt.model, [(cond, {"hooks": Hooks((WeightHook("sd2", model=sd2.model),))})], [], 1.0,
            sigmas_for(ckpt.model, 2))
    assert e.value.input == "positive" and "another architecture" in str(e.value)
    assert all(torch.equal(v, before[k]) for k, v in state(ckpt.model).items())


def test_hooks_patch_on_the_fly_when_ram_is_short(files, ckpt, prompts, fresh_manager, monkeypatch):
    cond, uncond = prompts
    hooked = [(cond, {"hooks": lora_hooks(files)})]
    sigmas = sigmas_for(ckpt.model, 2)
    in_place = run(ckpt.model, hooked, [(uncond, {})], 2.0, sigmas)
    before = state(ckpt.model)
    monkeypatch.setenv("GRAPHFLOW_RAM_BUDGET_GB", "0.000001")  # no room for the originals beside the weights
    fresh_manager.events.clear()
    on_the_fly = run(ckpt.model, hooked, [(uncond, {})], 2.0, sigmas)
    assert {e["mode"] for e in fresh_manager.events if e["action"] == "patch"} == {"on_the_fly"}
    assert torch.equal(on_the_fly, in_place)
    assert all(torch.equal(v, before[k]) for k, v in state(ckpt.model).items())


def test_create_hook_lora_skips_keys_that_are_no_lora_parts(builtin_registry, models, files, caplog):
    """As LoraLoader (and ComfyUI's load_lora): extra keys are left unread with a warning."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(files["lora"]) | {"emb_params": torch.zeros(2, 8)}
    save_file(tensors, str(models.models / "loras" / "extra.safetensors"))
    with caplog.at_level("WARNING"):
        hooks = call(builtin_registry, "CreateHookLora", lora_name="extra.safetensors", strength_model=1.0,
                     strength_clip=1.0)
    plain = call(builtin_registry, "CreateHookLora", lora_name="style.safetensors", strength_model=1.0,
                 strength_clip=1.0)
    assert hooks.hooks[0].lora.keys() == plain.hooks[0].lora.keys()
    assert "1 keys were not loaded (no LoRA parts graphflow reads" in caplog.text
    assert "'lora key not loaded'): emb_params" in caplog.text
