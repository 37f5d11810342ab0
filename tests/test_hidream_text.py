"""HiDream-I1's text side (QuadrupleCLIPLoader, CLIPTextEncodeHiDream): the conditioning against
diffusers' HiDreamImagePipeline._get_clip_prompt_embeds / _get_t5_prompt_embeds /
_get_llama3_prompt_embeds with transformers' CLIPTextModelWithProjection, T5EncoderModel and
LlamaForCausalLM on the same tiny files (where ComfyUI and diffusers agree), and against small
hand computations where they differ (Llama prompts past 128 tokens: ComfyUI does not cut them;
Llama 3.1's rope scaling: ComfyUI has none; prompt weights; missing encoders). Then a ComfyUI
HiDream-I1 Full graph end to end, and workflows/hidream_i1_full.json as saved."""

import gzip
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from graphflow.models.hidream_text import HiDreamTextEncoder
from graphflow.models.llama import BOS, EOT, PATTERN, SPECIAL_TOKENS, VOCAB_FILE, prompt_tokens
from graphflow.models.text_encoder_files import load_text_encoders
from graphflow.models.weight_files import CheckpointError, config_metadata
from graphflow.testing import (HIDREAM_TINY_LLAMA_DIM, HIDREAM_TINY_POOLED_DIM, HIDREAM_TINY_T5_DIM, T5_TINY,
                               llama31_config, text_config, write_llama31, write_text_encoder)

TOL = 2e-5  # float32 on both sides
PROMPTS = ["a cat walks on the grass, golden light", "", "Hello, World! 12345 一只猫"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The four tiny files, CLIP-L with a text projection (as HiDream's clip_l carries one)."""
    d = tmp_path_factory.mktemp("hidream_te")
    clip_l = write_text_encoder(d / "clip_l.safetensors", "clip_l", seed=1, dtype=torch.float32)
    state = load_file(str(clip_l))
    state["text_projection.weight"] = torch.randn(64, 64, generator=torch.Generator().manual_seed(8)) / 8
    # a tiny CLIP-L with a projection looks like a CLIP-G by its shapes: the file says which it is
    save_file(state, str(clip_l), metadata=config_metadata(text_encoders={"clip_l": {}}))
    return {"clip_l": clip_l,
            "clip_g": write_text_encoder(d / "clip_g.safetensors", "clip_g", seed=2, dtype=torch.float32),
            "t5xxl": write_text_encoder(d / "t5xxl.safetensors", "t5xxl", seed=3, dtype=torch.float32),
            "llama": write_llama31(d / "llama_3.1_8b_instruct_fp8_scaled.safetensors", dtype=torch.float32,
                                   lm_head=True)}


@pytest.fixture(scope="module")
def clip(files):
    order = [files[k] for k in ("llama", "t5xxl", "clip_g", "clip_l")]  # any order
    return load_text_encoders(order, "hidream", device="cpu", dtype=torch.float32)


def _llama_tokenizer(tmp_path_factory):
    """transformers' fast tokenizer over the shipped Llama 3 ranks (as test_hunyuan_video_text's),
    <|begin_of_text|> in front, <|eot_id|> its eos (diffusers pads with the eos)."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = tmp_path_factory.mktemp("llama") / "llama3.tiktoken"
    ranks.write_bytes(gzip.decompress(VOCAB_FILE.read_bytes()))
    tok = TikTokenConverter(vocab_file=str(ranks), pattern=PATTERN,
                            extra_special_tokens=list(SPECIAL_TOKENS)).converted()
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                       special_tokens=[("<|begin_of_text|>", BOS)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   model_max_length=10 ** 6)


def _transformers_llama(state: dict, rope_scaling=None):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = llama31_config()
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim, rms_norm_eps=cfg.eps, rope_theta=cfg.rope_theta, rope_scaling=rope_scaling,
        attention_bias=False, mlp_bias=False, tie_word_embeddings=False, attn_implementation="eager"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not missing and not unexpected
    return model.eval()


@pytest.fixture(scope="module")
def pipe(files, tmp_path_factory):
    """diffusers' HiDreamImagePipeline's text half on the same weights (ComfyUI's Llama: no rope scaling)."""
    from diffusers import HiDreamImagePipeline
    from transformers import CLIPTextModelWithProjection, T5Config, T5EncoderModel, T5TokenizerFast

    from graphflow.models.t5 import TOKENIZER_FILE
    from graphflow.models.tokenizer import clip_bpe

    clips = []
    for name in ("clip_l", "clip_g"):
        config = text_config(name)
        config.projection_dim = 64 if name == "clip_l" else config.projection_dim
        model = CLIPTextModelWithProjection(config)
        state = load_file(str(files[name]))
        names = model.state_dict()
        state = {k if k in names else k.removeprefix("text_model."): v for k, v in state.items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        assert not unexpected and all("position_ids" in k for k in missing)
        clips.append(model.eval())
    t5 = T5EncoderModel(T5Config(vocab_size=32128, feed_forward_proj="gated-gelu", is_encoder_decoder=False,
                                 use_cache=False, dropout_rate=0.0, **T5_TINY))
    state = load_file(str(files["t5xxl"]))
    t5.load_state_dict({**state, "encoder.embed_tokens.weight": state["shared.weight"]})
    llama = _transformers_llama(load_file(str(files["llama"])))
    return HiDreamImagePipeline(scheduler=None, vae=None, text_encoder=clips[0], tokenizer=clip_bpe(),
                                text_encoder_2=clips[1], tokenizer_2=clip_bpe(), text_encoder_3=t5.eval(),
                                tokenizer_3=T5TokenizerFast(tokenizer_file=str(TOKENIZER_FILE)),
                                text_encoder_4=llama, tokenizer_4=_llama_tokenizer(tmp_path_factory), transformer=None)


@torch.no_grad()
def test_quadruple_loader_matches_diffusers(clip, pipe):
    """T5's 128 padded tokens (padding masked, kept), CLIP-L + CLIP-G projected pooled outputs, and
    Llama's hidden_states[1:] over <|begin_of_text|> + prompt padded with <|eot_id|> to 128: as
    diffusers' pipeline gives them (its CLIP windows of 77 here: the tiny CLIPs' positions)."""
    cpu = torch.device("cpu")
    assert isinstance(clip, HiDreamTextEncoder)
    for prompt in PROMPTS:
        context, pooled, options = clip.encode(prompt)
        llama = options["conditioning_llama3"]
        assert context.shape == (1, 128, HIDREAM_TINY_T5_DIM) and pooled.shape == (1, HIDREAM_TINY_POOLED_DIM)
        assert llama.shape == (1, llama31_config().num_layers, 128, HIDREAM_TINY_LLAMA_DIM)
        t5 = pipe._get_t5_prompt_embeds(prompt, 128, cpu, torch.float32)
        pooled_l = pipe._get_clip_prompt_embeds(pipe.tokenizer, pipe.text_encoder, prompt, 77, cpu, torch.float32)
        pooled_g = pipe._get_clip_prompt_embeds(pipe.tokenizer_2, pipe.text_encoder_2, prompt, 77, cpu, torch.float32)
        want_llama = pipe._get_llama3_prompt_embeds(prompt, 128, cpu, torch.float32)  # [layers, B, L, D]
        assert (context - t5).abs().max() < TOL, prompt
        assert (pooled - torch.cat([pooled_l, pooled_g], dim=-1)).abs().max() < TOL, prompt
        assert (llama - want_llama.transpose(0, 1)).abs().max() < TOL, prompt
    # the padded T5 / Llama states are not zero (kept, as both keep them)
    assert context[0, -1].abs().max() > 1e-3 and llama[0, :, -1].abs().max() > 1e-3


@torch.no_grad()
def test_llama_rope_scaling_and_long_prompts_follow_comfyui(clip, files):
    """ComfyUI's Llama has no Llama 3.1 rope scaling (transformers' Llama 3.1 config has: the states
    differ) and does not cut prompts at 128 tokens (diffusers does): checked by hand."""
    state = load_file(str(files["llama"]))
    scaled = _transformers_llama(state, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    plain = _transformers_llama(state)
    long = "a red fox runs through the snow, " * 30
    ids, _ = prompt_tokens(long, "{}")
    assert len(ids) > 128
    ours = clip.encode_hidream("", "", "", long)[2]["conditioning_llama3"]
    want = torch.stack(plain(torch.tensor([ids]), output_hidden_states=True).hidden_states[1:], dim=1)
    assert ours.shape[2] == len(ids) and (ours - want).abs().max() < TOL
    other = torch.stack(scaled(torch.tensor([ids]), output_hidden_states=True).hidden_states[1:], dim=1)
    assert (ours - other).abs().max() > 1e-3
    # a short prompt: padded with <|eot_id|>, masked from the first one (the prompt's own included)
    ids = [BOS] + clip.llama_tokens("x <|eot_id|> y")[0][1:]
    first = ids.index(EOT)
    mask = torch.tensor([[1] * first + [0] * (len(ids) - first)])
    want = torch.stack(plain(torch.tensor([ids]), attention_mask=mask, output_hidden_states=True).hidden_states[1:], 1)
    assert (clip.llama_states("x <|eot_id|> y") - want).abs().max() < TOL


@torch.no_grad()
def test_per_encoder_prompts_and_weights(clip):
    """CLIPTextEncodeHiDream's four prompts go each to its encoder; (word:w) as ComfyUI: T5
    empty + (z - empty) * w with the empty tokens </s> <pad>... under their mask; Llama's weight of
    token j on layer entry j (ComfyUI's weighting walks the layer axis), the empty row
    <|begin_of_text|> <|eot_id|>... masked after its first token. CLIPSetLastLayer reaches T5 alone."""
    a, b = "a cat", "a dog on a boat"
    context, pooled, options = clip.encode_hidream(a, b, b, a)
    assert (context - clip.encode(b)[0]).abs().max() == 0
    assert (options["conditioning_llama3"] - clip.encode(a)[2]["conditioning_llama3"]).abs().max() == 0
    assert (pooled[:, :64] - clip.encode(a)[1][:, :64]).abs().max() == 0
    assert (pooled[:, 64:] - clip.encode(b)[1][:, 64:]).abs().max() == 0

    t5 = clip.t5
    weighted = clip.t5_states("a (red:1.5) fox")
    ids, weights = t5.tokenize("a (red:1.5) fox", 128)
    n = ids.index(t5.eos) + 1
    z = t5.model(input_ids=torch.tensor([ids]), attention_mask=torch.tensor([[1] * n + [0] * (128 - n)]))[0]
    e = t5.model(input_ids=torch.tensor([[t5.eos] + [0] * 127]), attention_mask=torch.tensor([[1] + [0] * 127]))[0]
    w = torch.tensor(weights)[None, :, None]
    assert any(x != 1.0 for x in weights) and (weighted - (e + (z - e) * w)).abs().max() < TOL

    ids, weights = clip.llama_tokens("(red:1.5) fox")
    assert weights[1] == 1.5 and ids[0] == BOS
    states = clip.run_llama([ids, [BOS] + [EOT] * (len(ids) - 1)])
    want = states[:1].clone()
    for j in range(1, 5):  # entries 0..3 of the 4 layers take tokens 1..4's weights
        want[0, j - 1] = states[1, j - 1] + (states[0, j - 1] - states[1, j - 1]) * weights[j]
    got = clip.llama_states("(red:1.5) fox")
    assert (got - want).abs().max() < TOL and (got - states[:1]).abs().max() > 1e-3
    # CLIPSetLastLayer: T5's block -2 through its final norm; Llama and the pooled vector unchanged
    context, pooled, options = clip.with_clip_skip(-2).encode("a cat")
    ids, _ = t5.tokenize("a cat", 128)
    n = ids.index(t5.eos) + 1
    hidden = t5.model(input_ids=torch.tensor([ids]), attention_mask=torch.tensor([[1] * n + [0] * (128 - n)]),
                      output_hidden_states=True).hidden_states[-2]
    assert (context - t5.model.encoder.final_layer_norm(hidden)).abs().max() < TOL
    assert (context - clip.encode("a cat")[0]).abs().max() > 1e-3
    assert torch.equal(options["conditioning_llama3"], clip.encode("a cat")[2]["conditioning_llama3"])
    assert torch.equal(pooled, clip.encode("a cat")[1])
    assert torch.equal(clip.encode("a cat", clip_skip=-2)[0], context)
    with pytest.raises(ValueError):
        clip.with_clip_skip(0)


@torch.no_grad()
def test_missing_encoders_give_comfyui_zeros_and_loader_types(files, clip):
    """CLIPLoader / DualCLIPLoader type hidream: the missing encoders' parts are ComfyUI's zeros
    (T5 [1, 128, 4096], Llama [1, 32, 1, 4096], pooled [1, 2048] unless both CLIPs are there)."""
    llama_only = load_text_encoders([files["llama"]], "hidream", device="cpu", dtype=torch.float32)
    context, pooled, options = llama_only.encode("a cat")
    assert (context == 0).all() and context.shape == (1, 128, 4096)
    assert (pooled == 0).all() and pooled.shape == (1, 2048)
    assert (options["conditioning_llama3"] - clip.encode("a cat")[2]["conditioning_llama3"]).abs().max() == 0
    dual = load_text_encoders([files["clip_g"], files["t5xxl"]], "hidream", device="cpu", dtype=torch.float32)
    context, pooled, options = dual.encode("a cat")
    assert (context - clip.encode("a cat")[0]).abs().max() == 0 and (pooled == 0).all()
    assert options["conditioning_llama3"].shape == (1, 32, 1, 4096) and (options["conditioning_llama3"] == 0).all()
    both = load_text_encoders([files["clip_l"], files["clip_g"]], "hidream", device="cpu", dtype=torch.float32)
    assert (both.encode("a cat")[1] - clip.encode("a cat")[1]).abs().max() == 0
    with pytest.raises(CheckpointError, match="two clip_l"):
        load_text_encoders([files["clip_l"], files["clip_l"], files["t5xxl"], files["llama"]], "hidream",
                           device="cpu", dtype=torch.float32)


@pytest.fixture
def hidream_models(tmp_folders, files):
    """ComfyUI's HiDream-I1 Full files (tiny): the diffusion model, the four text encoders, FLUX's VAE."""
    import shutil

    from graphflow.testing import write_flow_vae, write_hidream

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    write_hidream(m / "diffusion_models" / "hidream_i1_full_fp16.safetensors", dtype=torch.float32, seed=5)
    for name, target in (("clip_l", "clip_l_hidream"), ("clip_g", "clip_g_hidream"),
                         ("t5xxl", "t5xxl_fp8_e4m3fn_scaled"), ("llama", "llama_3.1_8b_instruct_fp8_scaled")):
        shutil.copy(files[name], m / "text_encoders" / f"{target}.safetensors")
    write_flow_vae(m / "vae" / "ae.safetensors", dtype=torch.float32)
    return tmp_folders


def test_hidream_example_workflow(hidream_models):
    """workflows/hidream_i1_full.json as saved but for its size and steps (ComfyUI's template:
    QuadrupleCLIPLoader, CLIPTextEncode, ModelSamplingSD3 3.0, uni_pc / simple, cfg 5): the
    prompts, the negative and the shift all count; CLIPTextEncodeHiDream with one prompt four
    times equals CLIPTextEncode."""
    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from tests.test_workflows import workflow

    registry = Registry().load_builtin()
    sets = {"6__width": 64, "6__height": 48, "7__steps": 2}

    def run(wf=None, **more):
        result = Executor(registry).run(wf or workflow("hidream_i1_full", **sets, **more))
        assert result.ok, json.dumps(result.error, default=str)[:2000]
        return result

    result = run()
    image = result.values["9"][0]
    assert image.shape == (1, 48, 64, 3) and float(image.std()) > 0.01
    assert result.outputs["10"]["images"][0]["filename"].startswith("ComfyUI_")
    cond = result.values["4"][0]
    assert set(cond[0][1]) >= {"pooled_output", "conditioning_llama3"}
    assert not torch.equal(run(**{"3__shift": 6.0}).values["9"][0], image)
    assert not torch.equal(run(**{"4__text": "a red cube"}).values["9"][0], image)
    assert not torch.equal(run(**{"5__text": "blurry"}).values["9"][0], image)
    # a positive prompt past 128 Llama tokens beside a shorter negative: their states differ in length
    assert run(**{"4__text": "a red fox runs through the snow, " * 30}).values["9"][0].shape == image.shape

    wf = workflow("hidream_i1_full", **sets)
    text = wf.nodes["4"].inputs.pop("text")
    assert wf.nodes["4"].type == "CLIPEncode"
    wf.nodes["4"].type = "CLIPTextEncodeHiDream"
    wf.nodes["4"].inputs.update(clip_l=text, clip_g=text, t5xxl=text, llama=text)
    assert torch.equal(run(wf).values["9"][0], image)


def test_node_errors(builtin_registry, hidream_models):
    """CLIPTextEncodeHiDream on another CLIP, and two files of one encoder, are named clearly."""
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    graph = {"1": {"class_type": "CLIPLoader", "inputs": {"clip_name": "clip_g_hidream.safetensors", "type": "sd3"}},
             "2": {"class_type": "CLIPTextEncodeHiDream", "inputs": {"clip": ["1", 0], "clip_l": "a", "clip_g": "a",
                                                                     "t5xxl": "a", "llama": "a"}}}
    result = Executor(builtin_registry).run(parse_workflow(graph, builtin_registry), outputs=["2"])
    assert not result.ok and "QuadrupleCLIPLoader" in json.dumps(result.error, default=str)
    graph = {"1": {"class_type": "QuadrupleCLIPLoader", "inputs": {
        "clip_name1": "clip_l_hidream.safetensors", "clip_name2": "clip_l_hidream.safetensors",
        "clip_name3": "t5xxl_fp8_e4m3fn_scaled.safetensors",
        "clip_name4": "llama_3.1_8b_instruct_fp8_scaled.safetensors"}}}
    result = Executor(builtin_registry).run(parse_workflow(graph, builtin_registry), outputs=["1"])
    assert not result.ok and "two clip_l" in json.dumps(result.error, default=str)


@torch.no_grad()
def test_long_clip_reads_one_window_of_its_positions(files, tmp_path):
    """HiDream's clip_l_hidream / clip_g_hidream have 248 positions: ComfyUI tokenizes for them in
    windows that long, so a 100-token prompt pools at its own end token (transformers' model on
    BOS + prompt + EOS padded to 248), not at the end of a first 77-token window."""
    from transformers import CLIPTextModelWithProjection

    from graphflow.models.tokenizer import BOS as CLIP_BOS
    from graphflow.models.tokenizer import EOS as CLIP_EOS
    from graphflow.models.tokenizer import encode_text

    state = load_file(str(files["clip_g"]))
    key = next(k for k in state if k.endswith("position_embedding.weight"))
    extra = torch.randn(248 - state[key].shape[0], state[key].shape[1], generator=torch.Generator().manual_seed(3))
    state[key] = torch.cat([state[key], extra / 50])
    save_file(state, str(tmp_path / "clip_g_hidream.safetensors"))
    long = load_text_encoders([files["clip_l"], tmp_path / "clip_g_hidream.safetensors"], "hidream", device="cpu",
                              dtype=torch.float32)
    short = load_text_encoders([files["clip_l"], files["clip_g"]], "hidream", device="cpu", dtype=torch.float32)
    prompt = "a red fox runs through the snow " * 14
    body = encode_text(prompt)
    assert 75 < len(body) < 246
    config = text_config("clip_g")
    config.max_position_embeddings = 248
    model = CLIPTextModelWithProjection(config)
    names = model.state_dict()
    model.load_state_dict({k if k in names else k.removeprefix("text_model."): v for k, v in state.items()},
                          strict=False)
    ids = [CLIP_BOS] + body + [CLIP_EOS] + [0] * (246 - len(body))
    want = model.eval()(input_ids=torch.tensor([ids])).text_embeds
    got = long.pooled(prompt, prompt)[:, 64:]
    assert (got - want).abs().max() < TOL
    assert (short.pooled(prompt, prompt)[:, 64:] - got).abs().max() > 1e-3  # 77 positions: the first window's
    # a prompt that fits 77 tokens pools alike either way (causal attention, the end token pools)
    assert (long.pooled("a cat", "a cat")[:, 64:] - short.pooled("a cat", "a cat")[:, 64:]).abs().max() < TOL


@torch.no_grad()
def test_clip_save_merge_and_attention_multiply(clip, files, tmp_path):
    """CLIPSave writes the four encoders (Llama 3.1's model.* as ComfyUI's file) and
    QuadrupleCLIPLoader reads them back alike; CLIPMergeSimple merges the Llama by name too;
    CLIPAttentionMultiply scales Llama's q / k / v as ComfyUI's name match does."""
    from graphflow.memory import manager
    from graphflow.models.attention_multiply import multiply_clip_attention
    from graphflow.models.checkpoint_save import save_text_encoder, text_encoder_states
    from graphflow.models.merge import block_factors, merge_clips, shared_encoders

    states = text_encoder_states(clip)
    assert set(states) == {"clip_l", "clip_g", "t5xxl", "llama"}
    paths = [save_text_encoder(tmp_path / f"saved_{name}.safetensors", state, {}) for name, state in states.items()]
    again = load_text_encoders(paths, "hidream", device="cpu", dtype=torch.float32)
    for a, b in zip(again.encode("a (red:1.2) cat"), clip.encode("a (red:1.2) cat")):
        pairs = zip(a.values(), b.values()) if isinstance(a, dict) else [(a, b)]
        assert all(torch.equal(x, y) for x, y in pairs)

    other_llama = write_llama31(tmp_path / "other_llama.safetensors", seed=9, dtype=torch.float32)
    other = load_text_encoders([files["clip_l"], files["clip_g"], files["t5xxl"], other_llama], "hidream",
                               device="cpu", dtype=torch.float32)
    assert shared_encoders(clip, other) == ["clip_l", "clip_g", "t5xxl", "llama"]
    merged = merge_clips(clip, other, block_factors({}, 0.25))
    w = "model.layers.1.mlp.up_proj.weight"
    want = 0.25 * clip.model.state_dict()[w] + 0.75 * other.model.state_dict()[w]
    assert torch.allclose(manager().weights(merged.model, merged.patches)[w], want, atol=1e-6)
    llama_states = merged.encode("a cat")[2]["conditioning_llama3"]
    assert not torch.equal(llama_states, clip.encode("a cat")[2]["conditioning_llama3"])

    same = multiply_clip_attention(clip, 1.0, 1.0, 1.0, 1.0).encode("a cat")[2]["conditioning_llama3"]
    assert torch.equal(same, clip.encode("a cat")[2]["conditioning_llama3"])
    scaled = multiply_clip_attention(clip, 1.0, 1.0, 0.5, 1.0).encode("a cat")[2]["conditioning_llama3"]
    assert (scaled - same).abs().max() > 1e-3
