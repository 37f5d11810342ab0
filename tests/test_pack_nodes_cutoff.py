"""ComfyUI_Cutoff (nodes/pack_nodes_cutoff.py): the region and target masks against the pack's rule
computed here with numpy on the tokenizer's ids (its get_sublists / unpad / reshape-and-pad steps),
the conditioning against the pack's mixing formula applied here to encodings of the masked prompts
written out as text (mask token "+") or as token windows (the default, token 266), the (ADV) node
against CLIP Text Encode (Advanced) of the masked prompts, SDXL's two towers, the errors by input
name, a UI-format save and an API prompt under the pack's class names feeding a KSampler, and
export round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphflow.comfy_format import custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.models.tokenizer import EOS, TokenWindows, encode_text
from graphflow.registry import Registry
from graphflow.testing import write_checkpoint
from graphflow.workflow import parse_workflow
from nodes import pack_nodes_cutoff
from nodes.pack_nodes_adv_clip import advanced_encode
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node
from tests.test_pack_nodes_adv_clip import _clip, models  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def _regions(registry, clip, text, *regions):
    """Cutoff Base Prompt, then a Cutoff Set Regions node for each (region_text, target_text, weight)."""
    out = call(registry, "CutoffBasePrompt", text=text, clip=clip)
    for region_text, target_text, weight in regions:
        out = call(registry, "CutoffSetRegions", clip_regions=out, region_text=region_text, target_text=target_text,
                   weight=weight)
    return out


# -- the pack's mask rule, with numpy as its cutoff.py computes it --------------------------------


def _pack_tokens(clip, text, tower="clip_l"):
    """tokenize_with_weights' ids as the pack flattens them: each window without its first and last."""
    return np.array(clip.tokenize(text)[tower].ids)[:, 1:-1].reshape(-1)


def _pack_unpad(tokens):
    """The later pack's unpad_prompt: trailing zero padding (OpenCLIP's), then trailing end tokens."""
    return (np.trim_zeros(np.trim_zeros(tokens, "b") - EOS, "b") + EOS).tolist()


def _pack_sublists(tokens, part):
    return [i for i, t in enumerate(tokens) if t == part[0] and list(tokens[i:i + len(part)]) == part]


def _pack_masks(clip, prompt, region_text, target_text, tower="clip_l"):
    """[(region mask, target mask)] for each line of region_text, flat over the prompt's windows."""
    import re

    tokens = _pack_tokens(clip, prompt, tower)
    out = []
    for line in region_text.strip().split("\n"):
        region = _pack_unpad(_pack_tokens(clip, line, tower))
        starts = _pack_sublists(list(tokens), region)
        region_mask = np.zeros(len(tokens))
        for r in starts:
            region_mask[r:r + len(region)] = 1
        spans = []
        for target in target_text.strip().split(" "):
            target = re.sub(r"\\_", "_", re.sub(r"(?<!\\)_", " ", target))
            ids = _pack_unpad(_pack_tokens(clip, target, tower))
            spans += [(x, len(ids)) for x in _pack_sublists(region, ids)]
        target_mask = np.zeros(len(tokens))
        for r in starts:
            for start, size in spans:
                target_mask[start + r:start + r + size] = 1
        pad = lambda m: np.pad(m.reshape(-1, 75), ((0, 0), (1, 1))).reshape(-1)  # noqa: E731
        out.append((pad(region_mask), pad(target_mask)))
    return out


MASK_CASES = [
    # a region each, targets inside
    ("a red hat and a blue shirt, red shoes", "a red hat\na blue shirt", "red blue"),
    # a word of several tokens, a run of words (underscore), and a repeated region
    ("a pinkish-red coat, light blue jeans, a pinkish-red coat", "a pinkish-red coat\nlight blue jeans",
     "pinkish-red light_blue"),
    # a word repeated inside the region: both masked; a target missing from the region: nothing
    ("red and red hat, green scarf", "red and red hat", "red purple"),
    # weights in the prompt and the region text do not change the tokens matched
    ("a (blue:1.3) sky over (green:0.8) grass", "(blue:1.3) sky\ngreen grass", "blue green"),
]


@pytest.mark.parametrize("prompt, region_text, target_text", MASK_CASES)
def test_masks_follow_the_packs_rule(registry, models, prompt, region_text, target_text):
    clip = _clip(registry)
    regions = _regions(registry, clip, prompt, (region_text, target_text, 1.0)).regions
    want = _pack_masks(clip, prompt, region_text, target_text)
    assert len(regions) == len(want)
    for region, (region_mask, target_mask) in zip(regions, want):
        assert np.array_equal(region.region["clip_l"], region_mask)
        assert np.array_equal(region.target["clip_l"], target_mask)
        assert any(region.region["clip_l"])


def test_masks_by_hand_on_one_word_tokens(registry, models):
    """Positions counted by hand: BOS is 0, then one token a word (each of these is one CLIP token)."""
    clip = _clip(registry)
    assert all(len(encode_text(w)) == 1 for w in "a red hat and blue shirt ,".split())
    [hat, shirt] = _regions(registry, clip, "a red hat and a blue shirt, a red hat",
                            ("a red hat\na blue shirt", "red blue", 0.5)).regions
    on = lambda mask: [i for i, m in enumerate(mask) if m]  # noqa: E731
    assert on(hat.region["clip_l"]) == [1, 2, 3, 9, 10, 11] and on(hat.target["clip_l"]) == [2, 10]
    assert on(shirt.region["clip_l"]) == [5, 6, 7] and on(shirt.target["clip_l"]) == [6]
    assert hat.weight == shirt.weight == 0.5
    # escaped underscores are literal: "red_hat" is the run "red hat", "red\_hat" the word "red_hat"
    [run] = _regions(registry, clip, "a red hat", ("a red hat", "red_hat", 1.0)).regions
    [literal] = _regions(registry, clip, "a red_hat", ("a red_hat", "red\\_hat", 1.0)).regions
    assert on(run.target["clip_l"]) == [2, 3]
    assert on(literal.target["clip_l"]) == [2 + i for i in range(len(encode_text("red_hat")))]


def test_masks_of_a_second_window_skip_its_bos_and_last_position(registry, models):
    clip = _clip(registry)
    prompt = ", ".join(["a cat"] * 30) + ", a blue shirt"
    windows = clip.tokenize(prompt)["clip_l"]
    assert len(windows.ids) == 2
    [shirt] = _regions(registry, clip, prompt, ("a blue shirt", "blue", 1.0)).regions
    [(region_mask, target_mask)] = _pack_masks(clip, prompt, "a blue shirt", "blue")
    assert np.array_equal(shirt.region["clip_l"], region_mask) and np.array_equal(shirt.target["clip_l"], target_mask)
    blue = [i for i, m in enumerate(shirt.target["clip_l"]) if m]
    assert len(blue) == 1 and blue[0] > 77
    assert windows.ids[1][blue[0] - 77] == encode_text("blue")[0]
    assert len(shirt.region["clip_l"]) == 2 * 77 and shirt.region["clip_l"][77] == 0


# -- the conditioning: the pack's mixing of the masked encodings ---------------------------------


def _pack_mix(full, masked, owns, region_masks, weights, strict_mask, start_from_masked):
    """finalize_clip_regions' formula on given encodings (owns: each region's, all targets masked
    but its own)."""
    regions = np.stack(region_masks).astype(float)
    covering = regions.sum(axis=0)
    share = np.divide(1, covering, out=np.zeros_like(covering), where=covering != 0)
    start = full * (1 - start_from_masked) + masked * start_from_masked
    outer = full * (1 - strict_mask) + masked * strict_mask
    inside = torch.tensor(regions.any(axis=0), dtype=full.dtype)[None, :, None]
    final = start * inside + outer * (1 - inside)
    for own, region, weight in zip(owns, regions, weights):
        final = final + (own - start) * torch.tensor(share * region * weight, dtype=full.dtype)[None, :, None]
    return final


def _text_encode(registry, clip, text):
    [(cond, options)] = call(registry, "CLIPEncode", clip=clip, text=text)
    return cond, options


@pytest.mark.parametrize("strict_mask, start_from_masked", [(1.0, 1.0), (0.0, 0.0), (0.3, 0.6)])
def test_conditioning_is_the_packs_mix_of_the_masked_prompts(registry, models, strict_mask, start_from_masked):
    clip = _clip(registry)
    prompt = "a red hat and a blue shirt with a red scarf"
    # two regions over the scarf: the tokens they share split each region's push between them
    regions = _regions(registry, clip, prompt, ("a red hat\nshirt with a red scarf", "red", 1.0),
                       ("a blue shirt with", "blue", 0.5))
    [(cond, options)] = call(registry, "CutoffRegionsToConditioning", clip_regions=regions, mask_token="+",
                             strict_mask=strict_mask, start_from_masked=start_from_masked)
    assert len(encode_text("+")) == 1  # so a masked prompt can be written out as text
    full, full_options = _text_encode(registry, clip, prompt)
    masked = _text_encode(registry, clip, "a + hat and a + shirt with a + scarf")[0]
    # each region's own: every target masked but those inside that region's occurrences
    owns = [_text_encode(registry, clip, text)[0] for text in (
        "a red hat and a + shirt with a + scarf",  # "a red hat": the hat's red kept
        "a + hat and a + shirt with a red scarf",  # "shirt with a red scarf": the scarf's red kept
        "a + hat and a blue shirt with a + scarf")]  # "a blue shirt with": blue kept
    masks = [m for region_text, target_text in (("a red hat\nshirt with a red scarf", "red"),
                                                ("a blue shirt with", "blue"))
             for m, _ in _pack_masks(clip, prompt, region_text, target_text)]
    want = _pack_mix(full, masked, owns, masks, [1.0, 1.0, 0.5], strict_mask, start_from_masked)
    assert torch.allclose(cond, want, atol=1e-5)
    assert torch.equal(options["pooled_output"], full_options["pooled_output"])  # the unmasked prompt's
    assert not torch.allclose(cond, full, atol=1e-3)  # it did change the embedding


@pytest.mark.parametrize("checkpoint, kind", [("tiny.safetensors", None), ("base.safetensors", None),
                                               ("sd2.safetensors", "sd2")])
def test_default_mask_token_is_266_and_a_long_one_uses_its_first(registry, models, caplog, checkpoint, kind):
    """The later pack masks with token 266 when mask_token is empty (its finalize_clip_regions, as
    ADV_CLIP's m_token): "+" as a word of its own in CLIP's vocabulary, which SD1, SDXL and SD2
    share."""
    from graphflow.models.tokenizer import clip_bpe

    assert clip_bpe().convert_ids_to_tokens([266]) == ["+</w>"]
    if kind:
        write_checkpoint(models.models / "checkpoints" / checkpoint, kind)
    clip = _clip(registry, checkpoint)
    prompt = "a red hat, a blue shirt"
    regions = _regions(registry, clip, prompt, ("a red hat", "red", 1.0))
    [(cond, _)] = call(registry, "CutoffRegionsToConditioning", clip_regions=regions, mask_token="",
                       strict_mask=1.0, start_from_masked=1.0)
    tokens = {}
    for name, windows in clip.tokenize(prompt).items():  # red replaced by id 266 on every tower
        ids = [list(windows.ids[0])]
        ids[0][ids[0].index(encode_text("red")[0])] = 266
        tokens[name] = TokenWindows(ids, windows.weights, {}, windows.words)
    masked = clip.encode_tokens(tokens)[0]
    # one region whose only target is masked everywhere: own = the prompt itself; strict 1, start 1
    full = _text_encode(registry, clip, prompt)[0]
    [(region_mask, _)] = _pack_masks(clip, prompt, "a red hat", "red", clip.towers[0].name)
    assert torch.allclose(cond, _pack_mix(full, masked, [full], [region_mask], [1.0], 1.0, 1.0), atol=1e-5)

    with caplog.at_level("WARNING"):
        [(long, _)] = call(registry, "CutoffRegionsToConditioning", clip_regions=regions, mask_token="green hat",
                           strict_mask=1.0, start_from_masked=1.0)
    assert any("first is used" in r.getMessage() for r in caplog.records)
    [(green, _)] = call(registry, "CutoffRegionsToConditioning", clip_regions=regions, mask_token="green",
                        strict_mask=1.0, start_from_masked=1.0)
    assert torch.equal(long, green)


def test_a_target_missing_from_its_region_masks_nothing_but_the_region_still_moves(registry, models):
    clip = _clip(registry)
    prompt = "a red hat and a blue shirt"
    regions = _regions(registry, clip, prompt, ("a red hat", "red", 1.0), ("a blue shirt", "green", 2.0))
    assert not any(regions.regions[1].target["clip_l"])
    [(cond, _)] = call(registry, "CutoffRegionsToConditioning", clip_regions=regions, mask_token="+",
                       strict_mask=1.0, start_from_masked=1.0)
    full = _text_encode(registry, clip, prompt)[0]
    masked = _text_encode(registry, clip, "a + hat and a blue shirt")[0]
    masks = [_pack_masks(clip, prompt, "a red hat", "red")[0][0],
             _pack_masks(clip, prompt, "a blue shirt", "green")[0][0]]
    # region 1 keeps red (nothing else is a target); region 2 keeps no target of its own: red masked
    want = _pack_mix(full, masked, [full, masked], masks, [1.0, 2.0], 1.0, 1.0)
    assert torch.allclose(cond, want, atol=1e-5)
    # with start_from_masked 1, region 2's push is masked - masked: its tokens stay the masked prompt's
    shirt = torch.tensor(masks[1], dtype=torch.bool)
    assert torch.allclose(cond[:, shirt], masked[:, shirt], atol=1e-5)


def test_no_region_gives_the_prompts_own_encoding(registry, models):
    clip = _clip(registry)
    base = call(registry, "CutoffBasePrompt", text="a (red:1.2) hat", clip=clip)
    [(cond, options)] = call(registry, "CutoffRegionsToConditioning", clip_regions=base, mask_token="",
                             strict_mask=1.0, start_from_masked=1.0)
    want, want_options = _text_encode(registry, clip, "a (red:1.2) hat")
    assert torch.equal(cond, want) and torch.equal(options["pooled_output"], want_options["pooled_output"])


@pytest.mark.parametrize("normalization, interpretation", [("none", "A1111"), ("length+mean", "comfy++"),
                                                           ("mean", "compel")])
def test_adv_encodes_each_masked_prompt_as_clip_text_encode_advanced(registry, models, normalization, interpretation):
    clip = _clip(registry)
    prompt = "a (red:1.3) hat and a (blue:0.6) shirt"
    regions = _regions(registry, clip, prompt, ("(red:1.3) hat", "red", 1.0), ("(blue:0.6) shirt", "blue", 1.5))
    [(cond, options)] = call(registry, "CutoffRegionsToConditioningADV", clip_regions=regions, mask_token="+",
                             strict_mask=0.4, start_from_masked=0.7, token_normalization=normalization,
                             weight_interpretation=interpretation)
    # masked words keep their weights (and segments), as the pack's create_masked_prompt
    encode = lambda text: advanced_encode(clip, text, normalization, interpretation)[0]  # noqa: E731
    full, full_options = encode(prompt)
    masked = encode("a (+:1.3) hat and a (+:0.6) shirt")[0]
    owns = [encode("a (red:1.3) hat and a (+:0.6) shirt")[0], encode("a (+:1.3) hat and a (blue:0.6) shirt")[0]]
    masks = [_pack_masks(clip, prompt, "(red:1.3) hat", "red")[0][0],
             _pack_masks(clip, prompt, "(blue:0.6) shirt", "blue")[0][0]]
    assert torch.allclose(cond, _pack_mix(full, masked, owns, masks, [1.0, 1.5], 0.4, 0.7), atol=1e-5)
    assert torch.equal(options["pooled_output"], full_options["pooled_output"])


def test_adv_refuses_an_encoding_past_adv_clips_window_passes(registry, models, monkeypatch):
    """Each of the 2 + regions encodings is checked as CLIP Text Encode (Advanced) checks its one
    (MAX_WINDOW_PASSES), besides the conditioning's MAX_CUTOFF_WINDOWS for them all."""
    from nodes import pack_nodes_adv_clip

    clip = _clip(registry)
    prompt = "a (red:0.5) hat and a (blue:0.7) shirt, (green:0.9) shoes"
    regions = _regions(registry, clip, prompt, ("(red:0.5) hat", "red", 1.0))
    passes = pack_nodes_adv_clip._window_passes(clip.tokenize(prompt)["clip_l"], "none", "compel")
    assert passes > 1 and 3 * passes <= pack_nodes_cutoff.MAX_CUTOFF_WINDOWS  # compel: once per weight below 1
    adv = dict(clip_regions=regions, mask_token="", strict_mask=1.0, start_from_masked=1.0, token_normalization="none")
    monkeypatch.setattr(pack_nodes_adv_clip, "MAX_WINDOW_PASSES", passes - 1)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CutoffRegionsToConditioningADV", weight_interpretation="compel", **adv)
    assert caught.value.input == "clip_regions" and f"at most {passes - 1}" in str(caught.value)
    # none + comfy is CLIP Text Encode's encoding, not checked by ADV either; at the limit compel runs
    call(registry, "CutoffRegionsToConditioningADV", weight_interpretation="comfy", **adv)
    monkeypatch.setattr(pack_nodes_adv_clip, "MAX_WINDOW_PASSES", passes)
    call(registry, "CutoffRegionsToConditioningADV", weight_interpretation="compel", **adv)


def test_sdxl_masks_and_mixes_both_towers(registry, models):
    clip = _clip(registry, "base.safetensors")
    prompt = "a red hat and a blue shirt"
    regions = _regions(registry, clip, prompt, ("a red hat\na blue shirt", "red blue", 1.0))
    for region in regions.regions:
        assert region.region["clip_l"] == region.region["clip_g"] and region.target["clip_l"] == region.target["clip_g"]
    [(cond, options)] = call(registry, "CutoffRegionsToConditioning", clip_regions=regions, mask_token="+",
                             strict_mask=0.5, start_from_masked=1.0)
    full, full_options = _text_encode(registry, clip, prompt)
    masked = _text_encode(registry, clip, "a + hat and a + shirt")[0]
    owns = [_text_encode(registry, clip, "a red hat and a + shirt")[0],
            _text_encode(registry, clip, "a + hat and a blue shirt")[0]]
    masks = [m for m, _ in _pack_masks(clip, prompt, "a red hat\na blue shirt", "red blue")]
    assert cond.shape == full.shape and cond.shape[-1] == clip.output_dim
    assert torch.allclose(cond, _pack_mix(full, masked, owns, masks, [1.0, 1.0], 0.5, 1.0), atol=1e-5)
    assert torch.equal(options["pooled_output"], full_options["pooled_output"])  # CLIP-G's, unmasked


def test_errors_name_the_input(registry, models, monkeypatch):
    clip = _clip(registry)
    base = call(registry, "CutoffBasePrompt", text="a red hat", clip=clip)
    cases = [
        (dict(region_text="a red hat", target_text="   "), "target_text", "no target word"),
        (dict(region_text="a red hat", target_text="()"), "target_text", "gives no tokens"),
        (dict(region_text="a red hat\n()", target_text="red"), "region_text", "gives no tokens"),
    ]
    for inputs, name, words in cases:
        with pytest.raises(NodeInputError) as caught:
            call(registry, "CutoffSetRegions", clip_regions=base, weight=1.0, **inputs)
        assert caught.value.input == name and words in str(caught.value)
    regions = call(registry, "CutoffSetRegions", clip_regions=base, region_text="a red hat", target_text="red",
                   weight=1.0)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CutoffRegionsToConditioning", clip_regions=regions, mask_token="   ", strict_mask=1.0,
             start_from_masked=1.0)
    assert caught.value.input == "mask_token" and "gives no token" in str(caught.value)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CutoffBasePrompt", text="a", clip=None)
    assert caught.value.input == "clip"
    with pytest.raises(NodeInputError) as caught:  # a linked value from another pack's node
        call(registry, "CutoffSetRegions", clip_regions={"regions": []}, region_text="a", target_text="a", weight=1.0)
    assert caught.value.input == "clip_regions"
    with pytest.raises(NodeInputError) as caught:  # a linked weighting the pack does not know
        pack_nodes_cutoff.cutoff_conditioning(regions, "", 1.0, 1.0, "none", "comfy+++")
    assert caught.value.input == "weight_interpretation"
    # too many encodings: refused before any runs (regions set under a higher limit)
    many = call(registry, "CutoffSetRegions", clip_regions=regions, region_text="red\nhat", target_text="red",
                weight=1.0)
    monkeypatch.setattr(pack_nodes_cutoff, "MAX_CUTOFF_WINDOWS", 4)
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CutoffRegionsToConditioning", clip_regions=many, mask_token="", strict_mask=1.0,
             start_from_masked=1.0)
    assert caught.value.input == "clip_regions" and "at most 4" in str(caught.value)


def test_too_long_a_prompt_or_too_many_regions_is_refused_before_the_masks_are_built(registry, models, monkeypatch):
    """The conditioning encodes the prompt 2 + regions times: Base Prompt refuses a prompt of more
    than a third of MAX_CUTOFF_WINDOWS windows, Set Regions a region_text whose lines would pass it."""
    clip = _clip(registry)
    prompt = ", ".join(["a red hat"] * 30)  # 2 windows
    assert len(clip.tokenize(prompt)["clip_l"].ids) == 2
    base = call(registry, "CutoffBasePrompt", text=prompt, clip=clip)
    one = call(registry, "CutoffSetRegions", clip_regions=base, region_text="a red hat", target_text="red",
               weight=1.0)
    monkeypatch.setattr(pack_nodes_cutoff, "MAX_CUTOFF_WINDOWS", 5)  # at most 1 window a prompt
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CutoffBasePrompt", text=prompt, clip=clip)
    assert caught.value.input == "text" and "2 77-token windows" in str(caught.value)

    def no_masks(*args):
        raise AssertionError("masks built before the refusal")

    monkeypatch.setattr(pack_nodes_cutoff, "region_masks", no_masks)
    monkeypatch.setattr(pack_nodes_cutoff, "MAX_CUTOFF_WINDOWS", 9)  # (2 + 1 + 2) regions x 2 windows = 10
    with pytest.raises(NodeInputError) as caught:
        call(registry, "CutoffSetRegions", clip_regions=one, region_text="a red hat\nred hat", target_text="red",
             weight=1.0)
    assert caught.value.input == "region_text" and "at most 9" in str(caught.value)
    monkeypatch.setattr(pack_nodes_cutoff, "MAX_CUTOFF_WINDOWS", 10)  # at the limit: built
    with pytest.raises(AssertionError, match="masks built"):
        call(registry, "CutoffSetRegions", clip_regions=one, region_text="a red hat\nred hat", target_text="red",
             weight=1.0)


@pytest.mark.parametrize("prompt, region_text, target_text", [
    # many occurrences of a region holding few target positions, and the other way round
    (" ".join(["a"] * 300), "a a a", "a_a"),
    (" ".join(["a"] * 300), " ".join(["a"] * 150), "a"),
    (" ".join(["a red"] * 100), "red a red a", "red_a a_red"),
])
def test_masks_of_long_repeated_regions_follow_the_packs_rule(registry, models, prompt, region_text, target_text):
    clip = _clip(registry)
    [region] = _regions(registry, clip, prompt, (region_text, target_text, 1.0)).regions
    [(region_mask, target_mask)] = _pack_masks(clip, prompt, region_text, target_text)
    assert np.array_equal(region.region["clip_l"], region_mask)
    assert np.array_equal(region.target["clip_l"], target_mask)
    assert any(region.target["clip_l"])


def test_an_empty_region_text_passes_the_regions_on_unchanged(registry, models, caplog):
    """The pack sets regions only `if len(region_text) != 0` (after strip): an empty one passes the
    CLIPREGION on, whatever target_text holds."""
    clip = _clip(registry)
    regions = _regions(registry, clip, "a red hat, a blue shirt", ("a red hat", "red", 1.0))
    for region_text, target_text in (("", "blue"), (" \n\n ", ""), ("", "")):
        with caplog.at_level("WARNING"):
            out = call(registry, "CutoffSetRegions", clip_regions=regions, region_text=region_text,
                       target_text=target_text, weight=2.0)
        assert out.regions == regions.regions and out.tokens is regions.tokens
    assert any("region_text is empty" in r.getMessage() for r in caplog.records)


def test_a_region_not_in_the_prompt_is_warned_about_and_masks_nothing(registry, models, caplog):
    clip = _clip(registry)
    with caplog.at_level("WARNING"):
        [region] = _regions(registry, clip, "a red hat", ("a green coat", "green", 1.0)).regions
    assert not any(region.region["clip_l"]) and not any(region.target["clip_l"])
    assert any("not in the base prompt" in r.getMessage() for r in caplog.records)


# -- workflows under the pack's class names ------------------------------------------------------


def test_ui_save_with_the_packs_classes_reads_runs_and_round_trips(registry, models):
    clip_out = [("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2, 3]), ("VAE", "VAE", [])]
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"], outputs=clip_out),
        ui_node(2, "BNK_CutoffBasePrompt", ["a red hat and a blue shirt"], [("clip", "CLIP", 2, False)],
                [("CLIPREGION", "CLIPREGION", [4])]),
        ui_node(3, "BNK_CutoffSetRegions", ["a red hat\na blue shirt", "red blue", 1.25],
                [("clip_regions", "CLIPREGION", 4, False)], [("CLIPREGION", "CLIPREGION", [5])]),
        ui_node(4, "BNK_CutoffRegionsToConditioning", ["", 0.5, 0.75], [("clip_regions", "CLIPREGION", 5, False)],
                [("CONDITIONING", "CONDITIONING", [6])]),
        ui_node(5, "CLIPTextEncode", ["blurry"], [("clip", "CLIP", 3, False)], [("CONDITIONING", "CONDITIONING", [7])]),
        ui_node(6, "EmptyLatentImage", [64, 64, 1], outputs=[("LATENT", "LATENT", [8])]),
        ui_node(7, "KSampler", [5, "fixed", 2, 6.0, "euler", "normal", 1.0],
                [("model", "MODEL", 1, False), ("positive", "CONDITIONING", 6, False),
                 ("negative", "CONDITIONING", 7, False), ("latent_image", "LATENT", 8, False)],
                [("LATENT", "LATENT", [])]),
    ]
    links = [[1, 1, 0, 7, 0, "MODEL"], [2, 1, 1, 2, 0, "CLIP"], [3, 1, 1, 5, 0, "CLIP"], [4, 2, 0, 3, 0, "CLIPREGION"],
             [5, 3, 0, 4, 0, "CLIPREGION"], [6, 4, 0, 7, 1, "CONDITIONING"], [7, 5, 0, 7, 2, "CONDITIONING"],
             [8, 6, 0, 7, 3, "LATENT"]]
    graph = ui_graph(nodes, links)
    result = run_graph(registry, graph, ["4", "7"])
    clip = _clip(registry)
    regions = _regions(registry, clip, "a red hat and a blue shirt", ("a red hat\na blue shirt", "red blue", 1.25))
    [(want, _)] = call(registry, "CutoffRegionsToConditioning", clip_regions=regions, mask_token="", strict_mask=0.5,
                       start_from_masked=0.75)
    assert torch.equal(result.values["4"][0][0][0], want)
    samples = result.values["7"][0]["samples"]
    assert samples.shape == (1, 4, 8, 8) and torch.isfinite(samples).all()
    saved = {n["id"]: n for n in export_ui(parse_workflow(graph, registry), registry)["nodes"]}
    for node in nodes[1:4]:
        assert saved[node["id"]]["type"] == node["type"]
        assert saved[node["id"]]["widgets_values"] == node["widgets_values"]


API_PROMPT = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
    "2": {"class_type": "BNK_CutoffBasePrompt", "inputs": {"text": "a (red:1.2) hat, a blue shirt", "clip": ["1", 1]}},
    "3": {"class_type": "BNK_CutoffSetRegions", "inputs": {
        "clip_regions": ["2", 0], "region_text": "(red:1.2) hat", "target_text": "red", "weight": 1.0}},
    "4": {"class_type": "BNK_CutoffSetRegions", "inputs": {
        "clip_regions": ["3", 0], "region_text": "a blue shirt", "target_text": "blue", "weight": 0.8}},
    "5": {"class_type": "BNK_CutoffRegionsToConditioning_ADV", "inputs": {
        "clip_regions": ["4", 0], "mask_token": "+", "strict_mask": 1.0, "start_from_masked": 0.5,
        "token_normalization": "length", "weight_interpretation": "A1111"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
    "7": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "8": {"class_type": "KSampler", "inputs": {
        "model": ["1", 0], "seed": 3, "steps": 2, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
        "positive": ["5", 0], "negative": ["6", 0], "latent_image": ["7", 0], "denoise": 1.0}},
}


def test_api_prompt_with_the_packs_classes_runs_and_round_trips(registry, models):
    result = run_graph(registry, API_PROMPT, ["5", "8"])
    clip = _clip(registry)
    regions = _regions(registry, clip, "a (red:1.2) hat, a blue shirt", ("(red:1.2) hat", "red", 1.0),
                       ("a blue shirt", "blue", 0.8))
    [(want, _)] = call(registry, "CutoffRegionsToConditioningADV", clip_regions=regions, mask_token="+",
                       strict_mask=1.0, start_from_masked=0.5, token_normalization="length",
                       weight_interpretation="A1111")
    assert torch.equal(result.values["5"][0][0][0], want)
    assert torch.isfinite(result.values["8"][0]["samples"]).all()
    api = export_api(parse_workflow(API_PROMPT, registry), registry)
    assert {k: v["class_type"] for k, v in api.items()} == {k: v["class_type"] for k, v in API_PROMPT.items()}
    for node_id, entry in API_PROMPT.items():
        assert api[node_id]["inputs"] == entry["inputs"], node_id


def test_the_packs_classes_are_named_whole():
    for name in ("BNK_CutoffBasePrompt", "BNK_CutoffSetRegions", "BNK_CutoffRegionsToConditioning",
                 "BNK_CutoffRegionsToConditioning_ADV"):
        assert custom_pack(name) == "ComfyUI_Cutoff"
    for other in ("BNK_CLIPTextEncodeAdvanced", "BNK_TiledKSampler", "BNK_CutoffBasePrompt2"):
        assert custom_pack(other) != "ComfyUI_Cutoff"


def test_a_target_may_name_an_embedding(registry, models):
    """The pack gives each distinct embedding an id of its own, so embedding:name matches its
    vectors in the prompt (and not another embedding's); masking replaces its vectors."""
    from safetensors.torch import save_file

    clip = _clip(registry)
    folder = models.models / "embeddings"
    folder.mkdir(exist_ok=True)
    width = clip.tower("clip_l").hidden_size
    for name, seed in (("style", 0), ("other", 1)):
        vectors = torch.randn(3, width, generator=torch.Generator().manual_seed(seed)) * 0.02
        save_file({"emb_params": vectors}, str(folder / f"{name}.safetensors"))
    prompt = "a embedding:style hat, a embedding:other coat"
    regions = _regions(registry, clip, prompt, ("embedding:style hat\nembedding:other coat", "embedding:style", 1.0))
    on = lambda mask: [i for i, m in enumerate(mask) if m]  # noqa: E731
    hat, coat = regions.regions
    assert on(hat.region["clip_l"]) == [2, 3, 4, 5] and on(hat.target["clip_l"]) == [2, 3, 4]
    assert on(coat.region["clip_l"]) == [8, 9, 10, 11] and on(coat.target["clip_l"]) == []
    [(cond, _)] = call(registry, "CutoffRegionsToConditioning", clip_regions=regions, mask_token="+",
                       strict_mask=1.0, start_from_masked=1.0)
    full = _text_encode(registry, clip, prompt)[0]
    masked = _text_encode(registry, clip, "a + + + hat, a embedding:other coat")[0]
    masks = [np.array(hat.region["clip_l"]), np.array(coat.region["clip_l"])]
    assert torch.allclose(cond, _pack_mix(full, masked, [full, masked], masks, [1.0, 1.0], 1.0, 1.0), atol=1e-5)
    assert not torch.allclose(masked, full, atol=1e-3)


def test_openclip_padding_does_not_stop_a_region_matching_mid_prompt(registry, models):
    """SD2's OpenCLIP pads with token 0: a region is matched by its words only, as the later pack's
    unpad_prompt strips trailing zeros before the end tokens (the first version read kept the zeros,
    matching a region only at the prompt's end); the masks are SD1's."""
    write_checkpoint(models.models / "checkpoints" / "sd2.safetensors", "sd2")
    sd2, sd1 = _clip(registry, "sd2.safetensors"), _clip(registry)
    [tower] = sd2.towers
    assert tower.spec.pad_token == 0
    prompt = "a red hat and a blue shirt"
    [hat] = _regions(registry, sd2, prompt, ("a red hat", "red", 1.0)).regions
    [(region_mask, target_mask)] = _pack_masks(sd2, prompt, "a red hat", "red", tower.name)
    assert np.array_equal(hat.region[tower.name], region_mask) and np.array_equal(hat.target[tower.name], target_mask)
    [want] = _regions(registry, sd1, prompt, ("a red hat", "red", 1.0)).regions
    assert hat.region[tower.name] == want.region["clip_l"] and hat.target[tower.name] == want.target["clip_l"]
    assert any(hat.target[tower.name])


def test_set_regions_matches_only_targets_in_the_prompt_and_each_distinct_region_once(registry, models,
                                                                                      monkeypatch):
    """Many lines x many targets: a target absent from the prompt is looked for once (in the
    prompt) and never again, a repeated region line is matched once, and the masks are the pack's."""
    clip = _clip(registry)
    prompt = "a red hat, a blue shirt, " * 3
    absent = [f"zq{chr(97 + i)}{chr(97 + j)}x" for i in range(10) for j in range(10)]  # 100 absent targets
    target_text = " ".join(absent + ["red", "blue"])
    region_text = "\n".join(["a red hat", "a blue shirt"] * 20)  # 40 lines, 2 distinct regions
    calls = []
    real = pack_nodes_cutoff.occurrences
    monkeypatch.setattr(pack_nodes_cutoff, "occurrences", lambda tokens, part: calls.append(1) or real(tokens, part))
    checks = []
    monkeypatch.setattr(pack_nodes_cutoff, "check_interrupted", lambda: checks.append(1))
    regions = _regions(registry, clip, prompt, (region_text, target_text, 1.0)).regions
    # 102 targets looked for in the prompt, then per distinct region: its occurrences and the 2
    # present targets' in it (before: 40 lines x (1 + 102 targets))
    assert len(calls) == 102 + 2 * (1 + 2)
    assert len(checks) == 40  # one interruption check a line
    want = _pack_masks(clip, prompt, region_text, target_text)
    assert len(regions) == len(want) == 40
    for region, (region_mask, target_mask) in zip(regions, want):
        assert np.array_equal(region.region["clip_l"], region_mask)
        assert np.array_equal(region.target["clip_l"], target_mask)
        assert any(region.target["clip_l"])
