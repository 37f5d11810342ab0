"""comfyanonymous' ComfyUI_experiments (nodes/pack_nodes_experiments.py): the pack's names, inputs,
defaults and ranges as its source declares them; the three CFG functions against the pack's formulas
computed here in numpy (float64) from ComfyUI's x - denoised arguments, and in KSampler runs of the
tiny checkpoint; ReferenceOnlySimple's latent and mask layout, its attention patch against attention
over the concatenated keys computed here, a real run's UNet row layout, and the pack's example graph
run; the block merges' weights against ComfyUI's ModelMergeBlocks rule (the longest ratio name a weight starts with); the clear
errors; a UI-format save and an API prompt with the pack's class names that run and round-trip."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from PIL import Image

from graphflow.comfy_format import comfy_catalogue, custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.models.checkpoint import load_checkpoint
from graphflow.registry import Registry
from graphflow.testing import unet_config, write_checkpoint
from graphflow.validation import validate
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_experiments import SDXL_TRANSFORMER_PARTS, reference_patch
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

CLASSES = ("ReferenceOnlySimple", "RescaleClassifierFreeGuidanceTest", "ModelSamplerTonemapNoiseTest",
           "TonemapNoiseWithRescaleCFG", "ModelMergeBlockNumber", "ModelMergeSDXLTransformers",
           "ModelMergeSDXLDetailedTransformers")


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.fixture
def tiny(tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    return tmp_folders


def node(registry, name, **inputs):
    return call(registry, registry.comfy_node(name).node_type, **inputs)


# -- names and inputs, as the pack's INPUT_TYPES declare them --------------------------------------


def pack_merge_names(kind):
    """The pack's ratio names, written out from its loops (advanced_model_merging.py, sdxl_model_merging.py)."""
    names = ["time_embed.", "label_emb."]
    if kind == "numbers":
        return (names + [f"input_blocks.{i}." for i in range(12)] + [f"middle_block.{i}." for i in range(3)]
                + [f"output_blocks.{i}." for i in range(12)] + ["out."])
    parts = [""] if kind == "transformers" else list(SDXL_TRANSFORMER_PARTS)
    end = "." if kind == "transformers" else ""

    def blocks(path, depth):
        return [f"{path}.transformer_blocks.{j}{end}{p if not p else '.' + p}" for j in range(depth) for p in parts]
    for i in range(9):
        names.append(f"input_blocks.{i}.0.")
        depth = {4: 2, 5: 2, 7: 10, 8: 10}.get(i)
        if depth:
            names += [f"input_blocks.{i}.1."] + blocks(f"input_blocks.{i}.1", depth)
    for i in range(3):
        names.append(f"middle_block.{i}.")
        if i == 1:
            names += blocks("middle_block.1", 10)
    for i in range(9):
        names.append(f"output_blocks.{i}.0.")
        depth = {3: 2, 4: 2, 5: 2, 6: 10, 7: 10, 8: 10}.get(8 - i)
        if depth:
            names += [f"output_blocks.{i}.1."] + blocks(f"output_blocks.{i}.1", depth)
    return names + ["out."]


def comfy_inputs(cls):
    """Our inputs under ComfyUI's names, in order."""
    back = {ours: theirs for theirs, ours in cls.comfy.inputs.items()}
    return [back.get(name, name) for name in cls.input_specs]


def test_the_packs_names_inputs_defaults_and_ranges(registry):
    for name in CLASSES:
        assert name not in comfy_catalogue()
        cls = registry.comfy_node(name)
        assert cls.__module__ == "nodes.pack_nodes_experiments" and custom_pack(name) == "ComfyUI_experiments"

    def widget(cls, name):
        w = cls.input_specs[name].widget
        return w.default, w.min, w.max, w.step
    ref = registry.comfy_node("ReferenceOnlySimple")
    assert list(ref.input_specs) == ["model", "reference", "batch_size"] and ref.category == "custom_node_experiments"
    assert widget(ref, "batch_size")[:3] == (1, 1, 64)
    assert [o.name for o in ref.output_specs] == ["model", "latent"] and ref.comfy.output_names == ("MODEL", "LATENT")
    rescale = registry.comfy_node("RescaleClassifierFreeGuidanceTest")
    assert list(rescale.input_specs) == ["model", "multiplier"]
    assert widget(rescale, "multiplier") == (0.7, 0.0, 1.0, 0.01)
    tonemap = registry.comfy_node("ModelSamplerTonemapNoiseTest")
    assert list(tonemap.input_specs) == ["model", "multiplier"]
    assert widget(tonemap, "multiplier") == (1.0, 0.0, 100.0, 0.01)
    both = registry.comfy_node("TonemapNoiseWithRescaleCFG")
    assert list(both.input_specs) == ["model", "tonemap_multiplier", "rescale_multiplier"]
    assert widget(both, "tonemap_multiplier") == (1.0, 0.0, 100.0, 0.01)
    assert widget(both, "rescale_multiplier") == (1.0, 0.0, 1.0, 0.01)
    for name, kind in (("ModelMergeBlockNumber", "numbers"), ("ModelMergeSDXLTransformers", "transformers"),
                       ("ModelMergeSDXLDetailedTransformers", "detailed")):
        cls = registry.comfy_node(name)
        assert comfy_inputs(cls) == ["model1", "model2", *pack_merge_names(kind)], name
        assert all(widget(cls, n) == (1.0, 0.0, 1.0, 0.01) for n in list(cls.input_specs)[2:]), name
        assert cls.category == "advanced/model_merging" and cls.comfy.output_names == ("MODEL",)


def test_block_merge_node_is_made_with_the_packs_category_module_and_output_name():
    """nodes/model_merging.py's factory takes them (nothing is changed on the class after it is made)."""
    from nodes.model_merging import _block_merge_node
    cls = _block_merge_node("ExperimentsProbe", "doc", ["time_embed.", "out."], ("ExperimentsProbe",),
                            category="advanced/model_merging", module="nodes.pack_nodes_experiments",
                            output_names=("MODEL",))
    assert cls.category == "advanced/model_merging" and cls.__module__ == "nodes.pack_nodes_experiments"
    assert cls.comfy.output_names == ("MODEL",) and cls.comfy.inputs == {"time_embed.": "time_embed", "out.": "out"}
    core = _block_merge_node("CoreProbe", "doc", ["a."], ("CoreProbe",))
    assert core.category == "advanced/model_merging/model_specific" and core.__module__ == "nodes.model_merging"
    assert core.comfy.output_names == ()


def test_model_merge_sdxl_is_the_cores_node(registry):
    """The pack's ModelMergeSDXL has the core's class name: ComfyUI's core node wins at load, so
    a save's ModelMergeSDXL is ours from nodes/model_merging.py (the same ratio names)."""
    assert "ModelMergeSDXL" in comfy_catalogue()
    cls = registry.comfy_node("ModelMergeSDXL")
    assert cls.__module__ == "nodes.model_merging"
    assert comfy_inputs(cls) == [i["name"] for i in comfy_catalogue()["ModelMergeSDXL"]["inputs"]]


# -- the CFG functions against the pack's formulas -------------------------------------------------


def pack_guide(name, cond, uncond, scale, **settings):
    """The pack's sampler_cfg_function bodies in numpy float64 (cond, uncond: ComfyUI's x - D)."""
    def std(t):
        return t.std(axis=(1, 2, 3), keepdims=True, ddof=1)

    def rescaled(x_cfg, multiplier):
        return multiplier * x_cfg * (std(cond) / std(x_cfg)) + (1 - multiplier) * x_cfg
    if name == "RescaleClassifierFreeGuidanceTest":
        return rescaled(uncond + scale * (cond - uncond), settings["multiplier"])
    multiplier = settings.get("multiplier", settings.get("tonemap_multiplier"))
    noise = cond - uncond
    length = np.sqrt((noise ** 2).sum(axis=1, keepdims=True)) + 1e-10
    top = (length.mean(axis=(1, 2, 3), keepdims=True) + 3 * std(length)) * multiplier
    tonemapped = uncond + noise / length * (length / top / (length / top + 1) * top) * scale
    if name == "ModelSamplerTonemapNoiseTest":
        return tonemapped
    return rescaled(tonemapped, settings["rescale_multiplier"])


def expected(name, args, **settings):
    """The guided denoised prediction ComfyUI makes of the pack's result: x - f(x - D_cond, x - D_uncond)."""
    x = args["x"].double().numpy()
    cond = args["cond_denoised"].double().numpy()
    uncond = np.zeros_like(cond) if args["uncond_denoised"] is None else args["uncond_denoised"].double().numpy()
    return torch.from_numpy(x - pack_guide(name, x - cond, x - uncond, args["cond_scale"], **settings)).float()


SETTINGS = {"RescaleClassifierFreeGuidanceTest": {"multiplier": 0.7},
            "ModelSamplerTonemapNoiseTest": {"multiplier": 0.5},
            "TonemapNoiseWithRescaleCFG": {"tonemap_multiplier": 0.8, "rescale_multiplier": 0.6}}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_guided_prediction_is_the_packs_formula(registry, tiny, name):
    model = run_graph(registry, {"1": {"class_type": "CheckpointLoaderSimple",
                                       "inputs": {"ckpt_name": "tiny.safetensors"}}}, ["1"]).values["1"][0]
    patched = node(registry, name, model=model, **SETTINGS[name])
    assert getattr(model, "cfg_function", None) is None and patched.cfg_function is not None
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 6, 5, generator=g) * 4
    cond, uncond = torch.randn(2, 4, 6, 5, generator=g), torch.randn(2, 4, 6, 5, generator=g) * 0.5 + 0.2
    args = {"cond_denoised": cond, "uncond_denoised": uncond, "x": x, "cond_scale": 7.5}
    got = patched.cfg_function(args)
    torch.testing.assert_close(got, expected(name, args, **SETTINGS[name]), rtol=1e-4, atol=1e-4)
    plain = uncond + 7.5 * (cond - uncond)
    assert (got - plain).abs().max() > 0.05  # it does change the guidance
    # cfg 1: the negative was not evaluated and counts as 0 (ComfyUI's uncond = x)
    args = {**args, "uncond_denoised": None, "cond_scale": 1.0}
    torch.testing.assert_close(patched.cfg_function(args), expected(name, args, **SETTINGS[name]), rtol=1e-4, atol=1e-4)


def test_rescale_multiplier_zero_is_plain_cfg_and_one_matches_the_positives_spread(registry, tiny):
    model = run_graph(registry, {"1": {"class_type": "CheckpointLoaderSimple",
                                       "inputs": {"ckpt_name": "tiny.safetensors"}}}, ["1"]).values["1"][0]
    g = torch.Generator().manual_seed(4)
    x, cond, uncond = (torch.randn(1, 4, 8, 8, generator=g) for _ in range(3))
    args = {"cond_denoised": cond, "uncond_denoised": uncond, "x": x, "cond_scale": 6.0}
    off = node(registry, "RescaleClassifierFreeGuidanceTest", model=model, multiplier=0.0).cfg_function(args)
    torch.testing.assert_close(off, uncond + 6.0 * (cond - uncond), rtol=1e-5, atol=1e-5)
    full = node(registry, "RescaleClassifierFreeGuidanceTest", model=model, multiplier=1.0).cfg_function(args)
    torch.testing.assert_close((x - full).std(), (x - cond).std(), rtol=1e-5, atol=1e-5)
    # tonemapped guidance: each pixel's length below top = (mean + 3 std) x multiplier, direction kept
    tonemap = node(registry, "ModelSamplerTonemapNoiseTest", model=model, multiplier=1.0).cfg_function(
        {**args, "cond_scale": 1.0})
    noise = (x - cond) - (x - uncond)
    got = (x - tonemap) - (x - uncond)
    length = noise.norm(dim=1)
    top = length.mean() + 3 * length.std()
    assert (got.norm(dim=1) < top).all()
    torch.testing.assert_close(torch.nn.functional.cosine_similarity(got, noise, dim=1), torch.ones(1, 8, 8))


def sampler_prompt(model_node="1", cfg=8.0, steps=3, extra=None):
    link = lambda n, i=0: [str(n), i]  # noqa: E731
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": link(1, 1)}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": link(1, 1)}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}},
        "9": {"class_type": "KSampler", "inputs": {"model": link(model_node), "seed": 5, "steps": steps, "cfg": cfg,
                                                   "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
                                                   "positive": link(2), "negative": link(3),
                                                   "latent_image": link(4)}},
    }
    prompt.update(extra or {})
    return prompt


def test_ksampler_runs_follow_the_formulas(registry, tiny, monkeypatch):
    """Each step's guided prediction in a KSampler run is the pack's formula of that step's
    predictions; rescale multiplier 0 samples as plain CFG; TonemapNoiseWithRescaleCFG with
    rescale 0 samples exactly as ModelSamplerTonemapNoiseTest; each changes the result."""
    import graphflow.sampling.cfg_patches as cfg_patches
    seen = []
    original = cfg_patches.with_cfg_function

    def recording(model, fn):
        def record(args):
            out = fn(args)
            seen.append((args, out))
            return out
        return original(model, record)
    monkeypatch.setattr(cfg_patches, "with_cfg_function", recording)
    patches = {"5": ("RescaleClassifierFreeGuidanceTest", {"multiplier": 0.7}),
               "6": ("RescaleClassifierFreeGuidanceTest", {"multiplier": 0.0}),
               "7": ("ModelSamplerTonemapNoiseTest", {"multiplier": 0.5}),
               "8": ("TonemapNoiseWithRescaleCFG", {"tonemap_multiplier": 0.5, "rescale_multiplier": 0.0}),
               "10": ("TonemapNoiseWithRescaleCFG", {"tonemap_multiplier": 0.8, "rescale_multiplier": 0.6})}
    samples = {"plain": run_graph(registry, sampler_prompt(), ["9"]).values["9"][0]["samples"]}
    for key, (name, settings) in patches.items():
        seen.clear()
        prompt = sampler_prompt(key, extra={key: {"class_type": name, "inputs": {"model": ["1", 0], **settings}}})
        samples[key] = run_graph(registry, prompt, ["9"]).values["9"][0]["samples"]
        assert len(seen) == 3, name
        for args, out in seen:
            torch.testing.assert_close(out, expected(name, args, **settings), rtol=1e-4, atol=1e-4)
    plain = samples["plain"]
    torch.testing.assert_close(samples["6"], plain, rtol=1e-4, atol=1e-4)
    assert torch.equal(samples["8"], samples["7"])
    for key in ("5", "7", "10"):
        assert torch.isfinite(samples[key]).all() and (samples[key] - plain).abs().max() > 1e-3, key


@pytest.mark.parametrize("name, settings, input_name", [
    ("ModelSamplerTonemapNoiseTest", {"multiplier": 0.0}, "multiplier"),
    ("TonemapNoiseWithRescaleCFG", {"tonemap_multiplier": 0.0, "rescale_multiplier": 0.5}, "tonemap_multiplier")])
def test_tonemap_multiplier_zero_is_an_error_only_when_sampled(registry, tiny, name, settings, input_name):
    """ComfyUI's CFG function is one slot: a later RescaleCFG replaces the tonemap, whose 0 then
    never divides, so that graph runs; sampled with the tonemap itself, the clear error."""
    tonemap = {"5": {"class_type": name, "inputs": {"model": ["1", 0], **settings}}}
    rescaled = {**tonemap, "6": {"class_type": "RescaleCFG", "inputs": {"model": ["5", 0], "multiplier": 0.7}}}
    out = run_graph(registry, sampler_prompt("6", extra=rescaled), ["9"]).values["9"][0]["samples"]
    assert torch.isfinite(out).all()
    result = Executor(registry).run(parse_workflow(sampler_prompt("5", extra=tonemap), registry), outputs=["9"])
    assert not result.ok and result.error["node_id"] == "9" and result.error["input"] == "model"
    assert f"{name}'s {input_name} is 0" in result.error["message"] and "divides by zero" in result.error["message"]


def test_cfg_nodes_refuse_a_model_that_is_not_one(registry):
    with pytest.raises(NodeInputError) as caught:
        node(registry, "RescaleClassifierFreeGuidanceTest", model="not a model", multiplier=0.5)
    assert caught.value.input == "model"


# -- ReferenceOnlySimple ---------------------------------------------------------------------------


def test_reference_latent_layout_and_noise_mask(registry, tiny):
    model = run_graph(registry, {"1": {"class_type": "CheckpointLoaderSimple",
                                       "inputs": {"ckpt_name": "tiny.safetensors"}}}, ["1"]).values["1"][0]
    reference = {"samples": torch.randn(1, 4, 12, 10), "noise_mask": torch.zeros(1, 96, 80), "batch_index": [3]}
    patched, latent = node(registry, "ReferenceOnlySimple", model=model, reference=reference, batch_size=3)
    assert set(latent) == {"samples", "noise_mask"}
    assert latent["samples"].shape == (4, 4, 12, 10)
    assert torch.equal(latent["samples"][0], reference["samples"][0]) and not latent["samples"][1:].any()
    mask = latent["noise_mask"]  # the pack's: 64 x 64 whatever the latent, 0 for the reference, 1 for the rest
    assert mask.shape == (4, 64, 64) and mask.dtype == torch.float32
    assert not mask[0].any() and (mask[1:] == 1).all()
    # the input MODEL's blocks are unpatched; the output's every transformer block has the patch
    from graphflow.models.unet import BasicTransformerBlock
    blocks = [m for m in model.unet.modules() if isinstance(m, BasicTransformerBlock)]
    assert blocks and all(not b.self_attention_patches for b in blocks)
    patched_blocks = [m for m in patched.unet.modules() if isinstance(m, BasicTransformerBlock)]
    assert len(patched_blocks) == len(blocks) and all(len(b.self_attention_patches) == 1 for b in patched_blocks)
    with pytest.raises(NodeInputError) as caught:
        node(registry, "ReferenceOnlySimple", model=model, reference={"samples": torch.zeros(1, 4, 2, 3, 3)},
             batch_size=1)
    assert caught.value.input == "reference"


def test_a_reference_of_several_images_cycles_the_mask_as_comfyui_and_warns(registry, tiny, caplog):
    """A reference LATENT of 2 images, batch_size 2: 4 latents, a mask of 1 + 2 entries cycled over
    them (repeat_to_batch_size), so latent i is kept where i % 3 == 0: the reference's second image
    is sampled over, the last new image stays empty; a warning says so."""
    extra = {"12": {"class_type": "VAEEncode", "inputs": {"pixels": ["13", 0], "vae": ["1", 2]}},
             "13": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 2,
                                                           "color": 3000}},
             "14": {"class_type": "ReferenceOnlySimple", "inputs": {"model": ["1", 0], "reference": ["12", 0],
                                                                     "batch_size": 2}}}
    prompt = sampler_prompt("14", extra=extra)
    prompt["9"]["inputs"]["latent_image"] = ["14", 1]
    with caplog.at_level("WARNING"):
        result = run_graph(registry, prompt, ["9"])
    assert any("reference LATENT has 2 images" in r.getMessage() and "[0, 3]" in r.getMessage()
               for r in caplog.records)
    latent, sampled = result.values["14"][1]["samples"], result.values["9"][0]["samples"]
    assert latent.shape[0] == 4 and result.values["14"][1]["noise_mask"].shape[0] == 3
    for i in range(4):
        cycled = [0, 1, 1][i % 3]  # the pack's mask entry for latent i, repeated to the batch
        if cycled == 0:
            torch.testing.assert_close(sampled[i], latent[i])
        else:
            assert (sampled[i] - latent[i]).abs().max() > 1e-2, i
    assert sampled[3].abs().max() < 1e-6  # a new image kept empty


def attention(q, k, v, heads):
    """Multi-head scaled dot-product attention, float64, written out."""
    b, n, c = q.shape
    d = c // heads
    split = lambda t: t.reshape(b, t.shape[1], heads, d).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    return (weights @ v).transpose(1, 2).reshape(b, n, c)


def test_reference_patch_is_attention_over_the_images_and_the_references_keys(registry, tiny):
    """Each image's self-attention runs over its own tokens followed by the reference's (the first
    of its group of `batch`), as the pack's patch concatenates them; the reference attends to itself."""
    model = run_graph(registry, {"1": {"class_type": "CheckpointLoaderSimple",
                                       "inputs": {"ckpt_name": "tiny.safetensors"}}}, ["1"]).values["1"][0]
    from graphflow.models.unet import BasicTransformerBlock
    block = next(m for m in model.unet.modules() if isinstance(m, BasicTransformerBlock))
    import copy
    patched = copy.copy(block)
    patched.self_attention_patches = (reference_patch(3),)
    g = torch.Generator().manual_seed(8)
    dim = block.norm1.normalized_shape[0]
    tokens = torch.randn(6, 20, dim, generator=g)  # two groups of 3 (positive, negative), 4 x 5 tokens
    got = patched._patched_self_attention(tokens, (4, 5))
    attn = block.attn1
    w = {n: getattr(attn, n).weight.double() for n in ("to_q", "to_k", "to_v")}
    out_layer = attn.to_out[0]
    t = tokens.double()
    want = []
    for i in range(6):
        first = i - i % 3
        context = t[i:i + 1] if i == first else torch.cat((t[i:i + 1], t[first:first + 1]), dim=1)
        o = attention(t[i:i + 1] @ w["to_q"].T, context @ w["to_k"].T, context @ w["to_v"].T, attn.heads)
        want.append(o @ out_layer.weight.double().T + out_layer.bias.double())
    torch.testing.assert_close(got.double(), torch.cat(want), rtol=1e-4, atol=1e-4)
    plain = block.attn1(tokens)
    torch.testing.assert_close(got[[0, 3]], plain[[0, 3]], rtol=1e-4, atol=1e-5)  # the references: unchanged
    assert (got[[1, 2, 4, 5]] - plain[[1, 2, 4, 5]]).abs().max() > 1e-3


def test_a_real_runs_unet_rows_are_whole_groups_each_starting_with_the_reference(registry, tiny, monkeypatch):
    """Recorded in a KSampler run: every UNet call runs whole groups of 1 + batch_size rows, one
    prompt per group, and the first step's input differs between two reference pictures only in
    each group's first row: the layout reference_patch(batch) assumes."""
    from graphflow.models.unet import UNet
    calls = []
    forward = UNet.forward

    def recording(self, x, timesteps, context=None, *args, **kwargs):
        calls.append((x.detach().clone(), context.detach().clone()))
        return forward(self, x, timesteps, context, *args, **kwargs)
    monkeypatch.setattr(UNet, "forward", recording)

    def run(color):
        extra = {"12": {"class_type": "VAEEncode", "inputs": {"pixels": ["13", 0], "vae": ["1", 2]}},
                 "13": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                               "color": color}},
                 "14": {"class_type": "ReferenceOnlySimple", "inputs": {"model": ["1", 0], "reference": ["12", 0],
                                                                         "batch_size": 2}}}
        prompt = sampler_prompt("14", extra=extra)
        prompt["9"]["inputs"]["latent_image"] = ["14", 1]
        calls.clear()
        run_graph(registry, prompt, ["9"])
        return list(calls)
    first, second = run(3000), run(0xFF8040)
    batch = 3
    assert len(first) == 3  # one call a step: the positive's group and the negative's together
    for x, context in first:
        assert x.shape[0] == 2 * batch
        groups = context.reshape(2, batch, *context.shape[1:])
        assert all(torch.equal(g[0], g[i]) for g in groups for i in range(batch))  # one prompt per group
        assert not torch.equal(groups[0][0], groups[1][0])
    changed = [i for i in range(2 * batch) if not torch.equal(first[0][0][i], second[0][0][i])]
    assert changed == [0, batch]


def test_reference_patch_refuses_changed_tokens_and_partial_groups():
    """Keys with another token count than the queries (a ToMe / HyperTile patch before it) and a
    batch that is not whole groups are errors naming ReferenceOnlySimple, not a raw RuntimeError
    or a silent wrong grouping."""
    patch = reference_patch(3)
    queries = torch.randn(6, 20, 8)
    _, keys, _, _ = patch(queries, queries, (4, 5))
    assert keys.shape == (6, 40, 8)
    for q, k in ((queries[:, :14], queries), (queries.reshape(24, 5, 8), queries)):  # merged, tiled queries
        with pytest.raises(NodeInputError, match="ReferenceOnlySimple's attention patch") as caught:
            patch(q, k, None)
        assert caught.value.input == "model"
    with pytest.raises(NodeInputError, match="whole groups of 3"):
        patch(queries[:5], queries[:5], (4, 5))


def test_reference_only_with_tome_before_it_or_another_latent_stops_by_name(registry, tiny):
    """Real runs: ToMe applied before ReferenceOnlySimple (merged queries, whole keys) and a
    KSampler sampling another LATENT than the node's stop with the error; ToMe after it runs."""
    reference = {"12": {"class_type": "VAEEncode", "inputs": {"pixels": ["13", 0], "vae": ["1", 2]}},
                 "13": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                               "color": 3000}}}

    def prompt(model_input, latent, extra):
        p = sampler_prompt("14", extra={**reference, **extra, "14": {
            "class_type": "ReferenceOnlySimple", "inputs": {"model": model_input, "reference": ["12", 0],
                                                            "batch_size": 2}}})
        p["9"]["inputs"]["latent_image"] = latent
        return parse_workflow(p, registry)
    tome = {"15": {"class_type": "TomePatchModel", "inputs": {"model": ["1", 0], "ratio": 0.5}}}
    for workflow in (prompt(["15", 0], ["14", 1], tome), prompt(["1", 0], ["4", 0], {})):
        result = Executor(registry).run(workflow, outputs=["9"])
        assert not result.ok and result.error["node_id"] == "9" and result.error["input"] == "model"
        assert "ReferenceOnlySimple's attention patch" in result.error["message"]
    after = sampler_prompt("16", extra={**reference, "14": {
        "class_type": "ReferenceOnlySimple", "inputs": {"model": ["1", 0], "reference": ["12", 0], "batch_size": 2}},
        "16": {"class_type": "TomePatchModel", "inputs": {"model": ["14", 0], "ratio": 0.5}}})
    after["9"]["inputs"]["latent_image"] = ["14", 1]
    assert torch.isfinite(run_graph(registry, after, ["9"]).values["9"][0]["samples"]).all()


def reference_workflow(reference_size=64, reference_node_type="ReferenceOnlySimple", batch_size=2):
    """The pack's workflows/reference_only_simple.json shape (its nodes, widgets and links), on the
    tiny checkpoint at a small size and 3 steps."""
    nodes = [
        ui_node(8, "VAEDecode", [], [("samples", "LATENT", 7, False), ("vae", "VAE", 8, False)],
                [("IMAGE", "IMAGE", [9])]),
        ui_node(6, "CLIPTextEncode", ["crude drawing of girl"], [("clip", "CLIP", 3, False)],
                [("CONDITIONING", "CONDITIONING", [4])]),
        ui_node(7, "CLIPTextEncode", ["text, watermark"], [("clip", "CLIP", 5, False)],
                [("CONDITIONING", "CONDITIONING", [6])]),
        ui_node(3, "KSampler", [719286772344905, "fixed", 3, 8, "euler", "normal", 1],
                [("model", "MODEL", 37, False), ("positive", "CONDITIONING", 4, False),
                 ("negative", "CONDITIONING", 6, False), ("latent_image", "LATENT", 34, False)],
                [("LATENT", "LATENT", [7])]),
        ui_node(9, "SaveImage", ["refer/ComfyUI"], [("images", "IMAGE", 9, False)]),
        ui_node(4, "CheckpointLoaderSimple", ["tiny.safetensors"],
                outputs=[("MODEL", "MODEL", [32]), ("CLIP", "CLIP", [3, 5]), ("VAE", "VAE", [8, 20])]),
        ui_node(14, "ImageScale", ["nearest-exact", reference_size, reference_size, "center"],
                [("image", "IMAGE", 19, False)], [("IMAGE", "IMAGE", [18])]),
        ui_node(13, "LoadImage", ["example.png", "image"], outputs=[("IMAGE", "IMAGE", [19]), ("MASK", "MASK", [])]),
        ui_node(15, reference_node_type, [batch_size],
                [("model", "MODEL", 32, False), ("reference", "LATENT", 35, False)],
                [("MODEL", "MODEL", [37]), ("LATENT", "LATENT", [34])]),
        ui_node(12, "VAEEncode", [], [("pixels", "IMAGE", 18, False), ("vae", "VAE", 20, False)],
                [("LATENT", "LATENT", [35])]),
    ]
    links = [[3, 4, 1, 6, 0, "CLIP"], [4, 6, 0, 3, 1, "CONDITIONING"], [5, 4, 1, 7, 0, "CLIP"],
             [6, 7, 0, 3, 2, "CONDITIONING"], [7, 3, 0, 8, 0, "LATENT"], [8, 4, 2, 8, 1, "VAE"],
             [9, 8, 0, 9, 0, "IMAGE"], [18, 14, 0, 12, 0, "IMAGE"], [19, 13, 0, 14, 0, "IMAGE"],
             [20, 4, 2, 12, 1, "VAE"], [32, 4, 0, 15, 0, "MODEL"], [34, 15, 1, 3, 3, "LATENT"],
             [35, 12, 0, 15, 1, "LATENT"], [37, 15, 0, 3, 0, "MODEL"]]
    return ui_graph(nodes, links)


def write_example(folders, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folders.inputs / "example.png")


def test_the_packs_example_graph_runs_and_round_trips(registry, tiny):
    write_example(tiny, 1)
    graph = reference_workflow()
    workflow = parse_workflow(graph, registry)
    assert workflow.to_json()["nodes"]["15"]["inputs"]["batch_size"] == 2
    result = run_graph(registry, graph)
    reference = result.values["12"][0]["samples"]
    latent = result.values["15"][1]
    assert latent["samples"].shape[0] == 3 and torch.equal(latent["samples"][:1], reference)
    sampled = result.values["3"][0]["samples"]
    assert sampled.shape == (3, 4, 8, 8)
    torch.testing.assert_close(sampled[:1], reference)  # mask 0: the reference is kept
    assert result.values["8"][0].shape == (3, 64, 64, 3)
    saved = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    for n in graph["nodes"]:
        assert saved[n["id"]]["type"] == n["type"]
        assert saved[n["id"]]["widgets_values"] == n["widgets_values"], n["type"]


def test_the_reference_guides_the_other_images_only_through_the_patch(registry, tiny):
    """Changing the reference picture changes the images sampled beside it; without the attention
    patch (the same latent and mask sampled by the plain model) they do not depend on it."""
    def run(seed, patched=True):
        write_example(tiny, seed)
        prompt = parse_workflow(reference_workflow(), registry).to_json()
        if not patched:  # the KSampler takes the checkpoint's own MODEL, the node's LATENT
            prompt["nodes"]["3"]["inputs"]["model"] = ["4", 0]
        return run_graph(registry, prompt, ["3"]).values["3"][0]["samples"]
    a, b = run(1), run(2)
    assert (a[0] - b[0]).abs().max() > 1e-2
    assert (a[1:] - b[1:]).abs().max() > 1e-4
    plain_a, plain_b = run(1, False), run(2, False)
    torch.testing.assert_close(plain_a[1:], plain_b[1:])
    assert (plain_a[1:] - a[1:]).abs().max() > 1e-4


def test_reference_only_validation_and_estimate(registry, tiny):
    write_example(tiny, 1)
    graph = reference_workflow(batch_size=65)
    problems = validate(parse_workflow(graph, registry), registry)
    assert [p.input for p in problems if p.node_id == "15"] == ["batch_size"]
    cls = registry.comfy_node("ReferenceOnlySimple")
    from graphflow.api import Size
    assert cls.estimate({"batch_size": 5}, {"reference": Size(2, 512, 512)}).size == Size(7, 512, 512)


# -- block merges ----------------------------------------------------------------------------------


def pack_ratio(key, ratios, default):
    """ComfyUI's ModelMergeBlocks rule: the ratio of the longest name the weight's name starts
    with, else the first ratio."""
    best = max((name for name in ratios if key.startswith(name)), key=len, default=None)
    return default if best is None else ratios[best]


@pytest.fixture(scope="module")
def sdxl_pair():
    """Two SDXL models with the real UNet's block layout (9 input blocks, transformer depths 2 / 10,
    a 10-deep middle) at a small width, built in memory: the second is the first with every
    weight perturbed (no checkpoint files: a fraction of the time)."""
    import copy

    from graphflow.models.diffusion_model import DiffusionModel
    from graphflow.models.latent_formats import SDXL
    from graphflow.models.unet import UNet
    config = dataclasses.replace(unet_config("sdxl"), model_channels=32, channel_mult=(1, 2, 4), num_res_blocks=2,
                                 transformer_depth=(0, 2, 10), transformer_depth_middle=10, num_head_channels=16)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        unet = UNet(config)
    perturbed = copy.deepcopy(unet)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for weight in perturbed.parameters():
            weight.add_(torch.randn(weight.shape, generator=g) * 0.05)
    model = DiffusionModel(unet, "sdxl", "eps", SDXL)
    return [model, model.with_unet(perturbed)]


def merged_against_rule(merged, model1, model2, ratios):
    state, w1, w2 = merged.unet.state_dict(), model1.unet.state_dict(), model2.unet.state_dict()
    default = next(iter(ratios.values()))
    seen = set()
    for key in w1:
        ratio = pack_ratio(key, ratios, default)
        seen.add(ratio)
        torch.testing.assert_close(state[key], ratio * w1[key] + (1 - ratio) * w2[key], rtol=1e-5, atol=1e-6)
    return seen


@pytest.mark.parametrize("name, kind", [("ModelMergeSDXLTransformers", "transformers"),
                                        ("ModelMergeSDXLDetailedTransformers", "detailed")])
def test_sdxl_transformer_merges_follow_the_packs_names(registry, sdxl_pair, name, kind):
    model1, model2 = sdxl_pair
    cls = registry.comfy_node(name)
    names = pack_merge_names(kind)
    rng = np.random.default_rng(len(names))
    ratios = {n: float(np.round(rng.uniform(0, 1), 2)) for n in names}
    widgets = {cls.comfy.inputs.get(n, n): r for n, r in ratios.items()}
    merged = node(registry, name, model1=model1, model2=model2, **widgets)
    seen = merged_against_rule(merged, model1, model2, ratios)
    assert len(seen) > 20
    # by hand: a transformer block's weight takes its block's (or part's) ratio, its transformer's
    # projections the ".1." ratio, the ResBlock the ".0." one
    state, w1, w2 = merged.unet.state_dict(), model1.unet.state_dict(), model2.unet.state_dict()
    block = "output_blocks.2.1.transformer_blocks.9."
    hand = {f"{block}attn2.to_k.weight": ratios[block if kind == "transformers" else block + "attn2.to_k"],
            "output_blocks.2.1.proj_in.weight": ratios["output_blocks.2.1."],
            "input_blocks.7.0.in_layers.2.weight": ratios["input_blocks.7.0."],
            "middle_block.1.transformer_blocks.3.ff.net.2.bias": ratios[
                "middle_block.1.transformer_blocks.3." if kind == "transformers" else
                "middle_block.1.transformer_blocks.3.ff.net"]}
    for key, ratio in hand.items():
        torch.testing.assert_close(state[key], ratio * w1[key] + (1 - ratio) * w2[key], rtol=1e-5, atol=1e-6)


def test_block_number_merge(registry, tiny):
    pair = []
    for seed in (0, 7):
        path = write_checkpoint(tiny.models / "checkpoints" / f"m{seed}.safetensors", "sd1", seed=seed)
        pair.append(load_checkpoint(path, device="cpu", dtype=torch.float32).model)
    cls = registry.comfy_node("ModelMergeBlockNumber")
    ratios = {n: 1.0 for n in pack_merge_names("numbers")}
    ratios.update({"time_embed.": 0.3, "input_blocks.1.": 0.0, "middle_block.1.": 0.6, "output_blocks.2.": 0.25,
                   "out.": 0.8})
    merged = node(registry, "ModelMergeBlockNumber", model1=pair[0], model2=pair[1],
                  **{cls.comfy.inputs.get(n, n): r for n, r in ratios.items()})
    assert merged_against_rule(merged, *pair, ratios) == {0.3, 0.0, 0.6, 0.25, 0.8, 1.0}


def test_merging_different_families_is_refused_by_name(registry, tiny, sdxl_pair):
    path = write_checkpoint(tiny.models / "checkpoints" / "sd1.safetensors", "sd1")
    sd1 = load_checkpoint(path, device="cpu", dtype=torch.float32).model
    with pytest.raises(NodeInputError) as caught:
        node(registry, "ModelMergeSDXLTransformers", model1=sdxl_pair[0], model2=sd1)
    assert caught.value.input == "model2"


# -- API prompts and UI saves with the pack's class names ------------------------------------------


def api_prompt():
    link = lambda n, i=0: [str(n), i]  # noqa: E731
    return sampler_prompt("14", extra={
        "5": {"class_type": "RescaleClassifierFreeGuidanceTest", "inputs": {"model": link(1), "multiplier": 0.7}},
        "6": {"class_type": "ModelSamplerTonemapNoiseTest", "inputs": {"model": link(5), "multiplier": 0.6}},
        "7": {"class_type": "TonemapNoiseWithRescaleCFG", "inputs": {"model": link(6), "tonemap_multiplier": 2.0,
                                                                      "rescale_multiplier": 0.4}},
        "11": {"class_type": "ModelMergeBlockNumber", "inputs": {
            "model1": link(7), "model2": link(1), **{n: 0.5 for n in pack_merge_names("numbers")}}},
        "12": {"class_type": "VAEEncode", "inputs": {"pixels": link(13), "vae": link(1, 2)}},
        "13": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 3000}},
        "14": {"class_type": "ReferenceOnlySimple", "inputs": {"model": link(11), "reference": link(12),
                                                                "batch_size": 2}},
    })


def test_api_prompt_with_the_packs_classes_runs_and_round_trips(registry, tiny):
    prompt = api_prompt()
    prompt["9"]["inputs"]["latent_image"] = ["14", 1]
    result = run_graph(registry, prompt, ["9"])
    out = result.values["9"][0]["samples"]
    assert out.shape == (3, 4, 8, 8) and torch.isfinite(out).all()
    model = result.values["14"][0]
    assert model.cfg_function is not None  # the last CFG patch (TonemapNoiseWithRescaleCFG) survives the merge
    api = export_api(parse_workflow(prompt, registry), registry)
    assert {k: (v["class_type"], v["inputs"]) for k, v in api.items()} == \
        {k: (v["class_type"], v["inputs"]) for k, v in prompt.items()}
    for name, kind in (("ModelMergeSDXLTransformers", "transformers"), ("ModelMergeSDXLDetailedTransformers",
                                                                         "detailed")):
        merge = {"1": prompt["1"], "2": {"class_type": name, "inputs": {
            "model1": ["1", 0], "model2": ["1", 0], **{n: 0.25 for n in pack_merge_names(kind)}}}}
        api = export_api(parse_workflow(merge, registry), registry)
        assert api["2"]["inputs"] == merge["2"]["inputs"]


def test_ui_save_of_the_cfg_and_merge_nodes_round_trips(registry, tiny):
    numbers = [round(0.02 * k, 2) for k in range(len(pack_merge_names("numbers")))]
    detailed = [0.5] * len(pack_merge_names("detailed"))
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                outputs=[("MODEL", "MODEL", [1, 2, 3, 4, 5, 6]), ("CLIP", "CLIP", []), ("VAE", "VAE", [])]),
        ui_node(2, "RescaleClassifierFreeGuidanceTest", [0.35], [("model", "MODEL", 1, False)],
                [("MODEL", "MODEL", [])]),
        ui_node(3, "ModelSamplerTonemapNoiseTest", [2.5], [("model", "MODEL", 2, False)], [("MODEL", "MODEL", [])]),
        ui_node(4, "TonemapNoiseWithRescaleCFG", [3.0, 0.2], [("model", "MODEL", 3, False)],
                [("MODEL", "MODEL", [])]),
        ui_node(5, "ModelMergeBlockNumber", numbers, [("model1", "MODEL", 4, False), ("model2", "MODEL", 5, False)],
                [("MODEL", "MODEL", [])]),
        ui_node(6, "ModelMergeSDXLDetailedTransformers", detailed,
                [("model1", "MODEL", 6, False), ("model2", "MODEL", 6, False)], [("MODEL", "MODEL", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "MODEL"], [2, 1, 0, 3, 0, "MODEL"], [3, 1, 0, 4, 0, "MODEL"], [4, 1, 0, 5, 0, "MODEL"],
             [5, 1, 0, 5, 1, "MODEL"], [6, 1, 0, 6, 0, "MODEL"]]
    graph = ui_graph(nodes, links)
    workflow = parse_workflow(graph, registry)
    inputs = workflow.to_json()["nodes"]
    assert inputs["4"]["inputs"]["tonemap_multiplier"] == 3.0 and inputs["4"]["inputs"]["rescale_multiplier"] == 0.2
    assert inputs["5"]["inputs"]["output_blocks_11"] == numbers[-2] and inputs["5"]["inputs"]["out"] == numbers[-1]
    result = run_graph(registry, graph, ["2", "3", "4", "5"])
    assert all(result.values[k][0].cfg_function is not None for k in ("2", "3", "4"))
    saved = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    for n in nodes:
        assert saved[n["id"]]["type"] == n["type"]
        assert saved[n["id"]]["widgets_values"] == n["widgets_values"], n["type"]
