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
  are dequantized by gguf_layers.dequantize (torch, on whatever device the blocks are); the other
  ggml types gguf-py dequantizes (the IQ quants, TQ1_0 / TQ2_0, ...) are dequantized when read,
  by gguf.quants.dequantize (numpy, float32), as the pack falls back to it (its own IQ4_NL /
  IQ4_XS kernels left out): such layers take their full size in the compute dtype; types gguf-py
  cannot dequantize either are refused naming the type;
- a text encoder's llama.cpp names (T5: `enc.blk.0.attn_q.weight`; Llama / Qwen2-VL:
  `blk.0.attn_q.weight`) are mapped back to Hugging Face's, and llama.cpp's interleaving of
  Llama's q / k rows for its rotary embedding undone (head counts from the file's metadata;
  where it has none, the pack's fixed 32 / 8, Llama 3's); a
  T5 / UMT5 file's llama.cpp tokenizer metadata is rebuilt into the SentencePiece model graphflow's
  UMT5 reads (`spiece_model`), as the pack rebuilds it.

The file is memory-mapped (copy-on-write) and its header read by our own reader of the GGUF
layout (_Header; gguf-py's GGUFReader builds a Python object per array item: seconds for a
256k-piece vocabulary): scalar fields decoded, arrays skipped by their byte length and read only
when asked for, tensor data untouched until a tensor is asked for. What does not add up (text that
is not UTF-8, a tensor past the end, an original shape or a head count that does not fit) is a
GGUFError at open. A T5 / UMT5 file's tokenizer is rebuilt at open (its byte size is the
`spiece_model` shape file checks see), once per file state: validation and the load share
it. `graphflow.models.weight_files.WeightFile` opens a .gguf through `GGUFContents`, so
every loader reads one as any weights file (dequantized on request); graphflow.models.gguf_layers'
`QuantizedLinear` and `keep_quantized` let a model keep its quantized Linear weights as they are
stored. Torch-free until a tensor is read: validation and `graphflow inspect` read the header only;
the loaders' architecture check (`check_gguf_file`) reads its fields alone.
"""

from __future__ import annotations

import functools
import math
import struct

# ggml type ids (gguf.GGMLQuantizationType) -> (name, values per block, bytes per block)
GGML_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 30: ("BF16", 1, 2),
              2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24),
              8: ("Q8_0", 32, 34), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
              13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210)}
PLAIN = ("F32", "F16", "BF16")
QUANTIZED = tuple(name for name, *_ in GGML_TYPES.values() if name not in PLAIN)
UNET_PREFIX = "model.diffusion_model."  # graphflow.models.architecture's (torch-free here)

# the pack's architecture names (loader.py IMG_ARCH_LIST / TXT_ARCH_LIST, all of them, read at
# d247022e3fa66851c5084cc251b076aab816423d, the loader.py the reference index holds); its
# VIS_TYPE_LIST (an mmproj file's general.type "clip-vision", taken by the CLIP loaders whatever its
# architecture) is left out with the vision tower (nodes/gguf.py)
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


# GGUF metadata value types (gguf.GGUFValueType) -> struct format of one value; 8 STRING, 9 ARRAY
_VALUE_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
                  12: "<d"}
STRING, ARRAY = 8, 9
INTEGER_TYPES = (0, 1, 2, 3, 4, 5, 10, 11)
DEFAULT_ALIGNMENT = 32  # GGUF's, where general.alignment is absent
# bounds on what a header claims, each far above real files (a diffusion model has ~2,000 tensors, a
# vocabulary ~256k pieces): a hostile header is refused before a loop of that length builds objects
MAX_COUNT = 2**20  # tensors, and metadata fields
MAX_ARRAY_ITEMS = 2**24
MAX_NAME_BYTES = 2**16  # a key or tensor name (ggml's GGML_MAX_NAME is 64)
MAX_DIMS = 8  # ggml's GGML_MAX_DIMS is 4, but gguf-py writes a 5-D weight (Wan's patch embedding) as it is


class _Array:
    """An array field not read yet: its item type, count and where its items start in the map."""

    def __init__(self, item_type: int, count: int, start: int):
        self.item_type, self.count, self.start = item_type, count, start


class _Header:
    """A GGUF file's header (GGUF v2 / v3, little-endian) read from its map, by this format's
    layout: magic, version, tensor count, field count; the fields (key, type, value); the tensor
    infos (name, dims, ggml type, offset); the data after them, aligned. Scalars are decoded; arrays
    are skipped by their byte length (strings one length at a time) and read when asked for: a
    256k-piece vocabulary costs little until its tokenizer is wanted. Strings stay bytes until used."""

    def __init__(self, mm):
        self.map, self.pos = mm, 0
        if self._bytes(4) != b"GGUF":
            raise GGUFError("not a GGUF file (no GGUF magic)")
        version = self._value(4)
        if version not in (2, 3):
            raise GGUFError(f"GGUF version {version} is not read (graphflow reads versions 2 and 3, little-endian)")
        tensor_count, field_count = self._value(10), self._value(10)
        for what, count in (("tensors", tensor_count), ("metadata fields", field_count)):
            if count > MAX_COUNT:
                raise GGUFError(f"it claims {count} {what}, over the {MAX_COUNT} graphflow reads")
        self.fields: dict[str, object] = {}
        for _ in range(field_count):
            key = self._text()
            self.fields[key] = self._field_value(self._value(4))
        self.tensors = []  # (name, dims as stored, ggml type id, offset in the data)
        for _ in range(tensor_count):
            name = self._text()
            n_dims = self._value(4)
            if n_dims > MAX_DIMS:
                raise GGUFError(f"tensor {name!r} has {n_dims} dims, over the {MAX_DIMS} read")
            dims = tuple(self._value(10) for _ in range(n_dims))
            self.tensors.append((name, dims, self._value(4), self._value(10)))
        alignment = self.fields.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0:
            raise GGUFError(f"general.alignment is {alignment!r}, not a positive integer")
        self.data_start = -(-self.pos // alignment) * alignment

    def _bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.map):
            raise GGUFError(f"truncated: {n} bytes wanted at byte {self.pos} of {len(self.map)}")
        out = self.map[self.pos:self.pos + n]
        self.pos += n
        return out

    def _value(self, value_type: int):
        fmt = _VALUE_FORMATS.get(value_type)
        if fmt is None:
            raise GGUFError(f"unknown GGUF value type {value_type} at byte {self.pos}")
        return struct.unpack(fmt, self._bytes(struct.calcsize(fmt)))[0]

    def _text(self) -> str:
        length = self._value(10)
        if length > MAX_NAME_BYTES:
            raise GGUFError(f"a name at byte {self.pos} claims {length} bytes, over the {MAX_NAME_BYTES} read")
        raw = self._bytes(length)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise GGUFError(f"a name at byte {self.pos - len(raw)} is not UTF-8 text") from None

    def _field_value(self, value_type: int):
        if value_type == STRING:
            return self._bytes(self._value(10))  # decoded where used: a bad one is named there
        if value_type != ARRAY:
            return self._value(value_type)
        item_type, count = self._value(4), self._value(10)
        if count > MAX_ARRAY_ITEMS:
            raise GGUFError(f"an array at byte {self.pos} claims {count} items, over the {MAX_ARRAY_ITEMS} read")
        array = _Array(item_type, count, self.pos)
        if item_type == STRING:
            for _ in range(count):
                (length,) = struct.unpack("<Q", self._bytes(8))
                self.pos += length
                if self.pos > len(self.map):
                    raise GGUFError("truncated: a string array runs past the end of the file")
        elif item_type in _VALUE_FORMATS:
            self._bytes(count * struct.calcsize(_VALUE_FORMATS[item_type]))
        else:  # arrays of arrays: nothing graphflow reads has them
            raise GGUFError(f"an array of GGUF value type {item_type} is not read")
        return array

    def items(self, array: _Array) -> list:
        """An array field's items (strings as bytes)."""
        if array.item_type == STRING:
            out, pos = [], array.start
            for _ in range(array.count):
                (n,) = struct.unpack_from("<Q", self.map, pos)
                out.append(bytes(self.map[pos + 8:pos + 8 + n]))
                pos += 8 + n
            return out
        fmt = _VALUE_FORMATS[array.item_type]
        return list(struct.unpack_from(f"<{array.count}{fmt[1]}", self.map, array.start))

    def raw_bytes(self, array: _Array) -> bytes:
        """A UINT8 / INT8 array's bytes as they are."""
        return bytes(self.map[array.start:array.start + array.count])


def _text(value, key: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise GGUFError(f"its metadata {key} is not UTF-8 text") from None


def _positive_int(value, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise GGUFError(f"its metadata {key} is {value!r}, not a positive whole number")
    return value


class GGUFContents:
    """A GGUF file's tensors under graphflow's (Hugging Face's, for text encoders) names: `shapes`
    (logical), `types` (ggml type names: "F16", "Q8_0", ...), `architecture` (general.architecture
    or None), `metadata` (its scalar fields, as strings); `raw(name)` the stored data as a tensor
    (plain tensors in their shape and dtype; quantized ones as uint8 blocks [rows, bytes per row])
    and `tensor(name, dtype)` the values. Whatever in the file does not add up (a truncated header,
    text that is not UTF-8, an original shape or a head count that does not fit its tensor, bad
    tokenizer metadata) is a GGUFError saying what."""

    def __init__(self, path):
        import mmap

        try:
            with open(path, "rb") as fh:
                # copy-on-write: a tensor kept as a view of the map may be written to without touching the file
                self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
        except (OSError, ValueError) as e:  # an empty file cannot be mapped
            raise GGUFError(f"not a readable GGUF file ({type(e).__name__}: {e})") from None
        try:
            self._read(path)
        except GGUFError:
            raise
        except Exception as e:  # a case the checks below miss: still the file's fault, said so
            raise GGUFError(f"not a readable GGUF file ({type(e).__name__}: {e})") from None

    def _read(self, path):
        self._header = header = _Header(self._map)
        arch = header.fields.get("general.architecture")
        if arch is not None and not isinstance(arch, bytes):
            raise GGUFError(f"its metadata general.architecture is {arch!r}, not a string")
        self.architecture = None if arch is None else _text(arch, "general.architecture")
        self.metadata = {key: value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                         for key, value in header.fields.items() if not isinstance(value, _Array)}
        table = {"t5": T5_NAMES, "t5encoder": T5_NAMES, "llama": LLAMA_NAMES, "qwen2vl": LLAMA_NAMES}.get(
            self.architecture, ())
        self._tensors, self.shapes, self.types = {}, {}, {}
        # a SD1 / SDXL UNet GGUF holds the UNet's bare keys (the pack strips model.diffusion_model.,
        # ComfyUI reads them so): put back under the prefix graphflow's checkpoint reader looks under
        names = [t[0] for t in header.tensors]
        bare_unet = (self.architecture in ("sd1", "sdxl", None) and any(n.startswith("input_blocks.") for n in names)
                     and not any(n.startswith(UNET_PREFIX) for n in names))
        unet_prefix = UNET_PREFIX if bare_unet else ""
        for stored_name, dims, type_id, offset in header.tensors:
            kind = GGML_TYPES.get(type_id) or _gguf_py_type(type_id)
            if kind is None:
                raise GGUFError(f"tensor {stored_name!r} is stored as {_type_name(type_id)}, a ggml type graphflow "
                                f"does not read (it reads {', '.join(PLAIN)} and {', '.join(QUANTIZED)}, and "
                                f"what gguf-py dequantizes: the IQ quants, ...)")
            type_name, block, nbytes = kind
            count = math.prod(dims)
            if not dims or any(d <= 0 for d in dims) or dims[0] % block:
                raise GGUFError(f"tensor {stored_name!r} has dims {list(dims)}: not whole {type_name} blocks of {block}")
            start, size = header.data_start + offset, count // block * nbytes
            if start + size > len(self._map):
                raise GGUFError(f"tensor {stored_name!r} runs past the end of the file (truncated?)")
            name = unet_prefix + _renamed(stored_name, table)
            shape = self._orig_shape(stored_name, count) or tuple(reversed(dims))
            self._tensors[name] = (start, size, dims)
            self.shapes[name], self.types[name] = shape, type_name
        # a UMT5 GGUF (Wan's encoder) carries its SentencePiece vocabulary as metadata: rebuilt into
        # the `spiece_model` bytes graphflow's UMT5 reads (graphflow.models.t5), as ComfyUI-GGUF does
        self._spiece = None
        if (table is T5_NAMES and header.fields.get("tokenizer.ggml.model") == b"t5"
                and "spiece_model" not in self.shapes):
            self._spiece = _cached_sentencepiece_model(path, header)
            self.shapes["spiece_model"], self.types["spiece_model"] = (len(self._spiece),), "U8"
        # llama.cpp stores Llama's q / k rows interleaved for its rotary embedding (the pack undoes
        # it for "llama" with Llama 3's 32 / 8 heads always). graphflow takes the file's head counts;
        # a file without head_count gets the pack's 32 / 8; one with head_count but no
        # head_count_kv has as many k heads as q heads (llama.cpp's meaning of the absent key:
        # the pack's 8 would scramble such a file's k rows)
        self._heads = {}
        if self.architecture == "llama":
            fields = header.fields
            heads = _positive_int(fields.get("llama.attention.head_count", 32), "llama.attention.head_count")
            kv_absent = heads if "llama.attention.head_count" in fields else 8
            kv = _positive_int(fields.get("llama.attention.head_count_kv", kv_absent), "llama.attention.head_count_kv")
            self._heads = {"q_proj": heads, "k_proj": kv}
            for name, shape in self.shapes.items():
                for part, n in self._heads.items():
                    if name.endswith((f"{part}.weight", f"{part}.bias")) and shape[0] % (2 * n):
                        raise GGUFError(f"{name} has {shape[0]} rows: not whole heads of rotary pairs for {n} heads "
                                        f"(llama.attention.head_count{'_kv' if part == 'k_proj' else ''})")

    def _orig_shape(self, name: str, count: int) -> tuple | None:
        key = f"comfy.gguf.orig_shape.{name}"
        field = self._header.fields.get(key)
        if field is None:
            return None
        if not isinstance(field, _Array) or field.item_type != 5:
            raise GGUFError(f"{key} is not an array of INT32")
        shape = tuple(self._header.items(field))
        if not shape or any(d <= 0 for d in shape) or math.prod(shape) != count:
            raise GGUFError(f"{key} is {list(shape)}: not a shape of the tensor's {count} values")
        return shape

    def quantized(self, name: str) -> bool:
        """Whether the tensor is kept as its blocks (graphflow's own block types)."""
        return self.types[name] in QUANTIZED

    def raw(self, name: str) -> torch.Tensor:
        import numpy as np
        import torch

        if name == "spiece_model" and self._spiece is not None:
            return torch.frombuffer(bytearray(self._spiece), dtype=torch.uint8)
        start, size, dims = self._tensors[name]
        qtype = self.types[name]
        if qtype in PLAIN:
            numpy_dtype = {"F32": np.float32, "F16": np.float16, "BF16": np.int16}[qtype]
            data = torch.from_numpy(np.frombuffer(self._map, numpy_dtype, size // np.dtype(numpy_dtype).itemsize, start))
            if qtype == "BF16":
                data = data.view(torch.bfloat16)
            data = data.reshape(self.shapes[name])
        else:  # rows of blocks: row order is the values' row order
            blocks = np.frombuffer(self._map, np.uint8, size, start).reshape(-1, size // math.prod(dims[1:]))
            if qtype in QUANTIZED:
                data = torch.from_numpy(blocks)
            else:  # a type graphflow leaves to gguf-py (the IQ quants): its float32 values, in their shape
                import gguf

                data = torch.from_numpy(gguf.quants.dequantize(blocks, gguf.GGMLQuantizationType[qtype]))
                data = data.reshape(self.shapes[name])
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
        # the map itself closes when the last tensor viewing it goes
        self._map = self._header = self._tensors = None


@functools.cache
def _gguf_py_type(type_id: int) -> tuple[str, int, int] | None:
    """(name, values per block, bytes per block) of a ggml type graphflow has no kernel for but
    gguf-py's numpy reference dequantizes (the IQ quants, TQ1_0 / TQ2_0, ...: ComfyUI-GGUF runs
    IQ4_NL / IQ4_XS with its own kernels, the rest through gguf.quants.dequantize); None else."""
    try:
        import gguf
        import numpy as np

        kind = gguf.GGMLQuantizationType(type_id)
        block, nbytes = gguf.GGML_QUANT_SIZES[kind]
        gguf.quants.dequantize(np.zeros((1, nbytes), np.uint8), kind)  # NotImplementedError where it has none
    except (ImportError, ValueError, KeyError, NotImplementedError):
        return None
    return kind.name, block, nbytes


def _type_name(type_id: int) -> str:
    try:
        import gguf

        return gguf.GGMLQuantizationType(type_id).name
    except (ImportError, ValueError):
        return f"ggml type {type_id}"


# rebuilt SentencePiece models by (path, file state): validation, the loader's check and the load
# open the same file
_SPIECE_CACHE: dict[tuple, bytes] = {}
SENTENCEPIECE_TYPES = range(1, 7)  # NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE


def _cached_sentencepiece_model(path, header: _Header) -> bytes:
    from .weight_files import file_state

    key = (str(path), file_state(path))
    if key not in _SPIECE_CACHE:
        if len(_SPIECE_CACHE) > 8:
            _SPIECE_CACHE.clear()
        try:
            _SPIECE_CACHE[key] = _sentencepiece_model(header)
        except GGUFError:
            raise
        except Exception as e:  # anything else the metadata makes SentencePiece's protobuf refuse
            raise GGUFError(f"its T5 tokenizer metadata cannot be rebuilt ({type(e).__name__}: {e})") from None
    return _SPIECE_CACHE[key]


def _array_field(header: _Header, key: str, item_types: tuple) -> list | None:
    field = header.fields.get(key)
    if field is None:
        return None
    if not isinstance(field, _Array) or field.item_type not in item_types:
        raise GGUFError(f"its metadata {key} is not an array of the expected type")
    return header.items(field)


def _sentencepiece_model(header: _Header) -> bytes:
    """A SentencePiece (unigram) model, serialized, from llama.cpp's tokenizer metadata: the pieces
    with their scores and types, the special ids, the whitespace settings and, where the file has
    it (llama.cpp writes it for T5), the normalizer's precompiled character map (the pack's rebuild
    leaves it out)."""
    from sentencepiece import sentencepiece_model_pb2

    tokens = _array_field(header, "tokenizer.ggml.tokens", (STRING,))
    scores = _array_field(header, "tokenizer.ggml.scores", (6,))
    types = _array_field(header, "tokenizer.ggml.token_type", INTEGER_TYPES)
    if not tokens or scores is None or types is None or not len(tokens) == len(scores) == len(types):
        raise GGUFError("its T5 tokenizer metadata (tokenizer.ggml.tokens / scores / token_type) is incomplete")
    bad = next((t for t in types if t not in SENTENCEPIECE_TYPES), None)
    if bad is not None:
        raise GGUFError(f"its tokenizer.ggml.token_type holds {bad}, not a SentencePiece piece type (1-6)")
    model = sentencepiece_model_pb2.ModelProto()
    piece = sentencepiece_model_pb2.ModelProto.SentencePiece
    model.pieces.extend(piece(piece=_text(token, "tokenizer.ggml.tokens"), score=score, type=kind)
                        for token, score, kind in zip(tokens, scores, types))
    spec = model.trainer_spec
    spec.model_type, spec.vocab_size = 1, len(tokens)  # unigram, as T5's
    spec.byte_fallback = types.count(6) == 256  # (the pack sets it always; SentencePiece wants 256 BYTE pieces)
    for name, key, absent in (("unk_id", "unknown", 0), ("bos_id", "bos", -1), ("eos_id", "eos", 1),
                              ("pad_id", "padding", -1)):
        value = header.fields.get(f"tokenizer.ggml.{key}_token_id")
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not -1 <= value < len(tokens)):
            raise GGUFError(f"its tokenizer.ggml.{key}_token_id is {value!r}, not a piece id")
        setattr(spec, name, absent if value is None else value)
    for name, key in (("add_dummy_prefix", "add_space_prefix"),
                      ("remove_extra_whitespaces", "remove_extra_whitespaces")):
        value = header.fields.get(f"tokenizer.ggml.{key}")
        if value is not None:
            setattr(model.normalizer_spec, name, bool(value))
    charsmap = header.fields.get("tokenizer.ggml.precompiled_charsmap")
    if charsmap is not None:
        if not isinstance(charsmap, _Array) or charsmap.item_type not in (0, 1):
            raise GGUFError("its tokenizer.ggml.precompiled_charsmap is not an array of bytes")
        model.normalizer_spec.precompiled_charsmap = header.raw_bytes(charsmap)
    return model.SerializeToString()


def _unpermute(t: torch.Tensor, heads: int) -> torch.Tensor:
    """Llama's q / k rows back from llama.cpp's order: per head, the rows of the two rotary halves
    were interleaved (row pairs); they are put back one half after the other."""
    rows = t.shape[0]
    return t.reshape(heads, rows // heads // 2, 2, *t.shape[1:]).transpose(1, 2).reshape(t.shape)


def read_header(path) -> _Header:
    """The GGUF file's header: its scalar fields (strings as bytes) and tensor infos (name, dims as
    stored, ggml type, offset); its arrays are not readable after (the map is closed)."""
    import mmap

    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            header = _Header(mm)
    except (OSError, ValueError, struct.error) as e:
        if isinstance(e, GGUFError):
            raise
        raise GGUFError(f"not a readable GGUF file ({type(e).__name__}: {e})") from None
    header.map = None
    return header


def header_architecture(path) -> str | None:
    """general.architecture of the GGUF file `path` (None where absent), from its header alone."""
    arch = read_header(path).fields.get("general.architecture")
    if arch is not None and not isinstance(arch, bytes):
        raise GGUFError(f"its metadata general.architecture is {arch!r}, not a string")
    return None if arch is None else _text(arch, "general.architecture")


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
    try:
        arch = header_architecture(path)
    except GGUFError as e:
        raise GGUFError(f"{path.name}: {e}") from None
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
