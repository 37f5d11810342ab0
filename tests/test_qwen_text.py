"""Qwen-Image's text encoder (CLIPLoader type qwen_image): Qwen's tokenizer against transformers'
Qwen2Tokenizer built from the same ranks file by transformers' own tiktoken converter; the
Qwen2.5-VL language model against transformers' Qwen2_5_VLForConditionalGeneration on identical
weights, pictures through its vision tower included; the conditioning against diffusers'
QwenImagePipeline._get_qwen_prompt_embeds; ComfyUI's file layout (scaled fp8 included), the Edit
nodes and errors."""

import gzip

import pytest
import torch

from graphflow.models.qwen25vl import (ADDED_TOKENS, EDIT_TEMPLATE, FIRST_ADDED, TEMPLATE, VOCAB_FILE, Qwen25VL,
                                       prompt_ids, qwen25vl_config_from_state_dict, qwen25vl_from_state_dict,
                                       qwen_tokenizer, template_end)
from graphflow.testing import qwen25vl_config, qwen25vl_state, qwen_vision_config

TOL = 2e-5  # float32 on both sides

SAMPLES = ["a cat", "Hello, World! 12345 3.14159 1,000,000", "一只猫坐在垫子上，阳光明媚。", "emoji 🦊🔥 👩‍👩‍👧 ok",
           "tabs\t\tand   spaces    ", "line1\nline2\r\n\n\nline3  \n ", "Cafe\u0301 vs Café, nai\u0308ve, Å",
           "it's they're WE'LL I'd", "<|im_start|>user\nhi<|im_end|>", "x<|vision_start|><|image_pad|><|vision_end|>y",
           "<think>z</think><tool_call>", "  leading", "trailing  ", "", "???!!!...", "ﬁ ligature ①②",
           "한국어 テキスト русский текст العربية", "$$$ 9,999 ½ ²", "\u00a0nbsp\u3000ideographic space",
           "a (red:1.5) fox \\(literal\\)"]


@pytest.fixture(scope="module")
def reference_tokenizer(tmp_path_factory):
    """transformers' Qwen2Tokenizer (NFC, Qwen2's pattern) on the vocabulary and merges transformers'
    TikTokenConverter reads from our shipped ranks file, with ComfyUI's 26 added tokens."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import TikTokenConverter
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    ranks = tmp_path_factory.mktemp("qwen") / "qwen.tiktoken"
    ranks.write_bytes(gzip.decompress(VOCAB_FILE.read_bytes()))
    converter = TikTokenConverter(vocab_file=str(ranks), pattern=PRETOKENIZE_REGEX)
    vocab, merges = converter.extract_vocab_merges_from_model(str(ranks))
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges)
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in ADDED_TOKENS[1:]])
    assert tok.convert_tokens_to_ids(list(ADDED_TOKENS)) == list(range(FIRST_ADDED, FIRST_ADDED + len(ADDED_TOKENS)))
    return tok


def test_tokenizer_matches_transformers(reference_tokenizer):
    ours = qwen_tokenizer()
    for text in SAMPLES:
        assert ours(text) == reference_tokenizer(text, add_special_tokens=False)["input_ids"], text
    assert ours("<|vision_start|>") == [151652] and ours("<|image_pad|>") == [151655]
    assert ours("<|endoftext|><|im_start|><|im_end|>") == [151643, 151644, 151645]


def test_template_prefix_is_34_tokens(reference_tokenizer):
    """ComfyUI cuts the states after the second <|im_start|> and its "user\\n"; diffusers'
    QwenImagePipeline drops prompt_template_encode_start_idx = 34 tokens: the same cut."""
    from diffusers import QwenImagePipeline

    pipe = QwenImagePipeline(scheduler=None, vae=None, text_encoder=None, tokenizer=reference_tokenizer, transformer=None)
    assert pipe.prompt_template_encode == TEMPLATE and pipe.prompt_template_encode_start_idx == 34
    for prompt in ("a cat", "", "say <|im_start|>user\n twice", "user\nuser\n"):
        ids = prompt_ids(prompt)
        assert ids == reference_tokenizer(TEMPLATE.format(prompt), add_special_tokens=False)["input_ids"]
        assert template_end(ids) == 34
    edit = prompt_ids("a cat", EDIT_TEMPLATE)
    assert edit[template_end(edit):] == prompt_ids("a cat")[34:]  # the edit template cut before the prompt too
    # a prompt that starts with <|im_start|> is its own template; without any, ComfyUI keeps the last token
    own = "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>"
    ids = prompt_ids(own)
    assert ids == reference_tokenizer(own, add_special_tokens=False)["input_ids"]
    assert ids[template_end(ids):] == reference_tokenizer("hi<|im_end|>", add_special_tokens=False)["input_ids"]
    assert template_end(reference_tokenizer("no template", add_special_tokens=False)["input_ids"]) == -1


def test_prompt_weights_are_plain_text(reference_tokenizer):
    """ComfyUI's Qwen-Image tokenizer disables weights: "(red:1.5)" is text, "\\(" a bracket."""
    ids = prompt_ids("a (red:1.5) fox \\(x\\)")
    assert ids == reference_tokenizer(TEMPLATE.format("a (red:1.5) fox (x)"), add_special_tokens=False)["input_ids"]
    # pieces after " embedding:" are tokenized apart, that space dropped, as ComfyUI's tokenizer cuts them
    split = prompt_ids("a embedding:foo b")
    assert split == prompt_ids("a")[:35] + qwen_tokenizer()("embedding:foo b" + TEMPLATE.split("{}")[1])


# -- the language model ----------------------------------------------------------------------------

def transformers_qwen(state, config, vision=None):
    """transformers' Qwen2.5-VL with our language model's weights and, given its VisionConfig, our
    vision tower's (else a tiny random one, unused)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    v = vision or qwen_vision_config(out_hidden_size=config.hidden_size)
    cfg = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                         intermediate_size=config.intermediate_size, num_hidden_layers=config.num_layers,
                         num_attention_heads=config.num_heads, num_key_value_heads=config.num_kv_heads,
                         rope_theta=config.rope_theta, rms_norm_eps=config.eps, max_position_embeddings=4096,
                         rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}),  # ComfyUI's / the 7B's
        vision_config=dict(depth=v.num_layers, hidden_size=v.hidden_size, intermediate_size=v.intermediate_size,
                           num_heads=v.num_heads, out_hidden_size=v.out_hidden_size, patch_size=14,
                           temporal_patch_size=2, spatial_merge_size=2, window_size=112,
                           fullatt_block_indexes=[i for i in range(v.num_layers) if i % 8 == 7]))
    model = Qwen2_5_VLForConditionalGeneration(cfg)  # on the CPU: its rotary buffers are computed there
    language = {"model.language_model." + k[len("model."):]: t.float() for k, t in state.items()
                if k.startswith("model.")}
    visual = {"model." + k: t.float() for k, t in state.items() if k.startswith("visual.")} if vision else {}
    result = model.load_state_dict(language | visual, strict=False)
    assert not result.unexpected_keys
    assert all(k == "lm_head.weight" or (".visual." in k and not vision) for k in result.missing_keys)
    return model.eval()


def test_config_from_shapes():
    state = qwen25vl_state(config=qwen25vl_config(vocab_size=300, num_heads=4, num_kv_heads=2))
    assert qwen25vl_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()}) == \
        qwen25vl_config(vocab_size=300, num_heads=4, num_kv_heads=2)
    from graphflow.models.qwen25vl import Qwen25VLConfig, VisionConfig, vision_config_from_state_dict
    from graphflow.testing import _module_shapes
    with torch.device("meta"):  # the 7B's own shapes: its numbers come back
        shapes = _module_shapes(Qwen25VL(Qwen25VLConfig(), VisionConfig()))
    assert qwen25vl_config_from_state_dict(shapes) == Qwen25VLConfig()
    assert vision_config_from_state_dict(shapes) == VisionConfig()
    assert shapes["model.layers.0.self_attn.k_proj.bias"] == (512,) and shapes["visual.merger.mlp.0.weight"] == (5120, 5120)


@pytest.mark.parametrize("heads", [(2, 1), (1, 1)])
def test_qwen25vl_matches_transformers(heads):
    """Grouped-query attention, biased q/k/v; for text Qwen2.5-VL's 3-axis rotary positions are
    the 1-D ones: the last layer through the final norm is transformers' hidden_states[-1]."""
    config = qwen25vl_config(vocab_size=300, num_heads=heads[0], num_kv_heads=heads[1])
    state = qwen25vl_state(seed=4, config=config)
    ours = qwen25vl_from_state_dict(state)
    theirs = transformers_qwen(state, config)
    ids = torch.randint(0, 300, (1, 23), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = theirs(input_ids=ids, output_hidden_states=True).hidden_states
        got = ours(ids)
        assert len(want) == 3 and float(want[-1].abs().max()) > 0.1
        assert (got - want[-1]).abs().max() < TOL
        assert (ours(ids, layer=-2) - want[-2]).abs().max() < TOL  # the first layer's output, unnormed
        last = ours(ids, layer=-1)  # the last layer's output unnormed: through the norm it is the default
        assert (last - want[-1]).abs().max() > 1e-2 and (ours.model.norm(last) - got).abs().max() < TOL
        # causal: a later token changes nothing before it
        changed = ids.clone()
        changed[0, -1] = (changed[0, -1] + 1) % 300
        assert torch.equal(ours(changed)[:, :-1], got[:, :-1]) and not torch.allclose(ours(changed), got)
        # bf16 (Qwen's own dtype, graphflow's on CUDA): as near to float32 as transformers' bf16 is
        ours_bf16 = qwen25vl_from_state_dict(state, dtype=torch.bfloat16)(ids).float()
        theirs_bf16 = theirs.to(torch.bfloat16)(input_ids=ids, output_hidden_states=True).hidden_states[-1].float()
        assert (ours_bf16 - got).abs().max() < 1.5 * (theirs_bf16 - got).abs().max()


def test_qwen25vl_rejects_other_weights():
    with pytest.raises(ValueError, match="no Qwen2.5-VL weights"):
        qwen25vl_from_state_dict({"model.layers.0.post_feedforward_layernorm.weight": torch.zeros(4)})
    state = qwen25vl_state(config=qwen25vl_config(vocab_size=300))
    state["model.layers.0.self_attn.k_proj.weight"] = torch.zeros(100, 128)
    with pytest.raises(ValueError, match="128-wide heads"):
        qwen25vl_from_state_dict(state)


# -- CLIPLoader type qwen_image --------------------------------------------------------------------

def diffusers_prompt_embeds(path, tokenizer, prompt):
    """diffusers' QwenImagePipeline._get_qwen_prompt_embeds with transformers' model on the file's
    weights (the template, the 34-token drop and the last hidden state are diffusers' own)."""
    from diffusers import QwenImagePipeline
    from safetensors.torch import load_file

    from graphflow.models.qwen25vl import qwen25vl_config_from_state_dict

    state = load_file(str(path))
    config = qwen25vl_config_from_state_dict({k: tuple(v.shape) for k, v in state.items() if k.startswith("model.")})
    pipe = QwenImagePipeline(scheduler=None, vae=None, text_encoder=transformers_qwen(state, config, vision=None),
                             tokenizer=tokenizer, transformer=None)
    with torch.no_grad():
        embeds, mask = pipe._get_qwen_prompt_embeds(prompt, device=torch.device("cpu"), dtype=torch.float32)
    assert bool(mask.all())
    return embeds


def test_cliploader_qwen_image_gives_diffusers_conditioning(tmp_path, reference_tokenizer):
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.models.qwen25vl import QwenTextEncoder
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_qwen25vl

    path = write_qwen25vl(tmp_path / "qwen_2.5_vl_7b.safetensors", lm_head=True)
    assert ("Qwen2.5-VL 7B text encoder (Qwen-Image: type qwen_image; HunyuanImage 2.1: type hunyuan_image; "
            "its vision tower inside)") in inspect_report(path)
    clip = load_text_encoders(path, "qwen_image", device="cpu", dtype=torch.float32)
    assert isinstance(clip, QwenTextEncoder) and clip.output_dim == 128 and clip.towers == []
    for prompt in ("a red fox in the snow, 4k", "一只猫"):
        context, pooled = clip.encode(prompt)
        want = diffusers_prompt_embeds(path, reference_tokenizer, prompt)
        assert pooled is None and context.shape == want.shape
        assert context.shape[1] == len(reference_tokenizer(prompt)["input_ids"]) + 5  # + <|im_end|>\n<|im_start|>assistant\n
        assert (context - want).abs().max() < TOL
    last, _ = clip.with_clip_skip(-1).encode("a cat")  # CLIPSetLastLayer -1: ComfyUI's hidden layer, unnormed
    assert last.shape == clip.encode("a cat")[0].shape and (last - clip.encode("a cat")[0]).abs().max() > 1e-2
    assert torch.equal(clip.with_clip_skip(-30).encode("a cat")[0], clip.encode("a cat")[0])  # past the first: default


def test_scaled_fp8_file_reads_dequantised(tmp_path):
    """qwen_2.5_vl_7b_fp8_scaled: the language model's Linear weights in fp8 with their scales."""
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_qwen25vl, write_scaled_fp8

    source = write_qwen25vl(tmp_path / "q.safetensors")
    path = write_scaled_fp8(source, tmp_path / "qwen_2.5_vl_7b_fp8_scaled.safetensors", prefixes=("model.",),
                            dequantised=tmp_path / "plain.safetensors")
    assert "Qwen2.5-VL 7B text encoder" in inspect_report(path)
    scaled = load_text_encoders(path, "qwen_image", device="cpu", dtype=torch.float32)
    plain = load_text_encoders(tmp_path / "plain.safetensors", "qwen_image", device="cpu", dtype=torch.float32)
    exact = load_text_encoders(source, "qwen_image", device="cpu", dtype=torch.float32)
    a, b, c = (clip.encode("a cat")[0] for clip in (scaled, plain, exact))
    assert (a - b).abs().max() < 1e-5 and (a - c).abs().max() > 1e-4  # the fp8 numbers, dequantised


def test_cliploader_qwen_image_errors(tmp_path):
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.models.weight_files import CheckpointError
    from graphflow.testing import write_gemma2, write_qwen25vl

    qwen = write_qwen25vl(tmp_path / "qwen_2.5_vl_7b.safetensors", vision=False)
    for clip_type in ("lumina2", "sd3", "wan"):
        with pytest.raises(CheckpointError, match="holds Qwen2.5-VL 7B .*type qwen_image"):
            load_text_encoders(qwen, clip_type, device="cpu")
    for clip_type in ("stable_diffusion", "sdxl"):
        with pytest.raises(CheckpointError, match="Qwen2.5-VL 7B text encoder.*Qwen2.5-VL: qwen_image"):
            load_text_encoders(qwen, clip_type, device="cpu")
    with pytest.raises(CheckpointError, match="Qwen-Image needs a Qwen2.5-VL 7B file alone"):
        load_text_encoders(write_gemma2(tmp_path / "g.safetensors"), "qwen_image", device="cpu")
    with pytest.raises(CheckpointError, match="qwen_2.5_vl_7b.safetensors"):
        load_text_encoders([qwen, write_gemma2(tmp_path / "g2.safetensors")], "qwen_image", device="cpu")


def test_memory_manager_reads_the_encoder_back(fresh_manager, tmp_path):
    """Registered as Gemma's: dropped from RAM under pressure, read again from its file when used."""
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_qwen25vl

    clip = load_text_encoders(write_qwen25vl(tmp_path / "q.safetensors"), "qwen_image", device="cpu",
                              dtype=torch.float32)
    comp = fresh_manager.components[id(clip.model)]
    assert comp.name == "text_encoder:qwen25_7b" and comp.reload is not None
    before = {k: v.clone() for k, v in clip.model.state_dict().items()}
    want = clip.encode("a cat")[0]
    fresh_manager._drop(comp)
    assert comp.state == "dropped"
    fresh_manager.present(clip.model)
    assert all(torch.equal(clip.model.state_dict()[k], v) for k, v in before.items())
    assert torch.equal(clip.encode("a cat")[0], want)


# -- the nodes -------------------------------------------------------------------------------------

def test_text_encode_qwen_image_edit_nodes(tmp_path):
    """Edit: no image, CLIPTextEncode; an image scaled to about 1024^2 pixels ("area") goes through
    the vision tower in PICTURE_TEMPLATE, and through the VAE into the reference latents. EditPlus:
    "Picture n: " + the picture's tokens for each image n (about 384^2 for the vision tower, 1024^2
    in multiples of 8 for the VAE) before the prompt, in EDIT_TEMPLATE."""
    from graphflow.api import NodeInputError
    from graphflow.images import resize_nchw
    from graphflow.models.qwen25vl import PICTURE_TEMPLATE
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_qwen25vl
    from nodes.qwen import TextEncodeQwenImageEdit, TextEncodeQwenImageEditPlus

    clip = load_text_encoders(write_qwen25vl(tmp_path / "q.safetensors"), "qwen_image", device="cpu",
                              dtype=torch.float32)

    class Vae:
        seen = []

        def encode(self, pixels):
            self.seen.append(pixels)
            return torch.full((1, 16, pixels.shape[1] // 8, pixels.shape[2] // 8), float(len(self.seen)))

    def node(cls, **inputs):
        made = cls.__new__(cls)
        made.__dict__.update(prompt="a blue door", vae=None, image=None, image1=None, image2=None, image3=None,
                             clip=clip)
        made.__dict__.update(inputs)
        return made

    [(edit, options)] = node(TextEncodeQwenImageEdit).run()
    assert options == {} and torch.equal(edit, clip.encode("a blue door")[0])
    [(plus, _)] = node(TextEncodeQwenImageEditPlus).run()
    ids = prompt_ids("a blue door", EDIT_TEMPLATE)
    assert plus.shape == edit.shape and (plus - clip.run([ids])[:, template_end(ids):]).abs().max() == 0
    assert (plus - edit).abs().max() > 1e-3  # the system prompt differs, so do the states

    picture = torch.rand(1, 48, 64, 4, generator=torch.Generator().manual_seed(3))  # RGBA: RGB read
    vae = Vae()
    [(cond, options)] = node(TextEncodeQwenImageEdit, image=picture, vae=vae).run()
    scaled = resize_nchw(picture.movedim(-1, 1), 1182, 887, "area").movedim(1, -1)[..., :3]  # 1024^2 pixels, 4:3
    assert vae.seen[0].shape == (1, 887, 1182, 3) and torch.equal(vae.seen[0], scaled)
    want, _ = clip.encode("a blue door", pictures=[scaled])
    assert torch.equal(cond, want) and torch.equal(options["reference_latents"][0], torch.full((1, 16, 110, 147), 1.0))
    ids = prompt_ids("a blue door", PICTURE_TEMPLATE)
    assert cond.shape[1] == len(ids) - template_end(ids) - 1 + (896 // 28) * (1176 // 28)  # the picture's tokens

    vae.seen.clear()
    [(cond, options)] = node(TextEncodeQwenImageEditPlus, image2=picture, vae=vae).run()
    small = resize_nchw(picture.movedim(-1, 1), 443, 333, "area").movedim(1, -1)[..., :3]  # 384^2 pixels
    assert vae.seen[0].shape == (1, 888, 1184, 3)  # 1024^2 pixels in multiples of 8
    want, _ = clip.encode("Picture 2: <|vision_start|><|image_pad|><|vision_end|>a blue door", template=EDIT_TEMPLATE,
                          pictures=[small])
    assert torch.equal(cond, want) and len(options["reference_latents"]) == 1

    bare = load_text_encoders(write_qwen25vl(tmp_path / "text_only.safetensors", vision=False), "qwen_image",
                              device="cpu", dtype=torch.float32)
    with pytest.raises(NodeInputError, match="no vision tower"):
        node(TextEncodeQwenImageEdit, clip=bare, image=picture).run()
    with pytest.raises(NodeInputError, match="qwen_image"):
        node(TextEncodeQwenImageEditPlus, clip=None).run()


def test_comfyui_graph_cliploader_qwen_image(tmp_folders):
    """CLIPLoader type qwen_image + CLIPTextEncode + TextEncodeQwenImageEditPlus as a ComfyUI graph."""
    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.testing import write_qwen25vl
    from graphflow.workflow import parse_workflow

    (tmp_folders.models / "text_encoders").mkdir()
    write_qwen25vl(tmp_folders.models / "text_encoders" / "qwen_2.5_vl_7b.safetensors")
    graph = {
        "1": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_2.5_vl_7b.safetensors", "type": "qwen_image",
                                                     "device": "default"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": ["1", 0]}},
        "3": {"class_type": "TextEncodeQwenImageEditPlus", "inputs": {"prompt": "make it night", "clip": ["1", 0]}},
        "4": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_2.5_vl_7b.safetensors", "type": "lumina2"}},
    }
    registry = Registry().load_builtin()
    result = Executor(registry).run(parse_workflow({k: graph[k] for k in "123"}, registry), outputs=["2", "3"])
    assert result.ok, result.error
    [(cond, options)] = result.values["2"][0]
    assert cond.shape == (1, len(qwen_tokenizer()("a lighthouse at dusk")) + 5, 128) and "pooled_output" not in options
    [(edit, _)] = result.values["3"][0]
    assert edit.shape == (1, len(qwen_tokenizer()("make it night")) + 5, 128)
    bad = Executor(registry).run(parse_workflow({"4": graph["4"]}, registry), outputs=["4"])
    assert not bad.ok and "type qwen_image" in str(bad.error)


def test_merge_attention_multiply_and_clipsave(builtin_registry, tmp_path):
    """CLIPMergeSimple merges the one network's weights; CLIPAttentionMultiply scales q/k/v
    projections (weights and biases, ComfyUI's names) and leaves o_proj ("out") alone; CLIPSave's
    file loads back with type qwen_image."""
    from test_nodes_image_mask import call

    from graphflow.models.checkpoint_save import save_text_encoder, text_encoder_states
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.models.qwen25vl import qwen25vl_from_state_dict
    from graphflow.testing import write_gemma2, write_qwen25vl

    q1, q2 = (load_text_encoders(write_qwen25vl(tmp_path / f"q{s}.safetensors", seed=s), "qwen_image", device="cpu",
                                 dtype=torch.float32) for s in (3, 8))
    merged = call(builtin_registry, "CLIPMergeSimple", clip1=q1, clip2=q2, ratio=0.25)
    p1, p2 = dict(q1.model.named_parameters()), dict(q2.model.named_parameters())
    for name, p in merged.model.named_parameters():
        torch.testing.assert_close(p, 0.25 * p1[name] + 0.75 * p2[name], msg=name)
    gemma = load_text_encoders(write_gemma2(tmp_path / "g.safetensors"), "lumina2", device="cpu")
    with pytest.raises(Exception, match="can't merge a qwen_image text encoder with a lumina2 one"):
        call(builtin_registry, "CLIPMergeSimple", clip1=q1, clip2=gemma, ratio=0.5)

    scaled = call(builtin_registry, "CLIPAttentionMultiply", clip=q1, q=0.5, k=1.0, v=2.0, out=3.0)
    import zlib  # each patch's fp8 rounding seed: the CRC-32 of its key in ComfyUI's CLIP state dict
    seeds = {p.param: p.seed for p in scaled.patches}
    assert seeds["model.layers.0.self_attn.q_proj.weight"] == \
        zlib.crc32(b"qwen25_7b.transformer.model.layers.0.self_attn.q_proj.weight")
    assert all(seed == zlib.crc32(f"qwen25_7b.transformer.{param}".encode()) for param, seed in seeds.items())
    state = {k: v.clone() for k, v in q1.model.state_dict().items()}
    for key in state:
        if ".self_attn.q_proj." in key:
            state[key] *= 0.5
        if ".self_attn.v_proj." in key:
            state[key] *= 2.0
    want = qwen25vl_from_state_dict(state)
    ids = prompt_ids("a cat")
    with torch.no_grad():
        expected = want(torch.tensor([ids]))[:, template_end(ids):]
    got = scaled.encode("a cat")[0]
    assert (got - expected).abs().max() < TOL and (got - q1.encode("a cat")[0]).abs().max() > 1e-3

    [(name, saved)] = text_encoder_states(scaled).items()
    assert name == "qwen25_7b" and all(k.startswith(("model.", "visual.")) for k in saved[0])
    assert "visual.merger.mlp.2.weight" in saved[0]  # the vision tower goes with it, as in ComfyUI's file
    back = load_text_encoders(save_text_encoder(tmp_path / "clip_qwen25_7b.safetensors", saved), "qwen_image",
                              device="cpu", dtype=torch.float32)
    assert torch.equal(back.encode("a cat")[0], got)


# -- pictures: the vision tower --------------------------------------------------------------------

@pytest.fixture(scope="module")
def vision_pair():
    state = qwen25vl_state(seed=5, vision=qwen_vision_config())
    return qwen25vl_from_state_dict(state), transformers_qwen(state, qwen25vl_config(), qwen_vision_config())


def test_vision_tower_matches_transformers(vision_pair):
    """ComfyUI's picture patches are transformers' Qwen2VLImageProcessor's (same layout); the tower
    (windows of 4 x 4 merged patches, cut short at the edges here, every 8th block over the whole
    picture, the 2 x 2 merger) gives transformers' image features."""
    from transformers import Qwen2VLImageProcessor

    from graphflow.models.qwen25vl import picture_patches

    ours, theirs = vision_pair
    picture = torch.rand(1, 140, 252, 3, generator=torch.Generator().manual_seed(1))  # multiples of 28: not resized
    patches, grid = picture_patches(picture)
    processed = Qwen2VLImageProcessor(do_resize=False, do_rescale=False)(images=[picture[0].movedim(-1, 0)],
                                                                          return_tensors="pt")
    assert grid == (1, 10, 18) and processed["image_grid_thw"].tolist() == [list(grid)]
    assert torch.allclose(patches, processed["pixel_values"], atol=1e-6)
    with torch.no_grad():
        want = theirs.model.visual(patches, grid_thw=torch.tensor([grid])).pooler_output
        got = ours.visual(patches, grid)
    assert got.shape == (45, 128) and (got - want).abs().max() < TOL and float(want.abs().max()) > 0.1


def test_pictures_in_the_prompt_match_transformers(vision_pair):
    """The picture's tokens in place of <|image_pad|>, on ComfyUI's 3-axis positions: transformers'
    Qwen2.5-VL on the same sequence (its image tokens expanded, as its processor does), for one
    picture (PICTURE_TEMPLATE, TextEncodeQwenImageEdit's) and two (positions after each)."""
    from graphflow.models.qwen25vl import IMAGE_PAD, PICTURE_TEMPLATE, QwenTextEncoder, picture_patches

    ours, theirs = vision_pair
    clip = QwenTextEncoder(ours)
    pictures = [torch.rand(1, 130, 250, 3, generator=torch.Generator().manual_seed(1)),  # resized to 140 x 252
                torch.rand(1, 84, 56, 3, generator=torch.Generator().manual_seed(2))]
    cut = [picture_patches(p) for p in pictures]
    two = "<|vision_start|><|image_pad|><|vision_end|> and <|vision_start|><|image_pad|><|vision_end|> mixed"
    for prompt, template, count in (("make it red", PICTURE_TEMPLATE, 1), (two, EDIT_TEMPLATE, 2)):
        ids = prompt_ids(prompt, template)
        expanded, seen = [], 0
        for t in ids:
            if t == IMAGE_PAD:  # the k-th picture's tokens, (rows / 2) x (cols / 2) of them
                expanded += [IMAGE_PAD] * (cut[seen][1][1] * cut[seen][1][2] // 4)
                seen += 1
            else:
                expanded.append(t)
        assert seen == count
        expanded = torch.tensor([expanded])
        with torch.no_grad():
            want = theirs(input_ids=expanded, pixel_values=torch.cat([c[0] for c in cut[:count]]),
                          image_grid_thw=torch.tensor([c[1] for c in cut[:count]]),
                          mm_token_type_ids=(expanded == IMAGE_PAD).int(), output_hidden_states=True).hidden_states[-1]
        got, _ = clip.encode(prompt, template=template if count > 1 else None, pictures=pictures[:count])
        assert got.shape == want[:, template_end(ids):].shape
        assert (got - want[:, template_end(ids):]).abs().max() < TOL


def test_file_kinds_from_the_real_shapes():
    """ComfyUI's files as `inspect` and the loaders' advice name them, from header shapes alone:
    the 7B (its vision tower inside: not a CLIP vision model), the 3B (OmniGen2's) refused."""
    from graphflow.models.file_kind import identify

    seven = {"model.embed_tokens.weight": (152064, 3584), "model.layers.0.self_attn.k_proj.bias": (512,),
             "visual.patch_embed.proj.weight": (1280, 3, 2, 14, 14), "visual.blocks.0.attn.qkv.weight": (3840, 1280)}
    kind = identify(seven)
    assert (kind.name, kind.folder, kind.loader) == (
        "Qwen2.5-VL 7B text encoder (Qwen-Image: type qwen_image; HunyuanImage 2.1: type hunyuan_image; "
        "its vision tower inside)", "text_encoders",
        "LoadTextEncoder")
    three = {"model.embed_tokens.weight": (151936, 2048), "model.layers.0.self_attn.k_proj.bias": (256,)}
    assert "3B" in identify(three).name and "does not load" in identify(three).name
