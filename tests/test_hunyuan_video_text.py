"""HunyuanVideo's text encoder (DualCLIPLoader type hunyuan_video): Llama 3's tokenizer against
transformers' fast tokenizer built from the same ranks file by transformers' own tiktoken converter;
the LLaVA-Llama-3 language model against transformers' LlamaModel on identical weights; the
conditioning against diffusers' HunyuanVideoPipeline.encode_prompt (its _get_llama_prompt_embeds /
_get_clip_prompt_embeds) on the same tiny files; ComfyUI's file layout (scaled fp8 included),
CLIPSetLastLayer, prompt weights, memory read-back and errors; TextEncodeHunyuanVideo_ImageToVideo
against transformers' LlavaForConditionalGeneration."""

import gzip

import pytest
import torch

from graphflow.models.llama import (BOS, PAD, PATTERN, SPECIAL_TOKENS, TEMPLATE, VOCAB_FILE, Llama,
                                    llama3_tokenizer, llama_config_from_state_dict, llama_from_state_dict,
                                    llama_prefix, prompt_span, prompt_tokens)
from graphflow.testing import (LLAMA_TINY_POOLED, LLAMA_TINY_WIDTH, llava_llama3_config, llava_llama3_state,
                               write_llava_llama3, write_text_encoder)

TOL = 2e-5  # float32 on both sides

SAMPLES = ["a cat", "Hello, World! 12345 3.14159 1,000,000", "一只猫坐在垫子上，阳光明媚。", "emoji 🦊🔥 👩‍👩‍👧 ok",
           "tabs\t\tand   spaces    ", "line1\nline2\r\n\n\nline3  \n ", "Cafe\u0301 vs Café, nai\u0308ve, Å",
           "it's they're WE'LL I'd", "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
           "x<image>y<pad><unk>", "<|begin_of_text|><|reserved_special_token_250|>", "  leading", "trailing  ", "",
           "???!!!...", "ﬁ ligature ①②", "한국어 テキスト русский текст العربية", "$$$ 9,999 ½ ² 1234567",
           "\u00a0nbsp\u3000ideographic space", "a (red:1.5) fox \\(literal\\)", "<|eot_id", "<|image|> <|eom_id|>"]


@pytest.fixture(scope="module")
def reference_tokenizer(tmp_path_factory):
    """transformers' PreTrainedTokenizerFast from transformers' TikTokenConverter over our shipped
    ranks, Llama 3's pattern and ComfyUI's (LLaVA-Llama-3's) 259 special tokens, adding
    <|begin_of_text|> in front and padding with <pad>, as ComfyUI's llama_tokenizer does."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = tmp_path_factory.mktemp("llama") / "llama3.tiktoken"
    ranks.write_bytes(gzip.decompress(VOCAB_FILE.read_bytes()))
    tok = TikTokenConverter(vocab_file=str(ranks), pattern=PATTERN,
                            extra_special_tokens=list(SPECIAL_TOKENS)).converted()
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                       special_tokens=[("<|begin_of_text|>", BOS)])
    ref = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", pad_token="<pad>",
                                  eos_token="<|end_of_text|>")
    assert ref.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == list(range(128000, 128259))
    return ref


def test_tokenizer_matches_transformers(reference_tokenizer):
    ours = llama3_tokenizer()
    for text in SAMPLES:
        assert ours(text) == reference_tokenizer(text, add_special_tokens=False)["input_ids"], text
    assert ours("<|begin_of_text|><|start_header_id|><|end_header_id|><|eot_id|>") == [128000, 128006, 128007, 128009]
    assert ours("<unk><image><pad>") == [128256, 128257, 128258] and PAD == 128258
    assert ours("user") == [882] and ours("\n\n") == [271] and ours(" cat") == [8415]
    assert ours("1234567") == [4513, 10961, 22]  # digits in threes (Llama 3's pattern), not one by one


def test_template_prefix_is_95_tokens(reference_tokenizer):
    """ComfyUI cuts the states after <|start_header_id|>user<|end_header_id|> and its "\\n\\n" and
    keeps the prompt's <|eot_id|>; diffusers' HunyuanVideoPipeline crops crop_start = 95 tokens
    of the same template: the same cut."""
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

    assert DEFAULT_PROMPT_TEMPLATE["template"] == TEMPLATE and DEFAULT_PROMPT_TEMPLATE["crop_start"] == 95
    for prompt in ("a cat walks on the grass", "", " leading space", "x <|eot_id|> y", "two\n\nlines"):
        ids, weights = prompt_tokens(prompt)
        assert ids == reference_tokenizer(TEMPLATE.format(prompt))["input_ids"], prompt
        assert weights == [1.0] * len(ids)
        span, _ = prompt_span(ids)
        assert span.start == 95, prompt
        # through the first <|eot_id|> after the user header
        assert ids[span][-1] == 128009 and 128009 not in ids[span][:-1]
    ids, _ = prompt_tokens("a cat")
    assert ids[prompt_span(ids)[0]] == reference_tokenizer("a cat<|eot_id|>", add_special_tokens=False)["input_ids"]
    # without a user header (another template): all of it, ComfyUI's slice from 0
    own, _ = prompt_tokens("plain", template="{}")
    assert prompt_span(own) == (slice(0, None), []) and own == [BOS, reference_tokenizer.convert_tokens_to_ids("plain")]


def test_prompt_weights_are_read(reference_tokenizer):
    """ComfyUI's LLAMA3Tokenizer reads weights over the templated text: "(red:1.5)" is weighted,
    "\\(" a literal bracket, each weighted part tokenized apart."""
    ids, weights = prompt_tokens("a (red:1.5) fox \\(x\\)")
    tail = ids[95:]
    want = [reference_tokenizer(t, add_special_tokens=False)["input_ids"] for t in ("a ", "red", " fox (x)<|eot_id|>")]
    assert tail == want[0] + want[1] + want[2]
    assert weights[95:] == [1.0] * len(want[0]) + [1.5] * len(want[1]) + [1.0] * len(want[2])
    ids, weights = prompt_tokens("((cat))")
    cat = reference_tokenizer("cat", add_special_tokens=False)["input_ids"]
    assert weights[95:] == [pytest.approx(1.21)] * len(cat) + [1.0]


def test_embedding_names_are_dropped_with_their_leftover_kept(reference_tokenizer):
    """ComfyUI cuts before "embedding:" after whitespace; a name it cannot find is dropped (with a
    warning), the words after it kept."""
    ids, _ = prompt_tokens("a embedding:nothing_here red fox")
    expected = [reference_tokenizer(t, add_special_tokens=False)["input_ids"] for t in ("a ", "red fox<|eot_id|>")]
    assert ids[95:] == expected[0] + expected[1]


def transformers_llama(state: dict, config=None):
    from transformers import LlamaConfig, LlamaModel

    cfg = config or llava_llama3_config()
    model = LlamaModel(LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
                                   intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_layers,
                                   num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
                                   head_dim=cfg.head_dim, rms_norm_eps=cfg.eps, rope_theta=cfg.rope_theta,
                                   attention_bias=False, mlp_bias=False, attn_implementation="eager"))
    model.load_state_dict({k[len("model."):]: v for k, v in state.items()})
    return model.eval()


def test_llama_matches_transformers():
    """Layer -3 (HunyuanVideo's), -1 unnormed and the normed last output against transformers'
    LlamaModel's hidden_states, with padding masked as keys."""
    state = llava_llama3_state()
    ours = llama_from_state_dict(state)
    assert ours.config == llava_llama3_config()
    theirs = transformers_llama(state)
    ids = torch.tensor([[BOS, 64, 8415, 23291, 389, 279, 16763, 128009], [BOS, 64, 8415, PAD, PAD, PAD, PAD, PAD]])
    mask = torch.tensor([[1] * 8, [1] * 3 + [0] * 5])
    with torch.no_grad():
        want = theirs(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        assert len(want.hidden_states) == 5
        keep = mask.bool()
        for layer, reference in ((-3, want.hidden_states[-3]), (-1, None), (None, want.last_hidden_state)):
            got = ours(ids, mask, layer=layer)
            if reference is None:  # the last layer's raw output: transformers' last entry is normed
                reference = want.hidden_states[-2]
                assert (got[keep] - reference[keep]).abs().max() > 1e-3
                continue
            assert (got[keep] - reference[keep]).abs().max() < TOL, layer
        assert (ours(ids, mask, layer=-3)[0] - ours(ids[:1], layer=-3)[0]).abs().max() < TOL


def test_config_from_shapes_and_recognition():
    full = llava_llama3_config(scaled_down=False)
    assert (full.vocab_size, full.hidden_size, full.intermediate_size, full.num_layers, full.num_heads,
            full.num_kv_heads, full.head_dim, full.eps, full.rope_theta) == (128320, 4096, 14336, 32, 32, 8, 128,
                                                                             1e-5, 500000.0)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Llama(full).state_dict().items()}
    assert llama_config_from_state_dict(shapes) == full
    # Llama 3 8B's 8,030,261,248 parameters less its head (128256 x 4096), plus LLaVA's 64 more embedding rows
    assert sum(torch.Size(s).numel() for s in shapes.values()) == 8_030_261_248 - 128256 * 4096 + 64 * 4096
    assert llama_prefix(shapes) == ""
    assert llama_prefix({"text.model.layers.0.post_attention_layernorm.weight": 0}) == "text."
    # Gemma-2 and Qwen2.5 share the marker: not Llama
    assert llama_prefix({**shapes, "model.layers.0.self_attn.k_proj.bias": (1024,)}) is None
    assert llama_prefix({**shapes, "model.layers.0.post_feedforward_layernorm.weight": (4096,)}) is None


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hyv")
    return (write_llava_llama3(d / "llava_llama3_fp16.safetensors", dtype=torch.float32, lm_head=True),
            write_text_encoder(d / "clip_l.safetensors", "clip_l", dtype=torch.float32))


def _diffusers_pipe(reference_tokenizer, tiny_files):
    """diffusers' HunyuanVideoPipeline's text half on the same weights: transformers' LlamaModel and
    CLIPTextModel, the reference tokenizer and transformers' CLIPTokenizer of graphflow's vocabulary."""
    from diffusers import HunyuanVideoPipeline
    from safetensors.torch import load_file
    from transformers import CLIPTextModel

    from graphflow.models.tokenizer import clip_bpe
    from graphflow.testing import text_config

    llama = transformers_llama({k: v for k, v in load_file(str(tiny_files[0])).items() if k.startswith("model.")})
    clip = CLIPTextModel(text_config("clip_l"))
    state = {k.removeprefix("text_model.") if k.removeprefix("text_model.") in clip.state_dict() else k: v
             for k, v in load_file(str(tiny_files[1])).items()}  # transformers 5 names it without text_model.
    missing, unexpected = clip.load_state_dict(state, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing)
    return HunyuanVideoPipeline(tokenizer=reference_tokenizer, text_encoder=llama, transformer=None, vae=None,
                                scheduler=None, text_encoder_2=clip.eval(), tokenizer_2=clip_bpe())


@pytest.mark.parametrize("order", [0, 1])
def test_dualcliploader_hunyuan_video_matches_diffusers(reference_tokenizer, tiny_files, order):
    """DualCLIPLoader type hunyuan_video (files in either order): Llama's layer -3 states of the
    prompt's tokens and <|eot_id|>, no padding (ComfyUI's: one prompt has no attention mask), and
    CLIP-L's unprojected pooled output: diffusers' encode_prompt with its padding dropped."""
    from graphflow.models.llama import HunyuanVideoTextEncoder
    from graphflow.models.text_encoder_files import load_text_encoders

    paths = list(tiny_files)[::-1] if order else list(tiny_files)
    clip = load_text_encoders(paths, "hunyuan_video", device="cpu", dtype=torch.float32)
    assert isinstance(clip, HunyuanVideoTextEncoder) and clip.output_dim == LLAMA_TINY_WIDTH
    pipe = _diffusers_pipe(reference_tokenizer, tiny_files)
    for prompt in ("a cat walks on the grass, golden light", "", "x <|eot_id|> y"):
        context, pooled = clip.encode(prompt)
        with torch.no_grad():
            embeds, pooled_want, mask = pipe.encode_prompt(prompt, device=torch.device("cpu"), dtype=torch.float32)
        assert mask.shape == (1, 256) and embeds.shape == (1, 256, LLAMA_TINY_WIDTH)
        length = int(mask.sum())
        assert mask[0, :length].all() and context.shape[0] == 1 and context.shape[2] == LLAMA_TINY_WIDTH
        if "<|eot_id|>" not in prompt:
            assert context.shape[1] == length and (context - embeds[:, :length]).abs().max() < TOL, prompt
        else:  # ComfyUI stops at the prompt's own <|eot_id|>; diffusers goes on to the template's
            cut = context.shape[1]
            assert cut == 3 < length and (context - embeds[:, :cut]).abs().max() < TOL
        assert pooled.shape == (1, LLAMA_TINY_POOLED) and (pooled - pooled_want).abs().max() < TOL
    # CLIP-L reads the raw prompt: a long one keeps its first window's pooled vector, as diffusers' truncation
    long = "a red fox runs through the snow " * 20
    _, pooled = clip.encode(long)
    with torch.no_grad():
        _, pooled_want, _ = pipe.encode_prompt(long, device=torch.device("cpu"), dtype=torch.float32)
    assert (pooled - pooled_want).abs().max() < TOL


def test_clip_set_last_layer_and_weights(tiny_files):
    """CLIPSetLastLayer -1: the last layer's output unnormed; past the first layer: the normed
    output (ComfyUI's "last"). (word:w): empty + (z - empty) * w, empty the encoding of
    <|begin_of_text|> and <pad>s, the <pad>s masked as keys, checked against transformers."""
    from safetensors.torch import load_file

    from graphflow.models.text_encoder_files import load_text_encoders

    clip = load_text_encoders(list(tiny_files), "hunyuan_video", device="cpu", dtype=torch.float32)
    theirs = transformers_llama({k: v for k, v in load_file(str(tiny_files[0])).items() if k.startswith("model.")})
    ids, _ = prompt_tokens("a red fox")
    span, _ = prompt_span(ids)
    with torch.no_grad():
        want = theirs(input_ids=torch.tensor([ids]), output_hidden_states=True)
    assert (clip.encode("a red fox")[0] - want.hidden_states[-3][:, span]).abs().max() < TOL
    assert (clip.encode("a red fox", clip_skip=-2)[0] - want.hidden_states[-2][:, span]).abs().max() < TOL
    last = clip.with_clip_skip(-1).encode("a red fox")[0]  # unnormed: not transformers' (normed) last entry
    assert (last - want.hidden_states[-1][:, span]).abs().max() > 1e-3
    assert (theirs.norm(last) - want.hidden_states[-1][:, span]).abs().max() < TOL
    assert (clip.with_clip_skip(-4).encode("a red fox")[0] - want.hidden_states[1][:, span]).abs().max() < TOL
    assert (clip.with_clip_skip(-5).encode("a red fox")[0] - want.last_hidden_state[:, span]).abs().max() < TOL
    with pytest.raises(ValueError, match="negative integer"):
        clip.with_clip_skip(0)

    weighted, pooled_w = clip.encode("a (red:1.5) fox")
    plain_ids, weights = prompt_tokens("a (red:1.5) fox")
    with torch.no_grad():
        z = theirs(input_ids=torch.tensor([plain_ids]), output_hidden_states=True).hidden_states[-3]
        empty = theirs(input_ids=torch.tensor([[BOS] + [PAD] * (len(plain_ids) - 1)]), output_hidden_states=True,
                       attention_mask=torch.tensor([[1] + [0] * (len(plain_ids) - 1)])).hidden_states[-3]
    w = torch.tensor(weights)[None, :, None]
    want = torch.where(w != 1, (z - empty) * w + empty, z)[:, prompt_span(plain_ids)[0]]
    assert 1.5 in weights and (weighted - want).abs().max() < TOL
    assert (weighted - z[:, prompt_span(plain_ids)[0]]).abs().max() > 1e-3
    _, pooled = clip.encode("a red fox")
    assert torch.allclose(pooled_w, pooled, atol=TOL)  # CLIP-L's pooled output ignores weights


def test_scaled_fp8_file_reads_as_its_dequantised_weights(tmp_path, tiny_files):
    """ComfyUI's llava_llama3_fp8_scaled layout: fp8 Linear weights x scale_weight, a scaled_fp8 marker."""
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_scaled_fp8

    scaled = write_scaled_fp8(tiny_files[0], tmp_path / "llava_llama3_fp8_scaled.safetensors", prefixes=("model.",),
                              dequantised=tmp_path / "plain.safetensors")
    report = inspect_report(scaled)
    assert "LLaVA-Llama-3 8B text encoder (HunyuanVideo: type hunyuan_video" in report and "scaled fp8" in report
    a = load_text_encoders([scaled, tiny_files[1]], "hunyuan_video", device="cpu", dtype=torch.float32)
    b = load_text_encoders([tmp_path / "plain.safetensors", tiny_files[1]], "hunyuan_video", device="cpu",
                           dtype=torch.float32)
    assert (a.encode("a cat")[0] - b.encode("a cat")[0]).abs().max() < TOL
    assert (a.encode("a cat")[0] - load_text_encoders(list(tiny_files), "hunyuan_video", device="cpu",
                                                      dtype=torch.float32).encode("a cat")[0]).abs().max() > 1e-4


def test_wrong_files_are_named(tmp_path, tiny_files):
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.models.weight_files import CheckpointError

    llama, clip_l = tiny_files
    t5 = write_text_encoder(tmp_path / "t5.safetensors", "t5xxl")
    clip_g = write_text_encoder(tmp_path / "clip_g.safetensors", "clip_g")
    with pytest.raises(CheckpointError, match=r"HunyuanVideo needs a CLIP-L file .*\(llava_llama3_fp8_scaled"):
        load_text_encoders([clip_l, t5], "hunyuan_video", device="cpu")
    with pytest.raises(CheckpointError, match="HunyuanVideo needs a CLIP-L file"):
        load_text_encoders([llama, clip_g], "hunyuan_video", device="cpu")
    with pytest.raises(CheckpointError, match="two clip_l text encoders"):
        load_text_encoders([clip_l, clip_l], "hunyuan_video", device="cpu")
    with pytest.raises(CheckpointError, match="FLUX needs a CLIP-L and a T5-XXL"):
        load_text_encoders([llama, clip_l], "flux", device="cpu")
    with pytest.raises(CheckpointError, match="LLaVA-Llama-3 is HunyuanVideo's text encoder alone"):
        load_text_encoders([llama, clip_l], "sd3", device="cpu")
    with pytest.raises(CheckpointError, match="holds a LLaVA-Llama-3 8B text encoder.*hunyuan_video"):
        load_text_encoders([llama, clip_l], "sdxl", device="cpu")


def test_dualcliploader_node_and_cliptextencode(tmp_folders, tiny_files):
    """ComfyUI's API graph: DualCLIPLoader type hunyuan_video + CLIPTextEncode gives the
    conditioning [1, L, width] with CLIP-L's pooled vector as pooled_output."""
    import shutil

    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.workflow import parse_workflow

    folder = tmp_folders.models / "text_encoders"
    folder.mkdir()
    for path in tiny_files:
        shutil.copy(path, folder / path.name)
    graph = {"1": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors",
                                                             "clip_name2": "llava_llama3_fp16.safetensors",
                                                             "type": "hunyuan_video", "device": "default"}},
             "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 0]}}}
    registry = Registry().load_builtin()
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["2", "1"])
    assert result.ok, result.error
    [(cond, options)] = result.values["2"][0]
    clip = result.values["1"][0]
    want, pooled = clip.encode("a cat")
    assert cond.shape == (1, 3, LLAMA_TINY_WIDTH) and torch.equal(cond, want)  # "a", " cat", <|eot_id|>
    assert set(options) == {"pooled_output"} and torch.equal(options["pooled_output"], pooled)


def test_dropped_encoders_are_read_back_from_their_files(fresh_manager, tiny_files):
    from graphflow.models.text_encoder_files import load_text_encoders

    clip = load_text_encoders(list(tiny_files), "hunyuan_video", device="cpu", dtype=torch.float32)
    before = clip.encode("a cat")
    for module, name in ((clip.model, "text_encoder:llama"), (clip.clip_l.model, "text_encoder:clip_l")):
        comp = fresh_manager.components[id(module)]
        assert comp.name == name and comp.reload is not None
        state = {k: v.clone() for k, v in module.state_dict().items()}
        fresh_manager._drop(comp)
        assert comp.state == "dropped" and all(p.is_meta for p in module.parameters())
        fresh_manager.present(module)
        assert all(torch.equal(module.state_dict()[k], v) for k, v in state.items()), name
    after = clip.encode("a cat")
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])


def test_clipsave_merge_and_attention_multiply(tmp_path, tiny_files):
    """CLIPSave writes CLIP-L and the Llama (model.*) as files DualCLIPLoader hunyuan_video reads back
    unchanged; CLIPMergeSimple merges both networks by name; CLIPAttentionMultiply scales the
    Llama's q/k/v projections (not o_proj: ComfyUI matches self_attn.out_proj) and CLIP-L's four."""
    from safetensors.torch import load_file, save_file

    from graphflow.models.attention_multiply import multiply_clip_attention
    from graphflow.models.checkpoint_save import save_text_encoder, text_encoder_states
    from graphflow.models.merge import merge_clips
    from graphflow.models.text_encoder_files import load_text_encoders

    clip = load_text_encoders(list(tiny_files), "hunyuan_video", device="cpu", dtype=torch.float32)
    states = text_encoder_states(clip)
    assert set(states) == {"clip_l", "llama"} and all(k.startswith("model.") for k in states["llama"][0])
    saved = [save_text_encoder(tmp_path / f"clip_{name}.safetensors", state) for name, state in states.items()]
    back = load_text_encoders(saved, "hunyuan_video", device="cpu", dtype=torch.float32)
    for a, b in zip(back.encode("a (red:1.2) fox"), clip.encode("a (red:1.2) fox")):
        assert torch.equal(a, b)

    other_llama = write_llava_llama3(tmp_path / "other_llama.safetensors", seed=9, dtype=torch.float32)
    other_clip = write_text_encoder(tmp_path / "other_clip_l.safetensors", "clip_l", seed=9, dtype=torch.float32)
    other = load_text_encoders([other_llama, other_clip], "hunyuan_video", device="cpu", dtype=torch.float32)
    merged = merge_clips(clip, other, lambda name: (0.25, 0.75))
    for mine, theirs, name in ((tiny_files[0], other_llama, "llama"), (tiny_files[1], other_clip, "clip_l")):
        a, b = load_file(str(mine)), load_file(str(theirs))
        mix = {k: 0.25 * v + 0.75 * b[k] for k, v in a.items() if k in b}  # the head aside: not read
        save_file(mix, str(tmp_path / f"mix_{name}.safetensors"))
    mix = load_text_encoders([tmp_path / "mix_llama.safetensors", tmp_path / "mix_clip_l.safetensors"],
                             "hunyuan_video", device="cpu", dtype=torch.float32)
    for a, b in zip(merged.encode("a fox"), mix.encode("a fox")):
        assert (a - b).abs().max() < 1e-4
    assert (clip.encode("a fox")[0] - merged.encode("a fox")[0]).abs().max() > 1e-3

    scaled = multiply_clip_attention(clip, 1.0, 1.0, 2.0, 3.0)  # v x 2, out x 3
    state = load_file(str(tiny_files[0]))
    state = {k: v * 2 if ".self_attn.v_proj." in k else v for k, v in state.items()}  # o_proj untouched
    save_file(state, str(tmp_path / "v2.safetensors"))
    clip_state = load_file(str(tiny_files[1]))
    clip_state = {k: v * (2 if ".self_attn.v_proj." in k else 3 if ".self_attn.out_proj." in k else 1)
                  for k, v in clip_state.items()}
    save_file(clip_state, str(tmp_path / "clip_v2.safetensors"))
    want = load_text_encoders([tmp_path / "v2.safetensors", tmp_path / "clip_v2.safetensors"], "hunyuan_video",
                              device="cpu", dtype=torch.float32)
    for a, b in zip(scaled.encode("a fox"), want.encode("a fox")):
        assert (a - b).abs().max() < 1e-4


def test_device_cpu_keeps_both_encoders_on_the_cpu(fresh_manager, tiny_files):
    """DualCLIPLoader device "cpu": the Llama and CLIP-L are pinned there (loaded and run on the CPU)."""
    from graphflow.models.text_encoder_files import load_text_encoders

    clip = load_text_encoders(list(tiny_files), "hunyuan_video", on_cpu=True)
    assert fresh_manager.is_pinned(clip.model) and fresh_manager.is_pinned(clip.clip_l.model)
    assert clip.device.type == "cpu" and clip.encode("a cat")[0].shape == (1, 3, LLAMA_TINY_WIDTH)


@pytest.mark.parametrize("interleave", [2, 1])
def test_image_to_video_matches_transformers_llava(tmp_folders, tiny_files, interleave):
    """CLIPVisionLoader llava_llama3_vision + CLIPVisionEncode + TextEncodeHunyuanVideo_ImageToVideo
    against transformers' LlavaForConditionalGeneration on the same weights (vision_feature_layer
    -2, the class token dropped, the projector, the <image> token expanded to the picture's rows):
    its language model's hidden_states[-3], every `interleave`-th picture row, then the prompt's
    tokens through its <|eot_id|>, as ComfyUI's HunyuanVideoClipModel cuts them."""
    import shutil

    from PIL import Image
    from safetensors.torch import load_file
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    from graphflow.executor import Executor
    from graphflow.models.clip_vision import preprocess
    from graphflow.models.llama import I2V_TEMPLATE, IMAGE
    from graphflow.registry import Registry
    from graphflow.testing import clip_vision_config, write_llava_llama3_vision
    from graphflow.workflow import parse_workflow

    models = tmp_folders.models
    for sub in ("text_encoders", "clip_vision"):
        (models / sub).mkdir()
    for path in tiny_files:
        shutil.copy(path, models / "text_encoders" / path.name)
    vision = write_llava_llama3_vision(models / "clip_vision" / "llava_llama3_vision.safetensors", dtype=torch.float32)
    pixels8 = torch.randint(0, 256, (70, 60, 3), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    Image.fromarray(pixels8.numpy()).save(tmp_folders.inputs / "pic.png")
    prompt = "a cat walks"
    graph = {"1": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "llava_llama3_fp16.safetensors",
                                                             "clip_name2": "clip_l.safetensors",
                                                             "type": "hunyuan_video", "device": "default"}},
             "2": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "llava_llama3_vision.safetensors"}},
             "3": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["2", 0], "image": ["5", 0],
                                                                "crop": "center"}},
             "4": {"class_type": "TextEncodeHunyuanVideo_ImageToVideo",
                   "inputs": {"clip": ["1", 0], "clip_vision_output": ["3", 0], "prompt": prompt,
                              "image_interleave": interleave}},
             "5": {"class_type": "LoadImage", "inputs": {"image": "pic.png"}}}
    registry = Registry().load_builtin()
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["4", "3", "1"])
    assert result.ok, result.error
    [(cond, options)] = result.values["4"][0]
    output, clip = result.values["3"][0], result.values["1"][0]
    assert output.mm_projected.shape == (1, 16, LLAMA_TINY_WIDTH)
    picture = pixels8[None].float() / 255

    llama_cfg = llava_llama3_config()
    vision_cfg = clip_vision_config(projection_dim=0)
    llava = LlavaForConditionalGeneration(LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=vision_cfg.hidden_size, num_hidden_layers=vision_cfg.num_layers,
                                       num_attention_heads=vision_cfg.num_heads,
                                       intermediate_size=vision_cfg.intermediate_size,
                                       patch_size=vision_cfg.patch_size, image_size=vision_cfg.image_size,
                                       hidden_act=vision_cfg.hidden_act),
        text_config=LlamaConfig(vocab_size=llama_cfg.vocab_size, hidden_size=llama_cfg.hidden_size,
                                intermediate_size=llama_cfg.intermediate_size, num_hidden_layers=llama_cfg.num_layers,
                                num_attention_heads=llama_cfg.num_heads, num_key_value_heads=llama_cfg.num_kv_heads,
                                head_dim=llama_cfg.head_dim, rms_norm_eps=llama_cfg.eps,
                                rope_theta=llama_cfg.rope_theta),
        image_token_index=IMAGE, vision_feature_layer=-2, vision_feature_select_strategy="default",
        projector_hidden_act="gelu", attn_implementation="eager"))
    state = {"model.vision_tower." + k.removeprefix("vision_model."): v for k, v in load_file(str(vision)).items()
             if k.startswith("vision_model.")}
    state |= {"model." + k: v for k, v in load_file(str(vision)).items() if k.startswith("multi_modal_projector.")}
    state |= {"model.language_model." + k.removeprefix("model."): v
              for k, v in load_file(str(tiny_files[0])).items() if k.startswith("model.")}
    missing, unexpected = llava.load_state_dict(state, strict=False)
    assert not unexpected and missing == ["lm_head.weight"]
    ids, _ = prompt_tokens(prompt, I2V_TEMPLATE)
    at = ids.index(IMAGE)
    expanded = ids[:at] + [IMAGE] * 16 + ids[at + 1:]
    pixels = preprocess(picture, 56, vision_cfg.image_mean, vision_cfg.image_std)
    with torch.no_grad():
        states = llava.eval()(input_ids=torch.tensor([expanded]), pixel_values=pixels,
                              output_hidden_states=True).hidden_states[-3]
    text, _ = prompt_span(expanded)  # found in the expanded ids: the same cut
    want = torch.cat([states[:, at:at + 16:interleave], states[:, text]], dim=1)
    assert ids[prompt_span(ids)[0]][-1] == 128009 and cond.shape == want.shape
    assert (cond - want).abs().max() < TOL
    assert cond.shape[1] == 16 // interleave + len(prompt_tokens(prompt)[0]) - 95
    _, pooled = clip.encode(prompt)
    assert torch.equal(options["pooled_output"], pooled)


def test_image_to_video_errors(tmp_path, tiny_files):
    """A CLIP vision output without LLaVA's projection, another CLIP, a weighted prompt: named."""
    from graphflow.api import NodeInputError
    from graphflow.models.clip_vision import load_clip_vision
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_clip_vision, write_llava_llama3_vision
    from nodes.hunyuan_video_text import TextEncodeHunyuanVideoImageToVideo

    clip = load_text_encoders(list(tiny_files), "hunyuan_video", device="cpu", dtype=torch.float32)
    picture = torch.rand(1, 56, 56, 3)
    plain = load_clip_vision(write_clip_vision(tmp_path / "clip_vision_l.safetensors"), device="cpu",
                             dtype=torch.float32).encode_image(picture)
    llava = load_clip_vision(write_llava_llama3_vision(tmp_path / "v.safetensors"), device="cpu",
                             dtype=torch.float32).encode_image(picture)
    def node(**inputs):
        made = TextEncodeHunyuanVideoImageToVideo.__new__(TextEncodeHunyuanVideoImageToVideo)
        made.__dict__.update(inputs)
        return made

    with pytest.raises(NodeInputError, match="llava_llama3_vision"):
        node(clip=clip, clip_vision_output=plain, prompt="a cat", image_interleave=2).run()
    flux = load_text_encoders([tiny_files[1], write_text_encoder(tmp_path / "t5.safetensors", "t5xxl")], "flux",
                              device="cpu")
    with pytest.raises(NodeInputError, match="DualCLIPLoader type hunyuan_video"):
        node(clip=flux, clip_vision_output=llava, prompt="a cat", image_interleave=2).run()
    with pytest.raises(NodeInputError, match="prompt weights cannot go with a picture"):
        node(clip=clip, clip_vision_output=llava, prompt="a (cat:1.2)", image_interleave=2).run()
