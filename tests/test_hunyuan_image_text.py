"""HunyuanImage 2.1's text encoders (CLIPLoader / DualCLIPLoader type hunyuan_image): byT5's byte
tokenizer against transformers' ByT5Tokenizer set up as ComfyUI's byt5_tokenizer files; the quoted
text, template, layer and cut against diffusers' HunyuanImagePipeline (extract_glyph_text,
prompt_template_encode, _get_qwen_prompt_embeds, _get_byt5_prompt_embeds) with transformers'
Qwen2.5-VL and T5EncoderModel on the same tiny files, where ComfyUI and diffusers agree; where they
differ (no padding, no single quotes, no zeros for a prompt that quotes nothing) ComfyUI's rules,
asserted on their own; CLIPSetLastLayer, prompt weights, file recognition, the memory manager,
errors and the ComfyUI graph."""

import pytest
import torch

from graphflow.models.hunyuan_image_text import BYT5_KEY, TEMPLATE, quoted_text, template_cut
from graphflow.models.qwen25vl import prompt_ids, qwen_tokenizer
from graphflow.models.t5 import EXTRA_IDS, ByteIds
from graphflow.testing import BYT5_TINY_WIDTH, byt5_config, write_byt5, write_hunyuan_image_qwen
from test_qwen_text import reference_tokenizer, transformers_qwen  # noqa: F401 (a fixture)

TOL = 2e-5  # float32 on both sides

BYTE_SAMPLES = ["a cat", "Text \"OPEN\". ", "一只猫坐在垫子上", "emoji 🦊🔥 👩‍👩‍👧", "Cafe\u0301 vs Café",
                "", "tabs\t\tand\nlines\r\n", "<extra_id_0>a</s>b<pad>c<unk>d<extra_id_124>",
                "<extra_id_125> <extra_id_", "<color-0><en-font-3> glyph tokens", "<s></pad>", "\x00\x7f\u00ff\U0010ffff"]


@pytest.fixture(scope="module")
def byt5_tokenizer():
    """transformers' ByT5Tokenizer as ComfyUI's comfy/text_encoders/byt5_tokenizer files set it up:
    no extra ids of its own, <extra_id_0> .. <extra_id_124> added as special tokens (ids 259 .. 383)."""
    from transformers import ByT5Tokenizer

    tok = ByT5Tokenizer(extra_ids=0, additional_special_tokens=[f"<extra_id_{i}>" for i in range(EXTRA_IDS)])
    assert tok.convert_tokens_to_ids(["<extra_id_0>", "<extra_id_124>"]) == [259, 383] and len(tok) == 384
    return tok


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hyi")
    return (write_hunyuan_image_qwen(folder / "qwen_2.5_vl_7b.safetensors"),
            write_byt5(folder / "byt5_small_glyphxl_fp16.safetensors"))


@pytest.fixture(scope="module")
def clip(files):
    from graphflow.models.text_encoder_files import load_text_encoders

    return load_text_encoders(list(reversed(files)), "hunyuan_image", device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def pipeline(files, reference_tokenizer, byt5_tokenizer):  # noqa: F811
    """diffusers' HunyuanImagePipeline with transformers' models on the files' weights."""
    from diffusers import HunyuanImagePipeline
    from safetensors.torch import load_file
    from transformers import T5EncoderModel

    from graphflow.models.qwen25vl import qwen25vl_config_from_state_dict

    qwen_state = load_file(str(files[0]))
    config = qwen25vl_config_from_state_dict({k: tuple(v.shape) for k, v in qwen_state.items()})
    byt5 = T5EncoderModel(byt5_config())
    result = byt5.load_state_dict({k: v.float() for k, v in load_file(str(files[1])).items()}, strict=False)
    assert result.missing_keys == ["encoder.embed_tokens.weight"] and not result.unexpected_keys  # tied to shared
    return HunyuanImagePipeline(scheduler=None, vae=None, text_encoder=transformers_qwen(qwen_state, config),
                                tokenizer=reference_tokenizer, text_encoder_2=byt5.eval(), tokenizer_2=byt5_tokenizer,
                                transformer=None)


# -- tokenizers, quotes, template --------------------------------------------------------------------

def test_byte_tokenizer_matches_transformers(byt5_tokenizer):
    """Bytes + 3, the special tokens matched first; Glyph-ByT5's <color-N> / <xx-font-N> are bytes,
    as ComfyUI's tokenizer (which lacks them) gives them."""
    ours = ByteIds()
    for text in BYTE_SAMPLES:
        assert ours(text) == byt5_tokenizer(text, add_special_tokens=False)["input_ids"], text
        assert ours(text) + [1] == byt5_tokenizer(text)["input_ids"]  # transformers' </s>: ComfyUI's end token
    assert ours("<color-0>") == [b + 3 for b in b"<color-0>"] and max(ours("".join(BYTE_SAMPLES))) < 384


def test_quoted_text_as_comfyui():
    """Double quotes, then ‘...’, then “...”, each `Text "...". `; the same string as diffusers'
    extract_glyph_text where the prompt has no single quotes, which diffusers reads and ComfyUI not."""
    from diffusers.pipelines.hunyuan_image.pipeline_hunyuanimage import extract_glyph_text

    for prompt in ('a sign "OPEN" and "24h"', "no quotes", '“你好” then ‘世界’ and "x"', 'empty "" too',
                   '"(big:1.5)" weighted'):
        assert quoted_text(prompt) == extract_glyph_text(prompt), prompt
    assert quoted_text('“你好” then ‘世界’ and "x"') == 'Text "x". Text "世界". Text "你好". '
    assert quoted_text("no quotes") is None and quoted_text('"across\nlines"') is None  # "." stops at line breaks
    assert quoted_text("it's 'single'") is None and extract_glyph_text("it's 'single'") is not None


def test_template_and_cut_as_diffusers(reference_tokenizer, pipeline):  # noqa: F811
    """HunyuanImage's template ends at the user's <|im_end|>; ComfyUI's cut (second <|im_start|> +
    "user\\n") is diffusers' drop_idx 34. A prompt that is its own template starting with "<" and
    longer than 36 tokens (the refiner's) is cut at 36, as ComfyUI's."""
    assert TEMPLATE == pipeline.prompt_template_encode and pipeline.prompt_template_encode_start_idx == 34
    for prompt in ("a cat", "", 'a sign "OPEN"'):
        ids = prompt_ids(prompt, TEMPLATE)
        assert ids == reference_tokenizer(TEMPLATE.format(prompt), add_special_tokens=False)["input_ids"]
        assert template_cut(ids) == 34 and ids[-1] == 151645  # <|im_end|> last
    own = "<|start_header_id|>system<|end_header_id|>\n\n" + "describe " * 30 + "<|eot_id|>"
    ids = prompt_ids(own, TEMPLATE)
    assert ids == qwen_tokenizer()(own) and ids[0] == 27 and template_cut(ids) == 36
    short = prompt_ids("<b>", TEMPLATE)  # "<" but not a template of its own: put in HunyuanImage's
    assert short[0] == 151644 and template_cut(short) == 34


# -- the encoders against diffusers ------------------------------------------------------------------

def _valid(embeds, mask):
    assert mask.shape[0] == 1
    return embeds[:, mask[0].bool()]


def test_qwen_states_match_diffusers(clip, pipeline):
    """Layer -3 unnormed, from the prompt's first token to its <|im_end|>: diffusers' states where
    its mask keeps them (diffusers pads to 1034 tokens; ComfyUI does not pad)."""
    from graphflow.models.hunyuan_image_text import HunyuanImageTextEncoder

    assert isinstance(clip, HunyuanImageTextEncoder) and clip.layer == -3 and clip.model.config.num_layers == 4
    for prompt in ("a red fox in the snow, 4k", '一只猫 holding a sign "喵"'):
        context, pooled, _ = clip.encode(prompt)
        with torch.no_grad():
            want, mask = pipeline._get_qwen_prompt_embeds(pipeline.tokenizer, pipeline.text_encoder, prompt,
                                                          device=torch.device("cpu"), dtype=torch.float32)
        want = _valid(want, mask)
        assert pooled is None and context.shape == want.shape == (1, len(qwen_tokenizer()(prompt)) + 1, 128)
        assert (context - want).abs().max() < TOL


def test_byt5_states_match_diffusers(clip, pipeline):
    """The quoted text's byT5 states, unpadded: diffusers' where its mask keeps them; a prompt that
    quotes nothing has no conditioning_byt5small (diffusers: zeros and an all-zero mask)."""
    prompt = 'a shop front, a sign "OPEN 24h" and a poster “营业中”'
    _, _, options = clip.encode(prompt)
    glyphs = quoted_text(prompt)
    with torch.no_grad():
        want, mask = pipeline._get_byt5_prompt_embeds(pipeline.tokenizer_2, pipeline.text_encoder_2, glyphs,
                                                      device=torch.device("cpu"), dtype=torch.float32)
    want = _valid(want, mask)
    got = options[BYT5_KEY]
    assert got.shape == want.shape == (1, len(glyphs.encode()) + 1, BYT5_TINY_WIDTH)
    assert (got - want).abs().max() < TOL
    assert clip.encode("nothing quoted")[2] == {}
    with torch.no_grad():
        *_, zeros, zero_mask = pipeline.encode_prompt("nothing quoted", device=torch.device("cpu"))
    assert not zeros.any() and not zero_mask.any()  # diffusers' way of saying the same


def test_byt5_prompt_weights_and_end_token(clip, pipeline):
    """ComfyUI's byT5 tokenizer reads prompt weights: a weighted byte is empty + (z - empty) * w,
    `empty` </s> alone then zeros; a literal </s> ends the attended tokens, the rest zeroed."""
    encoder = pipeline.text_encoder_2

    def t5(text):
        ids = torch.tensor([ByteIds()(text) + [1]])
        with torch.no_grad():
            return encoder(input_ids=ids).last_hidden_state

    got = clip.encode('a "(big:1.5) sale"')[2][BYT5_KEY]
    plain = t5('Text "big sale". ')
    assert got.shape == plain.shape
    weighted = torch.zeros(plain.shape[1], dtype=torch.bool)
    weighted[6:9] = True  # "big" after `Text "`
    assert (got[:, ~weighted] - plain[:, ~weighted]).abs().max() < TOL
    assert (got[:, weighted] - 1.5 * plain[:, weighted]).abs().max() < 1e-4  # empty's states are zeros there
    cut = clip.encode('"ab</s>cd"')[2][BYT5_KEY]
    head = t5('Text "ab')  # up to and with the first </s>
    assert cut.shape[1] == len(ByteIds()('Text "ab</s>cd". ')) + 1
    assert (cut[:, :head.shape[1]] - head).abs().max() < TOL and not cut[:, head.shape[1]:].any()


def test_clip_set_last_layer_sets_both(clip, pipeline):
    """CLIPSetLastLayer -2: Qwen's layer -2 unnormed, byT5's second-to-last block through its final
    norm (ComfyUI's set_clip_options on both); past either's first layer: its default."""
    prompt = 'a "sign"'
    context, _, options = clip.with_clip_skip(-2).encode(prompt)
    ids = torch.tensor([prompt_ids(prompt, TEMPLATE)])
    with torch.no_grad():
        hidden = pipeline.text_encoder(input_ids=ids, output_hidden_states=True).hidden_states
        byt5 = pipeline.text_encoder_2(input_ids=torch.tensor([ByteIds()(quoted_text(prompt)) + [1]]),
                                       output_hidden_states=True).hidden_states
    assert (context - hidden[-2][:, 34:]).abs().max() < TOL  # hidden_states[-2]: the output of layer -2
    assert (options[BYT5_KEY] - pipeline.text_encoder_2.encoder.final_layer_norm(byt5[-2])).abs().max() < TOL
    assert (clip.encode(prompt, clip_skip=-2)[2][BYT5_KEY] - options[BYT5_KEY]).abs().max() == 0
    deep = clip.with_clip_skip(-10)  # past the Qwen's 4 layers and byT5's 3: last through the final norms
    assert (deep.encode(prompt)[0] - hidden[-1][:, 34:]).abs().max() < TOL
    assert (deep.encode(prompt)[2][BYT5_KEY] - byt5[-1]).abs().max() < TOL


# -- files, loaders, memory, nodes -------------------------------------------------------------------

def test_file_kinds_from_the_real_shapes():
    """ComfyUI's byt5_small_glyphxl_fp16 (1510 embedding rows, 6 heads of 64) from its header shapes:
    a DualCLIPLoader file, not T5-XXL; ComfyUI's own test (k: 384 rows) holds for it too."""
    from graphflow.models.file_kind import identify

    byt5 = {"shared.weight": (1510, 1472), "encoder.block.0.layer.0.SelfAttention.q.weight": (384, 1472),
            "encoder.block.0.layer.0.SelfAttention.k.weight": (384, 1472),
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": (32, 6),
            "encoder.block.0.layer.1.DenseReluDense.wi_0.weight": (3584, 1472)}
    kind = identify(byt5)
    assert (kind.folder, kind.loader) == ("text_encoders", "LoadDualTextEncoders")
    assert kind.name.startswith("byT5-small glyph text encoder (HunyuanImage 2.1")
    from transformers import T5EncoderModel

    from graphflow.models.configs import byte_level
    from graphflow.models.t5 import t5_config_from_shapes

    with torch.device("meta"):  # the real file's every shape: byT5-small's config read back from them
        real = {k: tuple(v.shape) for k, v in T5EncoderModel(byt5_config(scaled_down=False)).state_dict().items()}
    config = t5_config_from_shapes(real)
    assert byte_level(real) and identify(real).name == kind.name
    assert (config.vocab_size, config.d_model, config.num_layers, config.num_heads, config.d_kv, config.d_ff,
            config.feed_forward_proj) == (1510, 1472, 12, 6, 64, 3584, "gated-gelu")
    t5xxl = dict(byt5, **{"shared.weight": (32128, 4096)})
    assert "T5-XXL" in identify(t5xxl).name
    assert "HunyuanImage 2.1: type hunyuan_image" in identify({"model.layers.0.self_attn.k_proj.bias": (512,)}).name


def test_cliploader_qwen_alone_and_errors(files, tmp_path):
    """CLIPLoader hunyuan_image: Qwen alone, no byT5 states for quoted text (ComfyUI's te(byt5=False)).
    byT5 goes with Qwen under hunyuan_image only."""
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.models.weight_files import CheckpointError
    from graphflow.testing import write_text_encoder

    qwen, byt5 = files
    alone = load_text_encoders(qwen, "hunyuan_image", device="cpu", dtype=torch.float32)
    assert alone.byt5 is None and alone.encode('a "sign"')[2] == {}
    with pytest.raises(CheckpointError, match="HunyuanImage 2.1 .*byT5-small glyph"):
        load_text_encoders(byt5, "hunyuan_image", device="cpu")
    clip_l = write_text_encoder(tmp_path / "clip_l.safetensors", "clip_l")
    with pytest.raises(CheckpointError, match="found \\['clip_l', 'qwen25_7b'\\]; HunyuanImage"):
        load_text_encoders([qwen, clip_l], "hunyuan_image", device="cpu")
    for clip_type in ("flux", "sd3", "chroma", "hidream"):
        with pytest.raises(CheckpointError, match="byT5 is HunyuanImage's alone"):
            load_text_encoders([byt5] + ([clip_l] if clip_type == "flux" else []), clip_type, device="cpu")
    with pytest.raises(CheckpointError, match="holds byT5-small glyph .*DualCLIPLoader type hunyuan_image"):
        load_text_encoders(byt5, "stable_diffusion", device="cpu")
    with pytest.raises(CheckpointError, match="holds a byT5-small glyph text encoder"):
        load_text_encoders([byt5, clip_l], "sdxl", device="cpu")
    with pytest.raises(CheckpointError, match="byT5 is HunyuanImage's alone.*not qwen_image"):
        load_text_encoders([qwen, byt5], "qwen_image", device="cpu")


def test_memory_manager_reads_both_back(fresh_manager, files):
    """Both encoders registered with their files: dropped under pressure, read back when used;
    device "cpu" pins both there."""
    from graphflow.models.text_encoder_files import load_text_encoders

    clip = load_text_encoders(list(files), "hunyuan_image", device="cpu", dtype=torch.float32)
    want = clip.encode('a "sign"')
    for module, name in ((clip.model, "text_encoder:qwen25_7b"), (clip.byt5.model, "text_encoder:byt5_small")):
        comp = fresh_manager.components[id(module)]
        assert comp.name == name and comp.reload is not None
        fresh_manager._drop(comp)
        assert comp.state == "dropped"
    got = clip.encode('a "sign"')
    assert torch.equal(got[0], want[0]) and torch.equal(got[2][BYT5_KEY], want[2][BYT5_KEY])
    pinned = load_text_encoders(list(files), "hunyuan_image", on_cpu=True)
    assert fresh_manager.is_pinned(pinned.model) and fresh_manager.is_pinned(pinned.byt5.model)


def test_comfyui_graph_dual_and_single_loaders(tmp_folders, files):
    """DualCLIPLoader / CLIPLoader type hunyuan_image + CLIPTextEncode as a ComfyUI graph: the
    byT5 states ride in the conditioning's options; TextEncodeQwenImageEdit (no image) keeps them."""
    import shutil

    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.workflow import parse_workflow

    folder = tmp_folders.models / "text_encoders"
    folder.mkdir()
    for path in files:
        shutil.copy(path, folder / path.name)
    prompt = 'a neon sign that reads "OPEN"'
    graph = {
        "1": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "qwen_2.5_vl_7b.safetensors",
                                                         "clip_name2": "byt5_small_glyphxl_fp16.safetensors",
                                                         "type": "hunyuan_image", "device": "default"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["1", 0]}},
        "3": {"class_type": "CLIPLoader", "inputs": {"clip_name": "qwen_2.5_vl_7b.safetensors",
                                                     "type": "hunyuan_image"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["3", 0]}},
        "5": {"class_type": "TextEncodeQwenImageEdit", "inputs": {"prompt": prompt, "clip": ["1", 0]}},
    }
    registry = Registry().load_builtin()
    result = Executor(registry).run(parse_workflow(graph, registry), outputs=["2", "4", "5"])
    assert result.ok, result.error
    [(cond, options)] = result.values["2"][0]
    assert cond.shape == (1, len(qwen_tokenizer()(prompt)) + 1, 128) and "pooled_output" not in options
    assert options[BYT5_KEY].shape == (1, len('Text "OPEN". ') + 1, BYT5_TINY_WIDTH)
    [(single, single_options)] = result.values["4"][0]
    assert torch.equal(single, cond) and BYT5_KEY not in single_options
    [(edit, edit_options)] = result.values["5"][0]
    assert torch.equal(edit, cond) and torch.equal(edit_options[BYT5_KEY], options[BYT5_KEY])


def test_merge_and_clipsave(builtin_registry, files, tmp_path):
    """CLIPMergeSimple merges both networks by name (byT5's too, its tied embedding kept tied);
    CLIPSave writes Qwen and byT5 as ComfyUI's two files, which load back with type hunyuan_image."""
    from test_nodes_image_mask import call

    from graphflow.models.checkpoint_save import save_text_encoder, text_encoder_states
    from graphflow.models.text_encoder_files import load_text_encoders

    other = write_byt5(tmp_path / "other_byt5.safetensors", seed=9)
    c1, c2 = (load_text_encoders([files[0], byt5], "hunyuan_image", device="cpu", dtype=torch.float32)
              for byt5 in (files[1], other))
    merged = call(builtin_registry, "CLIPMergeSimple", clip1=c1, clip2=c2, ratio=0.25)
    p1, p2 = dict(c1.byt5.model.named_parameters()), dict(c2.byt5.model.named_parameters())
    for name, p in merged.byt5.model.named_parameters():
        torch.testing.assert_close(p, 0.25 * p1[name] + 0.75 * p2[name], msg=name)
    assert merged.byt5.model.encoder.embed_tokens is merged.byt5.model.shared
    assert torch.equal(merged.encode('"a"')[0], c1.encode('"a"')[0])  # the same Qwen: unchanged
    assert not torch.equal(merged.encode('"a"')[2][BYT5_KEY], c1.encode('"a"')[2][BYT5_KEY])

    states = text_encoder_states(merged)
    assert sorted(states) == ["byt5_small", "qwen25_7b"]
    assert all(k.startswith(("shared.", "encoder.")) for k in states["byt5_small"][0])
    paths = [save_text_encoder(tmp_path / f"clip_{name}.safetensors", state) for name, state in states.items()]
    back = load_text_encoders(paths, "hunyuan_image", device="cpu", dtype=torch.float32)
    got, want = back.encode('a "sign"'), merged.encode('a "sign"')
    assert torch.equal(got[0], want[0]) and torch.equal(got[2][BYT5_KEY], want[2][BYT5_KEY])
