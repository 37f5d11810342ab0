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
`embedding:name` puts a textual-inversion file's t5xxl vectors in the sequence, as ComfyUI's
T5 tokenizers do (graphflow.models.embeddings).

Encoder: transformers' T5EncoderModel, its config read from the weights' shapes (T5-XXL v1.1:
gated-gelu, d_model 4096, 24 layers, 64 heads of 64, d_ff 10240). Files come as
`encoder.block.0.layer.0.SelfAttention.q.weight` + `shared.weight` (transformers' layout, also
inside ComfyUI's all-in-one files under `text_encoders.t5xxl.transformer.`), in fp32/fp16/bf16 or
fp8 (t5xxl_fp8_e4m3fn), which is upcast as it is read; ComfyUI's "scaled fp8" files
(t5xxl_fp8_e4m3fn_scaled) come dequantised by graphflow.models.weight_files, as every model's do.

UMT5-XXL (Wan 2.1's text encoder; umt5_xxl_fp16 / umt5_xxl_fp8_e4m3fn_scaled): the same names and
stack, but every layer has its own relative position bias (T5 has one, in layer 0), which is how
it is told apart; built as transformers' UMT5EncoderModel. Its vocabulary (256,384 pieces) is not
shipped with graphflow: ComfyUI's files carry the SentencePiece model itself as a uint8 tensor
`spiece_model` beside the weights, and it is read from there (`sentencepiece` runs it). Ids: the
prompt's pieces and the model's </s>, padding <pad> (0), no start token, as ComfyUI's
UMT5XXlTokenizer.

byT5-small with Glyph-ByT5's weights (HunyuanImage 2.1's glyph encoder, byt5_small_glyphxl_fp16):
the same names and stack (d_model 1472, 12 layers, 6 heads of 64, gated GELU), its embedding one
row per byte and special token (1510 rows, where T5's has 32,128), which is how it is told
apart; ids are UTF-8 bytes + 3 (ByteIds: ComfyUI's byt5_tokenizer, transformers' ByT5Tokenizer).

Pile-T5 XL (AuraFlow's text encoder; ComfyUI's aura_flow_0.3 checkpoint under
`text_encoders.pile_t5xl.transformer.`, or alone): UMT5's stack (d_model 2048, 24 layers, 32 heads of
64, d_ff 5120, gated GELU) with a 32,128-row embedding, which is how it is told apart (no tokenizer
inside its files). Its vocabulary is LLaMA's 32,000 pieces plus 100 sentinels, shipped in
pile_t5_tokenizer/ (Llama 2 Community License; see its README) and read with `tokenizers`
(PileT5Ids). Ids as ComfyUI's PT5XlTokenizer: the prompt's pieces, </s> (2), padded with <s>
(1, Pile-T5's pad id) to 256, no start token; the encoder runs with everything after </s> masked
and those outputs zeroed (PT5XlModel's enable_attention_masks and zero_out_masked).
"""

import copy
import gzip
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import torch

from .attention import kernels
from .configs import PILE_T5_VOCAB, UMT5_KEY, byte_level, pile_t5  # noqa: F401 (PILE_T5_VOCAB: t5's name too)
from .gguf_layers import keep_quantized
from .tokenizer import EMBEDDING, _embedding_groups, parse_weighted_prompt

TOKENIZER_FILE = Path(__file__).parent / "t5_tokenizer" / "tokenizer.json"
EOS, PAD = 1, 0
# Chroma, PixArt, LTX-Video and Mochi: no padding (ComfyUI pads to 1 token, </s> alone; for ltxv
# and mochi see graphflow.models.flow_text); Cosmos: 512, the padding zeroed
# Wan: UMT5 padded to 512 (ComfyUI's UMT5XXlTokenizer min_length), the padding masked and zeroed
# AuraFlow: Pile-T5 padded to 256 (PT5XlTokenizer's min_length), the padding masked and zeroed
MIN_LENGTH = {"sd3": 77, "flux": 256, "chroma": 1, "pixart": 1, "ltxv": 1, "mochi": 1, "cosmos": 512, "wan": 512,
              "aura_flow": 256}
Q_KEY = "encoder.block.0.layer.0.SelfAttention.q.weight"
SPIECE_KEY = "spiece_model"  # ComfyUI's UMT5 files: the SentencePiece model's bytes (uint8)
# Pile-T5 XL (AuraFlow): LLaMA's pieces + 100 sentinels, rows padded to 32,128 in the embedding
PILE_T5_FILE = Path(__file__).parent / "pile_t5_tokenizer" / "tokenizer.json.gz"
# byT5 (HunyuanImage 2.1's glyph encoder): bytes, not pieces (configs.byte_level tells it apart)
BYTE_OFFSET, BYTE_VOCAB = 3, 384
EXTRA_IDS = 125  # <extra_id_0> .. <extra_id_124>: ids 259 .. 383 (ComfyUI's byt5_tokenizer/added_tokens.json)


@lru_cache(maxsize=1)
def t5_tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(TOKENIZER_FILE))


def t5_ids(text: str) -> list[int]:
    """Piece ids of `text`, without </s>."""
    if not text:
        return []
    return t5_tokenizer().encode(text, add_special_tokens=False).ids


class SentencePieceIds:
    """A SentencePiece model's pieces (UMT5's, from the bytes in its weight file): text -> ids
    without </s>, `eos` the model's own </s> id (ComfyUI reads it off the encoding of "")."""

    embedding_key = "umt5xxl"  # ComfyUI's UMT5XXlTokenizer's: textual-inversion vectors under this key
    pad = PAD

    def __init__(self, model: bytes):
        try:
            import sentencepiece
        except ImportError:
            raise ImportError("UMT5 prompts need the sentencepiece package (pip install sentencepiece)") from None
        self.model = bytes(model)  # kept: CLIPSave writes it back beside the weights
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=model)
        self.eos = int(self.processor.eos_id())

    def __call__(self, text: str) -> list[int]:
        return self.processor.encode(text) if text else []


@lru_cache(maxsize=1)
def pile_t5_tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_str(gzip.decompress(PILE_T5_FILE.read_bytes()).decode("utf-8"))


class PileT5Ids:
    """Pile-T5's tokenizer (ComfyUI's PT5XlTokenizer): text -> LLaMA piece ids without </s>; </s> is
    2 and the padding <s> (1). "</s>" or "<extra_id_0>" typed in a prompt are text, as ComfyUI's
    sentencepiece reads them."""

    embedding_key = "pile_t5xl"  # PT5XlTokenizer's: textual-inversion vectors under this key
    eos, pad = 2, 1

    def __call__(self, text: str) -> list[int]:
        return pile_t5_tokenizer().encode(text, add_special_tokens=False).ids if text else []


class ByteIds:
    """byT5's tokenizer (transformers' ByT5Tokenizer, ComfyUI's byt5_tokenizer): text -> ids without
    </s>: each UTF-8 byte b is b + 3; the special tokens <pad> (0), </s> (1), <unk> (2) and
    <extra_id_0> .. <extra_id_124> (259 .. 383) are matched in the text first, as transformers'
    added tokens are. Glyph-ByT5's own tokens (ids 384 .. 1509 of HunyuanImage's byT5: <color-N>
    and <xx-font-N>, which Tencent's and diffusers' tokenizers add from Glyph-SDXL-v2's
    color_idx.json and multilingual_10-lang_idx.json) are not among them: ComfyUI's tokenizer
    does not add them either, so "<color-0>" is its nine bytes, as in ComfyUI. (The font tokens'
    order comes from that JSON file, which neither ComfyUI nor graphflow ships.)"""

    embedding_key = "byt5_small"  # ComfyUI's ByT5SmallTokenizer's
    eos, pad = EOS, PAD
    SPECIAL = {"<pad>": PAD, "</s>": EOS, "<unk>": 2} | {f"<extra_id_{i}>": 259 + i for i in range(EXTRA_IDS)}
    pattern = re.compile("(" + "|".join(map(re.escape, SPECIAL)) + ")")  # compiled once, for every instance

    def __call__(self, text: str) -> list[int]:
        ids = []
        for i, part in enumerate(self.pattern.split(text)):
            ids += [self.SPECIAL[part]] if i % 2 else [b + BYTE_OFFSET for b in part.encode("utf-8")]
        return ids


def tokenize_t5(prompt: str, min_length: int = 0, min_padding: int = 0, pieces=None,
                eos: int = EOS, pad: int = PAD) -> tuple[list[int], list[float]]:
    """Weighted prompt -> (ids, weights): pieces, </s>, min_padding <pad>, then <pad> up to
    min_length (ComfyUI's order: T5TokenizerOptions sets both). `pieces`: text -> ids (T5's
    vocabulary by default; a SentencePieceIds for UMT5, PileT5Ids for Pile-T5) with its `eos`
    and `pad`."""
    ids, weights, _ = t5_tokens(prompt, min_length, min_padding, pieces, eos, pad=pad)
    return ids, weights


def t5_tokens(prompt: str, min_length: int = 0, min_padding: int = 0, pieces=None, eos: int = EOS,
              embeddings=None, pad: int = PAD) -> tuple[list[int], list[float], dict]:
    """tokenize_t5 with `embedding:name` read as ComfyUI's T5 tokenizers do (embeddings: name ->
    vectors or None, as for CLIP; None: plain text): (ids, weights, {(0, position): vector}),
    each vector standing at a <pad> placeholder id."""
    pieces = pieces or t5_ids
    ids, weights, vectors = [], [], {}
    for segment, weight in parse_weighted_prompt(prompt):
        if embeddings is not None and EMBEDDING in segment:
            groups = _embedding_groups(segment, weight, embeddings, pieces)
        else:
            groups = [[(t, weight) for t in pieces(segment)]]
        for group in groups:
            for t, w in group:
                if not isinstance(t, int):
                    vectors[(0, len(ids))], t = t, pad
                ids.append(t)
                weights.append(w)
    ids += [eos] + [pad] * min_padding
    weights += [1.0] * (1 + min_padding)
    padding = max(0, min_length - len(ids))
    return ids + [pad] * padding, weights + [1.0] * padding, vectors


# -- weights -----------------------------------------------------------------------------------

def t5_prefix(keys) -> str | None:
    """The prefix before `encoder.block.0...` in a file's keys (`""`, `text_encoders.t5xxl.transformer.`,
    ...), or None when the file holds no T5 encoder."""
    for key in keys:
        if key.endswith(Q_KEY):
            return key[:-len(Q_KEY)]
    return None


def t5_config_from_shapes(shapes: dict[str, tuple]):
    """T5Config (UMT5Config when every layer has its own position bias) from transformers-named
    shapes (prefix stripped)."""
    from transformers import T5Config, UMT5Config

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
    config = UMT5Config if UMT5_KEY in shapes else T5Config
    return config(vocab_size=vocab, d_model=d_model, d_kv=inner // heads, d_ff=d_ff, num_layers=layers,
                  num_heads=heads, relative_attention_num_buckets=buckets, dropout_rate=0.0,
                  feed_forward_proj="gated-gelu" if gated else "relu", is_encoder_decoder=False,
                  use_cache=False)


def _model_keys(shapes) -> list[str]:
    """The keys T5EncoderModel takes; decoder weights of full T5 files are not among them."""
    return [k for k in shapes if k.startswith("encoder.") or k == "shared.weight"]


class T5Encoder:
    """A T5 encoder stack and how prompts are padded for it (min_length: 77 SD3, 256 FLUX).
    `pieces`: UMT5's tokenizer (SentencePieceIds from its file); None: T5's vocabulary."""

    def __init__(self, model, pieces: SentencePieceIds | PileT5Ids | ByteIds | None = None):
        self.model = model
        self.pieces = pieces
        self.layer = None  # CLIPSetLastLayer's stop_at_clip_layer; None: the last layer
        self.patches = ()  # graphflow.memory.WeightPatch on `model` (LoRA), applied when it runs

    def with_patches(self, patches: tuple) -> "T5Encoder":
        clone = copy.copy(self)
        clone.patches = tuple(patches)
        return clone

    def with_layer(self, layer: int) -> "T5Encoder":
        """The same encoder giving the output of block `layer` (-1 the last, -2 the one before)
        through the final layer norm, as ComfyUI's CLIPSetLastLayer makes its T5 do (SD3, FLUX
        and the T5-alone models pass it on); past the first block: the last layer."""
        clone = copy.copy(self)
        clone.layer = layer
        return clone

    @property
    def eos(self) -> int:
        return EOS if self.pieces is None else self.pieces.eos

    @property
    def pad(self) -> int:
        return PAD if self.pieces is None else self.pieces.pad

    @property
    def umt5(self) -> bool:
        return self.model.config.model_type == "umt5"

    @property
    def pile_t5(self) -> bool:
        """Pile-T5 XL (AuraFlow's), told by its vocabulary (t5_from_weights)."""
        return isinstance(self.pieces, PileT5Ids)

    @property
    def comfy_name(self) -> str:
        """The encoder's name in ComfyUI's CLIP state dict (its keys: <name>.transformer.*), CLIPSave
        files and generic text_encoders.<name>.* LoRA keys."""
        return "pile_t5xl" if self.pile_t5 else "umt5xxl" if self.umt5 else "t5xxl"

    def _check_pieces(self) -> None:
        if self.umt5 and self.pieces is None:
            raise ValueError("this UMT5 file carries no tokenizer (no spiece_model tensor); use ComfyUI's "
                             "umt5_xxl_fp16.safetensors or umt5_xxl_fp8_e4m3fn_scaled.safetensors, which carry it")

    def tokenize(self, prompt: str, min_length: int = 0, min_padding: int = 0) -> tuple[list[int], list[float]]:
        self._check_pieces()
        return tokenize_t5(prompt, min_length, min_padding, self.pieces, self.eos, self.pad)

    def _tokens(self, prompt: str, min_length: int, min_padding: int) -> tuple[list[int], list[float], dict]:
        """tokenize's with textual-inversion vectors (ComfyUI's T5 tokenizers read embedding:name,
        key t5xxl / umt5xxl; vectors of another width are left out, as ComfyUI ignores them)."""
        self._check_pieces()
        from .embeddings import embedding_lookup

        key = "t5xxl" if self.pieces is None else self.pieces.embedding_key
        lookup = embedding_lookup(key, self.hidden_size, misfit_ok=True)
        return t5_tokens(prompt, min_length, min_padding, self.pieces, self.eos, lookup, self.pad)

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
    def run(self, ids: list[list[int]], vectors: dict | None = None,
            mask: list[list[int]] | None = None) -> torch.Tensor:
        """Token ids [N][T] -> last hidden state (after the final layer norm) [N, T, d_model], float32 CPU.
        vectors {(row, position): [d_model]} replace those token embeddings (textual inversion).
        mask [N][T]: 1 keep, 0 a key no token attends to (every position still gets its output)."""
        from graphflow import memory  # on the device for this call only
        from .text_encoders import _VECTORS, _install_vector_hook

        with memory.use(self.model, "text_encoder", "text_encoder:t5", self.patches):
            tokens = torch.tensor(ids, dtype=torch.long, device=memory.manager().device_for(self.model))
            if vectors:
                _install_vector_hook(self.model.get_input_embeddings())
            token = _VECTORS.set(vectors or None)
            keep = None if mask is None else torch.tensor(mask, dtype=torch.long, device=tokens.device)
            try:
                return self._run(tokens, keep)
            finally:
                _VECTORS.reset(token)

    def _run(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        with kernels(tokens.device):
            layer = self.layer
            if layer is None or layer == -1 or -layer > self.model.config.num_layers:
                return self.model(input_ids=tokens, attention_mask=mask).last_hidden_state.float().cpu()
            # hidden_states[k] is the input of block k; the last entry is already normed
            hidden = self.model(input_ids=tokens, attention_mask=mask, output_hidden_states=True).hidden_states[layer]
            return self.model.encoder.final_layer_norm(hidden).float().cpu()

    def encode(self, prompt: str, min_length: int = 0, min_padding: int = 0, empty_end: bool = True) -> torch.Tensor:
        """Weighted prompt -> [1, T, d_model] (T = max(pieces + 1 + min_padding, min_length))."""
        ids, weights, vectors = self._tokens(prompt, min_length, min_padding)
        return self.encode_ids(ids, weights, empty_end, vectors)

    def encode_masked(self, prompt: str, min_length: int = 0, min_padding: int = 0) -> torch.Tensor:
        """ComfyUI's UMT5 (Wan) and old-T5 (Cosmos) encoding: the ids padded to min_length as `encode`, T5 run with
        everything after </s> masked and those outputs zeroed. Masked keys weigh exactly 0, so the
        tokens up to </s> are encoded alone and zeros appended. Prompt weights pull towards the
        encoding of </s> alone (the empty tokens "</s> <pad>..." under the same mask)."""
        ids, weights, vectors = self._tokens(prompt, min_length, min_padding)
        n = ids.index(self.eos) + 1  # ComfyUI's mask: up to and with the first </s>
        z = self.run([ids[:n]], vectors)
        if any(w != 1.0 for w in weights[:n]):
            empty = torch.zeros_like(z)
            empty[:, 0] = self.run([[self.eos]])[:, 0]
            w = torch.tensor(weights[:n], dtype=torch.float32)[None, :, None]
            z = torch.where(w != 1.0, (z - empty) * w + empty, z)
        return torch.nn.functional.pad(z, (0, 0, 0, len(ids) - n))

    def encode_ids(self, ids: list[int], weights: list[float] | None = None, empty_end: bool = True,
                   vectors: dict | None = None) -> torch.Tensor:
        """empty_end False: weights pull towards <pad>s alone rather than "</s> <pad>..." (ComfyUI's
        PixArt / Chroma T5, whose empty tokens have no </s>). vectors: as `run`'s, in row 0."""
        weighted = weights is not None and any(w != 1.0 for w in weights)
        empty = ([self.eos] if empty_end else [self.pad]) + [self.pad] * (len(ids) - 1)
        batch = [ids] + ([empty] if weighted else [])
        hidden = self.run(batch, vectors)
        z = hidden[:1]
        if weighted:
            w = torch.tensor(weights, dtype=torch.float32)[None, :, None]
            z = torch.where(w != 1.0, (z - hidden[1:]) * w + hidden[1:], z)
        return z


def t5_from_weights(shapes: dict[str, tuple], get_tensor: Callable[..., torch.Tensor], device=None,
                    dtype: torch.dtype = torch.float32, source=None) -> T5Encoder:
    """Build a T5Encoder from transformers-named keys (prefix stripped): `get_tensor(key, device,
    dtype)` reads one tensor cast and moved, so fp8 files are upcast one tensor at a time and the
    weights are never held twice (the model is built on the meta device and the tensors assigned).
    A UMT5 file's `spiece_model` becomes its tokenizer; byT5's is ByteIds; Pile-T5's (a UMT5 of
    32,128 rows) PileT5Ids. `source`: the weights source `get_tensor` reads; a GGUF file's quantized
    Linear weights then stay quantized (graphflow.models.gguf.keep_quantized), but for the feed-forward
    output `wo`, whose weight dtype transformers' T5 casts its activations to: dequantized."""
    from transformers import T5EncoderModel, UMT5EncoderModel

    config = t5_config_from_shapes(shapes)
    umt5 = config.model_type == "umt5"
    pieces = ByteIds() if byte_level(shapes) else None
    if umt5 and SPIECE_KEY in shapes:
        pieces = SentencePieceIds(get_tensor(SPIECE_KEY, None, None).cpu().numpy().tobytes())
    elif pile_t5(shapes):
        pieces = PileT5Ids()
    with torch.device("meta"):
        model = (UMT5EncoderModel if umt5 else T5EncoderModel)(config)
    quantized = set() if source is None else keep_quantized(model, source, dtype, skip=(".wo",))
    state = {}
    for key in _model_keys(shapes):
        tensor = get_tensor(key, device, torch.uint8 if key in quantized else dtype)
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
    return T5Encoder(model.requires_grad_(False).eval(), pieces)


def t5_from_state_dict(state: dict[str, torch.Tensor], device=None, dtype: torch.dtype = torch.float32) -> T5Encoder:
    """A T5Encoder from a state dict in any of the layouts above (any prefix before `encoder.`):
    the entry point for checkpoint loaders that find a T5 in an all-in-one file."""
    prefix = t5_prefix(state)
    if prefix is None:
        raise ValueError(f"no T5 encoder keys (expected ...{Q_KEY})")
    shapes = {k[len(prefix):]: tuple(v.shape) for k, v in state.items() if k.startswith(prefix)}
    return t5_from_weights(shapes, lambda key, d, t: state[prefix + key].to(device=d, dtype=t), device, dtype)
