"""Wan 2.1 against transformers / diffusers on identical tiny random weights.

Text: UMT5-XXL as ComfyUI's umt5_xxl_fp16.safetensors ships it (transformers' UMT5EncoderModel
names, the SentencePiece model's bytes as the tensor `spiece_model`); the oracle is transformers'
UMT5EncoderModel on ids from sentencepiece's own processor on that model (+ </s>, as ComfyUI's
SPieceTokenizer with add_eos), padded to 512 and masked (Wan's pipelines and ComfyUI), the padded
outputs zeroed.
Transformer: random weights in the original Wan layout (`blocks.N.self_attn.q`, `head.head`, ...)
go through diffusers' single-file converter (convert_wan_transformer_to_diffusers, which must
consume every key) into diffusers' WanTransformer3DModel, loaded strictly; ours loads the same
tensors as they are. ComfyUI's call: sigma in, timestep 1000 sigma, output the velocity.
"""

import functools
import json

import pytest
import torch

from tests.test_nodes_image_mask import call

TOL = 1e-4


@functools.lru_cache(maxsize=1)
def registry():
    from graphflow.registry import Registry

    return Registry().load_builtin()


# -- UMT5-XXL -------------------------------------------------------------------------------------

class Tokenizer:
    """sentencepiece's processor on the file's model, </s> appended, padded with 0 and masked."""

    def __init__(self, model: bytes):
        from sentencepiece import SentencePieceProcessor

        self.sp = SentencePieceProcessor(model_proto=model, add_eos=True)

    def __call__(self, prompt, padding=None, max_length=None, return_tensors=None):
        from types import SimpleNamespace

        ids = self.sp.encode(prompt)
        if padding is None:
            return SimpleNamespace(input_ids=ids)
        mask = [1] * len(ids) + [0] * (max_length - len(ids))
        return SimpleNamespace(input_ids=torch.tensor([ids + [0] * (max_length - len(ids))]),
                               attention_mask=torch.tensor([mask]))


def reference_umt5(path):
    """(transformers' UMT5EncoderModel on the file's weights, a tokenizer of its spiece_model)."""
    from safetensors.torch import load_file
    from transformers import UMT5EncoderModel

    from graphflow.testing import umt5_config

    state = load_file(str(path))
    tokenizer = Tokenizer(state.pop("spiece_model").numpy().tobytes())
    model = UMT5EncoderModel(umt5_config(state["shared.weight"].shape[0])).eval()
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    assert not unexpected and set(missing) <= {"encoder.embed_tokens.weight"}
    return model, tokenizer


def reference_text(model, tokenizer, prompt):
    """The prompt padded to 512 with its mask through UMT5, padded outputs zeroed (ComfyUI's and
    diffusers' WanPipeline's context)."""
    tokens = tokenizer(prompt, padding="max_length", max_length=512, return_tensors="pt")
    with torch.no_grad():
        hidden = model(tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    return hidden * tokens.attention_mask[..., None], tokens


@pytest.fixture
def umt5_file(tmp_folders):
    from graphflow.testing import write_umt5

    (tmp_folders.models / "text_encoders").mkdir()
    return write_umt5(tmp_folders.models / "text_encoders" / "umt5_xxl_fp16.safetensors", dtype=torch.float32)


def test_cliploader_wan_matches_transformers_umt5(umt5_file):
    clip = call(registry(), "LoadTextEncoder", clip_name=umt5_file.name, type="wan")
    model, tokenizer = reference_umt5(umt5_file)
    assert model.config.model_type == "umt5" and clip.t5.umt5
    for prompt in ("a red fox runs through fresh snow", "", "dogs bark at the city lights at night"):
        context, pooled = clip.encode(prompt)
        want, tokens = reference_text(model, tokenizer, prompt)
        assert pooled is None and context.shape == (1, 512, model.config.d_model)
        n = int(tokens.attention_mask.sum())
        assert n >= 1 and float(context[0, :n].abs().min(dim=-1).values.max()) > 0  # the prompt's tokens
        torch.testing.assert_close(context, want, atol=1e-4, rtol=1e-4)
    # ids: the pieces then </s> (1), no start token, <pad> 0, as ComfyUI's UMT5XXlTokenizer
    ids, _ = clip.t5.tokenize("a red fox", 8)
    assert ids == tokenizer("a red fox").input_ids + [0] * (8 - len(tokenizer("a red fox").input_ids))
    assert ids[len(tokenizer("a red fox").input_ids) - 1] == 1


def test_umt5_layers_each_have_their_own_position_bias(umt5_file):
    """The per-layer bias is what makes UMT5: the second layer's changes the output, unlike T5's."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(umt5_file))
    state["encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"] *= 3.0
    other = umt5_file.with_name("umt5_other.safetensors")
    save_file(state, str(other))
    a = call(registry(), "LoadTextEncoder", clip_name=umt5_file.name, type="wan").encode("a red fox")[0]
    b = call(registry(), "LoadTextEncoder", clip_name=other.name, type="wan").encode("a red fox")[0]
    assert float((a - b).abs().max()) > 1e-3


def test_prompt_weights_pull_towards_the_masked_empty_prompt(umt5_file):
    clip = call(registry(), "LoadTextEncoder", clip_name=umt5_file.name, type="wan")
    plain = clip.encode("a red fox")[0]
    weighted = clip.encode("a (red:1.5) fox")[0]
    n = len(clip.t5.tokenize("a red fox")[0])
    empty = clip.t5.run([[1]])[0, 0]  # "</s>" alone: the masked empty prompt's first token, zeros after
    red = len(clip.t5.tokenize("a")[0]) - 1  # the first piece of "red"
    torch.testing.assert_close(weighted[0, red], (plain[0, red] - 0) * 1.5 if red else
                               (plain[0, 0] - empty) * 1.5 + empty, atol=1e-5, rtol=1e-5)
    assert torch.equal(weighted[0, n:], plain[0, n:])


def test_umt5_without_tokenizer_or_plain_t5_refused(tmp_folders):
    from graphflow.api import NodeInputError
    from graphflow.testing import write_flow_text_encoder, write_umt5

    folder = tmp_folders.models / "text_encoders"
    folder.mkdir()
    write_umt5(folder / "umt5_bare.safetensors", tokenizer=False)
    write_flow_text_encoder(folder / "t5xxl_fp16.safetensors", "t5xxl")
    with pytest.raises(NodeInputError, match="umt5_xxl_fp16.safetensors or umt5_xxl_fp8_e4m3fn_scaled"):
        call(registry(), "LoadTextEncoder", clip_name="umt5_bare.safetensors", type="wan")
    with pytest.raises(NodeInputError, match="UMT5-XXL"):
        call(registry(), "LoadTextEncoder", clip_name="t5xxl_fp16.safetensors", type="wan")


# -- the transformer --------------------------------------------------------------------------------

def diffusers_transformer(cfg, state: dict):
    """diffusers' WanTransformer3DModel of `cfg` on Wan-layout `state` (through diffusers' converter)."""
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    theirs = WanTransformer3DModel(
        patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_channels, out_channels=cfg.out_channels, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim, num_layers=cfg.depth, cross_attn_norm=cfg.cross_attn_norm,
        image_dim=cfg.image_dim or None, added_kv_proj_dim=cfg.dim if cfg.i2v else None).eval()
    left = {k: v.clone() for k, v in state.items()}
    converted = convert_wan_transformer_to_diffusers(left)
    assert not left, f"keys diffusers' converter does not know: {sorted(left)[:5]}"
    theirs.load_state_dict(converted, strict=True)
    return theirs


def diffusers_velocity(theirs, x, sigma, context, image=None):
    """ComfyUI's model output from diffusers' transformer: net(x, 1000 sigma)."""
    with torch.no_grad():
        return theirs(x, sigma * 1000, context, encoder_hidden_states_image=image, return_dict=False)[0]


@functools.lru_cache(maxsize=2)
def transformer_pair(i2v: bool):
    from graphflow.models.wan import Wan
    from graphflow.testing import wan_config, wan_state

    cfg = wan_config(i2v=i2v)
    state = wan_state(seed=0, i2v=i2v)
    ours = Wan(cfg).eval()
    ours.load_state_dict(state)
    return cfg, ours, diffusers_transformer(cfg, state), state


@pytest.mark.parametrize("i2v", [False, True])
def test_transformer_matches_diffusers(i2v):
    cfg, ours, theirs, _ = transformer_pair(i2v)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, cfg.in_channels, 3, 4, 6, generator=gen)
    # diffusers' I2V attention takes the text to be the last 512 tokens (ComfyUI's padded prompt)
    context = torch.randn(2, 512 if i2v else 9, cfg.text_dim, generator=gen)
    image = torch.randn(2, 5, cfg.image_dim, generator=gen) if i2v else None
    sigma = torch.tensor([0.9, 0.3])
    with torch.no_grad():
        got = ours(x, sigma, context, clip_fea=image)
    want = diffusers_velocity(theirs, x, sigma, context, image)
    assert got.shape == (2, 16, 3, 4, 6)
    assert float((got - want).abs().max()) < TOL * float(want.abs().max())
    assert float(got.abs().max()) > 0.1
    if i2v:  # the image tokens count
        with torch.no_grad():
            other = ours(x, sigma, context, clip_fea=torch.randn(image.shape, generator=gen))
        assert float((other - got).abs().max()) > 1e-3


def test_positions_time_and_odd_sizes():
    cfg, ours, theirs, _ = transformer_pair(False)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 16, 2, 4, 4, generator=gen)
    context = torch.randn(1, 5, cfg.text_dim, generator=gen)
    with torch.no_grad():
        a = ours(x, torch.tensor([0.5]), context)
        b = ours(x, torch.tensor([0.6]), context)
        swapped = ours(x.flip(2), torch.tensor([0.5]), context)
        odd = ours(torch.randn(1, 16, 2, 5, 3, generator=gen), torch.tensor([0.5]), context)
    assert float((a - b).abs().max()) > 1e-3
    assert float((swapped.flip(2) - a).abs().max()) > 1e-3  # frames are told apart by their rotation
    assert odd.shape == (1, 16, 2, 5, 3)  # padded to whole patches and cropped back, as ComfyUI


def test_config_from_shapes():
    from graphflow.models.wan import wan_config_from_state_dict
    from graphflow.testing import wan_config

    for i2v in (False, True):
        cfg, _, _, state = transformer_pair(i2v)
        assert wan_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()}) == cfg == wan_config(i2v=i2v)
    assert wan_config(False).num_heads == 12 and wan_config(False).dim == 1536  # T2V 1.3B
