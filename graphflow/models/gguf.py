"""GGUF model files (ggml's container, as llama.cpp and city96's ComfyUI-GGUF use it): their tensors,
quantized ones kept quantized, and the layer that runs on a quantized weight.

Read as city96/ComfyUI-GGUF reads them (loader.py, dequant.py, ops.py at commit
8e0d9cad03675aa6358bafb670a1d78def8746a4; our own code):
- the architecture is the metadata's `general.architecture` (a string); a file without it (made
  by stable-diffusion.cpp) is taken by its tensor names, as any model file;
- a tensor's shape is the metadata's `comfy.gguf.orig_shape.<name>` (an INT32 array) where the
  file has one (the pack's converter writes it for tensors it had to reshape), else the stored
  dims reversed (ggml lists the fastest-moving dim first);
- F32 / F16 / BF16 tensors are plain tensors; Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K,
  Q5_K, Q6_K stay as their raw blocks (uint8, one row of blocks per output row) until used, and
  are dequantized by gguf_layers.dequantize (torch, on whatever device the blocks are); other ggml types
  (the IQ quants, ...) are refused naming the type;
- a text encoder's llama.cpp names (T5: `enc.blk.0.attn_q.weight`; Llama / Qwen2-VL:
  `blk.0.attn_q.weight`) are mapped back to Hugging Face's, and llama.cpp's interleaving of
  Llama's q / k rows for its rotary embedding undone (head counts from the file's metadata); a
  T5 / UMT5 file's llama.cpp tokenizer metadata is rebuilt into the SentencePiece model graphflow's
  UMT5 reads (`spiece_model`), as the pack rebuilds it.

The file is memory-mapped (gguf.GGUFReader): nothing is read before a tensor is asked for.
`graphflow.models.weight_files.WeightFile` opens a .gguf through `GGUFContents`, so every loader
reads one as any weights file (dequantized on request); graphflow.models.gguf_layers'
`QuantizedLinear` and `keep_quantized` let a model keep its quantized Linear weights as they are
stored. Torch-free until a tensor is read: validation and `graphflow inspect` read the header only.
"""

from __future__ import annotations

import warnings

# ggml type ids (gguf.GGMLQuantizationType) -> (name, values per block, bytes per block)
GGML_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 30: ("BF16", 1, 2),
              2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24),
              8: ("Q8_0", 32, 34), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
              13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210)}
PLAIN = ("F32", "F16", "BF16")
QUANTIZED = tuple(name for name, *_ in GGML_TYPES.values() if name not in PLAIN)
UNET_PREFIX = "model.diffusion_model."  # graphflow.models.architecture's (torch-free here)

# the pack's architecture names (loader.py IMG_ARCH_LIST / TXT_ARCH_LIST)
IMAGE_ARCHITECTURES = ("flux", "sd1", "sdxl", "sd3", "aura", "hidream", "cosmos", "ltxv", "hyvid", "wan",
                       "lumina2", "qwen_image")
TEXT_ARCHITECTURES = ("t5", "t5encoder", "llama", "qwen2vl")

# llama.cpp's tensor-name pieces -> Hugging Face's (the pack's T5_SD_MAP / LLAMA_SD_MAP), replaced in order
T5_NAMES = (("enc.", "encoder."), (".blk.", ".block."), ("token_embd", "shared"),
            ("output_norm", "final_layer_norm"), ("attn_q", "layer.0.SelfAttention.q"),
            ("attn_k", "layer.0.SelfAttention.k"), ("attn_v", "layer.0.SelfAttention.v"),
            ("attn_o", "layer.0.SelfAttention.o"), ("attn_norm", "layer.0.layer_norm"),
            ("attn_rel_b", "layer.0.SelfAttention.relative_attention_bias"),
            ("ffn_up", "layer.1.DenseReluDense.wi_1"), ("ffn_down", "layer.1.DenseReluDense.wo"),
            ("ffn_gate", "layer.1.DenseReluDense.wi_0"), ("ffn_norm", "layer.1.layer_norm"))
LLAMA_NAMES = (("blk.", "model.layers."), ("attn_norm", "input_layernorm"), ("attn_q", "self_attn.q_proj"),
               ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"),
               ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj"), ("ffn_gate", "mlp.gate_proj"),
               ("ffn_norm", "post_attention_layernorm"), ("token_embd", "model.embed_tokens"),
               ("output_norm", "model.norm"), ("output.weight", "lm_head.weight"))


class GGUFError(ValueError):
    """A GGUF file graphflow cannot use, with what was found."""


def _renamed(name: str, table) -> str:
    for theirs, ours in table:
        name = name.replace(theirs, ours)
    return name


def _field(reader, key: str):
    """A scalar metadata value (str / int / float / bool), or None where absent."""
    import gguf

    field = reader.get_field(key)
    if field is None or len(field.types) != 1:
        return None
    if field.types[0] == gguf.GGUFValueType.STRING:
        return str(bytes(field.parts[field.data[-1]]), encoding="utf-8")
    return field.parts[field.data[-1]].item()


def _orig_shape(reader, name: str) -> tuple | None:
    import gguf

    field = reader.get_field(f"comfy.gguf.orig_shape.{name}")
    if field is None:
        return None
    if list(field.types) != [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32]:
        raise GGUFError(f"comfy.gguf.orig_shape.{name} is not an array of INT32 ({field.types})")
    return tuple(int(field.parts[i][0]) for i in field.data)


class GGUFContents:
    """A GGUF file's tensors under graphflow's (Hugging Face's, for text encoders) names: `shapes`
    (logical), `types` (ggml type names: "F16", "Q8_0", ...), `architecture` (general.architecture
    or None), `metadata` (its scalar fields, as strings); `raw(name)` the stored data as a tensor
    (plain tensors in their shape and dtype; quantized ones as uint8 blocks [rows, bytes per row])
    and `tensor(name, dtype)` the values."""

    def __init__(self, path):
        import gguf

        try:
            # copy-on-write: a tensor kept as a view of the map may be written to without touching the file
            self.reader = reader = gguf.GGUFReader(str(path), mode="c")
        except Exception as e:  # a truncated or foreign file: the reader's own words
            raise GGUFError(f"not a readable GGUF file ({type(e).__name__}: {e})") from None
        self.architecture = _field(reader, "general.architecture")
        self.metadata = {}
        for key in reader.fields:
            value = _field(reader, key)
            if value is not None and not key.startswith("comfy.gguf.orig_shape."):
                self.metadata[key] = str(value)
        table = {"t5": T5_NAMES, "t5encoder": T5_NAMES, "llama": LLAMA_NAMES, "qwen2vl": LLAMA_NAMES}.get(
            self.architecture, ())
        self._tensors, self.shapes, self.types = {}, {}, {}
        # a SD1 / SDXL UNet GGUF holds the UNet's bare keys (the pack strips model.diffusion_model.,
        # ComfyUI reads them so): put back under the prefix graphflow's checkpoint reader looks under
        names = [t.name for t in reader.tensors]
        bare_unet = (self.architecture in ("sd1", "sdxl", None) and any(n.startswith("input_blocks.") for n in names)
                     and not any(n.startswith(UNET_PREFIX) for n in names))
        unet_prefix = UNET_PREFIX if bare_unet else ""
        for t in reader.tensors:
            kind = GGML_TYPES.get(int(t.tensor_type))
            if kind is None:
                name = getattr(t.tensor_type, "name", str(int(t.tensor_type)))
                raise GGUFError(f"tensor {t.name!r} is stored as {name}, a ggml type graphflow does not read "
                                f"(it reads {', '.join(PLAIN)} and {', '.join(QUANTIZED)})")
            name = unet_prefix + _renamed(t.name, table)
            shape = _orig_shape(reader, t.name) or tuple(int(d) for d in reversed(t.shape.tolist()))
            self._tensors[name], self.shapes[name], self.types[name] = t, shape, kind[0]
        # a UMT5 GGUF (Wan's encoder) carries its SentencePiece vocabulary as metadata: rebuilt into
        # the `spiece_model` bytes graphflow's UMT5 reads (graphflow.models.t5), as ComfyUI-GGUF does
        self._spiece = None
        if table is T5_NAMES and _field(reader, "tokenizer.ggml.model") == "t5" and "spiece_model" not in self.shapes:
            self._spiece = _sentencepiece_model(reader)
            self.shapes["spiece_model"], self.types["spiece_model"] = (len(self._spiece),), "U8"
        # llama.cpp stores Llama's q / k rows interleaved for its rotary embedding (the pack undoes it for "llama")
        self._heads = {}
        if self.architecture == "llama":
            heads = _field(reader, "llama.attention.head_count") or 32
            self._heads = {"q_proj": heads, "k_proj": _field(reader, "llama.attention.head_count_kv") or heads}

    def quantized(self, name: str) -> bool:
        return self.types[name] not in (*PLAIN, "U8")

    def raw(self, name: str) -> torch.Tensor:
        import torch

        if name == "spiece_model" and self._spiece is not None:
            return torch.frombuffer(bytearray(self._spiece), dtype=torch.uint8)
        t = self._tensors[name]
        with warnings.catch_warnings():  # the map is read-only; nothing writes to it
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            data = torch.from_numpy(t.data)
        if self.types[name] == "BF16":  # the reader gives BF16 as bytes
            data = data.view(torch.bfloat16).reshape(self.shapes[name])
        elif not self.quantized(name):
            data = data.reshape(self.shapes[name])
        else:
            data = data.reshape(-1, data.shape[-1])  # rows of blocks: row order is the values' row order
        for part, heads in self._heads.items():
            if name.endswith((f"{part}.weight", f"{part}.bias")):
                data = _unpermute(data, heads)
        return data

    def tensor(self, name: str, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
        """The tensor's values in `dtype` (None: as stored; float32 for a quantized one)."""
        import torch

        from .gguf_layers import dequantize

        raw = self.raw(name).to(device) if device is not None else self.raw(name)
        if self.quantized(name):
            values = dequantize(raw, self.types[name], self.shapes[name], dtype or torch.float32)
        else:
            values = raw if dtype is None or not raw.is_floating_point() else raw.to(dtype)
        return values

    def close(self):
        self.reader = self._tensors = None


def _list_field(reader, key: str) -> list | None:
    """An array metadata value as a list (strings decoded), or None where absent."""
    import gguf

    field = reader.get_field(key)
    if field is None:
        return None
    if field.types[-1] == gguf.GGUFValueType.STRING:
        return [str(bytes(field.parts[i]), encoding="utf-8") for i in field.data]
    return [field.parts[i][0].item() for i in field.data]


def _sentencepiece_model(reader) -> bytes:
    """A SentencePiece (unigram) model, serialized, from llama.cpp's tokenizer metadata: the pieces
    with their scores and types, the special ids, the whitespace settings and, where the file has
    it (llama.cpp writes it for T5), the normalizer's precompiled character map (the pack's rebuild
    leaves it out)."""
    from sentencepiece import sentencepiece_model_pb2

    tokens, scores = _list_field(reader, "tokenizer.ggml.tokens"), _list_field(reader, "tokenizer.ggml.scores")
    types = _list_field(reader, "tokenizer.ggml.token_type")
    if not tokens or scores is None or types is None or not len(tokens) == len(scores) == len(types):
        raise GGUFError("its T5 tokenizer metadata (tokenizer.ggml.tokens / scores / token_type) is incomplete")
    model = sentencepiece_model_pb2.ModelProto()
    for token, score, kind in zip(tokens, scores, types):
        model.pieces.append(sentencepiece_model_pb2.ModelProto.SentencePiece(piece=token, score=score, type=kind))
    spec = model.trainer_spec
    spec.model_type, spec.vocab_size = 1, len(tokens)  # unigram, as T5's
    spec.byte_fallback = types.count(6) == 256  # (the pack sets it always; SentencePiece wants 256 BYTE pieces)
    for name, key, absent in (("unk_id", "unknown", 0), ("bos_id", "bos", -1), ("eos_id", "eos", 1),
                              ("pad_id", "padding", -1)):
        value = _field(reader, f"tokenizer.ggml.{key}_token_id")
        setattr(spec, name, absent if value is None else int(value))
    for name, key in (("add_dummy_prefix", "add_space_prefix"),
                      ("remove_extra_whitespaces", "remove_extra_whitespaces")):
        value = _field(reader, f"tokenizer.ggml.{key}")
        if value is not None:
            setattr(model.normalizer_spec, name, bool(value))
    charsmap = reader.get_field("tokenizer.ggml.precompiled_charsmap")
    if charsmap is not None:
        model.normalizer_spec.precompiled_charsmap = bytes(
            b for i in charsmap.data for b in charsmap.parts[i].tobytes())
    return model.SerializeToString()


def _unpermute(t: torch.Tensor, heads: int) -> torch.Tensor:
    """Llama's q / k rows back from llama.cpp's order: per head, the rows of the two rotary halves
    were interleaved (row pairs); they are put back one half after the other."""
    rows = t.shape[0]
    return t.reshape(heads, rows // heads // 2, 2, *t.shape[1:]).transpose(1, 2).reshape(t.shape)


def check_gguf_file(path, text_encoder: bool) -> str | None:
    """The general.architecture of the GGUF file `path` (None where it names none), after the checks
    ComfyUI-GGUF's loader makes: a diffusion model's must be one of the pack's IMAGE_ARCHITECTURES
    (a text encoder's told apart), a text encoder's one of TEXT_ARCHITECTURES (and present: a text
    encoder without one is not llama.cpp's). GGUFError saying what was found otherwise."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"{path.name}: no such file")
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise GGUFError(f"{path.name} is not a GGUF file")
    contents = GGUFContents(path)
    arch = contents.architecture
    contents.close()
    if text_encoder:
        if arch is None:
            raise GGUFError(f"{path.name} names no architecture (general.architecture): not a llama.cpp text "
                            "encoder; use the .safetensors version")
        if arch in IMAGE_ARCHITECTURES:
            raise GGUFError(f"{path.name} is a diffusion model (GGUF architecture {arch!r}), not a text encoder: "
                            "load it with UnetLoaderGGUF")
        if arch not in TEXT_ARCHITECTURES:
            raise GGUFError(f"{path.name}: GGUF text-encoder architecture {arch!r} is not supported "
                            f"(supported: {', '.join(TEXT_ARCHITECTURES)})")
    elif arch in ("pig", "cow"):  # the pack's converter's placeholders: the model is told by its tensors
        return None
    elif arch in TEXT_ARCHITECTURES:
        raise GGUFError(f"{path.name} is a text encoder (GGUF architecture {arch!r}), not a diffusion model: "
                        "load it with CLIPLoaderGGUF / DualCLIPLoaderGGUF")
    elif arch is not None and arch not in IMAGE_ARCHITECTURES:
        raise GGUFError(f"{path.name}: GGUF architecture {arch!r} is not supported "
                        f"(supported: {', '.join(IMAGE_ARCHITECTURES)})")
    return arch
