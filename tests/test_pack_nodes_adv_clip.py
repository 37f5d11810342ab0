"""ComfyUI_ADV_CLIP_emb (nodes/pack_nodes_adv_clip.py): the token normalizations against their
formulas on the token weights, each weight interpretation against the pack's rule computed here from
plain encodings (words masked by hand with "+", token 266), the SDXL node's balance, the params
nodes against CLIP Text Encode SDXL's options, a UI-format save and an API prompt under the pack's
class names, and export round trips."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from graphflow.comfy_format import custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.registry import Registry
from graphflow.testing import write_checkpoint
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_adv_clip import MAX_WINDOW_PASSES, advanced_encode, advanced_encode_sdxl, normalized_weights
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node

DEMO = "graphflow-demo.safetensors"


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


@pytest.fixture
def models(tmp_folders, written_once):
    """Model folders with copies (a test may write over its own) of the tiny checkpoints, written
    once per test file."""
    checkpoints = tmp_folders.models / "checkpoints"
    checkpoints.mkdir(exist_ok=True)
    for name, arch, seed in (("tiny", "sd1", 0), ("base", "sdxl", 0), ("refiner", "sdxl_refiner", 3)):
        written = written_once(f"{arch}-{seed}.safetensors", lambda path: write_checkpoint(path, arch, seed=seed))
        shutil.copyfile(written, checkpoints / f"{name}.safetensors")
    return tmp_folders


def _clip(registry, name="tiny.safetensors"):
    return call(registry, "LoadCheckpoint", checkpoint=name)[1]


def _encode(registry, clip, text, normalization="none", interpretation="comfy"):
    [(cond, options)] = call(registry, "CLIPTextEncodeAdvanced", clip=clip, text=text,
                             token_normalization=normalization, weight_interpretation=interpretation)
    return cond, options


def _core(registry, clip, text):
    [(cond, options)] = call(registry, "CLIPEncode", clip=clip, text=text)
    return cond, options


def test_normalizations_follow_the_packs_formulas():
    # two windows' worth of words: ids 0 (BOS / EOS / padding), 1 (3 tokens at 1.6), 2 (1 token at 0.5),
    # 3 (2 tokens at 1.0, the second in the next window)
    words = [[0, 1, 1, 1, 2, 3, 0, 0], [0, 3, 0, 0, 0, 0, 0, 0]]
    weights = [[1.0, 1.6, 1.6, 1.6, 0.5, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]
    ids, w = np.array(words), np.array(weights)
    counts = {word: int((ids == word).sum()) for word in np.unique(ids)}
    d = w - 1
    length = np.where(ids == 0, 1.0, 1 + np.sign(d) * np.sqrt(d ** 2 / np.vectorize(counts.get)(ids)))
    assert np.allclose(normalized_weights(weights, words, "length"), length)
    assert np.allclose(normalized_weights(weights, words, "none"), w)
    mean = np.where(ids == 0, w, w + 1 - w[ids != 0].mean())
    assert np.allclose(normalized_weights(weights, words, "mean"), mean)
    both = np.where(ids == 0, length, length + 1 - length[ids != 0].mean())
    assert np.allclose(normalized_weights(weights, words, "length+mean"), both)
    assert np.isclose(np.array(normalized_weights(weights, words, "length+mean"))[ids != 0].mean(), 1.0)


def test_none_comfy_is_clip_text_encode_and_normalized_comfy_its_reweighted_prompt(registry, models):
    clip = _clip(registry)
    cond, options = _encode(registry, clip, "a (red:1.2) cat")
    want, want_options = _core(registry, clip, "a (red:1.2) cat")
    assert torch.equal(cond, want) and torch.equal(options["pooled_output"], want_options["pooled_output"])
    # mean: cat at 1.5 and dog at 1 average 1.25; comfy weighting keeps the weighted prompt's pooled output
    cond, options = _encode(registry, clip, "(cat:1.5) dog", "mean")
    want, want_options = _core(registry, clip, "(cat:1.25) (dog:0.75)")
    assert torch.allclose(cond, want, atol=1e-5)
    assert torch.allclose(options["pooled_output"], want_options["pooled_output"], atol=1e-5)


def test_each_interpretation_against_masked_encodings(registry, models):
    clip = _clip(registry)
    segment = "tabby kitten"
    n = clip.tokenize(f"({segment}:0.5) dog")["clip_l"].words[0].count(1)
    assert n >= 2  # a multi-token segment: all its tokens are masked together
    mask = " ".join(["+"] * n)
    text = f"({segment}:0.5) (dog:1.5)"
    plain, plain_options = _core(registry, clip, f"{segment} dog")
    masked_segment = _core(registry, clip, f"{mask} dog")[0]
    masked_dog = _core(registry, clip, f"{segment} +")[0]
    dog = n + 1  # BOS, the segment's tokens, then dog

    # A1111: the unweighted embedding times the weights, rescaled to its mean
    weights = torch.ones(plain.shape[1])
    weights[1:dog] = 0.5
    weights[dog] = 1.5
    scaled = plain * weights[None, :, None]
    cond, options = _encode(registry, clip, text, interpretation="A1111")
    assert torch.allclose(cond, plain.mean() / scaled.mean() * scaled, atol=1e-6)
    assert torch.equal(options["pooled_output"], plain_options["pooled_output"])  # the unweighted prompt's

    # compel: the up-weights as comfy, then 0.5 of that and 0.5 of it with the segment masked
    cond, options = _encode(registry, clip, text, interpretation="compel")
    want = 0.5 * _core(registry, clip, f"{segment} (dog:1.5)")[0] + 0.5 * _core(registry, clip, f"{mask} (dog:1.5)")[0]
    assert torch.allclose(cond, want, atol=1e-5)
    assert torch.equal(options["pooled_output"], plain_options["pooled_output"])

    # comfy++: down as compel from the plain prompt; dog's tokens pushed 0.5 of the way from its masked encoding
    up = torch.zeros_like(plain)
    up[:, dog] = 0.5 * (plain - masked_dog)[:, dog]
    cond, _ = _encode(registry, clip, text, interpretation="comfy++")
    assert torch.allclose(cond, 0.5 * plain + 0.5 * masked_segment + up, atol=1e-5)

    # down_weight: weights over their top (1.5): segment 1/3, dog 1, padding 1
    cond, _ = _encode(registry, clip, text, interpretation="down_weight")
    assert torch.allclose(cond, plain / 3 + (1 - 1 / 3) * masked_segment, atol=1e-5)
    # two levels below 1 mask cumulatively: 0.25 base, 0.25 cat masked, 0.5 both masked
    cond, _ = _encode(registry, clip, "(cat:0.25) (dog:0.5)", interpretation="down_weight")
    want = 0.25 * _core(registry, clip, "cat dog")[0] + 0.25 * _core(registry, clip, "+ dog")[0] + \
        0.5 * _core(registry, clip, "+ +")[0]
    assert torch.allclose(cond, want, atol=1e-5)


def test_comfy_plus_plus_up_weights_each_word_and_the_pooled_output_is_the_plain_prompts(registry, models):
    clip = _clip(registry)
    segment = "tabby kitten"
    n = clip.tokenize(segment)["clip_l"].words[0].count(1)
    assert n >= 2  # a multi-token word: masked as one
    plain, plain_options = _core(registry, clip, f"{segment} dog cat")
    masked_segment = _core(registry, clip, " ".join(["+"] * n) + " dog cat")[0]
    masked_dog = _core(registry, clip, f"{segment} + cat")[0]
    dog = n + 1
    want = plain.clone()
    want[:, 1:dog] += 0.4 * (plain - masked_segment)[:, 1:dog]
    want[:, dog] += 0.5 * (plain - masked_dog)[:, dog]
    cond, options = _encode(registry, clip, f"({segment}:1.4) (dog:1.5) cat", interpretation="comfy++")
    assert torch.allclose(cond, want, atol=1e-5)
    assert torch.equal(options["pooled_output"], plain_options["pooled_output"])
    _, options = _encode(registry, clip, f"({segment}:0.5) (dog:1.5) cat", interpretation="down_weight")
    assert torch.equal(options["pooled_output"], plain_options["pooled_output"])


def _counting_encoder(monkeypatch):
    """Counts the 77-token windows the CLIP towers encode (the empty window of a weighted encoding
    left out)."""
    import graphflow.models.text_encoders as text_encoders

    seen = {"windows": 0}
    encode_windows = text_encoders._encode_windows

    def counting(tower, windows, *args, **kwargs):
        seen["windows"] += len(windows.ids)
        return encode_windows(tower, windows, *args, **kwargs)

    monkeypatch.setattr(text_encoders, "_encode_windows", counting)
    return seen


def test_encoder_passes_are_counted_and_a_prompt_needing_too_many_is_refused(registry, models, monkeypatch):
    clip = _clip(registry)
    seen = _counting_encoder(monkeypatch)
    from nodes.pack_nodes_adv_clip import _window_passes

    text = "(a:0.5) (b:0.25) (c:0.25) (d e:1.5) (f:1.2) g, " + ", ".join(["a red cube"] * 30)
    windows = clip.tokenize(text)["clip_l"]
    assert len(windows.ids) == 2
    for interpretation in ("A1111", "compel", "comfy++", "down_weight"):
        seen["windows"] = 0
        _encode(registry, clip, text, interpretation=interpretation)
        assert seen["windows"] == _window_passes(windows, "none", interpretation), interpretation
    assert _window_passes(windows, "none", "comfy++") == 2 * (1 + 2 + 2)  # base, 2 levels below 1, 2 words above

    # a distinct weight below 1 per word: one encoding of both windows each
    many = " ".join(f"(w{i}:{0.001 * (i + 1):.3f})" for i in range(MAX_WINDOW_PASSES // 2 + 1))
    for interpretation in ("compel", "comfy++", "down_weight"):
        seen["windows"] = 0
        with pytest.raises(NodeInputError) as caught:
            _encode(registry, clip, many, interpretation=interpretation)
        assert caught.value.input == "text" and f"at most {MAX_WINDOW_PASSES}" in str(caught.value)
        assert seen["windows"] == 0  # refused before encoding
    with pytest.raises(NodeInputError) as caught:  # words above 1: comfy++ only
        advanced_encode(clip, " ".join(f"(w{i}:1.5)" for i in range(MAX_WINDOW_PASSES)), "none", "comfy++",
                        input_name="positive")
    assert caught.value.input == "positive"
    _encode(registry, clip, " ".join(f"(w{i}:1.5)" for i in range(MAX_WINDOW_PASSES)), interpretation="compel")
    sdxl = _clip(registry, "base.safetensors")
    with pytest.raises(NodeInputError) as caught:
        unweighted = " ".join(f"w{i}" for i in range(MAX_WINDOW_PASSES // 2 + 1))  # as many windows as many
        call(registry, "CLIPTextEncodeSDXLAdvanced", clip=sdxl, text_l=unweighted, text_g=many,
             token_normalization="none", weight_interpretation="down_weight", balance=0.5)
    assert caught.value.input == "text_g"


def test_non_clip_text_encoders_are_refused_by_input(registry, tmp_path):
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_gemma2

    gemma = load_text_encoders(write_gemma2(tmp_path / "g.safetensors", dtype=torch.float32), "lumina2",
                               device="cpu", dtype=torch.float32)
    assert hasattr(gemma, "tokenize") and hasattr(gemma, "with_towers")  # what let it through before
    for normalization, interpretation, name in (("none", "A1111", "weight_interpretation"),
                                                ("mean", "comfy", "token_normalization")):
        with pytest.raises(NodeInputError) as caught:
            _encode(registry, gemma, "a (red:0.5) cube", normalization, interpretation)
        assert caught.value.input == name and "CLIP text encoder" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:
        advanced_encode_sdxl(gemma, "a", "b", "none", "comfy", 0.5)
    assert caught.value.input == "clip"


def test_sdxl_node_balance_and_towers(registry, models):
    clip = _clip(registry, "base.safetensors")
    split = clip.tower("clip_l").hidden_size

    def node(balance=0.5, interpretation="comfy", text_l="a (red:1.3) cube", text_g="a blue sphere"):
        [(cond, options)] = call(registry, "CLIPTextEncodeSDXLAdvanced", clip=clip, text_l=text_l, text_g=text_g,
                                 token_normalization="none", weight_interpretation=interpretation, balance=balance)
        return cond, options

    cond, options = node()
    [(want, want_options)] = call(registry, "CLIPEncodeSDXL", clip=clip, text_l="a (red:1.3) cube",
                                  text_g="a blue sphere")
    assert torch.allclose(cond, want, atol=1e-6)
    assert torch.equal(options["pooled_output"], want_options["pooled_output"])  # CLIP-G's
    for interpretation in ("comfy", "A1111"):
        middle, _ = node(0.5, interpretation)
        for balance in (0.0, 0.2, 0.8, 1.0):
            l_factor = 1 - max(0, balance - 0.5) * 2
            g_factor = 1 - max(0, 0.5 - balance) * 2
            got, _ = node(balance, interpretation)
            assert torch.allclose(got[..., :split], l_factor * middle[..., :split], atol=1e-6)
            assert torch.allclose(got[..., split:], g_factor * middle[..., split:], atol=1e-6)
    # each tower weighted on its own: A1111 on CLIP-L is the L half of the single-text node's A1111
    single, _ = _encode(registry, clip, "a (red:1.3) cube", interpretation="A1111")
    got, _ = node(0.5, "A1111", text_g="a (red:1.3) cube")
    assert torch.allclose(got, single, atol=1e-6)
    # the masking interpretations per tower: each half is the single-text node's on that text
    text_l, text_g = "a (red:0.5) cube (big:1.4)", "a (blue:0.25) sphere (small:1.5)"
    for interpretation in ("compel", "comfy++", "down_weight"):
        got, options = node(0.5, interpretation, text_l=text_l, text_g=text_g)
        want_l, _ = _encode(registry, clip, text_l, interpretation=interpretation)
        want_g, want_options = _encode(registry, clip, text_g, interpretation=interpretation)
        assert torch.allclose(got[..., :split], want_l[..., :split], atol=1e-6), interpretation
        assert torch.allclose(got[..., split:], want_g[..., split:], atol=1e-6), interpretation
        assert torch.equal(options["pooled_output"], want_options["pooled_output"])  # CLIP-G's, of text_g

    long_text = ", ".join(["a red cube"] * 40)
    with pytest.raises(NodeInputError) as caught:
        node(text_l=long_text)
    assert caught.value.input == "text_l" and "77-token windows" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CLIPTextEncodeSDXLAdvanced", clip=_clip(registry, "refiner.safetensors"), text_l="a",
             text_g="b")
    assert caught.value.input == "clip" and "CLIP-L and CLIP-G" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:  # a linked value: not checked before the run
        advanced_encode_sdxl(clip, "a", "b", "none", "comfy+++", 0.5)
    assert caught.value.input == "weight_interpretation" and "'comfy+++'" in str(caught.value)


def test_sdxl_node_tokenizes_each_text_for_its_own_tower_only(registry, models, caplog):
    clip = _clip(registry, "base.safetensors")
    with caplog.at_level("WARNING"):
        call(registry, "CLIPTextEncodeSDXLAdvanced", clip=clip, text_l="embedding:no_such_l a cube",
             text_g="embedding:no_such_g a sphere", token_normalization="none", weight_interpretation="A1111",
             balance=0.5)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("embedding:no_such_l does not exist" in m for m in messages) == 1  # CLIP-L's text, once
    assert sum("embedding:no_such_g does not exist" in m for m in messages) == 1


def test_params_nodes_set_what_clip_text_encode_sdxl_and_refiner_set(registry, models):
    clip = _clip(registry, "base.safetensors")
    sizes = dict(width=832, height=1216, crop_w=16, crop_h=32, target_width=1024, target_height=1536)
    [(_, want)] = call(registry, "CLIPEncodeSDXL", clip=clip, text_l="a cube", text_g="a cube", **sizes)
    plain = call(registry, "CLIPEncodeSDXL", clip=clip, text_l="a cube", text_g="a cube")
    [(_, got)] = call(registry, "AddCLIPSDXLParams", conditioning=plain, **sizes)
    assert got.keys() == want.keys() and torch.equal(got["pooled_output"], want["pooled_output"])
    assert {k: got[k] for k in sizes} == {k: want[k] for k in sizes}
    assert plain[0][1]["width"] == 1024  # the input is not changed

    refiner = _clip(registry, "refiner.safetensors")
    [(_, want)] = call(registry, "CLIPEncodeSDXLRefiner", clip=refiner, text="a cube", ascore=2.5, width=640,
                       height=768)
    encoded = call(registry, "CLIPTextEncodeAdvanced", clip=refiner, text="a cube")
    [(_, got)] = call(registry, "AddCLIPSDXLRParams", conditioning=encoded, ascore=2.5, width=640, height=768)
    assert got.keys() == want.keys() and torch.equal(got["pooled_output"], want["pooled_output"])
    assert (got["aesthetic_score"], got["width"], got["height"]) == (2.5, 640, 768)


def test_ui_save_with_the_packs_class_reads_runs_and_round_trips(registry):
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", [DEMO], outputs=[("MODEL", "MODEL", []), ("CLIP", "CLIP", [1]),
                                                              ("VAE", "VAE", [])]),
        ui_node(2, "BNK_CLIPTextEncodeAdvanced", ["a (red:1.2) circle, [blue] square", "length+mean", "comfy++"],
                inputs=[("clip", "CLIP", 1, False)], outputs=[("CONDITIONING", "CONDITIONING", [])]),
    ]
    graph = ui_graph(nodes, [[1, 1, 1, 2, 0, "CLIP"]])
    result = run_graph(registry, graph, ["2"])
    clip = call(registry, "LoadCheckpoint", checkpoint=DEMO)[1]
    [(want, _)] = call(registry, "CLIPTextEncodeAdvanced", clip=clip, text="a (red:1.2) circle, [blue] square",
                       token_normalization="length+mean", weight_interpretation="comfy++")
    assert torch.equal(result.values["2"][0][0][0], want)
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert saved[2]["type"] == "BNK_CLIPTextEncodeAdvanced"
    assert saved[2]["widgets_values"] == ["a (red:1.2) circle, [blue] square", "length+mean", "comfy++"]


API_PROMPT = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "base.safetensors"}},
    "2": {"class_type": "BNK_CLIPTextEncodeSDXLAdvanced", "inputs": {
        "text_l": "a (red:1.2) cube", "text_g": "a (blue:0.8) sphere", "clip": ["1", 1], "token_normalization": "mean",
        "weight_interpretation": "A1111", "balance": 0.2}},
    "3": {"class_type": "BNK_AddCLIPSDXLParams", "inputs": {
        "conditioning": ["2", 0], "width": 1024, "height": 768, "crop_w": 0, "crop_h": 0, "target_width": 1024,
        "target_height": 768}},
    "4": {"class_type": "BNK_CLIPTextEncodeAdvanced", "inputs": {
        "text": "blurry", "clip": ["1", 1], "token_normalization": "none", "weight_interpretation": "down_weight"}},
    "5": {"class_type": "BNK_AddCLIPSDXLRParams", "inputs": {
        "conditioning": ["4", 0], "width": 1024, "height": 768, "ascore": 2.5}},
    "6": {"class_type": "BNK_MixCLIPEmbeddings", "inputs": {"cond1": ["4", 0], "cond2": ["5", 0], "mix": 0.25}},
}


def test_api_prompt_with_the_packs_classes_runs_and_round_trips(registry, models):
    result = run_graph(registry, API_PROMPT, ["3", "5", "6"])
    clip = _clip(registry, "base.safetensors")
    [(want, _)] = call(registry, "CLIPTextEncodeSDXLAdvanced", clip=clip, text_l="a (red:1.2) cube",
                       text_g="a (blue:0.8) sphere", token_normalization="mean", weight_interpretation="A1111",
                       balance=0.2)
    [(cond, options)] = result.values["3"][0]
    assert torch.equal(cond, want) and (options["width"], options["height"], options["target_height"]) == \
        (1024, 768, 768)
    assert result.values["5"][0][0][1]["aesthetic_score"] == 2.5
    assert torch.allclose(result.values["6"][0][0][0], result.values["5"][0][0][0], atol=1e-6)  # one embedding mixed
    api = export_api(parse_workflow(API_PROMPT, registry), registry)
    assert {k: v["class_type"] for k, v in api.items()} == {k: v["class_type"] for k, v in API_PROMPT.items()}
    for node_id, entry in API_PROMPT.items():
        assert api[node_id]["inputs"] == entry["inputs"], node_id


def test_the_packs_classes_are_named_whole():
    for name in ("BNK_CLIPTextEncodeAdvanced", "BNK_AddCLIPSDXLRParams", "BNK_MixCLIPEmbeddings"):
        assert custom_pack(name) == "ComfyUI_ADV_CLIP_emb"
    for other in ("BNK_TiledKSampler", "BNK_NoisyLatentImage", "BNK_CutoffBasePrompt"):
        assert custom_pack(other) != "ComfyUI_ADV_CLIP_emb"


def test_mix_clip_embeddings_blends_entry_by_entry(registry, models):
    clip = _clip(registry)
    first = call(registry, "CLIPEncode", clip=clip, text="a cat")
    second = call(registry, "CLIPEncode", clip=clip, text="a dog")
    [(got, options)] = call(registry, "MixCLIPEmbeddings", cond1=first, cond2=second, mix=0.3)
    assert torch.allclose(got, 0.7 * first[0][0] + 0.3 * second[0][0], atol=1e-6)
    assert torch.equal(options["pooled_output"], first[0][1]["pooled_output"])  # cond1's options
    longer = call(registry, "CLIPEncode", clip=clip, text=", ".join(["a dog"] * 40))
    [(kept, _)] = call(registry, "MixCLIPEmbeddings", cond1=first, cond2=longer, mix=0.3)
    assert torch.equal(kept, first[0][0])  # shapes differ: cond1's, as the pack


def test_sdxl_ui_save_reads_widgets_in_the_packs_order(registry, models):
    widgets = ["a (red:1.2) cube", "a blue sphere", "length", "compel", 0.7]
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["base.safetensors"],
                outputs=[("MODEL", "MODEL", []), ("CLIP", "CLIP", [1]), ("VAE", "VAE", [])]),
        ui_node(2, "BNK_CLIPTextEncodeSDXLAdvanced", widgets, inputs=[("clip", "CLIP", 1, False)],
                outputs=[("CONDITIONING", "CONDITIONING", [2])]),
        ui_node(3, "BNK_AddCLIPSDXLParams", [896, 1152, 0, 0, 1024, 1024],
                inputs=[("conditioning", "CONDITIONING", 2, False)], outputs=[("CONDITIONING", "CONDITIONING", [])]),
    ]
    graph = ui_graph(nodes, [[1, 1, 1, 2, 0, "CLIP"], [2, 2, 0, 3, 0, "CONDITIONING"]])
    result = run_graph(registry, graph, ["3"])
    [(want, _)] = call(registry, "CLIPTextEncodeSDXLAdvanced", clip=_clip(registry, "base.safetensors"),
                       text_l=widgets[0], text_g=widgets[1], token_normalization="length",
                       weight_interpretation="compel", balance=0.7)
    [(cond, options)] = result.values["3"][0]
    assert torch.equal(cond, want) and (options["width"], options["height"]) == (896, 1152)
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert saved[2]["widgets_values"] == widgets
    assert saved[3]["widgets_values"] == [896, 1152, 0, 0, 1024, 1024]
