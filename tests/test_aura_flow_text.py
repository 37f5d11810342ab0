"""AuraFlow's text encoder, Pile-T5 XL, against transformers on identical tiny random weights.

Tokenizer: the shipped vocabulary (graphflow/models/pile_t5_tokenizer) is LLaMA's: hand-checked ids
of well-known prompts, and for every prompt the ids of transformers' LlamaTokenizer on the same file
with Pile-T5's settings (ComfyUI's t5_pile_tokenizer/tokenizer_config.json: no <s>, </s> appended),
then ComfyUI's PT5XlTokenizer framing: padded with 1 to 256 tokens.
Encoder: transformers' UMT5EncoderModel on the file's weights, run on those ids with the attention
mask of ComfyUI's PT5XlModel (1 up to and with the first </s>), the masked rows zeroed
(zero_out_masked). The weights come as a bare file (CLIPLoader: any type gives AuraFlow's encoder,
as ComfyUI's T5_XL detection does) and under `text_encoders.pile_t5xl.transformer.` (ComfyUI's
all-in-one aura_flow_0.3.safetensors).
"""

import functools
import gzip

import pytest
import torch

from graphflow.models.t5 import PILE_T5_FILE, PileT5Ids
from graphflow.testing import PILE_T5_PREFIX, pile_t5_config, write_pile_t5
from tests.test_nodes_image_mask import call

TOL = 1e-5
LONG = ", ".join(["a watercolour painting of a lighthouse on a cliff at dawn"] * 30)  # > 256 tokens
PROMPTS = ["Hello world!", "a red fox, in the snow; no dogs? 100% sure: yes!", "  two  spaces\tand a tab\nnew line",
           "héllo 日本 🦊 naïve café", "", LONG]


@functools.lru_cache(maxsize=1)
def registry():
    from graphflow.registry import Registry

    return Registry().load_builtin()


@pytest.fixture(scope="module")
def llama_tokenizer(tmp_path_factory):
    """transformers' LlamaTokenizer on the shipped file, as AuraFlow's tokenizer_config sets it."""
    from transformers import LlamaTokenizerFast

    path = tmp_path_factory.mktemp("pile_t5") / "tokenizer.json"
    path.write_bytes(gzip.decompress(PILE_T5_FILE.read_bytes()))
    return LlamaTokenizerFast(tokenizer_file=str(path), add_bos_token=False, add_eos_token=True, legacy=True)


def comfy_ids(tokenizer, *segments: str) -> list[int]:
    """PT5XlTokenizer's framing around the reference's ids: each weighted segment of the prompt
    tokenized alone (ComfyUI's SDTokenizer), its </s> dropped, no start token, one </s>, then <s>
    (1) up to 256."""
    ids = []
    for segment in segments:
        part = tokenizer(segment).input_ids
        assert part[-1] == 2 and 1 not in part
        ids += part[:-1]
    ids += [2]
    return ids + [1] * (256 - len(ids))


def reference(path, prefix: str = ""):
    from safetensors.torch import load_file
    from transformers import UMT5EncoderModel

    state = {k[len(prefix):]: v.float() for k, v in load_file(str(path)).items() if k.startswith(prefix)}
    model = UMT5EncoderModel(pile_t5_config()).eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"encoder.embed_tokens.weight"}
    return model


def reference_context(model, ids: list[int]) -> torch.Tensor:
    """UMT5 with PT5XlModel's mask (up to and with the first </s>), the masked rows zeroed."""
    n = ids.index(2) + 1
    mask = torch.tensor([[1] * n + [0] * (len(ids) - n)])
    with torch.no_grad():
        hidden = model(torch.tensor([ids]), attention_mask=mask).last_hidden_state
    return hidden * mask[..., None]


@pytest.fixture
def pile_file(tmp_folders):
    (tmp_folders.models / "text_encoders").mkdir()
    return write_pile_t5(tmp_folders.models / "text_encoders" / "pile_t5xl.safetensors", dtype=torch.float32)


# -- the tokenizer ------------------------------------------------------------------------------

def test_the_shipped_vocabulary_is_llamas_with_the_sentinels():
    from graphflow.models.t5 import pile_t5_tokenizer

    t = pile_t5_tokenizer()
    assert t.get_vocab_size() == 32100
    assert [t.id_to_token(i) for i in (0, 1, 2, 3, 258, 259, 29871)] == [
        "<unk>", "<s>", "</s>", "<0x00>", "<0xFF>", "▁▁", "▁"]
    assert t.token_to_id("<extra_id_99>") == 32000 and t.token_to_id("<extra_id_0>") == 32099
    pieces = PileT5Ids()
    assert (pieces.eos, pieces.pad, pieces.embedding_key) == (2, 1, "pile_t5xl")
    # LLaMA's well-known ids (its tokenizer's documentation: "Hello, my dog is cute")
    assert pieces("Hello world!") == [15043, 3186, 29991]
    assert pieces("Hello, my dog is cute") == [15043, 29892, 590, 11203, 338, 274, 1082]
    # byte fallback: an emoji is its four UTF-8 bytes (id = byte + 3); a newline likewise
    assert pieces("🦊") == [29871, 0xF0 + 3, 0x9F + 3, 0xA6 + 3, 0x8A + 3]
    assert pieces("\n") == [29871, 0x0A + 3]
    assert t.decode(pieces("héllo 日本 🦊")) == "héllo 日本 🦊"
    # typed special tokens stay text, as ComfyUI's sentencepiece reads them (transformers matches them)
    assert 2 not in pieces("a </s> b") and 32099 not in pieces("<extra_id_0>")


@pytest.mark.parametrize("prompt", PROMPTS[:-2] + [LONG])
def test_ids_match_transformers_llama_tokenizer_with_comfyuis_framing(llama_tokenizer, pile_file, prompt):
    clip = call(registry(), "LoadTextEncoder", clip_name=pile_file.name, type="stable_diffusion")
    ids, weights = clip.t5.tokenize(prompt, 256)
    want = comfy_ids(llama_tokenizer, prompt)
    assert ids == want and weights == [1.0] * len(ids)
    assert len(ids) == max(256, len(llama_tokenizer(prompt).input_ids))  # no max length: a long prompt is kept whole


def test_the_empty_prompt_is_the_end_token_then_padding(pile_file):
    clip = call(registry(), "LoadTextEncoder", clip_name=pile_file.name, type="stable_diffusion")
    assert clip.t5.tokenize("", 256)[0] == [2] + [1] * 255


# -- the encoder --------------------------------------------------------------------------------

def test_the_full_size_config_reads_back_as_comfyuis_t5_pile_config_xl():
    from transformers import UMT5EncoderModel

    from graphflow.models.t5 import t5_config_from_shapes

    with torch.device("meta"):
        model = UMT5EncoderModel(pile_t5_config(scaled_down=False))
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    config = t5_config_from_shapes(shapes)
    # gated GELU, tanh approximation (gelu_new is gelu_pytorch_tanh's formula)
    assert config.model_type == "umt5" and config.is_gated_act and config.dense_act_fn == "gelu_new"
    assert (config.vocab_size, config.d_model, config.d_kv, config.d_ff, config.num_layers, config.num_heads,
            config.relative_attention_num_buckets) == (32128, 2048, 64, 5120, 24, 32, 32)


@pytest.mark.parametrize("clip_type", ["stable_diffusion", "sd3", "wan"])
def test_cliploader_gives_auraflows_encoder_matching_transformers(llama_tokenizer, pile_file, clip_type):
    """A bare Pile-T5 XL file is AuraFlow's encoder whatever the type (ComfyUI's T5_XL detection)."""
    clip = call(registry(), "LoadTextEncoder", clip_name=pile_file.name, type=clip_type)
    assert clip.arch == "aura_flow" and clip.t5.pile_t5 and clip.t5.umt5
    assert clip.t5.comfy_name == "pile_t5xl"  # its keys in ComfyUI: pile_t5xl.transformer.* (LoRAs, fp8 seeds)
    model = reference(pile_file)
    for prompt in ("a red fox, in the snow", "", "héllo 日本 🦊"):
        context, pooled = clip.encode(prompt)
        want = reference_context(model, comfy_ids(llama_tokenizer, prompt))
        assert pooled is None and context.shape == (1, 256, 32)
        torch.testing.assert_close(context, want, atol=TOL, rtol=TOL)


def test_clip_text_encode_through_the_checkpoints_text_encoder(llama_tokenizer, tmp_path):
    """The CLIP of an all-in-one AuraFlow file (text_encoders.pile_t5xl.transformer.) through
    CLIPTextEncode: context [1, 256, 2048-wide here 32], the prompt's tokens and </s>, zeros after,
    no pooled vector; a prompt longer than 256 tokens is kept whole."""
    from graphflow.models.text_encoder_files import flow_text_encoder_from_file
    from graphflow.models.weight_files import WeightFile

    path = write_pile_t5(tmp_path / "aura_flow_0.3.safetensors", dtype=torch.float32, prefix=PILE_T5_PREFIX)
    with WeightFile(path) as f:
        clip = flow_text_encoder_from_file(f, "aura_flow", device="cpu", dtype=torch.float32)
        # the memory manager reads it back alone by the name t5_name gives (checkpoint._set_sources)
        alone = flow_text_encoder_from_file(f, "aura_flow", "cpu", torch.float32, only={clip.t5_name})
        assert flow_text_encoder_from_file(f, "aura_flow", "cpu", torch.float32, only={"t5xxl"}) is None
    assert clip.arch == "aura_flow" and clip.t5_name == "pile_t5xl" and alone.t5.pile_t5
    model = reference(path, PILE_T5_PREFIX)
    for prompt in ("a red fox, in the snow", LONG):
        [(cond, options)] = call(registry(), "CLIPEncode", clip=clip, text=prompt)
        ids = comfy_ids(llama_tokenizer, prompt)
        n = ids.index(2) + 1
        assert cond.shape == (1, len(ids), 32) and "pooled_output" not in options
        assert cond[0, :n].abs().sum(-1).min() > 0 and not cond[0, n:].any()  # masked rows zeroed
        torch.testing.assert_close(cond, reference_context(model, ids), atol=TOL, rtol=TOL)
    assert call(registry(), "CLIPEncode", clip=clip, text=LONG)[0][0].shape[1] > 256


def test_the_mask_changes_the_numbers(llama_tokenizer, pile_file):
    """Without PT5XlModel's mask the padding would be attended to: the masked encoding differs."""
    clip = call(registry(), "LoadTextEncoder", clip_name=pile_file.name, type="stable_diffusion")
    model = reference(pile_file)
    ids = comfy_ids(llama_tokenizer, "a red fox")
    with torch.no_grad():
        unmasked = model(torch.tensor([ids])).last_hidden_state
    n = ids.index(2) + 1
    assert (clip.encode("a red fox")[0][0, :n] - unmasked[0, :n]).abs().max() > 1e-3


def test_prompt_weights_pull_towards_the_masked_empty_prompt(llama_tokenizer, pile_file):
    """ComfyUI: z = (z - empty) * w + empty, empty = [</s>, <s>...] under the same mask: </s>'s
    encoding alone in row 0, zeros after."""
    clip = call(registry(), "LoadTextEncoder", clip_name=pile_file.name, type="stable_diffusion")
    model = reference(pile_file)
    ids = comfy_ids(llama_tokenizer, "a ", "red", " fox")  # each weighted segment tokenized alone
    a, red = len(llama_tokenizer("a ").input_ids) - 1, len(llama_tokenizer("red").input_ids) - 1
    assert clip.t5.tokenize("a (red:1.5) fox", 256) == (ids, [1.0] * a + [1.5] * red + [1.0] * (256 - a - red))
    plain = reference_context(model, ids)
    empty = reference_context(model, [2] + [1] * 255)
    weighted, _ = clip.encode("a (red:1.5) fox")
    want = plain.clone()
    span = slice(a, a + red)
    want[0, span] = (plain[0, span] - empty[0, span]) * 1.5 + empty[0, span]
    assert (want - plain).abs().max() > 1e-3
    torch.testing.assert_close(weighted, want, atol=TOL, rtol=TOL)


def test_pile_t5_is_auraflows_alone(pile_file, tmp_folders):
    from graphflow.api import NodeInputError
    from graphflow.testing import write_flow_text_encoder

    write_flow_text_encoder(pile_file.parent / "clip_l.safetensors", "clip_l")
    with pytest.raises(NodeInputError, match="Pile-T5 XL alone"):
        call(registry(), "LoadDualTextEncoders", clip_name1="clip_l.safetensors", clip_name2=pile_file.name,
             type="sd3")


def test_clip_save_writes_pile_t5_that_loads_back_alike(pile_file, tmp_folders):
    """CLIPSave names the file's encoder pile_t5xl (no tokenizer inside: it ships with graphflow, as
    with ComfyUI); CLIPLoader reads it back as AuraFlow's encoder."""
    import shutil

    from safetensors import safe_open

    clip = call(registry(), "LoadTextEncoder", clip_name=pile_file.name, type="stable_diffusion")
    call(registry(), "CLIPSave", clip=clip, filename_prefix="text_encoders/saved")
    [saved] = tmp_folders.outputs.rglob("saved_pile_t5xl*.safetensors")
    with safe_open(str(saved), "pt") as f:
        assert "shared.weight" in f.keys() and "spiece_model" not in f.keys()
    shutil.copy(saved, pile_file.parent / "resaved.safetensors")
    again = call(registry(), "LoadTextEncoder", clip_name="resaved.safetensors", type="stable_diffusion")
    assert torch.equal(again.encode("a (red:1.2) fox")[0], clip.encode("a (red:1.2) fox")[0])


def test_embedding_names_read_pile_t5xl_vectors(llama_tokenizer, pile_file, tmp_folders):
    """PT5XlTokenizer reads embedding:name under the key pile_t5xl (2048 wide on Pile-T5 XL; 32 here):
    the vectors stand where the name was, inside the mask."""
    from safetensors.torch import save_file

    folder = tmp_folders.models / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    vectors = torch.randn(2, 32, generator=torch.Generator().manual_seed(7))
    save_file({"pile_t5xl": vectors, "t5xxl": torch.randn(3, 64)}, str(folder / "tv.safetensors"))
    clip = call(registry(), "LoadTextEncoder", clip_name=pile_file.name, type="stable_diffusion")
    got, _ = clip.encode("a embedding:tv (red:1.5) fox")
    a = llama_tokenizer("a").input_ids[:-1]  # ComfyUI splits at " embedding:", the space with it
    rest = comfy_ids(llama_tokenizer, "red", " fox")
    ids = a + [1, 1] + rest[:256 - len(a) - 2]
    n = ids.index(2) + 1
    mask = torch.tensor([[1] * n + [0] * (256 - n)])
    model = reference(pile_file)
    with torch.no_grad():
        embeds = model.get_input_embeddings()(torch.tensor([ids])).clone()
        embeds[0, len(a):len(a) + 2] = vectors
        z = model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state * mask[..., None]
    red = slice(len(a) + 2, len(a) + 2 + len(llama_tokenizer("red").input_ids) - 1)
    z[0, red] *= 1.5  # the masked empty prompt is zero past its </s>
    torch.testing.assert_close(got, z, atol=TOL, rtol=TOL)


def test_other_weights_under_the_pile_t5_prefix_are_refused(tmp_path):
    from graphflow.models.text_encoder_files import flow_text_encoder_from_file
    from graphflow.models.weight_files import CheckpointError, WeightFile
    from graphflow.testing import t5_state
    from safetensors.torch import save_file

    path = tmp_path / "odd.safetensors"
    save_file({PILE_T5_PREFIX + k: v for k, v in t5_state(dtype=torch.float32).items()}, str(path))
    with WeightFile(path) as f, pytest.raises(CheckpointError, match="expected Pile-T5 XL"):
        flow_text_encoder_from_file(f, "aura_flow", device="cpu", dtype=torch.float32)


def test_t5_tokenizer_options_pad_auraflow_prompts(llama_tokenizer, pile_file):
    """ComfyUI's T5TokenizerOptions sets pile_t5xl's min_padding / min_length too: <s> (1) padding,
    still masked and zeroed past </s>."""
    clip = call(registry(), "LoadTextEncoder", clip_name=pile_file.name, type="stable_diffusion")
    padded = call(registry(), "T5TokenizerOptions", clip=clip, min_padding=3, min_length=16)
    context, _ = padded.encode("a red fox")
    n = len(llama_tokenizer("a red fox").input_ids)
    assert context.shape[1] == 16 and not context[0, n:].any()
    torch.testing.assert_close(context[:, :n], clip.encode("a red fox")[0][:, :n], atol=0, rtol=0)
    unpadded, _ = call(registry(), "T5TokenizerOptions", clip=clip, min_padding=0, min_length=0).encode("a red fox")
    assert unpadded.shape[1] == n
