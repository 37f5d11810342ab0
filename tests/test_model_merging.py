"""ModelMerge* / CLIPMerge*: merged weights against hand arithmetic on the files' state dicts; the
inputs stay untouched (the cache may hold them)."""

import pytest
import torch
from safetensors.torch import load_file
from test_nodes_image_mask import call

from graphflow.context import NodeInputError
from graphflow.models.checkpoint import load_checkpoint
from graphflow.testing import write_checkpoint

UNET = "model.diffusion_model."


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("merge")
    paths = [write_checkpoint(folder / f"m{seed}.safetensors", "sd1", seed=seed) for seed in (0, 7)]
    loaded = [load_checkpoint(p, device="cpu", dtype=torch.float32) for p in paths]
    files = [{k[len(UNET):]: v.float() for k, v in load_file(str(p)).items() if k.startswith(UNET)} for p in paths]
    return loaded, files


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_unchanged(module, before):
    after = module.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())


@pytest.mark.parametrize("node, widgets, expected", [
    ("ModelMergeSimple", {"ratio": 0.3}, lambda a, b: 0.3 * a + 0.7 * b),
    ("ModelMergeAdd", {}, lambda a, b: a + b),
    ("ModelMergeSubtract", {"multiplier": 2.5}, lambda a, b: 2.5 * (a - b)),
])
def test_model_merges_match_hand_arithmetic(builtin_registry, pair, node, widgets, expected):
    (c1, c2), (w1, w2) = pair
    before1, before2 = snapshot(c1.model.unet), snapshot(c2.model.unet)
    merged = call(builtin_registry, node, model1=c1.model, model2=c2.model, **widgets)
    state = merged.unet.state_dict()
    assert set(state) == set(w1)
    for key in w1:
        torch.testing.assert_close(state[key], expected(w1[key], w2[key]), rtol=1e-5, atol=1e-6)
    assert merged is not c1.model and merged.arch == "sd1"
    assert_unchanged(c1.model.unet, before1)
    assert_unchanged(c2.model.unet, before2)


def test_ratio_one_keeps_model1_sharing_its_tensors(builtin_registry, pair):
    (c1, c2), _ = pair
    merged = call(builtin_registry, "ModelMergeSimple", model1=c1.model, model2=c2.model, ratio=1.0)
    for (name, p), (_, q) in zip(merged.unet.named_parameters(), c1.model.unet.named_parameters()):
        assert p is q, name


def test_block_merges_pick_the_ratio_by_block(builtin_registry, pair):
    (c1, c2), (w1, w2) = pair
    merged = call(builtin_registry, "ModelMergeBlocks", model1=c1.model, model2=c2.model, input=0.2, middle=0.5,
                  out=0.9)
    state = merged.unet.state_dict()
    seen = set()
    for key in w1:
        ratio = 0.5 if key.startswith("middle") else 0.9 if key.startswith("out") else 0.2  # time_embed: input's
        seen.add(ratio)
        torch.testing.assert_close(state[key], ratio * w1[key] + (1 - ratio) * w2[key], rtol=1e-5, atol=1e-6)
    assert seen == {0.2, 0.5, 0.9}
    sd1 = call(builtin_registry, "ModelMergeSD1", model1=c1.model, model2=c2.model, input_blocks_1=0.0,
               output_blocks_0=0.25)
    state = sd1.unet.state_dict()
    for key in w1:
        ratio = 0.0 if key.startswith("input_blocks.1.") else 0.25 if key.startswith("output_blocks.0.") else 1.0
        torch.testing.assert_close(state[key], ratio * w1[key] + (1 - ratio) * w2[key], rtol=1e-5, atol=1e-6)


def test_sdxl_block_node_takes_comfyui_input_names(builtin_registry):
    from graphflow.workflow import import_comfy

    graph = {"1": {"class_type": "ModelMergeSDXL", "inputs": {"model1": ["2", 0], "model2": ["2", 0],
                                                              "time_embed.": 0.1, "input_blocks.4": 0.4, "out.": 0.9}}}
    entry = import_comfy(graph, builtin_registry).nodes["1"]
    assert entry.type == "ModelMergeSDXL"
    assert entry.inputs == {"model1": ["2", 0], "model2": ["2", 0], "time_embed": 0.1, "input_blocks_4": 0.4,
                            "out": 0.9}
    order = list(builtin_registry.get("ModelMergeSDXL").input_specs)
    assert order[:4] == ["model1", "model2", "time_embed", "label_emb"] and order[-1] == "out"
    assert len(order) == 2 + 2 + 9 + 3 + 9 + 1


@pytest.mark.parametrize("node, widgets, expected", [
    ("CLIPMergeSimple", {"ratio": 0.75}, lambda a, b: 0.75 * a + 0.25 * b),
    ("CLIPMergeAdd", {}, lambda a, b: a + b),
    ("CLIPMergeSubtract", {"multiplier": -1.0}, lambda a, b: -(a - b)),
])
def test_clip_merges(builtin_registry, pair, node, widgets, expected):
    (c1, c2), _ = pair
    t1, t2 = c1.clip.towers[0].model, c2.clip.towers[0].model
    before1 = snapshot(t1)
    merged = call(builtin_registry, node, clip1=c1.clip, clip2=c2.clip, **widgets)
    p1, p2 = dict(t1.named_parameters()), dict(t2.named_parameters())
    for name, p in merged.towers[0].model.named_parameters():
        torch.testing.assert_close(p, expected(p1[name], p2[name]), rtol=1e-5, atol=1e-6)
    assert_unchanged(t1, before1)
    assert merged.arch == "sd1" and merged.clip_skip == c1.clip.clip_skip
    merged.encode("a red circle")  # still a working text encoder


def test_different_architectures_are_refused(builtin_registry, pair, tmp_path):
    (c1, _), _ = pair
    other = load_checkpoint(write_checkpoint(tmp_path / "xl.safetensors", "sdxl"), device="cpu", dtype=torch.float32)
    with pytest.raises(NodeInputError, match="sd1.*sdxl") as e:
        call(builtin_registry, "ModelMergeSimple", model1=c1.model, model2=other.model, ratio=0.5)
    assert e.value.input == "model2"
    # CLIPs merge by encoder name, as ComfyUI's key patches do: see test_parity_core2's cross-family merge


def _ratio_by_block(name: str, ratios: dict[str, float]) -> float:
    """The expected ratio, by the block a parameter name belongs to (its first one or two parts);
    blocks not given keep the default 1.0; SD3's bare `pos_embed` parameter, under no input's
    prefix, takes the first input's ratio (ComfyUI's rule)."""
    parts = name.split(".")
    if len(parts) == 1:
        return next(iter(ratios.values()))
    block = ".".join(parts[:2]) + "." if parts[0].endswith("_blocks") else parts[0] + "."
    return ratios.get(block, ratios.get(parts[0], 1.0))


@pytest.mark.parametrize("family, node, ratios", [
    ("flux_dev", "ModelMergeFlux1", {"img_in.": 0.2, "guidance_in": 0.6, "txt_in.": 0.0, "double_blocks.0.": 0.3,
                                     "single_blocks.1.": 0.7, "final_layer.": 0.9}),
    ("sd3_medium", "ModelMergeSD3_2B", {"pos_embed.": 0.15, "x_embedder.": 0.5, "joint_blocks.1.": 0.25,
                                        "final_layer.": 0.8}),
    ("sd35_large", "ModelMergeSD35_Large", {"pos_embed.": 0.4, "y_embedder.": 0.1, "joint_blocks.0.": 0.65,
                                            "context_embedder.": 0.35}),
])
def test_flow_block_merges_follow_the_closed_form_per_block(builtin_registry, tmp_path, family, node, ratios):
    from graphflow.testing import write_flow_checkpoint

    paths = [write_flow_checkpoint(tmp_path / f"{family}{s}.safetensors", family, seed=s, components=("model",))
             for s in (0, 5)]
    m1, m2 = (load_checkpoint(p, device="cpu", dtype=torch.float32).model for p in paths)
    files = [{k[len(UNET):]: v.float() for k, v in load_file(str(p)).items()} for p in paths]
    before = snapshot(m1.unet)
    widgets = {prefix.rstrip(".").replace(".", "_"): value for prefix, value in ratios.items()}
    merged = call(builtin_registry, node, model1=m1, model2=m2, **widgets)
    state = merged.unet.state_dict()
    seen = set()
    for name, a in files[0].items():
        r = _ratio_by_block(name, ratios)
        seen.add(r)
        torch.testing.assert_close(state[name], r * a + (1 - r) * files[1][name], msg=name)
    assert len(seen) == len(set(ratios.values()) | {1.0})  # every ratio given reached some block
    assert_unchanged(m1.unet, before)
    entry = builtin_registry.get(node)
    with pytest.raises(NodeInputError) as e:
        sd1 = load_checkpoint(write_checkpoint(tmp_path / "sd1.safetensors", "sd1"), device="cpu").model
        call(builtin_registry, node, model1=sd1, model2=sd1)
    assert e.value.input == "model1" and "sd1" in str(e.value)
    assert list(entry.input_specs)[:2] == ["model1", "model2"]


@pytest.mark.parametrize("node, widgets, expected", [
    ("CLIPMergeSimple", {"ratio": 0.25}, lambda a, b: 0.25 * a + 0.75 * b),
    ("CLIPMergeSubtract", {"multiplier": 2.0}, lambda a, b: 2.0 * (a - b)),
])
def test_clip_merges_take_t5_too(builtin_registry, tmp_path, node, widgets, expected):
    """ComfyUI merges every weight of the two CLIPs, FLUX's T5-XXL as well as CLIP-L; T5's tied
    token embedding (encoder.embed_tokens is `shared`) is the merged one."""
    from graphflow.testing import write_flow_checkpoint

    c1, c2 = (load_checkpoint(write_flow_checkpoint(tmp_path / f"f{s}.safetensors", "flux_dev", seed=s),
                              device="cpu", dtype=torch.float32).clip for s in (0, 5))
    before = snapshot(c1.t5.model)
    merged = call(builtin_registry, node, clip1=c1, clip2=c2, **widgets)
    t5, p1, p2 = merged.t5.model, dict(c1.t5.model.named_parameters()), dict(c2.t5.model.named_parameters())
    assert t5.encoder.embed_tokens is t5.shared
    for name, p in t5.named_parameters():
        torch.testing.assert_close(p, expected(p1[name], p2[name]), rtol=1e-5, atol=1e-6, msg=name)
    assert_unchanged(c1.t5.model, before)
    assert c1.t5.model.encoder.embed_tokens is c1.t5.model.shared
    l1, lm = c1.towers[0].model.state_dict(), merged.towers[0].model.state_dict()
    assert not torch.equal(l1["text_model.final_layer_norm.weight"], lm["text_model.final_layer_norm.weight"])
    assert not torch.equal(c1.encode_flux("a red circle", "a red circle")[0],
                           merged.encode_flux("a red circle", "a red circle")[0])


def test_layers_of_different_sizes_keep_model1_times_its_factor(builtin_registry, pair, tmp_path):
    """ComfyUI's merge patch scales model1's weight by its factor and adds model2's only when the
    shapes agree: the inpainting recipe Add(inpaint, Subtract(custom, base)) keeps the inpainting
    model's 9-channel conv_in and moves every other weight by custom - base."""
    (c1, c2), (w1, w2) = pair
    inpaint = load_checkpoint(write_checkpoint(tmp_path / "inpaint.safetensors", "sd1_inpaint", seed=3),
                              device="cpu", dtype=torch.float32).model
    wi = {k: v.float() for k, v in inpaint.unet.state_dict().items()}
    conv_in = "input_blocks.0.0.weight"
    assert wi[conv_in].shape[1] == 9 and w1[conv_in].shape[1] == 4
    diff = call(builtin_registry, "ModelMergeSubtract", model1=c1.model, model2=c2.model, multiplier=1.0)
    merged = call(builtin_registry, "ModelMergeAdd", model1=inpaint, model2=diff).unet.state_dict()
    for name, w in wi.items():
        expected = w if name == conv_in else w + (w1[name] - w2[name])
        torch.testing.assert_close(merged[name], expected, rtol=1e-5, atol=1e-5, msg=name)
    simple = call(builtin_registry, "ModelMergeSimple", model1=inpaint, model2=c1.model, ratio=0.3).unet.state_dict()
    torch.testing.assert_close(simple[conv_in], 0.3 * wi[conv_in])
    torch.testing.assert_close(simple["out.2.weight"], 0.3 * wi["out.2.weight"] + 0.7 * w1["out.2.weight"])


def test_clip_merge_of_lumina2s_gemma(builtin_registry, tmp_path):
    """Lumina 2's CLIP is one Gemma-2 network; ComfyUI merges its weights like any CLIP's."""
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_gemma2

    g1, g2 = (load_text_encoders(write_gemma2(tmp_path / f"g{s}.safetensors", seed=s, dtype=torch.float32), "lumina2",
                                 device="cpu", dtype=torch.float32) for s in (0, 4))
    merged = call(builtin_registry, "CLIPMergeSimple", clip1=g1, clip2=g2, ratio=0.25)
    p1, p2 = dict(g1.model.named_parameters()), dict(g2.model.named_parameters())
    for name, p in merged.model.named_parameters():
        torch.testing.assert_close(p, 0.25 * p1[name] + 0.75 * p2[name], msg=name)
    assert not torch.equal(merged.encode("a fox")[0], g1.encode("a fox")[0])
