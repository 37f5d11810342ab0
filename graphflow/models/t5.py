"""T5-XXL, the text encoder of SD3 / SD3.5 and FLUX.1: tokenizer, weights, encoder.

Tokenizer: the standard T5 sentencepiece vocabulary (32,100 tokens, 100 of them <extra_id_*>)
as a `tokenizers` JSON file in t5_tokenizer/ (Apache-2.0, Google's T5; see its README), run by
the `tokenizers` library; nothing is downloaded. Ids equal transformers' T5TokenizerFast on the
same file: the prompt's pieces, then </s> (1). Unlike CLIP there are no 77-token windows: a long
prompt is one sequence. It is padded with <pad> (0) to a minimum length, as ComfyUI does: 77
for SD3, 256 for FLUX (dev and schnell alike), none for Chroma, and no attention mask (padding is attended to,
as in ComfyUI and diffusers' pipelines). diffusers' pipelines instead pad and truncate to
max_sequence_length (SD3 256, FLUX dev 512, schnell 256), so parity tests against them pass the
same ids or embeddings. Prompt weights ((word:1.2)) work as for CLIP: a
weighted token becomes empty + (z - empty) * w, empty being the encoding of "</s> <pad>...".

Encoder: transformers' T5EncoderModel, its config read from the weights' shapes (T5-XXL v1.1:
gated-gelu, d_model 4096, 24 layers, 64 heads of 64, d_ff 10240). Files come as
`encoder.block.0.layer.0.SelfAttention.q.weight` + `shared.weight` (transformers' layout, also
inside ComfyUI's all-in-one files under `text_encoders.t5xxl.transformer.`), in fp32/fp16/bf16 or
fp8 (t5xxl_fp8_e4m3fn), which is upcast as it is read; ComfyUI's "scaled fp8" files
(t5xxl_fp8_e4m3fn_scaled) come dequantised by graphflow.models.weight_files, as every model's do.
"""

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import torch

from .attention import kernels
from .tokenizer import parse_weighted_prompt

TOKENIZER_FILE = Path(__file__).parent / "t5_tokenizer" / "tokenizer.json"
EOS, PAD = 1, 0
# Chroma, PixArt, LTX-Video and Mochi: no padding (ComfyUI pads to 1 token, </s> alone; for ltxv
# and mochi see graphflow.models.flow_text); Cosmos: 512, the padding zeroed
MIN_LENGTH = {"sd3": 77, "flux": 256, "chroma": 1, "pixart": 1, "ltxv": 1, "mochi": 1, "cosmos": 512}
Q_KEY = "encoder.block.0.layer.0.SelfAttention.q.weight"


@lru_cache(maxsize=1)
def t5_tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(TOKENIZER_FILE))


def t5_ids(text: str) -> list[int]:
    """Piece ids of `text`, without </s>."""
    if not text:
        return []
    return t5_tokenizer().encode(text, add_special_tokens=False).ids


def tokenize_t5(prompt: str, min_length: int = 0, min_padding: int = 0) -> tuple[list[int], list[float]]:
    """Weighted prompt -> (ids, weights): pieces, </s>, min_padding <pad>, then <pad> up to
    min_length (ComfyUI's order: T5TokenizerOptions sets both)."""
    ids, weights = [], []
    for segment, weight in parse_weighted_prompt(prompt):
        pieces = t5_ids(segment)
        ids += pieces
        weights += [weight] * len(pieces)
    ids += [EOS] + [PAD] * min_padding
    weights += [1.0] * (1 + min_padding)
    padding = max(0, min_length - len(ids))
    return ids + [PAD] * padding, weights + [1.0] * padding


# -- weights -----------------------------------------------------------------------------------

def t5_prefix(keys) -> str | None:
    """The prefix before `encoder.block.0...` in a file's keys (`""`, `text_encoders.t5xxl.transformer.`,
    ...), or None when the file holds no T5 encoder."""
    for key in keys:
        if key.endswith(Q_KEY):
            return key[:-len(Q_KEY)]
    return None


def t5_config_from_shapes(shapes: dict[str, tuple]):
    """T5Config from transformers-named shapes (prefix stripped)."""
    from transformers import T5Config

    try:
        vocab, d_model = shapes["shared.weight"] if "shared.weight" in shapes else shapes["encoder.embed_tokens.weight"]
        inner = shapes[Q_KEY][0]
        buckets, heads = shapes["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
    except KeyError as e:
        raise ValueError(f"T5 weights lack {e.args[0]}") from None
    layers = 1 + max(int(k.split(".")[2]) for k in shapes if k.startswith("encoder.block."))
    gated = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in shapes
    d_ff = shapes["encoder.block.0.layer.1.DenseReluDense." + ("wi_0" if gated else "wi") + ".weight"][0]
    if inner % heads:
        raise ValueError(f"T5 attention width {inner} is not divisible by {heads} heads")
    return T5Config(vocab_size=vocab, d_model=d_model, d_kv=inner // heads, d_ff=d_ff, num_layers=layers,
                    num_heads=heads, relative_attention_num_buckets=buckets, dropout_rate=0.0,
                    feed_forward_proj="gated-gelu" if gated else "relu", is_encoder_decoder=False,
                    use_cache=False)


def _model_keys(shapes) -> list[str]:
    """The keys T5EncoderModel takes; decoder weights of full T5 files are not among them."""
    return [k for k in shapes if k.startswith("encoder.") or k == "shared.weight"]


class T5Encoder:
    """A T5 encoder stack and how prompts are padded for it (min_length: 77 SD3, 256 FLUX)."""

    def __init__(self, model):
        self.model = model

    @property
    def device(self) -> torch.device:
        return self.model.shared.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.shared.weight.dtype

    @property
    def hidden_size(self) -> int:
        return self.model.config.d_model

    def to(self, device=None, dtype=None) -> "T5Encoder":
        self.model.to(device=device, dtype=dtype)
        return self

    @torch.no_grad()
    def run(self, ids: list[list[int]]) -> torch.Tensor:
        """Token ids [N][T] -> last hidden state (after the final layer norm) [N, T, d_model], float32 CPU."""
        from graphflow import memory  # on the device for this call only

        with memory.use(self.model, "text_encoder", "text_encoder:t5"):
            tokens = torch.tensor(ids, dtype=torch.long, device=memory.manager().device_for(self.model))
            with kernels(tokens.device):
                return self.model(input_ids=tokens).last_hidden_state.float().cpu()

    def encode(self, prompt: str, min_length: int = 0, min_padding: int = 0, empty_end: bool = True) -> torch.Tensor:
        """Weighted prompt -> [1, T, d_model] (T = max(pieces + 1 + min_padding, min_length))."""
        ids, weights = tokenize_t5(prompt, min_length, min_padding)
        return self.encode_ids(ids, weights, empty_end)

    def encode_ids(self, ids: list[int], weights: list[float] | None = None, empty_end: bool = True) -> torch.Tensor:
        """empty_end False: weights pull towards <pad>s alone rather than "</s> <pad>..." (ComfyUI's
        PixArt / Chroma T5, whose empty tokens have no </s>)."""
        weighted = weights is not None and any(w != 1.0 for w in weights)
        empty = ([EOS] if empty_end else [PAD]) + [PAD] * (len(ids) - 1)
        batch = [ids] + ([empty] if weighted else [])
        hidden = self.run(batch)
        z = hidden[:1]
        if weighted:
            w = torch.tensor(weights, dtype=torch.float32)[None, :, None]
            z = torch.where(w != 1.0, (z - hidden[1:]) * w + hidden[1:], z)
        return z


def t5_from_weights(shapes: dict[str, tuple], get_tensor: Callable[..., torch.Tensor], device=None,
                    dtype: torch.dtype = torch.float32) -> T5Encoder:
    """Build a T5Encoder from transformers-named keys (prefix stripped): `get_tensor(key, device,
    dtype)` reads one tensor cast and moved, so fp8 files are upcast one tensor at a time and the
    weights are never held twice (the model is built on the meta device and the tensors assigned)."""
    from transformers import T5EncoderModel

    config = t5_config_from_shapes(shapes)
    with torch.device("meta"):
        model = T5EncoderModel(config)
    state = {}
    for key in _model_keys(shapes):
        tensor = get_tensor(key, device, dtype)
        state["shared.weight" if key == "encoder.embed_tokens.weight" and "shared.weight" not in shapes else key] = tensor
    state.pop("encoder.embed_tokens.weight", None)  # tied to shared.weight
    result = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in result.missing_keys if k != "encoder.embed_tokens.weight"]
    if missing or result.unexpected_keys:
        raise ValueError(f"T5 weights do not fit the model: missing {missing[:6]}, unexpected {result.unexpected_keys[:6]}")
    model.encoder.embed_tokens = model.shared
    leftovers = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftovers:
        raise ValueError(f"T5 weights: nothing for {leftovers[:5]}")
    return T5Encoder(model.requires_grad_(False).eval())


def t5_from_state_dict(state: dict[str, torch.Tensor], device=None, dtype: torch.dtype = torch.float32) -> T5Encoder:
    """A T5Encoder from a state dict in any of the layouts above (any prefix before `encoder.`):
    the entry point for checkpoint loaders that find a T5 in an all-in-one file."""
    prefix = t5_prefix(state)
    if prefix is None:
        raise ValueError(f"no T5 encoder keys (expected ...{Q_KEY})")
    shapes = {k[len(prefix):]: tuple(v.shape) for k, v in state.items() if k.startswith(prefix)}
    return t5_from_weights(shapes, lambda key, d, t: state[prefix + key].to(device=d, dtype=t), device, dtype)
