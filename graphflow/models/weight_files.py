"""Weight files: a model file's key names, shapes and tensors, and graphflow's metadata in it.

Reading: safetensors headers give names, shapes and dtypes without touching the weights.
A sharded set (`*.safetensors.index.json`, as diffusers and transformers save large models:
its weight_map names the shard holding each tensor) reads as one file: the shards' headers are
read when it is opened, each tensor from its own shard when it is wanted. Older saves shard
pickles the same way (`pytorch_model.bin.index.json` with `pytorch_model-00001-of-00002.bin`
...): each shard is read as a pickled file, below.
Pickled files (.ckpt/.pt/.pth/.bin) go through PyTorch's restricted unpickler only
(`torch.load(weights_only=True)`), which rebuilds plain tensors and containers and refuses any
other object, so a file that would run code is refused rather than run (as ComfyUI loads them).

ComfyUI's "scaled fp8" files (flux1-dev-fp8-scaled, sd3.5_large_fp8_scaled, t5xxl_fp8_e4m3fn_scaled,
...) hold Linear weights as float8 with a per-layer `<layer>.scale_weight` (the weight is the fp8
values times it: a scalar, or one per output row), optionally `<layer>.scale_input` (the input's
static scale for fp8 matmuls), and a marker tensor `scaled_fp8` under each quantised part's
prefix (its dtype names the fp8 type, float32 meaning e4m3fn; 2 elements rather than 1 ask for
full-precision matmuls). A WeightFile reads that layout for every model: `shapes` leaves the
scales and markers out, `get` gives a scaled weight dequantised (weight x scale, in float32 then
cast) unless its stored fp8 dtype is asked for, in which case the caller keeps it in fp8 and takes
the scale from `scale(key)` (graphflow.models.cast_layers applies it as the layer runs).
ComfyUI's newer per-layer format reads the same way where it is fp8: `<layer>.comfy_quant` (a
uint8 tensor holding the layer's JSON, e.g. {"format": "float8_e4m3fn"}) or the metadata key
`_quantization_metadata` ({"layers": {layer: {...}}}) names the quantised layers, whose scales are
`<layer>.weight_scale` / `<layer>.input_scale`; other formats (nvfp4, mxfp8, int8, ...) are refused
with an error naming them.

What weights cannot show (v-prediction, head counts, ...) a file states in its safetensors metadata,
key `graphflow.config`, a JSON object:

    {"arch": "sd1",                         optional; only used when no text encoder is present
     "prediction": "eps" | "v",
     "unet": {UNetConfig field: value},     e.g. {"num_heads": 4, "num_head_channels": -1}
     "vae": {VAEConfig field: value},       e.g. {"norm_groups": 8}
     "text_encoders": {"clip_l" | "clip_h" | "clip_g": {CLIPTextConfig field: value}},
                                            e.g. {"clip_l": {"num_attention_heads": 2, "hidden_act": "gelu"}}
     "latent_format": {"scale_factor": 0.68, "shift_factor": 0.0}}
"""

from __future__ import annotations

import json
import math
import re
import stat
from dataclasses import dataclass
from pathlib import Path


CONFIG_KEY = "graphflow.config"
CONFIG_SECTIONS = ("arch", "prediction", "unet", "vae", "text_encoders", "latent_format", "clip_vision")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
PICKLE_PROTOCOLS = (b"\x02", b"\x03", b"\x04", b"\x05")  # a bare pickle starts with 0x80, protocol
INDEX_SUFFIX = ".index.json"  # a sharded set's index (model.safetensors.index.json, ...)
GGUF_MAGIC = b"GGUF"  # ggml's container (graphflow.models.gguf)
# the safetensors library's MAX_HEADER_SIZE: it refuses longer headers, and reading one would take that
# much memory before any check (a file claiming a 30 GB header)
SAFETENSORS_MAX_HEADER = 100_000_000
# a sharded set's index: a name per tensor (a large language model's is under 2 MB)
MAX_INDEX_BYTES = 32 * 2**20


# Smaller tensors are copied: each page fault on a mapped file brings in its neighbours too (64 KB
# of fault-around), so mapping a 1 KB bias costs 64 KB of resident memory; a copy costs 1 KB.
ZERO_COPY_MIN_BYTES = 1 << 20

SCALE_WEIGHT, SCALE_INPUT, SCALED_FP8 = ".scale_weight", ".scale_input", "scaled_fp8"  # ComfyUI's names
COMFY_QUANT, QUANT_METADATA = ".comfy_quant", "_quantization_metadata"
FP8_FORMATS = ("float8_e4m3fn", "float8_e5m2")


class CheckpointError(Exception):
    """A model file that cannot be used, with a message saying what was found."""


# safetensors header dtypes: torch's name and the bytes per element. Names, not torch dtypes, so that
# reading a header (validation, `inspect`) does not import torch.
_DTYPES = {"F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
           "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1), "U8": ("uint8", 1),
           "BOOL": ("bool", 1), "F8_E4M3": ("float8_e4m3fn", 1), "F8_E5M2": ("float8_e5m2", 1)}


def dtype_name(stored: str) -> str:
    """torch's name for a safetensors header dtype ("F16" -> "float16"); unknown ones as they are."""
    return _DTYPES[stored][0] if stored in _DTYPES else stored


def _torch_dtype(stored: str):
    """The torch dtype of a safetensors header dtype, or None where this torch lacks it."""
    import torch

    return getattr(torch, _DTYPES[stored][0], None) if stored in _DTYPES else None


def _cast_dtype(t_dtype: torch.dtype, dtype: torch.dtype | None) -> torch.dtype:
    """Floating-point tensors take the target dtype; integer buffers keep theirs."""
    return dtype if dtype is not None and t_dtype.is_floating_point else t_dtype


def read_pickle(path) -> object:
    """A pickled file's object through PyTorch's restricted unpickler (plain tensors and
    containers only); CheckpointError naming the file when it is refused or unreadable."""
    import torch

    path = Path(path)
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as e:
        found = re.search(r"WeightsUnpickler error: (.*?\.)(?:\s|$)", str(e))
        reason = found.group(1) if found else f"{type(e).__name__}: {e}"
        raise CheckpointError(f"{path.name} was refused by PyTorch's restricted unpickler "
                              f"(torch.load weights_only=True, which loads plain tensors only): {reason}") from None


def _nested_tensors(obj: dict, prefix: str = "", seen: set | None = None) -> dict:
    """The tensors of a pickled dict, those of nested dicts under dotted names, as their
    .safetensors forms name them (PhotoMaker's {"id_encoder": {...}, "lora_weights": {...}},
    IP-Adapter's {"image_proj": {...}, "ip_adapter": {...}})."""
    import torch
    seen = set() if seen is None else seen
    seen.add(id(obj))  # a pickle may hold a dict inside itself
    out = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, torch.Tensor):
            out[prefix + key] = value
        elif isinstance(value, dict) and id(value) not in seen:
            out.update(_nested_tensors(value, f"{prefix}{key}.", seen))
    return out


@dataclass(frozen=True)
class ScaledFP8:
    """A `scaled_fp8` marker: the prefix of the part it marks, the fp8 dtype it names, and
    whether the file allows fp8 matmuls (a 2-element marker asks for full precision)."""
    prefix: str
    dtype: str
    fp8_matmul: bool


def head_kind(path) -> str:
    """What a weights file's first bytes say it is: "gguf", "safetensors" (an 8-byte little-endian
    header length, any bytes, then the JSON header's '{'), "pickle" (a zip or a bare pickle) or "other"."""
    with open(path, "rb") as fh:
        head = fh.read(9)
    if head.startswith(GGUF_MAGIC):
        return "gguf"
    if head[8:9] == b"{":
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or (head[:1] == b"\x80" and head[1:2] in PICKLE_PROTOCOLS):
        return "pickle"
    return "other"


class WeightFile:
    """A weights file's (or a sharded set's index's) key names, shapes and dtypes (from the headers
    alone) and its tensors on request.

    `get(key, device, dtype)` gives one tensor where it is wanted. A safetensors tensor that stays
    as stored (CPU, same dtype) is a zero-copy view of the memory-mapped file; one that must be
    cast or moved is read into a private buffer first, so the file's pages are not kept resident
    next to the converted copy."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: no such file")
        if self.path.name.endswith(INDEX_SUFFIX):
            self._open_index()
        else:
            kind = head_kind(self.path)
            if kind == "gguf":
                self._open_gguf()
            elif kind == "pickle" or (kind == "other" and self.path.suffix.lower() in PICKLE_SUFFIXES):
                self._open_pickle()
            else:
                self._open_safetensors()
        try:
            self._split_scales()
        except CheckpointError:
            self.close()
            raise

    def _split_scales(self):
        """Set ComfyUI's scaled-fp8 tensors apart from the model's (see the module docstring)."""
        self.all_shapes = shapes = self.shapes
        self.scales = {k[:-len(SCALE_WEIGHT)] + ".weight": k for k in shapes
                       if k.endswith(SCALE_WEIGHT) and k[:-len(SCALE_WEIGHT)] + ".weight" in shapes}
        self.input_scales = {k[:-len(SCALE_INPUT)] + ".weight": k for k in shapes
                             if k.endswith(SCALE_INPUT) and k[:-len(SCALE_INPUT)] + ".weight" in shapes}
        self.scaled_fp8 = {}
        for k in shapes:
            if k == SCALED_FP8 or k.endswith("." + SCALED_FP8):
                stored = dtype_name(self.dtypes[k])
                self.scaled_fp8[k[:-len(SCALED_FP8)]] = ScaledFP8(
                    k[:-len(SCALED_FP8)], "float8_e4m3fn" if stored == "float32" else stored, math.prod(shapes[k]) != 2)
        hidden = {*self.scales.values(), *self.input_scales.values(), *(p + SCALED_FP8 for p in self.scaled_fp8)}
        for layer, conf in self._quantised_layers().items():
            if conf.get("format") not in FP8_FORMATS:
                raise CheckpointError(f"{self.path.name}: layer {layer} is quantised as {conf.get('format')!r}; "
                                      f"graphflow reads ComfyUI's {' / '.join(FP8_FORMATS)} layers only")
            hidden.add(layer + COMFY_QUANT)
            for name, found in (("weight_scale", self.scales), ("input_scale", self.input_scales)):
                if f"{layer}.{name}" in shapes:
                    found[layer + ".weight"] = f"{layer}.{name}"
                    hidden.add(f"{layer}.{name}")
        self.shapes = {k: s for k, s in shapes.items() if k not in hidden}

    def _quantised_layers(self) -> dict[str, dict]:
        """ComfyUI's per-layer quantisation configs (`.comfy_quant` tensors or the metadata's), by layer."""
        layers = {}
        for key in self.all_shapes:
            if key.endswith(COMFY_QUANT):
                try:
                    layers[key[:-len(COMFY_QUANT)]] = json.loads(bytes(self._get(key).tolist()).decode("utf-8"))
                except (ValueError, UnicodeDecodeError) as e:
                    raise CheckpointError(f"{self.path.name}: {key} is not a JSON layer config ({e})") from None
        if QUANT_METADATA in getattr(self, "metadata", {}):
            try:
                layers.update(json.loads(self.metadata[QUANT_METADATA])["layers"])
            except (ValueError, KeyError, TypeError) as e:
                raise CheckpointError(f"{self.path.name}: metadata {QUANT_METADATA!r} is not ComfyUI's "
                                      f"{{\"layers\": {{...}}}} ({e})") from None
        return {layer: conf if isinstance(conf, dict) else {} for layer, conf in layers.items()}

    def _open_safetensors(self):
        """Names, shapes and dtypes from the header alone. The file is memory-mapped only when a
        tensor is first wanted as stored (zero-copy): mapping a file larger than the machine's
        memory can be refused, and `graphflow inspect` of a 30 GB file needs no mapping at all."""
        self.format = "safetensors"
        file_size = self.path.stat().st_size
        try:
            with open(self.path, "rb") as fh:
                size = int.from_bytes(fh.read(8), "little")
                if not 2 <= size <= file_size - 8:
                    raise ValueError(f"header length {size} does not fit in the file")
                if size > SAFETENSORS_MAX_HEADER:
                    raise ValueError(f"header length {size} is over the format's {SAFETENSORS_MAX_HEADER} bytes")
                header = json.loads(fh.read(size))
            if not isinstance(header, dict):
                raise ValueError("the header is not a JSON object")
            metadata = header.pop("__metadata__", None) or {}
            if not isinstance(metadata, dict):
                raise ValueError(f"__metadata__ is a {type(metadata).__name__}, not an object of strings")
            metadata = {k: str(v) for k, v in metadata.items()}
            data_size = file_size - 8 - size
            for key, entry in header.items():
                begin, end = entry["data_offsets"]
                itemsize = _DTYPES[entry["dtype"]][1] if entry["dtype"] in _DTYPES else None
                if not 0 <= begin <= end <= data_size:
                    raise ValueError(f"tensor {key!r} lies beyond the end of the data")
                if itemsize is not None and math.prod(entry["shape"]) * itemsize != end - begin:
                    raise ValueError(f"tensor {key!r}: shape {entry['shape']} does not match its {end - begin} bytes")
        except Exception as e:
            raise CheckpointError(
                f"{self.path.name} is not a readable safetensors file ({type(e).__name__}: {e}); "
                f"it may be truncated or corrupt ({file_size} bytes)") from None
        self.metadata = metadata
        self._data_start = 8 + size
        self._entries = header
        self.shapes = {k: tuple(v["shape"]) for k, v in header.items()}
        self.dtypes = {k: v["dtype"] for k, v in header.items()}
        self._handle = None  # safe_open's memory map, opened on first zero-copy use
        self._file = open(self.path, "rb")

    def _mapped(self, key: str) -> torch.Tensor | None:
        """A zero-copy view of the tensor in the memory-mapped file, or None where mapping is refused."""
        if self._handle is None:
            from safetensors import safe_open

            try:
                self._handle = safe_open(str(self.path), framework="pt", device="cpu")
            except Exception:  # e.g. ENOMEM mapping a file larger than memory allows: read instead
                self._handle = False
        return self._handle.get_tensor(key) if self._handle else None

    def _open_gguf(self):
        """A GGUF file (graphflow.models.gguf): its tensors under graphflow's names, `dtypes` the ggml
        type names ("F16", "Q8_0", ...), `metadata` its scalar fields; quantized tensors come
        dequantized, or as their raw blocks (uint8) when torch.uint8 is asked for."""
        from .gguf import GGUFContents, GGUFError

        self.format = "gguf"
        self._handle = self._file = None
        try:
            self.gguf = GGUFContents(self.path)
        except GGUFError as e:
            raise CheckpointError(f"{self.path.name}: {e}") from None
        self.shapes, self.dtypes, self.metadata = dict(self.gguf.shapes), dict(self.gguf.types), self.gguf.metadata

    def _open_index(self):
        self.format = "sharded"
        self._handle = self._file = None
        self._shards = {}
        weight_map = read_index(self.path)
        try:
            for name in sorted(set(weight_map.values())):
                if not (self.path.parent / name).is_file():
                    raise CheckpointError(f"{self.path.name}: shard {name} is missing from {self.path.parent}")
                self._shards[name] = WeightFile(self.path.parent / name)
            absent = [k for k, name in weight_map.items() if k not in self._shards[name].all_shapes]
            if absent:
                raise CheckpointError(f"{self.path.name}: {len(absent)} tensors of the weight_map are not in their "
                                      f"shards, e.g. {absent[0]!r} in {weight_map[absent[0]]}")
        except CheckpointError:
            self.close()
            raise
        self._where = weight_map
        self.shapes = {k: self._shards[name].all_shapes[k] for k, name in weight_map.items()}
        self.dtypes = {k: self._shards[name].dtypes[k] for k, name in weight_map.items()}
        self.metadata = next(iter(self._shards.values())).metadata

    def _open_pickle(self):
        import torch
        self.format = "pickle"
        obj = read_pickle(self.path)
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise CheckpointError(f"{self.path.name} holds a {type(obj).__name__}, not a dict of tensors")
        self._tensors = _nested_tensors(obj)
        self._handle = self._file = None
        self.shapes = {k: tuple(v.shape) for k, v in self._tensors.items()}
        self.dtypes = {k: str(v.dtype).replace("torch.", "") for k, v in self._tensors.items()}
        self.metadata = {}

    def get(self, key: str, device=None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """One tensor on `device` in `dtype` (None: as stored). A scaled-fp8 weight comes
        dequantised, unless `dtype` is its stored fp8 dtype: then as stored, its scale apart (`scale`)."""
        import torch
        scale_key = self.scales.get(key)
        if scale_key is None or dtype == _torch_dtype(self.dtypes[key]):
            return self._get(key, device, dtype)
        from .cast_layers import scaled

        weight = scaled(self._get(key, device, torch.float32), self._get(scale_key, device, torch.float32))
        return weight if dtype is None else weight.to(dtype)

    def scale(self, key: str, device=None) -> torch.Tensor | None:
        """The scale_weight of a scaled-fp8 weight (float32), or None for any other tensor."""
        import torch
        return None if key not in self.scales else self._get(self.scales[key], device, torch.float32)

    def input_scale(self, key: str, device=None) -> torch.Tensor | None:
        """The scale_input of a scaled-fp8 weight's layer (float32), or None."""
        import torch
        return None if key not in self.input_scales else self._get(self.input_scales[key], device, torch.float32)

    def _get(self, key: str, device=None, dtype: torch.dtype | None = None) -> torch.Tensor:
        import torch
        if self.format == "sharded":
            return self._shards[self._where[key]]._get(key, device, dtype)
        device = torch.device(device) if device is not None else torch.device("cpu")
        if self.format == "gguf":
            if dtype == torch.uint8 and self.gguf.quantized(key):
                return self.gguf.raw(key).to(device)
            return self.gguf.tensor(key, dtype, device)
        if self.format == "pickle":
            t = self._tensors[key]
            return t.to(device=device, dtype=_cast_dtype(t.dtype, dtype))
        stored = _torch_dtype(self.dtypes[key])
        try:
            begin, end = self._entries[key]["data_offsets"]
            as_stored = device.type == "cpu" and _cast_dtype(stored, dtype) == stored
            if stored is None or (as_stored and end - begin >= ZERO_COPY_MIN_BYTES):
                mapped = self._mapped(key)  # zero-copy: pages come in as the weights are used
                if mapped is not None:
                    return mapped
                if stored is None:
                    raise ValueError(f"dtype {self.dtypes[key]} can only be read through a memory map, which was refused")
            return self._read(key, stored).to(device=device, dtype=_cast_dtype(stored, dtype))
        except Exception as e:
            raise CheckpointError(f"{self.path.name}: cannot read tensor {key!r} ({e}); the file may be corrupt") from None

    def _read(self, key: str, stored: torch.dtype) -> torch.Tensor:
        import torch
        begin, end = self._entries[key]["data_offsets"]
        shape = self.all_shapes[key]
        if end == begin:
            return torch.empty(shape, dtype=stored)
        buffer = bytearray(end - begin)
        self._file.seek(self._data_start + begin)
        if self._file.readinto(buffer) != len(buffer):
            raise ValueError("unexpected end of file")
        return torch.frombuffer(buffer, dtype=stored).reshape(shape)

    def close(self):
        if self._file is not None:
            self._file.close()
        if getattr(self, "gguf", None) is not None:
            self.gguf.close()
        for shard in getattr(self, "_shards", {}).values():
            shard.close()
        self._handle = self._file = None
        self._tensors, self._shards = {}, {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def shards(self) -> list[str]:
        """A sharded set's shard file names ([] for a single file)."""
        return sorted(set(getattr(self, "_where", {}).values()))

    @property
    def size(self) -> int:
        """Bytes on disk: the file's, or a sharded set's shards' together."""
        if self.format == "sharded":
            return sum(shard.path.stat().st_size for shard in self._shards.values())
        return self.path.stat().st_size

    def view(self, prefix: str) -> "KeyView":
        return KeyView(self, prefix)

    def config(self) -> dict:
        return read_graphflow_config(self.metadata, self.path.name)


def file_state(path) -> str:
    """A weights file's identity for caches: size, modification time, inode and status-change time
    (hashing GBs is too slow; a file replaced by one of the same size and mtime, as a copy keeping
    times makes, differs in inode or ctime); for a sharded set's index, its shards' too."""
    path = Path(path)
    files = [path]
    if path.name.endswith(INDEX_SUFFIX):
        try:
            files += [path.parent / shard for shard in sorted(set(read_index(path).values()))]
        except CheckpointError:
            pass  # the loader says what is wrong with it
    return ":".join(_stat_state(p) for p in files)


def _stat_state(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}" if stat.S_ISREG(st.st_mode) else "missing"


def read_index(path) -> dict[str, str]:
    """A sharded set's weight_map: tensor name -> the shard file (in the index's folder) holding it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_INDEX_BYTES:
            raise ValueError(f"it is {size} bytes, over the {MAX_INDEX_BYTES} an index is read to")
        weight_map = json.loads(path.read_text()).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map or not all(
                isinstance(v, str) and "/" not in v and "\\" not in v for v in weight_map.values()):
            raise ValueError("no weight_map of tensor names to shard file names")
    except (OSError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path.name} is not a readable sharded-weights index ({e})") from None
    return weight_map


class KeyView:
    """The keys of a file under one prefix, with the prefix stripped."""

    def __init__(self, source, prefix: str):
        self.source, self.prefix = source, prefix
        self.shapes = {k[len(prefix):]: s for k, s in source.shapes.items() if k.startswith(prefix)}

    def get(self, key: str, device=None, dtype=None) -> torch.Tensor:
        return self.source.get(self.prefix + key, device, dtype)

    def scale(self, key: str, device=None) -> torch.Tensor | None:
        return self.source.scale(self.prefix + key, device)

    def input_scale(self, key: str, device=None) -> torch.Tensor | None:
        return self.source.input_scale(self.prefix + key, device)


class RenamedView:
    """A weights source seen under other names: `names` maps each new name to the source's key, or
    to several keys whose tensors are concatenated along dim 0 (diffusers' separate q, k, v ->
    one fused qkv); `shapes` (new name -> shape) may differ from the stored ones, the tensor is
    then reshaped. `swapped`: new names whose two halves along dim 0 are stored the other way
    round (diffusers' AdaLayerNormContinuous keeps (scale, shift) where ours keep (shift, scale)).
    A scaled-fp8 weight's scales pass through under a one-to-one name."""

    def __init__(self, source, names: dict[str, str | list[str]], shapes: dict[str, tuple] | None = None,
                 swapped=()):
        self.source, self.swapped = source, set(swapped)
        self.names = {new: [old] if isinstance(old, str) else list(old) for new, old in names.items()}
        self.shapes = shapes or {new: tuple(source.shapes[old[0]]) for new, old in self.names.items()}
        stored, prefix = source, ""  # the stored dtypes (as the file's header names them), by new name
        while isinstance(stored, KeyView):
            stored, prefix = stored.source, stored.prefix + prefix
        stored = getattr(stored, "dtypes", {})
        self.dtypes = {new: stored[prefix + old[0]] for new, old in self.names.items() if prefix + old[0] in stored}

    def get(self, key: str, device=None, dtype=None) -> torch.Tensor:
        import torch

        parts = [self.source.get(old, device, dtype) for old in self.names[key]]
        tensor = parts[0] if len(parts) == 1 else torch.cat(parts)
        if key in self.swapped:
            tensor = torch.cat(tensor.chunk(2)[::-1])
        return tensor if tuple(tensor.shape) == self.shapes[key] else tensor.reshape(self.shapes[key])

    def scale(self, key: str, device=None) -> torch.Tensor | None:
        old = self.names[key]
        return self.source.scale(old[0], device) if len(old) == 1 and hasattr(self.source, "scale") else None

    def input_scale(self, key: str, device=None) -> torch.Tensor | None:
        old = self.names[key]
        return self.source.input_scale(old[0], device) if len(old) == 1 and hasattr(self.source, "input_scale") \
            else None


def read_graphflow_config(metadata: dict | None, name: str = "checkpoint") -> dict:
    raw = (metadata or {}).get(CONFIG_KEY)
    if raw is None:
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{name}: metadata {CONFIG_KEY!r} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{name}: metadata {CONFIG_KEY!r} must be a JSON object")
    return config


def config_metadata(**sections) -> dict[str, str]:
    """safetensors metadata carrying a graphflow.config (sections as documented above)."""
    unknown = set(sections) - set(CONFIG_SECTIONS)
    if unknown:
        raise ValueError(f"unknown graphflow.config sections {sorted(unknown)}; expected {CONFIG_SECTIONS}")
    return {CONFIG_KEY: json.dumps({k: v for k, v in sections.items() if v is not None}, sort_keys=True)}
