"""T5-XXL tokenizer and encoder against transformers, SD3 / FLUX conditioning against a hand
construction, and the text encoder loader nodes on random-weight files in the real layouts."""

import random

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import T5Config, T5EncoderModel, T5TokenizerFast

from graphflow.models.flow_text import FlowTextEncoder
from graphflow.models.t5 import TOKENIZER_FILE, t5_from_state_dict, t5_ids, tokenize_t5
from graphflow.models.text_encoder_files import load_text_encoders
from graphflow.models.tokenizer import tokenize_prompt
from graphflow.models.weight_files import CheckpointError
from graphflow.testing import T5_TINY, t5_state, write_text_encoder


@pytest.fixture(scope="module")
def reference_tokenizer():
    return T5TokenizerFast(tokenizer_file=str(TOKENIZER_FILE))


def _prompts(n=200):
    rng = random.Random(12)
    words = ("a photo of cat dog astronaut riding horse on the moon, highly detailed 4k 8K render oil painting "
             "by greg rutkowski trending artstation sunset's bright-red CAMERA f/1.8 50mm #hashtag @user "
             "can't won't it's 3.14 1,000 x=y+z").split()
    unicode = ["café", "naïve", "Ünïcödé", "日本語のテキスト", "中文提示词", "한국어", "Ελληνικά", "русский текст",
               "emoji 🐱🚀✨", "zero\u200bwidth", "tab\there", "new\nline", "ﬁ ligature", "Ⅻ ½ ²", "«quotes» “curly”",
               "  leading and trailing  ", "multiple   spaces", "<extra_id_0> sentinel", "</s> eos text", "<pad>"]
    prompts = ["", " ", "a", "A cat.", "a (red:1.3) car"] + unicode
    while len(prompts) < n - 10:
        k = rng.randint(1, 40)
        prompt = " ".join(rng.choice(words + unicode) for _ in range(k))
        prompts.append(prompt)
    for i in range(10):  # over-long: well past T5's 512 model_max_length
        prompts.append(" ".join(rng.choice(words) for _ in range(300 + 40 * i)))
    return prompts


def test_t5_ids_equal_t5_tokenizer_fast_on_200_prompts(reference_tokenizer):
    prompts = _prompts()
    assert len(prompts) == 200
    long_seen = 0
    for prompt in prompts:
        expected = reference_tokenizer(prompt, truncation=False).input_ids
        assert t5_ids(prompt) + [1] == expected, prompt
        long_seen += len(expected) > 512
        if not any(c in prompt for c in "()\\"):  # no weight syntax: the weighted path gives the same ids
            ids, weights = tokenize_t5(prompt, 77)
            assert ids[:len(expected)] == expected and set(ids[len(expected):]) <= {0}
            assert len(ids) == max(77, len(expected)) and set(weights) == {1.0}
    assert long_seen == 10


def test_weighted_t5_prompt_keeps_ids_and_marks_weights(reference_tokenizer):
    ids, weights = tokenize_t5("a (red:1.5) car", 0)
    assert ids == t5_ids("a ") + t5_ids("red") + t5_ids(" car") + [1]
    assert weights == [1.0] * len(t5_ids("a ")) + [1.5] + [1.0] * len(t5_ids(" car")) + [1.0]


# -- T5 encoder ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def t5_reference(tmp_path_factory):
    """Random tiny T5 weights saved by transformers (save_pretrained) and loaded back by it."""
    folder = tmp_path_factory.mktemp("t5")
    config = T5Config(vocab_size=32128, feed_forward_proj="gated-gelu", is_encoder_decoder=False, use_cache=False,
                      dropout_rate=0.0, **T5_TINY)
    state = t5_state(seed=3, dtype=torch.float32)
    model = T5EncoderModel(config)
    model.load_state_dict({**state, "encoder.embed_tokens.weight": state["shared.weight"]})
    model.save_pretrained(folder)
    reference = T5EncoderModel.from_pretrained(folder).eval()
    return folder, reference


def _ids(prompt, length=77):
    return torch.tensor([tokenize_t5(prompt, length)[0]])


@torch.no_grad()
@pytest.mark.parametrize("layout", ["transformers", "comfy_prefix", "fp16", "bf16", "fp8_e4m3fn", "fp8_e5m2", "scaled_fp8"])
def test_t5_hidden_states_equal_transformers(t5_reference, tmp_path, layout):
    folder, reference = t5_reference
    saved = load_file(str(folder / "model.safetensors"))
    ids = _ids("a photo of an astronaut riding a horse, (detailed:1.0)")
    if layout == "transformers":
        path = folder / "model.safetensors"
        ref_model = reference
    else:
        dtype = {"comfy_prefix": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
                 "fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2,
                 "scaled_fp8": torch.float8_e4m3fn}[layout]
        prefix = "text_encoders.t5xxl.transformer." if layout == "comfy_prefix" else ""
        state = {k: v for k, v in saved.items() if k != "encoder.embed_tokens.weight"}
        stored, upcast = {}, {}
        for k, v in state.items():
            scale = torch.tensor(0.5) if layout == "scaled_fp8" and v.ndim == 2 and k != "shared.weight" else None
            low = (v / scale if scale is not None else v).to(dtype)
            stored[prefix + k] = low
            upcast[k] = low.float() * (scale if scale is not None else 1.0)
            if scale is not None:
                stored[prefix + k[:-len("weight")] + "scale_weight"] = scale
        if layout == "scaled_fp8":
            stored["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
        path = tmp_path / f"t5xxl_{layout}.safetensors"
        save_file(stored, str(path))
        # transformers loading the same (upcast) weights
        ref_model = T5EncoderModel(reference.config).eval()
        ref_model.load_state_dict({**upcast, "encoder.embed_tokens.weight": upcast["shared.weight"]})
    ours = load_text_encoders([path], "sd3", device="cpu", dtype=torch.float32).t5
    assert ours.dtype == torch.float32
    with torch.no_grad():
        expected = ref_model(input_ids=ids).last_hidden_state
    got = ours.run(ids.tolist())
    assert got.shape == (1, 77, T5_TINY["d_model"])
    assert float((got - expected).abs().max()) <= 1e-4  # the fp32 parity bound


@torch.no_grad()
def test_t5_from_state_dict_reads_any_prefix_and_checks_keys(t5_reference):
    folder, reference = t5_reference
    saved = load_file(str(folder / "model.safetensors"))
    enc = t5_from_state_dict({"model.t5xxl.transformer." + k: v for k, v in saved.items()})
    ids = _ids("hello")
    torch.testing.assert_close(enc.run(ids.tolist()), reference(input_ids=ids).last_hidden_state, atol=1e-4, rtol=0)
    embed_only = {k: v for k, v in saved.items() if k != "shared.weight"}
    embed_only["encoder.embed_tokens.weight"] = saved["shared.weight"]
    torch.testing.assert_close(t5_from_state_dict(embed_only).run(ids.tolist()), enc.run(ids.tolist()), atol=0, rtol=0)
    with pytest.raises(ValueError, match="no T5"):
        t5_from_state_dict({"foo.weight": torch.zeros(1)})
    broken = {k: v for k, v in saved.items() if "block.1.layer.1" not in k}
    with pytest.raises(ValueError, match="missing"):
        t5_from_state_dict(broken)


# -- conditioning assembly -------------------------------------------------------------------

@pytest.fixture(scope="module")
def encoder_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("te")
    return {kind: write_text_encoder(folder / f"{kind}.safetensors", kind, seed=i, dtype=torch.float32)
            for i, kind in enumerate(("clip_l", "clip_g", "t5xxl"))}


@pytest.fixture(scope="module")
def sd3_clip(encoder_files):
    return load_text_encoders(list(encoder_files.values())[::-1], "sd3", device="cpu", dtype=torch.float32)


def _clip_by_hand(tower, prompt, layer=-2):
    """Hidden states at `layer`; pooled projected for CLIP-G only (ComfyUI's SD3 CLIP-L is not)."""
    ids = torch.tensor(tokenize_prompt(prompt, tower.spec.pad_token).ids)
    out = tower.transformer(input_ids=ids, output_hidden_states=True)
    pooled = out.pooler_output[:1]
    if tower.name == "clip_g":
        pooled = tower.projection(pooled)
    return out.hidden_states[layer].reshape(1, -1, out.hidden_states[layer].shape[-1]), pooled


def _t5_by_hand(t5, prompt, length, reference_tokenizer):
    ids = reference_tokenizer(prompt, padding="max_length", max_length=length).input_ids
    return t5.model(input_ids=torch.tensor([ids])).last_hidden_state


@torch.no_grad()
def test_sd3_conditioning_is_clip_l_g_padded_then_t5(sd3_clip, reference_tokenizer):
    prompt = "a photo of a cat wearing a hat"
    context, pooled = sd3_clip.encode(prompt)
    hl, pl = _clip_by_hand(sd3_clip.clip_l, prompt)
    hg, pg = _clip_by_hand(sd3_clip.clip_g, prompt)
    t5 = _t5_by_hand(sd3_clip.t5, prompt, 77, reference_tokenizer)
    width = t5.shape[-1]
    clip = torch.nn.functional.pad(torch.cat([hl, hg], dim=-1), (0, width - hl.shape[-1] - hg.shape[-1]))
    torch.testing.assert_close(context, torch.cat([clip, t5], dim=1), atol=1e-5, rtol=0)
    torch.testing.assert_close(pooled, torch.cat([pl, pg], dim=-1), atol=1e-5, rtol=0)
    assert context.shape == (1, 77 + 77, width) and pooled.shape == (1, 64 + 128)


@torch.no_grad()
def test_sd3_per_encoder_prompts_and_empty_padding(sd3_clip, reference_tokenizer):
    context, pooled = sd3_clip.encode_sd3("red", "blue", "green", empty_padding=False)
    hl, pl = _clip_by_hand(sd3_clip.clip_l, "red")
    hg, pg = _clip_by_hand(sd3_clip.clip_g, "blue")
    torch.testing.assert_close(context[:, :77, :64], hl, atol=1e-5, rtol=0)
    torch.testing.assert_close(context[:, :77, 64:192], hg, atol=1e-5, rtol=0)
    assert torch.count_nonzero(context[:, :77, 192:]) == 0
    torch.testing.assert_close(context[:, 77:], _t5_by_hand(sd3_clip.t5, "green", 77, reference_tokenizer), atol=1e-5, rtol=0)
    # "none": both CLIP prompts empty -> T5 alone, zero pooled
    context, pooled = sd3_clip.encode_sd3("", "", "green", empty_padding=False)
    torch.testing.assert_close(context, _t5_by_hand(sd3_clip.t5, "green", 77, reference_tokenizer), atol=1e-5, rtol=0)
    assert pooled.shape == (1, 192) and torch.count_nonzero(pooled) == 0
    # one CLIP prompt empty: it is encoded as the empty prompt to match the other
    context, _ = sd3_clip.encode_sd3("", "blue", "green", empty_padding=False)
    torch.testing.assert_close(context[:, :77, :64], _clip_by_hand(sd3_clip.clip_l, "")[0], atol=1e-5, rtol=0)
    # empty T5 prompt with "none": T5 sees only </s>
    context, _ = sd3_clip.encode_sd3("red", "blue", "", empty_padding=False)
    assert context.shape[1] == 78
    # "empty_prompt": the empty T5 prompt is padded to 77
    context, _ = sd3_clip.encode_sd3("red", "blue", "", empty_padding=True)
    torch.testing.assert_close(context[:, 77:], _t5_by_hand(sd3_clip.t5, "", 77, reference_tokenizer), atol=1e-5, rtol=0)


@torch.no_grad()
def test_sd3_long_prompt_and_missing_encoders(encoder_files, sd3_clip, reference_tokenizer):
    long = " ".join(["astronaut"] * 100)
    context, _ = sd3_clip.encode(long)
    t5_len = len(reference_tokenizer(long).input_ids)
    assert context.shape[1] == 154 + max(77, t5_len)
    only_t5 = load_text_encoders([encoder_files["t5xxl"]], "sd3", device="cpu", dtype=torch.float32)
    context, pooled = only_t5.encode("a cat")
    torch.testing.assert_close(context, _t5_by_hand(only_t5.t5, "a cat", 77, reference_tokenizer), atol=1e-5, rtol=0)
    assert pooled.shape == (1, 2048) and torch.count_nonzero(pooled) == 0  # the real CLIP-L + CLIP-G widths
    clips = load_text_encoders([encoder_files["clip_g"], encoder_files["clip_l"]], "sd3", device="cpu",
                               dtype=torch.float32)
    context, pooled = clips.encode("a cat")
    assert context.shape == (1, 77, 4096)  # no T5: the CLIP part alone, padded to SD3's 4096
    hl, pl = _clip_by_hand(clips.clip_l, "a cat")
    torch.testing.assert_close(context[..., :64], hl, atol=1e-5, rtol=0)
    only_g = FlowTextEncoder("sd3", clip_g=clips.clip_g)
    context, pooled = only_g.encode("a cat")
    assert torch.count_nonzero(context[..., :768]) == 0  # CLIP-L's channels are zeros
    torch.testing.assert_close(context[..., 768:896], _clip_by_hand(clips.clip_g, "a cat")[0], atol=1e-5, rtol=0)
    assert torch.count_nonzero(pooled[:, :768]) == 0 and pooled.shape == (1, 768 + 128)


@torch.no_grad()
def test_flux_conditioning_is_t5_tokens_and_clip_l_pooled(encoder_files, reference_tokenizer):
    clip = load_text_encoders([encoder_files["t5xxl"], encoder_files["clip_l"]], "flux", device="cpu",
                              dtype=torch.float32)
    context, pooled = clip.encode_flux("a red fox", "a red fox in the snow")
    torch.testing.assert_close(context, _t5_by_hand(clip.t5, "a red fox in the snow", 256, reference_tokenizer),
                               atol=1e-5, rtol=0)
    ids = torch.tensor(tokenize_prompt("a red fox", clip.clip_l.spec.pad_token).ids)
    torch.testing.assert_close(pooled, clip.clip_l.transformer(input_ids=ids).pooler_output, atol=1e-5, rtol=0)
    assert context.shape == (1, 256, T5_TINY["d_model"])
    with pytest.raises(CheckpointError, match="CLIP-L and a T5"):
        load_text_encoders([encoder_files["clip_l"], encoder_files["clip_g"]], "flux", device="cpu")
    with pytest.raises(CheckpointError, match="not supported"):
        load_text_encoders([encoder_files["clip_l"]], "omnigen2", device="cpu")  # a ComfyUI type graphflow lacks


@torch.no_grad()
def test_all_in_one_prefixed_text_encoders_equal_the_separate_files(tmp_path, encoder_files, sd3_clip):
    """ComfyUI's packaged SD3.5 / FLUX files keep the encoders under text_encoders.<name>.transformer.;
    flow_text_encoder_from_file (for the checkpoint loader) reads them as the separate files."""
    from graphflow.models.text_encoder_files import flow_text_encoder_from_file
    from graphflow.models.weight_files import WeightFile

    state = {}
    for i, kind in enumerate(("clip_l", "clip_g", "t5xxl")):
        path = write_text_encoder(tmp_path / f"{kind}.safetensors", kind, seed=i, dtype=torch.float32,
                                  prefix=f"text_encoders.{kind}.transformer.")
        state.update(load_file(str(path)))
    state["model.diffusion_model.x_embedder.proj.weight"] = torch.zeros(4, 16, 2, 2, dtype=torch.float16)
    save_file(state, str(tmp_path / "all_in_one.safetensors"))
    with WeightFile(tmp_path / "all_in_one.safetensors") as f:
        clip = flow_text_encoder_from_file(f, "sd3", device="cpu", dtype=torch.float32)
        with pytest.raises(CheckpointError, match="clip_g"):
            flow_text_encoder_from_file(f, "flux", device="cpu")
    ours, pooled = clip.encode("a lighthouse at dusk")
    ref, ref_pooled = sd3_clip.encode("a lighthouse at dusk")  # the separate files of the same seeds
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(pooled, ref_pooled, atol=1e-6, rtol=0)
    with WeightFile(encoder_files["clip_l"]) as f:
        assert flow_text_encoder_from_file(f, "sd3") is None  # no prefixed encoders: not an all-in-one file


@torch.no_grad()
def test_clip_skip_on_sd3_encoders(sd3_clip):
    last = sd3_clip.with_clip_skip(-1)
    context, _ = last.encode("a cat")
    torch.testing.assert_close(context[:, :77, :64], _clip_by_hand(sd3_clip.clip_l, "a cat", layer=-1)[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="clip_skip"):
        sd3_clip.encode("a cat", clip_skip=0)
    # past CLIP-L's 2 layers (ComfyUI's CLIPSetLastLayer goes to -24): its last layer, normed; CLIP-G's -3
    context, _ = sd3_clip.with_clip_skip(-3).encode("a cat")
    ids = torch.tensor(tokenize_prompt("a cat", sd3_clip.clip_l.spec.pad_token).ids)
    normed = sd3_clip.clip_l.transformer(input_ids=ids).last_hidden_state
    torch.testing.assert_close(context[:, :77, :64], normed, atol=1e-5, rtol=0)
    torch.testing.assert_close(context[:, :77, 64:192], _clip_by_hand(sd3_clip.clip_g, "a cat", layer=-3)[0],
                               atol=1e-5, rtol=0)


@torch.no_grad()
def test_clip_l_projection_is_ignored_for_sd3_and_flux(encoder_files, sd3_clip):
    """The clip_l.safetensors shared between FLUX and SD3 carries OpenAI's text_projection; ComfyUI
    (and Stability's SD3 code) pool CLIP-L without it, CLIP-G with its own."""
    from graphflow.models.text_encoders import CLIP_L, TowerSpec, tower_from_weights

    state = load_file(str(encoder_files["clip_l"]))
    state["text_projection.weight"] = torch.randn(64, 64, generator=torch.Generator().manual_seed(8)) / 8
    state = {k.removeprefix("text_model."): v for k, v in state.items()}
    tower = tower_from_weights(TowerSpec(prefix="", **CLIP_L), {k: tuple(v.shape) for k, v in state.items()},
                               lambda k, d, t: state[k].to(t), "cpu", torch.float32)
    assert tower.projection is not None
    ids = torch.tensor(tokenize_prompt("a cat", tower.spec.pad_token).ids)
    unprojected = tower.transformer(input_ids=ids).pooler_output
    sd3 = FlowTextEncoder("sd3", clip_l=tower, clip_g=sd3_clip.clip_g, t5=sd3_clip.t5)
    _, pooled = sd3.encode("a cat")
    torch.testing.assert_close(pooled[:, :64], unprojected, atol=1e-6, rtol=0)
    torch.testing.assert_close(pooled[:, 64:], _clip_by_hand(sd3_clip.clip_g, "a cat")[1], atol=1e-6, rtol=0)
    _, pooled = FlowTextEncoder("flux", clip_l=tower, t5=sd3_clip.t5).encode("a cat")
    torch.testing.assert_close(pooled, unprojected, atol=1e-6, rtol=0)


@torch.no_grad()
def test_t5_tokenizer_options_pad_as_comfyui_orders_them(builtin_registry, encoder_files, sd3_clip,
                                                          reference_tokenizer):
    from test_nodes_image_mask import call

    prompt = "a red fox in the snow"
    n = len(reference_tokenizer(prompt).input_ids)  # pieces + </s>
    # min_padding <pad> after </s>, then <pad> up to min_length: transformers' max_length padding
    for min_padding, min_length, length in ((3, 0, n + 3), (3, 20, max(20, n + 3)), (0, 0, n), (2, n, n + 2)):
        ids, weights = tokenize_t5(prompt, min_length, min_padding)
        assert ids == reference_tokenizer(prompt, padding="max_length", max_length=length).input_ids
        assert weights == [1.0] * length
    flux = load_text_encoders([encoder_files["t5xxl"], encoder_files["clip_l"]], "flux", device="cpu",
                              dtype=torch.float32)
    padded = call(builtin_registry, "T5TokenizerOptions", clip=flux, min_padding=3, min_length=0)
    context, _ = padded.encode_flux("a red fox", prompt)
    torch.testing.assert_close(context, _t5_by_hand(flux.t5, prompt, n + 3, reference_tokenizer), atol=1e-5, rtol=0)
    assert flux.encode_flux("", prompt)[0].shape[1] == 256 and flux.t5_padding is None  # the input is unchanged
    # kept through the CLIP's other copies (clip skip, LoRA'd towers)
    assert padded.with_clip_skip(-1).encode_flux("", prompt)[0].shape[1] == n + 3
    assert padded.with_towers(padded.towers).t5_padding == (3, 0)
    # SD3: the T5 part follows the CLIP part's 77 tokens
    sd3 = call(builtin_registry, "T5TokenizerOptions", clip=sd3_clip, min_padding=0, min_length=32)
    context, _ = sd3.encode_sd3("a cat", "a cat", prompt, empty_padding=True)
    assert context.shape[1] == 77 + 32
    torch.testing.assert_close(context[:, 77:], _t5_by_hand(sd3_clip.t5, prompt, 32, reference_tokenizer),
                               atol=1e-5, rtol=0)
    other = object()  # a CLIP without T5 passes through, as ComfyUI sets options it never reads
    assert call(builtin_registry, "T5TokenizerOptions", clip=other, min_padding=1, min_length=1) is other


@torch.no_grad()
def test_clip_set_last_layer_reaches_t5(sd3_clip, reference_tokenizer):
    """ComfyUI's CLIPSetLastLayer sets the layer of every encoder of SD3 / FLUX, T5 included: -2 gives
    the output of T5's second-to-last block through its final layer norm, i.e. the stack without
    its last block; -1 and a layer past the first block give the usual last layer."""
    import copy

    prompt = "a (red:1.2) fox"
    ids = torch.tensor([tokenize_t5(prompt, 77)[0]])
    empty = torch.tensor([[1] + [0] * (ids.shape[1] - 1)])
    shorter = copy.deepcopy(sd3_clip.t5.model)
    shorter.encoder.block = shorter.encoder.block[:-1]
    z, z_empty = shorter(input_ids=ids).last_hidden_state, shorter(input_ids=empty).last_hidden_state
    w = torch.tensor(tokenize_t5(prompt, 77)[1])[None, :, None]
    expected = torch.where(w != 1.0, (z - z_empty) * w + z_empty, z)
    context, _ = sd3_clip.with_clip_skip(-2).encode(prompt)
    torch.testing.assert_close(context[:, 77:], expected, atol=1e-5, rtol=0)
    flux = FlowTextEncoder("flux", clip_l=sd3_clip.clip_l, t5=sd3_clip.t5)
    context, _ = flux.with_clip_skip(-2).encode("a fox")
    torch.testing.assert_close(context, shorter(input_ids=torch.tensor([tokenize_t5("a fox", 256)[0]])).last_hidden_state,
                               atol=1e-5, rtol=0)
    plain = flux.encode("a fox")[0]
    assert not torch.allclose(context, plain, atol=1e-3)
    for layer in (-1, -99):
        torch.testing.assert_close(flux.with_clip_skip(layer).encode("a fox")[0], plain, atol=1e-6, rtol=0)
