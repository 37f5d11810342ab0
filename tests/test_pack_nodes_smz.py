"""ComfyUI_smZNodes (nodes/pack_nodes_smz.py): CLIP Text Encode++ and Settings (smZ).

The parser is checked against A1111's documented examples (its prompt_parser.py doctests and wiki);
the encodings against references made here from plain encodings of the tiny CLIP (the core
encoder on unweighted token windows, then A1111's formulas written out)."""

from __future__ import annotations

import pytest
import torch

from graphflow.comfy_format import custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.models.tokenizer import BOS, EOS, TokenWindows, encode_text
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_smz import parse_attention, prompt_schedule, sampler_steps, split_and
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node
from tests.test_pack_nodes_adv_clip import _clip, models  # noqa: F401  (a fixture)

DEMO = "graphflow-demo.safetensors"


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def _encode(registry, clip, text, parser="A1111", **inputs):
    return call(registry, "CLIPTextEncodePlusPlus", clip=clip, text=text, parser=parser, **inputs)


# -- the parser: A1111's documented examples ----------------------------------------------------------

def test_prompt_editing_and_alternation_follow_a1111s_examples():
    assert prompt_schedule("test", 10) == [(10, "test")]
    assert prompt_schedule("a [b:3]", 10) == [(3, "a "), (10, "a b")]
    assert prompt_schedule("a [b: 3]", 10) == [(3, "a "), (10, "a b")]
    assert prompt_schedule("a [[[b]]:2]", 10) == [(2, "a "), (10, "a [[b]]")]
    assert prompt_schedule("[(a:2):3]", 10) == [(3, ""), (10, "(a:2)")]
    assert prompt_schedule("a [b : c : 1] d", 10) == [(1, "a b  d"), (10, "a  c  d")]
    assert prompt_schedule("a[b:[c:d:2]:1]e", 10) == [(1, "abe"), (2, "ace"), (10, "ade")]
    assert prompt_schedule("a [unbalanced", 10) == [(10, "a [unbalanced")]
    assert prompt_schedule("a [b:.5] c", 10) == [(5, "a  c"), (10, "a b c")]
    assert prompt_schedule("((a][:b:c [d:3]", 10) == [(3, "((a][:b:c "), (10, "((a][:b:c d")]
    assert prompt_schedule("[a|(b:1.1)]", 10) == [(s, "a" if s % 2 else "(b:1.1)") for s in range(1, 11)]
    assert prompt_schedule("[fe|]male", 10) == [(s, "female" if s % 2 else "male") for s in range(1, 11)]
    assert prompt_schedule("[fe|||]male", 10) == [(s, "female" if s % 4 == 1 else "male") for s in range(1, 11)]
    # the wiki's example: [from:to:when] with a fraction and with a step number
    assert prompt_schedule("a [fantasy:cyberpunk:16] landscape", 100) == [
        (16, "a fantasy landscape"), (100, "a cyberpunk landscape")]
    assert prompt_schedule("a [mountain:lake:0.25]", 100) == [(25, "a mountain"), (100, "a lake")]
    assert prompt_schedule("a [mountain::0.25]", 100) == [(25, "a mountain"), (100, "a ")]
    # a "|" outside brackets: the grammar does not read the prompt, which is used as it is
    assert prompt_schedule("a | [b:2]", 10) == [(10, "a | [b:2]")]
    # one step (the pack's smZ_steps default): a fraction rounds down to step 0, so `to` shows
    assert prompt_schedule("a [b:c:0.5]", 1) == [(1, "a c")]


def test_emphasis_weights_follow_a1111s_examples():
    assert parse_attention("normal text") == [("normal text", 1.0)]
    assert parse_attention("an (important) word") == [("an ", 1.0), ("important", 1.1), (" word", 1.0)]
    assert parse_attention("(unbalanced") == [("unbalanced", 1.1)]
    assert parse_attention("\\(literal\\]") == [("(literal]", 1.0)]
    assert parse_attention("(unnecessary)(parens)") == [("unnecessaryparens", 1.1)]
    got = parse_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")
    want = [("a ", 1.0), ("house", 1.3 * 1.1 * 1.1), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.5 * 1.1),
            (", sun, ", 1.1), ("sky", 1.1 ** 4), (".", 1.1)]
    assert [t for t, _ in got] == [t for t, _ in want]
    assert [w for _, w in got] == pytest.approx([w for _, w in want])
    assert parse_attention("[[blue]]") == [("blue", pytest.approx(1 / 1.1 / 1.1))]
    assert parse_attention("a BREAK b") == [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]
    # full: leading punctuation dropped, spaces squeezed, parts of one weight joined by a space
    assert parse_attention(", a  cat (, dog) ,fish", "full") == [("a cat", 1.0), ("dog", 1.1), ("fish", 1.0)]
    # fixed attention: the text as it is, weight 1
    assert parse_attention("(a:1.5) BREAK [b]", "fixed attention") == [("(a:1.5) BREAK [b]", 1.0)]


def test_and_parts_and_their_weights():
    assert split_and("a cat :1.2 AND a dog") == [("a cat", 1.2), (" a dog", 1.0)]
    assert split_and("a cat AND a dog:0.5 AND fish") == [("a cat", 1.0), (" a dog", 0.5), (" fish", 1.0)]
    assert split_and("HANDY") == [("HANDY", 1.0)]  # AND only as a word


# -- the encodings against references from plain encodings ------------------------------------------

def _plain_chunks(clip, chunks, pad):
    """[1, 77 k, D] of chunks of token ids, unweighted, through the core encoder's windows."""
    ids = [[BOS] + c + [EOS] + [pad] * (75 - len(c)) for c in chunks]
    windows = TokenWindows(ids, [[1.0] * 77 for _ in ids])
    return clip.encode_tokens({clip.towers[0].name: windows})


def _a1111_reference(z, weights, normalize=True):
    """A1111's emphasis, written out: each 77-token chunk times its weights, then its mean put back."""
    out = []
    for k, w in enumerate(weights):
        chunk = z[:, 77 * k:77 * (k + 1)]
        scaled = chunk * torch.tensor(w)[None, :, None]
        out.append(scaled * (chunk.mean() / scaled.mean()) if normalize else scaled)
    return torch.cat(out, dim=1)


def test_a1111_parser_weights_and_mean_normalization(registry, models):
    clip = _clip(registry)
    pad = clip.towers[0].spec.pad_token
    cat, dog = encode_text("a cat"), encode_text("dog")
    z, pooled = _plain_chunks(clip, [cat + dog], pad)
    weights = [[1.0] + [1.0] * len(cat) + [1.2] * len(dog) + [1.0] * (76 - len(cat) - len(dog))]
    for normalize in (True, False):
        [(cond, options)] = _encode(registry, clip, "a cat (dog:1.2)", mean_normalization=normalize)
        assert torch.allclose(cond, _a1111_reference(z, weights, normalize), atol=1e-6)
        assert torch.equal(options["pooled_output"], pooled)
    if True:  # with the normalization the mean is the unweighted embedding's
        [(cond, _)] = _encode(registry, clip, "a cat (dog:1.2)")
        assert cond.mean().item() == pytest.approx(z.mean().item(), rel=1e-5)


def test_break_starts_a_chunk_and_long_prompts_wrap_at_a_comma(registry, models):
    clip = _clip(registry)
    pad = clip.towers[0].spec.pad_token
    [(cond, _)] = _encode(registry, clip, "a red cat BREAK a blue dog")
    z, _ = _plain_chunks(clip, [encode_text("a red cat"), encode_text("a blue dog")], pad)
    assert cond.shape[1] == 154 and torch.allclose(cond, z, atol=1e-6)
    # 70 tokens, a comma, then a 10-token phrase: the phrase moves whole to the second chunk
    head, tail = ["cat"] * 70, ["dog"] * 10
    text = " ".join(head) + ", " + " ".join(tail)
    [(cond, _)] = _encode(registry, clip, text)
    ids = encode_text(text)
    z, _ = _plain_chunks(clip, [ids[:71], ids[71:]], pad)
    assert cond.shape[1] == 154 and torch.allclose(cond, z, atol=1e-6)
    # no comma within 20 tokens of the chunk's end: cut at 75
    text = " ".join(["cat"] * 80)
    [(cond, _)] = _encode(registry, clip, text)
    ids = encode_text(text)
    z, _ = _plain_chunks(clip, [ids[:75], ids[75:]], pad)
    assert torch.allclose(cond, z, atol=1e-6)


def test_comfy_is_clip_text_encode_and_comfy_plus_plus_weights_comfys_tokens_the_a1111_way(registry, models):
    clip = _clip(registry)
    text = "a (red:1.3) cat, [blue] dog"
    [(want, want_options)] = call(registry, "CLIPEncode", clip=clip, text=text)
    [(got, options)] = _encode(registry, clip, text, parser="comfy", multi_conditioning=False)
    assert torch.equal(got, want) and torch.equal(options["pooled_output"], want_options["pooled_output"])
    windows = clip.tokenize(text)["clip_l"]
    plain = TokenWindows(windows.ids, [[1.0] * 77 for _ in windows.ids])
    z, _ = clip.encode_tokens({"clip_l": plain})
    [(got, _)] = _encode(registry, clip, text, parser="comfy++")
    assert torch.allclose(got, _a1111_reference(z, windows.weights), atol=1e-6)
    assert windows.weights[0][2] == pytest.approx(1.3)  # ComfyUI's syntax: [blue] is text, weight 1
    # comfy with multi_conditioning: one CLIP Text Encode entry per AND part
    got = _encode(registry, clip, "a cat AND a dog", parser="comfy")
    assert len(got) == 2
    assert torch.equal(got[1][0], call(registry, "CLIPEncode", clip=clip, text=" a dog")[0][0])


def test_full_and_fixed_attention(registry, models):
    clip = _clip(registry)
    pad = clip.towers[0].spec.pad_token
    [(got, _)] = _encode(registry, clip, "(a cat:1.5) BREAK dog", parser="fixed attention")
    z, _ = _plain_chunks(clip, [encode_text("(a cat:1.5) BREAK dog")], pad)
    assert torch.allclose(got, z, atol=1e-6)
    [(got, _)] = _encode(registry, clip, ",, a cat", parser="full")
    z, _ = _plain_chunks(clip, [encode_text("a cat")], pad)
    assert torch.allclose(got, z, atol=1e-6)


def test_and_makes_weighted_entries_and_editing_makes_timestep_ranges(registry, models):
    clip = _clip(registry)
    entries = _encode(registry, clip, "a cat :1.5 AND a dog")
    assert [o["strength"] for _, o in entries] == [1.5, 1.0]
    [(cat, _)] = _encode(registry, clip, "a cat", multi_conditioning=False)
    assert torch.allclose(entries[0][0], cat, atol=1e-6)
    # multi_conditioning off: AND is text and the weight too
    assert len(_encode(registry, clip, "a cat :1.5 AND a dog", multi_conditioning=False)) == 1
    entries = _encode(registry, clip, "a [cat:dog:0.25] in a box", smZ_steps=20)
    assert [o["step_range"] for _, o in entries] == [(0.0, 0.25), (0.25, 1.0)]
    [(first, _)] = _encode(registry, clip, "a cat in a box")
    [(second, _)] = _encode(registry, clip, "a dog in a box")
    assert torch.allclose(entries[0][0], first, atol=1e-6) and torch.allclose(entries[1][0], second, atol=1e-6)
    entries = _encode(registry, clip, "[cat|dog]", smZ_steps=4)
    assert [o["step_range"] for _, o in entries] == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]
    assert torch.equal(entries[0][0], entries[2][0]) and not torch.equal(entries[0][0], entries[1][0])
    # no editing: one entry, no range
    [(_, options)] = _encode(registry, clip, "a cat", smZ_steps=20)
    assert "step_range" not in options


def test_a_step_range_is_active_at_the_steps_nearest_sigma_as_the_pack_counts():
    """Each sigma counts as its nearest step i of n; the entry takes part where start <= i / n < end."""
    from graphflow.sampling.guidance import step_range_sigmas
    from graphflow.sampling.model_sampling import in_sigma_window

    falling = torch.tensor([14.6, 7.1, 3.3, 1.6, 0.7, 0.2, 0.0])
    for sigmas in (falling, falling.flip(0)):  # rising: the Unsampler's
        n = len(sigmas) - 1
        probes = torch.cat([sigmas, torch.linspace(0.01, 14.5, 97)])  # the steps and sigmas between (Heun, DPM2)
        for start, end in ((0.0, 0.5), (0.5, 1.0), (1 / 3, 2 / 3), (0.0, 1.0), (0.9, 0.95)):
            upper, lower = step_range_sigmas(sigmas, start, end)
            for sigma in probes:
                nearest = int((sigmas - sigma).abs().argmin())
                if float((sigmas - sigma).abs().sort().values[1] - (sigmas - sigma).abs().min()) < 1e-4:
                    continue  # a midpoint: either side
                # the last sigma (step n) goes with the stretch ending at 1
                want = start <= nearest / n < end or (nearest == n and end >= 1)
                assert in_sigma_window(sigma.reshape(1), upper, lower) == want, (start, end, float(sigma))


def test_a_step_range_within_a_percent_range_is_active_only_where_both_are():
    """[cat:dog:0.5] then ConditioningSetTimestepRange 0-0.3: dog (steps 5-9 of 10) is past 30%."""
    import sys

    sys.path.insert(0, "tests")
    from sampling_fakes import SD, FakeModel, context_eps

    from graphflow.sampling import prepare_conds
    from graphflow.sampling.schedules import compute_sigmas

    run = compute_sigmas(SD, "normal", 10, 1.0)
    model = FakeModel(context_eps)
    probes = torch.cat([run[:-1], torch.linspace(0.05, float(run[0]), 200)])
    dog = {"step_range": (0.5, 1.0)}
    for given in (run, None):
        alone = prepare_conds([(torch.ones(1, 77, 8), dog)], model, (1, 4, 8, 8), "cpu", sigmas=given)[0]
        assert any(alone.active(s.reshape(1)) for s in probes)  # without the percent range: late steps
        ranged = {**dog, "start_percent": 0.0, "end_percent": 0.3}
        cond = prepare_conds([(torch.ones(1, 77, 8), ranged)], model, (1, 4, 8, 8), "cpu", sigmas=given)[0]
        assert not any(cond.active(s.reshape(1)) for s in probes)


def test_prompt_editing_samples_as_two_runs_switched_at_the_step(registry, models):
    """[cat:dog:0.5] over 4 euler steps: the same latent as 2 steps with "a cat", then 2 with "a dog"
    (KSamplerAdvanced's halves of one schedule), so the switch falls at step 2 exactly."""
    model, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    latent = call(registry, "EmptyLatent", width=64, height=64)
    negative = _encode(registry, clip, "blurry")
    common = dict(model=model, negative=negative, noise_seed=7, steps=4, cfg=4.0, sampler_name="euler",
                  scheduler="karras")
    edited = _encode(registry, clip, "a [cat:dog:0.5]", smZ_steps=4)
    whole = call(registry, "KSamplerAdvanced", positive=edited, latent_image=latent, **common)["samples"]
    half = call(registry, "KSamplerAdvanced", positive=_encode(registry, clip, "a cat"), latent_image=latent,
                end_at_step=2, return_with_leftover_noise="enable", **common)
    rest = call(registry, "KSamplerAdvanced", positive=_encode(registry, clip, "a dog"), latent_image=half,
                add_noise="disable", start_at_step=2, **common)["samples"]
    assert torch.allclose(whole, rest, atol=1e-5)
    plain = call(registry, "KSamplerAdvanced", positive=_encode(registry, clip, "a dog"), latent_image=latent,
                 **common)["samples"]
    assert not torch.allclose(whole, plain, atol=1e-3)


def test_the_step_count_is_the_samplers_the_conditioning_reaches():
    workflow = {"nodes": {
        "1": {"type": "CLIPTextEncodePlusPlus", "inputs": {"text": "a [b:c:0.5]"}},
        "2": {"type": "ConditioningCombine", "inputs": {"conditioning_1": ["1", 0], "conditioning_2": ["1", 0]}},
        "3": {"type": "KSampler", "inputs": {"positive": ["2", 0], "steps": ["4", 0]}},
        "4": {"type": "PrimitiveInt", "inputs": {"value": 30}},
        "5": {"type": "CLIPTextEncodePlusPlus", "inputs": {"text": "x"}},
        "6": {"type": "SamplerCustom", "inputs": {"positive": ["5", 0], "sigmas": ["7", 0]}},
        "7": {"type": "BasicScheduler", "inputs": {"steps": 12, "denoise": 1.0}},
        "8": {"type": "CLIPTextEncodePlusPlus", "inputs": {"text": "feeds no sampler"}},
    }}
    assert sampler_steps(workflow, "1") == 30
    assert sampler_steps(workflow, "5") == 12
    assert sampler_steps(workflow, "8") is None and sampler_steps({}, "1") is None


def test_with_sdxl_matches_clip_text_encode_sdxl_and_the_refiner_gets_its_score(registry, models):
    clip = _clip(registry, "base.safetensors")
    sizes = dict(width=1024, height=768, crop_w=8, crop_h=16, target_width=896, target_height=640)
    [(want, want_options)] = call(registry, "CLIPEncodeSDXL", clip=clip, text_g="a blue sphere",
                                  text_l="a red cube", **sizes)
    [(got, options)] = _encode(registry, clip, "ignored", parser="comfy", with_SDXL=True, text_g="a blue sphere",
                               text_l="a red cube", **sizes)
    assert torch.equal(got, want) and {k: options[k] for k in sizes} == sizes
    [(got, options)] = _encode(registry, clip, "ignored", with_SDXL=True, text_g="a blue sphere",
                               text_l="a red cube", **sizes)
    assert {k: options[k] for k in sizes} == sizes
    # A1111 on SDXL: each tower its own chunks (CLIP-G pads with 0), joined along the features
    z_l, _ = clip.with_towers([clip.tower("clip_l")]).encode_tokens({"clip_l": TokenWindows(
        [[BOS] + encode_text("a red cube") + [EOS] + [clip.tower("clip_l").spec.pad_token] * 72], [[1.0] * 77])})
    g_pad = clip.tower("clip_g").spec.pad_token
    ids_g = encode_text("a blue sphere")
    z_g, pooled = clip.with_towers([clip.tower("clip_g")]).encode_tokens({"clip_g": TokenWindows(
        [[BOS] + ids_g + [EOS] + [g_pad] * (75 - len(ids_g))], [[1.0] * 77])})
    assert torch.allclose(got, torch.cat([z_l, z_g], dim=-1), atol=1e-6)
    assert torch.equal(options["pooled_output"], pooled)
    refiner = _clip(registry, "refiner.safetensors")
    [(_, options)] = _encode(registry, refiner, "a cat", with_SDXL=True, ascore=2.5, width=800, height=600)
    assert (options["aesthetic_score"], options["width"], options["height"]) == (2.5, 800, 600)
    [(want, _)] = call(registry, "CLIPEncodeSDXLRefiner", clip=refiner, text="a cat", ascore=2.5)
    [(got, options)] = _encode(registry, refiner, "a cat", parser="comfy", with_SDXL=True, ascore=2.5)
    assert torch.equal(got, want) and options["aesthetic_score"] == 2.5


def test_what_is_left_out_is_refused_by_name(registry, models):
    clip = _clip(registry)
    with pytest.raises(NodeInputError) as e:
        _encode(registry, clip, "a cat", parser="compel")
    assert e.value.input == "parser"
    with pytest.raises(NodeInputError) as e:
        _encode(registry, clip, "a cat", use_old_emphasis_implementation=True)
    assert e.value.input == "use_old_emphasis_implementation"
    with pytest.raises(NodeInputError) as e:
        _encode(registry, clip, "a cat :-1 AND a dog")
    assert e.value.input == "text"
    with pytest.raises(NodeInputError) as e:
        _encode(registry, None, "a cat")
    assert e.value.input == "clip"
    for name, value in (("RNG", "nv"), ("RNG", "gpu"), ("ENSD", 31337), ("NGMS", 2.0), ("pad_cond_uncond", True),
                        ("use_CFGDenoiser", True), ("s_churn", 1.0), ("skip_early_cond", 0.2)):
        with pytest.raises(NodeInputError) as e:
            call(registry, "SettingsSmZ", value=clip, **{name: value})
        assert e.value.input == name


def test_settings_leave_the_clip_and_put_sampler_options_on_the_model(registry, models):
    model, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    plain = call(registry, "SettingsSmZ", value=clip, enable_emphasis=False)
    [(got, _)] = _encode(registry, plain, "a (cat:1.5)")
    [(want, _)] = _encode(registry, clip, "a (cat:1.5)")
    [(unweighted, _)] = _encode(registry, clip, "a cat")
    assert torch.equal(got, want) and not torch.allclose(got, unweighted, atol=1e-4)  # a no-op, as the pack
    tuned = call(registry, "SettingsSmZ", value=model, eta=0.5, s_noise=0.9, sgm_noise_multiplier=False)
    assert tuned.options["sampler_overrides"] == {"eta": 0.5, "s_noise": 0.9}
    assert tuned.options["max_denoise"] is False and "sampler_overrides" not in getattr(model, "options", {})
    assert call(registry, "SettingsSmZ", value="text") == "text"


def test_settings_eta_reaches_an_ancestral_sampler(registry, models, monkeypatch):
    """eta 0 turns Euler ancestral into Euler (no noise added back): the same latent as euler."""
    model, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    [positive] = _encode(registry, clip, "a cat", parser="comfy")
    latent = call(registry, "EmptyLatent", width=64, height=64)

    def sample(m, sampler):
        return call(registry, "KSampler", model=m, positive=[positive], negative=[positive], latent_image=latent,
                    seed=1, steps=3, cfg=1.0, sampler_name=sampler, scheduler="normal")["samples"]

    tuned = call(registry, "SettingsSmZ", value=model, eta=0.0)
    assert torch.allclose(sample(tuned, "euler_ancestral"), sample(model, "euler"), atol=1e-5)
    assert not torch.allclose(sample(model, "euler_ancestral"), sample(model, "euler"), atol=1e-3)
    # dpm_adaptive: ComfyUI's wrapper names no eta, so the pack's settings (eta 1 by default) never
    # reach it and its own eta 0 stays
    defaults = call(registry, "SettingsSmZ", value=model)
    assert torch.equal(sample(defaults, "dpm_adaptive"), sample(model, "dpm_adaptive"))


# -- ComfyUI's formats -----------------------------------------------------------------------------------

TEXT = "a (red:1.2) circle, [square:triangle:0.5] AND a blue sky :0.8"


def test_ui_save_with_the_packs_classes_reads_runs_and_round_trips(registry):
    settings_widgets = ['{"show_headings":true,"show_descriptions":false,"mode":"*"}', "Stable Diffusion", "", 20,
                        False, "", "cpu", "Compute Settings", "", True, "Sampler parameters", "", 1.0, "", 0.0, "",
                        0.0, "", 0.0, "", 1.0, "", 0, "", 0.0, "", True, "", True, "Optimizations", "", 0.0, "",
                        False, "", False, "", True, "Compatibility", "", True, "Experimental", "", False, "", False]
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", [DEMO], outputs=[("MODEL", "MODEL", []), ("CLIP", "CLIP", [1]),
                                                              ("VAE", "VAE", [])]),
        ui_node(3, "smZ Settings", settings_widgets, inputs=[("*", "*", 1, False)], outputs=[("*", "*", [2])]),
        ui_node(2, "smZ CLIPTextEncode", [TEXT, "A1111", True, True, False, False, 6, 1024, 1024, 0, 0, 1024, 1024,
                                          "", "", 10],
                inputs=[("clip", "CLIP", 2, False)], outputs=[("CONDITIONING", "CONDITIONING", [])]),
    ]
    graph = ui_graph(nodes, [[1, 1, 1, 3, 0, "CLIP"], [2, 3, 0, 2, 0, "CLIP"]])
    result = run_graph(registry, graph, ["2"])
    entries = result.values["2"][0]
    assert [(*o.get("step_range", (None, None)), o["strength"]) for _, o in entries] == [
        (0.0, 0.5, 1.0), (0.5, 1.0, 1.0), (None, None, 0.8)]
    clip = call(registry, "LoadCheckpoint", checkpoint=DEMO)[1]
    plain = call(registry, "SettingsSmZ", value=clip, enable_emphasis=False)
    [(want, _)] = _encode(registry, plain, "a (red:1.2) circle, square", multi_conditioning=False)
    [(weighted, _)] = _encode(registry, clip, "a (red:1.2) circle, square", multi_conditioning=False)
    # enable_emphasis off changes nothing, as the pack's encoder never reads it
    assert torch.allclose(entries[0][0], weighted, atol=1e-6) and torch.allclose(want, weighted, atol=1e-6)
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    assert saved[2]["type"] == "smZ CLIPTextEncode" and saved[3]["type"] == "smZ Settings"
    assert saved[2]["widgets_values"] == nodes[2]["widgets_values"]
    assert saved[3]["widgets_values"] == settings_widgets


def test_older_saves_read_into_todays_layout(registry):
    # before smZ_steps, with use_CFGDenoiser after use_old_emphasis_implementation
    old = ["a cat", "A1111", True, True, False, False, True, 6, 1024, 1024, 0, 0, 1024, 1024, "", ""]
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", [DEMO], outputs=[("MODEL", "MODEL", []), ("CLIP", "CLIP", [1]),
                                                              ("VAE", "VAE", [])]),
        ui_node(2, "smZ CLIPTextEncode", old, inputs=[("clip", "CLIP", 1, False)],
                outputs=[("CONDITIONING", "CONDITIONING", [])]),
    ]
    workflow = parse_workflow(ui_graph(nodes, [[1, 1, 1, 2, 0, "CLIP"]]), registry)
    inputs = workflow.nodes["2"].inputs
    assert (inputs["with_SDXL"], inputs["ascore"], inputs["text_l"]) == (True, 6, "")


API_PROMPT = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": DEMO}},
    "2": {"class_type": "smZ CLIPTextEncode", "inputs": {
        "text": "a [cat:dog:0.5] in a box", "clip": ["1", 1], "parser": "A1111", "mean_normalization": True,
        "multi_conditioning": True, "use_old_emphasis_implementation": False, "with_SDXL": False, "ascore": 6.0,
        "width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024,
        "text_g": "", "text_l": "", "smZ_steps": 1}},
    "3": {"class_type": "smZ CLIPTextEncode", "inputs": {
        "text": "blurry", "clip": ["1", 1], "parser": "comfy++", "mean_normalization": False,
        "multi_conditioning": False, "use_old_emphasis_implementation": False, "with_SDXL": False, "ascore": 6.0,
        "width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024,
        "text_g": "", "text_l": ""}},
    "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "5": {"class_type": "KSampler", "inputs": {
        "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "seed": 3,
        "steps": 4, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
}


def test_api_prompt_runs_with_the_samplers_steps_and_round_trips(registry):
    result = run_graph(registry, API_PROMPT, ["2", "5"])
    entries = result.values["2"][0]
    # the sampler's 4 steps, not smZ_steps' 1: cat for steps 1-2, dog for 3-4
    assert [o["step_range"] for _, o in entries] == [(0.0, 0.5), (0.5, 1.0)]
    assert torch.isfinite(result.values["5"][0]["samples"]).all()
    api = export_api(parse_workflow(API_PROMPT, registry), registry)
    assert {k: v["class_type"] for k, v in api.items()} == {k: v["class_type"] for k, v in API_PROMPT.items()}
    assert api["2"]["inputs"] == API_PROMPT["2"]["inputs"]


def test_the_packs_classes_are_named_whole():
    for name in ("smZ CLIPTextEncode", "smZ Settings"):
        assert custom_pack(name) == "ComfyUI_smZNodes"


def test_settings_sgm_noise_multiplier_off_scales_the_starting_noise_by_sigma_alone(registry, models, monkeypatch):
    """ComfyUI's max_denoise: noise * sqrt(1 + sigma^2) at full denoise; the pack's switch off: noise * sigma."""
    from graphflow.sampling.model_sampling import DiscreteSchedule

    started = []
    original = DiscreteSchedule.noise_scaling

    def recording(self, sigma, noise, latent, max_denoise=False):
        x = original(self, sigma, noise, latent, max_denoise)
        started.append((float(sigma), noise.clone(), x))
        return x

    monkeypatch.setattr(DiscreteSchedule, "noise_scaling", recording)
    model, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    positive = _encode(registry, clip, "a cat", parser="comfy")
    latent = call(registry, "EmptyLatent", width=64, height=64)
    for m in (model, call(registry, "SettingsSmZ", value=model, sgm_noise_multiplier=False)):
        call(registry, "KSampler", model=m, positive=positive, negative=positive, latent_image=latent, seed=2, steps=2,
             cfg=1.0, sampler_name="euler", scheduler="normal")
    (sigma, noise, full), (_, _, off) = started
    assert torch.allclose(full, noise * (1 + sigma ** 2) ** 0.5, atol=1e-5)
    assert torch.allclose(off, noise * sigma, atol=1e-5)


def test_a_schedule_of_too_many_entries_is_refused(registry, models):
    clip = _clip(registry)
    assert len(_encode(registry, clip, "[cat|dog]", smZ_steps=1000)) == 1000
    with pytest.raises(NodeInputError) as e:
        _encode(registry, clip, "[cat|dog]", smZ_steps=1001)
    assert e.value.input == "text"


def test_a_rerun_with_other_sampler_steps_encodes_again(registry):
    """The encoding depends on the sampler's steps: the cache must not hand back the old schedule."""
    import copy

    from graphflow.executor import Executor

    executor = Executor(registry)
    first = executor.run(parse_workflow(API_PROMPT, registry), outputs=["2"])
    prompt = copy.deepcopy(API_PROMPT)
    prompt["5"]["inputs"]["steps"] = 5
    second = executor.run(parse_workflow(prompt, registry), outputs=["2"])
    assert first.ok and second.ok
    assert [o["step_range"] for _, o in first.values["2"][0]] == [(0.0, 0.5), (0.5, 1.0)]
    assert [o["step_range"] for _, o in second.values["2"][0]] == [(0.0, 0.4), (0.4, 1.0)]  # int(0.5 * 5) = 2
    third = executor.run(parse_workflow(prompt, registry), outputs=["2"])
    assert "2" in third.cached


def test_literal_brackets_and_backslashes_are_text(registry, models):
    clip = _clip(registry)
    pad = clip.towers[0].spec.pad_token
    [(got, _)] = _encode(registry, clip, "a \\(cat\\) \\[dog\\] \\\\ fish")
    z, _ = _plain_chunks(clip, [encode_text("a (cat) [dog] \\ fish")], pad)
    assert torch.allclose(got, z, atol=1e-6)


def test_with_sdxl_pads_the_shorter_text_with_empty_chunks(registry, models):
    clip = _clip(registry, "base.safetensors")
    long_l = " ".join(["cat"] * 80)
    [(got, _)] = _encode(registry, clip, "", with_SDXL=True, text_g="a dog", text_l=long_l, mean_normalization=False)
    assert got.shape[1] == 154
    g_pad = clip.tower("clip_g").spec.pad_token
    ids_g = encode_text("a dog")
    z_g, _ = clip.with_towers([clip.tower("clip_g")]).encode_tokens({"clip_g": TokenWindows(
        [[BOS] + ids_g + [EOS] + [g_pad] * (75 - len(ids_g)), [BOS, EOS] + [g_pad] * 75], [[1.0] * 77] * 2)})
    split = clip.tower("clip_l").hidden_size
    assert torch.allclose(got[..., split:], z_g, atol=1e-6)


def test_comfy_plus_plus_on_one_window_is_adv_clips_a1111_interpretation(registry, models):
    """The same rule in another pack: the embedding times the weights, its mean put back (over the
    whole prompt there, per 77-token window here: the same for one window)."""
    from nodes.pack_nodes_adv_clip import advanced_encode

    for name in ("tiny.safetensors", "base.safetensors"):
        clip = _clip(registry, name)
        text = "a (red:1.3) cat, (blue:0.7) dog"
        [(want, want_options)] = advanced_encode(clip, text, "none", "A1111")
        [(got, options)] = _encode(registry, clip, text, parser="comfy++")
        assert torch.allclose(got, want, atol=1e-6)
        assert torch.equal(options["pooled_output"], want_options["pooled_output"])


def test_other_parsers_need_a_clip_text_encoder(registry, tmp_path):
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_gemma2

    gemma = load_text_encoders(write_gemma2(tmp_path / "g.safetensors", dtype=torch.float32), "lumina2",
                               device="cpu", dtype=torch.float32)
    for parser in ("comfy++", "A1111", "full", "fixed attention"):
        with pytest.raises(NodeInputError) as e:
            _encode(registry, gemma, "a cat", parser=parser)
        assert e.value.input == "parser" and "CLIP text encoder" in str(e.value)


# -- review mends: hostile prompts are read in linear time or refused by name -----------------------

def _timed(f, *args):
    import time

    start = time.perf_counter()
    out = f(*args)
    assert time.perf_counter() - start < 3.0  # linear work is ~0.5 s here; the quadratic was 7-50 s
    return out


def test_unclosed_and_deep_brackets_and_long_space_runs_read_fast():
    # unclosed openers are text at once (the rest is not re-read from each of them)
    assert _timed(prompt_schedule, "[a " * 300 + "x" * 100000, 20) == [(20, "[a " * 300 + "x" * 100000)]
    assert _timed(prompt_schedule, "(" * 300 + "x" * 100000, 20) == [(20, "(" * 300 + "x" * 100000)]
    assert _timed(prompt_schedule, "[" * 10000, 20) == [(20, "[" * 10000)]
    # a nested construct that fails deep inside is tried once
    text = "(" * 90 + "x" * 100000 + "|" + ")" * 90
    assert _timed(prompt_schedule, text, 20) == [(20, text)]
    # a construct that reads is kept before an unclosed bracket after it
    assert prompt_schedule("[a:b:2] (x", 10) == [(2, "a (x"), (10, "b (x")]
    # matched editing / alternation nesting past MAX_NESTING is refused by name, not a RecursionError;
    # emphasis alone is no schedule (A1111 reads it at any depth), but a weight past float32's is refused
    for text in ("[" * 600 + "]" * 600, "[a|" * 900 + "b" + "]" * 900):
        with pytest.raises(NodeInputError) as e:
            _timed(prompt_schedule, text, 20)
        assert e.value.input == "text"
    deep = "(" * 600 + "a" + ")" * 600
    assert _timed(prompt_schedule, deep, 20) == [(20, deep)]
    assert _timed(parse_attention, deep) == [("a", pytest.approx(1.1 ** 600, rel=1e-9))]
    with pytest.raises(NodeInputError) as e:
        _timed(parse_attention, "(" * 1000 + "a" + ")" * 1000)  # 1.1 ** 1000 is past float32
    assert e.value.input == "text"
    assert prompt_schedule("(" * 100 + "a" + ")" * 100, 5) == [(5, "(" * 100 + "a" + ")" * 100)]
    # BREAK and AND weights on long space runs
    assert _timed(split_and, " " * 40000 + "x") == [(" " * 40000 + "x", 1.0)]
    assert _timed(split_and, "a" + " " * 40000 + ": 2 " + " " * 40000) == [("a", 2.0)]
    assert _timed(parse_attention, " " * 40000 + "x") == [(" " * 40000 + "x", 1.0)]
    assert parse_attention("a \n BREAK\tb BREAK") == [("a", 1.0), ("BREAK", -1.0), ("b", 1.0), ("BREAK", -1.0),
                                                        ("", 1.0)]
    assert split_and("a : 1.5 AND b:x AND c:") == [("a", 1.5), (" b:x", 1.0), (" c:", 1.0)]


@pytest.mark.parametrize("text", ["a [b:c:1e999]", "a (b:1..2)", "a (b:.)", "a :" + "9" * 400 + " AND b",
                                  "(b:" + "9" * 400 + ")"])
def test_numbers_that_do_not_read_or_are_not_finite_are_refused(registry, models, text):
    with pytest.raises(NodeInputError) as e:
        _encode(registry, _clip(registry), text, smZ_steps=10, multi_conditioning=True)
    assert e.value.input == "text"


def test_the_entry_cap_is_checked_before_the_texts_are_made_and_the_chunks_are_bounded(registry, models):
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(NodeInputError):
        prompt_schedule("[a|b] " + "x" * 20000, 10000, max_entries=1000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20_000_000  # 10,000 texts of 20 KB would be 200 MB
    clip = _clip(registry)
    tail = " ".join(["cat"] * 750)  # 10 chunks: 60 edits of it pass 500 chunks
    with pytest.raises(NodeInputError) as e:
        _encode(registry, clip, "".join(f"[x:{i}]" for i in range(1, 60)) + " " + tail, smZ_steps=60)
    assert e.value.input == "text" and "chunks" in str(e.value)
    assert len(_encode(registry, clip, tail, smZ_steps=60)) == 1  # one long text is not an edit


def test_sampler_steps_never_fails_the_run():
    workflow = {"nodes": {
        "1": {"type": "CLIPTextEncodePlusPlus", "inputs": {"text": "a [b:c:0.5]"}},
        "3": {"type": "KSampler", "inputs": {"positive": ["1", 0], "steps": ["4", "value"]}},
        "4": {"type": "IntValue", "inputs": {"value": 30, "other": 5}},
    }}
    assert sampler_steps(workflow, "1") is None  # a link by output name: smZ_steps counts
    workflow["nodes"]["3"]["inputs"]["steps"] = ["4", 1]
    assert sampler_steps(workflow, "1") == 5  # by index, the pack's way
    workflow["nodes"]["4"]["inputs"]["other"] = float("inf")
    assert sampler_steps(workflow, "1") is None
    workflow["nodes"]["4"] = "not a node"
    assert sampler_steps(workflow, "1") is None
    # a chain of 1,200 nodes between the encoder and the sampler is walked without recursion
    chain = {"0": {"type": "CLIPTextEncodePlusPlus", "inputs": {"text": "x"}}}
    for k in range(1, 1201):
        chain[str(k)] = {"type": "ConditioningSetArea", "inputs": {"conditioning": [str(k - 1), 0]}}
    chain["s"] = {"type": "KSampler", "inputs": {"positive": ["1200", 0], "steps": 17}}
    assert sampler_steps({"nodes": chain}, "0") == 17


def test_a_steps_link_by_output_name_runs_with_smz_steps(registry):
    from graphflow.executor import Executor

    workflow = {"version": 1, "nodes": {
        "1": {"type": "LoadCheckpoint", "inputs": {"checkpoint": DEMO}},
        "2": {"type": "CLIPTextEncodePlusPlus", "inputs": {"text": "a [b:c:0.5]", "clip": ["1", 1], "parser": "A1111",
                                                           "smZ_steps": 10}},
        "3": {"type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0],
                                             "latent_image": ["5", 0], "steps": ["4", "value"], "seed": 1,
                                             "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal"}},
        "4": {"type": "IntValue", "inputs": {"value": 30}},
        "5": {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64}},
    }}
    result = Executor(registry).run(parse_workflow(workflow, registry), outputs=["2"])
    assert result.ok
    assert [o["step_range"] for _, o in result.values["2"][0]] == [(0.0, 0.5), (0.5, 1.0)]


@pytest.mark.parametrize("sampler", ["KSampler", "BNK_TiledKSampler", "KSamplerProgress //Inspire"])
def test_prompt_editing_counts_the_users_steps_at_denoise_below_one(registry, sampler):
    """At denoise 0.5 a sampler runs the last 4 steps of an 8-step schedule; [circle:square:0.5]
    switches after the user's 2nd step as KSampler's does. Tiled KSampler and Inspire's KSampler
    Progress stretch the schedule themselves: counted on all 8 steps, their 4 all fell in the
    second half (the result was the plain "square" prompt's, circle never used)."""
    def encode(text):
        return {"class_type": "smZ CLIPTextEncode", "inputs": {
            **API_PROMPT["2"]["inputs"], "text": text, "smZ_steps": 1}}

    inputs = {"model": ["1", 0], "negative": ["3", 0], "latent_image": ["4", 0], "seed": 3, "steps": 4, "cfg": 5.0,
              "sampler_name": "euler", "scheduler": "normal", "denoise": 0.5}
    if sampler == "BNK_TiledKSampler":
        inputs.update(tile_width=256, tile_height=256, tiling_strategy="padded")
    if sampler == "KSamplerProgress //Inspire":
        inputs.update(noise_mode="CPU", interval=1, omit_start_latent=True, omit_final_latent=False)
    side = 256 if sampler == "BNK_TiledKSampler" else 64
    graph = {"1": API_PROMPT["1"], "3": API_PROMPT["3"],
             "4": {"class_type": "EmptyLatentImage", "inputs": {"width": side, "height": side, "batch_size": 1}}}
    for key, text in (("edited", "a red [circle:square:0.5]"), ("circle", "a red circle"), ("square", "a red square")):
        graph[f"{key}_text"] = encode(text)
        graph[key] = {"class_type": sampler, "inputs": {**inputs, "positive": [f"{key}_text", 0]}}
    result = run_graph(registry, graph, ["edited", "circle", "square"])
    got = {key: result.values[key][0]["samples"] for key in ("edited", "circle", "square")}
    assert not torch.allclose(got["edited"], got["square"], atol=1e-3)
    assert not torch.allclose(got["edited"], got["circle"], atol=1e-3)


def test_schedules_of_long_prompts_are_bounded_before_their_texts_are_made():
    """Alternations add every step once (not once per alternation); entries x prompt length is
    held to MAX_SCHEDULE_CHARS before any text is made; emphasis alone nests as deep as A1111 takes."""
    from nodes.pack_nodes_smz import MAX_SCHEDULE_CHARS

    text = "[a|b|c] [x:y:0.5] " * 6000  # 108,000 characters
    with pytest.raises(NodeInputError) as refused:
        _timed(prompt_schedule, text, 1000, 1000)
    assert refused.value.input == "text" and str(MAX_SCHEDULE_CHARS) in str(refused.value)
    with pytest.raises(NodeInputError):
        _timed(prompt_schedule, text, 10000, 1000)  # 10,000 entries: the entry cap
    short = "[a|b] c"
    assert [end for end, _ in prompt_schedule(short, 4, 1000)] == [1, 2, 3, 4]
    deep = "(" * 101 + "a" + ")" * 101
    assert prompt_schedule(deep, 20, 1000) == [(20, deep)]
    assert parse_attention(deep)[0][0] == "a"


@pytest.mark.parametrize("mean_normalization", [False, True])
def test_weights_that_overflow_the_conditioning_are_refused(mean_normalization):
    """A weight under float32's largest can still overflow the weighted embedding (1e38 times a
    value of 3) or its mean (1e37): refused naming text rather than NaN conditioning."""
    from nodes.pack_nodes_smz import emphasized

    cond = torch.randn(1, 77, 16, generator=torch.Generator().manual_seed(0)) * 3
    assert torch.isfinite(emphasized(cond, [[1.0] + [1e30] * 75 + [1.0]], mean_normalization)).all()
    with pytest.raises(NodeInputError) as refused:
        emphasized(cond, [[1.0] + [1e38] * 75 + [1.0]], mean_normalization)
    assert refused.value.input == "text" and "overflow" in str(refused.value)
