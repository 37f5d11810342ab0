"""Single-file SD checkpoints: read, detect the architecture, build the MODEL / CLIP / VAE.

Reading: safetensors headers give names, shapes and dtypes without touching the weights.
Pickled files (.ckpt/.pt/.pth/.bin) are refused unless `allow_pickle=True`, and then only go
through `torch.load(weights_only=True)`, which rebuilds plain tensors and refuses other objects.

Loading never holds two copies of the weights: modules are built on the meta device (no
memory, no init) and each tensor is assigned into them (`load_state_dict(assign=True)`) as it
comes. A tensor that stays as stored (CPU, same dtype) is a zero-copy view of the memory-mapped
file; one that is cast or moved (fp16 file -> fp32 CPU, anything -> CUDA) is read into a
private buffer, converted, and the buffer dropped. The peak is about the loaded model's size
(tests/test_checkpoint.py measures it); on CUDA the host holds about one tensor at a time.

Architecture detection works on key names and shapes (see `detect_architecture`). What weights
cannot show comes from the file's safetensors metadata, key `graphflow.config`, a JSON object:

    {"arch": "sd1",                         optional; only used when no text encoder is present
     "prediction": "eps" | "v",
     "unet": {UNetConfig field: value},     e.g. {"num_heads": 4, "num_head_channels": -1}
     "vae": {VAEConfig field: value},       e.g. {"norm_groups": 8}
     "text_encoders": {"clip_l" | "clip_h" | "clip_g": {CLIPTextConfig field: value}},
                                            e.g. {"clip_l": {"num_attention_heads": 2, "hidden_act": "gelu"}}
     "latent_format": {"scale_factor": 0.68, "shift_factor": 0.0}}

v-prediction cannot be seen in weights. It is taken, first match wins, from: the `prediction`
argument; graphflow.config; the ModelSpec metadata `modelspec.prediction_type`; a `v_pred`
marker key (ComfyUI's convention); for 4-channel SD2 only, ComfyUI's heuristic (std of
output_blocks.11.1.transformer_blocks.0.norm1.bias > 0.09 means the 768-v model); else eps.
"""

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import torch
from torch import nn

from ..device import compute_device, default_dtype
from .diffusion_model import DiffusionModel
from .latent_formats import SD1, SDXL, LatentFormat
from .text_encoders import ARCH_TOWERS, CLIP_L, HF, OPEN_CLIP, OPENCLIP, TextEncoder, TowerSpec, tower_from_weights
from .unet import UNet, UNetConfig, unet_config_from_state_dict
from .vae import VAE, AutoencoderKL, VAEConfig, vae_config_from_state_dict

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
VAE_PARTS = ("encoder", "decoder", "quant_conv", "post_quant_conv")  # a VAE file's other keys (loss.*) are not read
CONFIG_KEY = "graphflow.config"
CONFIG_SECTIONS = ("arch", "prediction", "unet", "vae", "text_encoders", "latent_format")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
PICKLE_PROTOCOLS = (b"\x02", b"\x03", b"\x04", b"\x05")  # a bare pickle starts with 0x80, protocol

ARCH_NAMES = {"sd1": "SD1.x", "sd2": "SD2.x", "sdxl": "SDXL base", "sdxl_refiner": "SDXL refiner"}


class CheckpointError(Exception):
    """A model file that cannot be used, with a message saying what was found."""


# -- reading files -----------------------------------------------------------------------------

_TORCH_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                 "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                 "BOOL": torch.bool}
for _name, _attr in (("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2")):
    if hasattr(torch, _attr):
        _TORCH_DTYPES[_name] = getattr(torch, _attr)


def _cast_dtype(t_dtype: torch.dtype, dtype: torch.dtype | None) -> torch.dtype:
    """Floating-point tensors take the target dtype; integer buffers keep theirs."""
    return dtype if dtype is not None and t_dtype.is_floating_point else t_dtype


class WeightFile:
    """A weights file's key names, shapes and dtypes (from the header alone) and its tensors on request.

    `get(key, device, dtype)` gives one tensor where it is wanted. A safetensors tensor that stays
    as stored (CPU, same dtype) is a zero-copy view of the memory-mapped file; one that must be
    cast or moved is read into a private buffer first, so the file's pages are not kept resident
    next to the converted copy."""

    def __init__(self, path, allow_pickle: bool = False):
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: no such file")
        with open(self.path, "rb") as fh:
            head = fh.read(9)
        # safetensors: an 8-byte little-endian header length (any bytes), then the JSON header's '{'
        safetensors_like = head[8:9] == b"{"
        pickled = head.startswith(b"PK\x03\x04") or (head[:1] == b"\x80" and head[1:2] in PICKLE_PROTOCOLS)
        if not safetensors_like and (pickled or self.path.suffix.lower() in PICKLE_SUFFIXES):
            self._open_pickle(allow_pickle)
        else:
            self._open_safetensors()

    def _open_safetensors(self):
        from safetensors import safe_open

        self.format = "safetensors"
        try:
            self._handle = safe_open(str(self.path), framework="pt", device="cpu")
            self.metadata = dict(self._handle.metadata() or {})
            with open(self.path, "rb") as fh:  # offsets for direct reads (safe_open has validated them)
                size = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(size))
        except Exception as e:  # safetensors raises its own error type for a bad header or a short file
            raise CheckpointError(
                f"{self.path.name} is not a readable safetensors file ({type(e).__name__}: {e}); "
                f"it may be truncated or corrupt ({self.path.stat().st_size} bytes)") from None
        header.pop("__metadata__", None)
        self._data_start = 8 + size
        self._entries = header
        self.shapes = {k: tuple(v["shape"]) for k, v in header.items()}
        self.dtypes = {k: v["dtype"] for k, v in header.items()}
        self._file = open(self.path, "rb")

    def _open_pickle(self, allow_pickle: bool):
        if not allow_pickle:
            raise CheckpointError(
                f"{self.path.name} is a pickle-based checkpoint; unpickling can run arbitrary code, so it is not "
                f"loaded by default. Convert it to .safetensors, or allow pickles explicitly (allow_pickle=True), "
                f"which loads it with torch.load(weights_only=True): plain tensors only.")
        self.format = "pickle"
        try:
            try:
                obj = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                obj = torch.load(self.path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
        except Exception as e:
            raise CheckpointError(f"{self.path.name} could not be loaded with torch.load(weights_only=True): "
                                  f"{type(e).__name__}: {e}") from None
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict):
            raise CheckpointError(f"{self.path.name} holds a {type(obj).__name__}, not a dict of tensors")
        self._tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        self._handle = self._file = None
        self.shapes = {k: tuple(v.shape) for k, v in self._tensors.items()}
        self.dtypes = {k: str(v.dtype).replace("torch.", "") for k, v in self._tensors.items()}
        self.metadata = {}

    def get(self, key: str, device=None, dtype: torch.dtype | None = None) -> torch.Tensor:
        device = torch.device(device) if device is not None else torch.device("cpu")
        if self._handle is None:
            t = self._tensors[key]
            return t.to(device=device, dtype=_cast_dtype(t.dtype, dtype))
        stored = _TORCH_DTYPES.get(self.dtypes[key])
        try:
            if stored is None or (device.type == "cpu" and _cast_dtype(stored, dtype) == stored):
                return self._handle.get_tensor(key)  # zero-copy: pages come in as the weights are used
            return self._read(key, stored).to(device=device, dtype=_cast_dtype(stored, dtype))
        except Exception as e:
            raise CheckpointError(f"{self.path.name}: cannot read tensor {key!r} ({e}); the file may be corrupt") from None

    def _read(self, key: str, stored: torch.dtype) -> torch.Tensor:
        begin, end = self._entries[key]["data_offsets"]
        shape = self.shapes[key]
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
        self._handle = self._file = None
        self._tensors = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def view(self, prefix: str) -> "KeyView":
        return KeyView(self, prefix)

    def config(self) -> dict:
        return read_graphflow_config(self.metadata, self.path.name)


class KeyView:
    """The keys of a file under one prefix, with the prefix stripped."""

    def __init__(self, source, prefix: str):
        self.source, self.prefix = source, prefix
        self.shapes = {k[len(prefix):]: s for k, s in source.shapes.items() if k.startswith(prefix)}

    def get(self, key: str, device=None, dtype=None) -> torch.Tensor:
        return self.source.get(self.prefix + key, device, dtype)


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


_KNOWN_PREFIXES = (UNET_PREFIX, VAE_PREFIX, "cond_stage_model.transformer.", "cond_stage_model.model.",
                   "conditioner.embedders.0.transformer.", "conditioner.embedders.0.model.",
                   "conditioner.embedders.1.model.", "model_ema.")


def prefix_summary(keys) -> dict[str, int]:
    """Key counts by prefix: the known checkpoint sections, else the first name component."""
    counts = Counter()
    for key in keys:
        prefix = next((p for p in _KNOWN_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            prefix = "lora_*" if key.startswith("lora_") else key.split(".")[0] + ("." if "." in key else "")
        counts[prefix] += 1
    return dict(counts.most_common())


def _format_prefixes(prefixes: dict[str, int], limit: int = 8) -> str:
    if not prefixes:
        return "(no tensors)"
    items = [f"{p} ({n})" for p, n in list(prefixes.items())[:limit]]
    more = len(prefixes) - limit
    return ", ".join(items) + (f", and {more} more" if more > 0 else "")


def _hint(prefixes: dict[str, int]) -> str:
    if "lora_*" in prefixes:
        return " This looks like a LoRA file: load it with a LoRA loader."
    if any(p.startswith(("down_blocks", "up_blocks", "conv_in")) for p in prefixes):
        return " This looks like a diffusers-format UNet; single-file (LDM layout) checkpoints are expected."
    if any(p.startswith(("encoder.", "decoder.")) for p in prefixes):
        return " This looks like a standalone VAE: load it with a VAE loader."
    return ""


# -- architecture detection --------------------------------------------------------------------

@dataclass
class ArchInfo:
    """What a checkpoint is, as far as its keys, shapes and metadata tell."""

    arch: str  # sd1 | sd2 | sdxl | sdxl_refiner
    prediction: str  # eps | v
    prediction_source: str
    unet: UNetConfig
    vae: VAEConfig | None
    towers: tuple[TowerSpec, ...]
    latent_format: LatentFormat
    tower_overrides: dict = field(default_factory=dict)
    prefixes: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def inpaint(self) -> bool:
        return self.unet.in_channels == 2 * self.latent_format.channels + 1

    @property
    def in_channels(self) -> int:
        return self.unet.in_channels

    @property
    def context_dim(self) -> int | None:
        return self.unet.context_dim

    @property
    def adm_channels(self) -> int:
        return self.unet.adm_in_channels

    @property
    def latent_channels(self) -> int:
        return self.latent_format.channels

    @property
    def name(self) -> str:
        return ARCH_NAMES[self.arch] + (" inpainting" if self.inpaint else "") + (" (v-prediction)" if self.prediction == "v" else "")


def _tower_present(shapes, spec: TowerSpec) -> bool:
    marker = "embeddings.token_embedding.weight" if spec.layout == HF else "token_embedding.weight"
    return spec.prefix + marker in shapes


def _locate_towers(shapes) -> tuple[str | None, tuple[TowerSpec, ...], list[str]]:
    """The family whose text-encoder layout the keys show, its towers (prefixes adjusted to the
    file), and what is missing. Old SD1 files lack the `text_model.` level under transformer."""
    for arch in ("sdxl", "sdxl_refiner", "sd2", "sd1"):
        specs = []
        for spec in ARCH_TOWERS[arch]:
            if not _tower_present(shapes, spec) and spec.layout == HF:
                legacy = replace(spec, prefix=spec.prefix.removesuffix("text_model."))
                spec = legacy if _tower_present(shapes, legacy) else spec
            specs.append(spec)
        found = [s for s in specs if _tower_present(shapes, s)]
        if found:
            missing = [f"{s.name} under {s.prefix}" for s in specs if s not in found]
            return arch, tuple(specs), missing
    return None, (), []


def _overrides(dataclass_type, values: dict | None, what: str):
    values = dict(values or {})
    names = {f.name for f in fields(dataclass_type)}
    unknown = set(values) - names
    if unknown:
        raise CheckpointError(f"{CONFIG_KEY}: unknown {what} fields {sorted(unknown)}; known: {sorted(names)}")
    return values


def _normalize_prediction(value) -> str:
    v = str(value).lower()
    if v in ("eps", "epsilon"):
        return "eps"
    if v in ("v", "v_prediction", "v-prediction"):
        return "v"
    raise CheckpointError(f"prediction must be 'eps' or 'v', got {value!r}")


def _detect_prediction(arch, unet: UNetConfig, shapes, metadata, config, prediction, get_tensor) -> tuple[str, str]:
    if prediction is not None:
        return _normalize_prediction(prediction), "given by the caller"
    if "prediction" in config:
        return _normalize_prediction(config["prediction"]), f"metadata {CONFIG_KEY}"
    spec = (metadata or {}).get("modelspec.prediction_type")
    if spec:
        return _normalize_prediction(spec), "metadata modelspec.prediction_type"
    if "v_pred" in shapes:
        return "v", "'v_pred' marker key"
    key = UNET_PREFIX + "output_blocks.11.1.transformer_blocks.0.norm1.bias"
    if arch == "sd2" and unet.in_channels == 4 and key in shapes and get_tensor is not None:
        std = float(get_tensor(key).float().std(unbiased=False))
        if std > 0.09:
            return "v", f"SD2 heuristic (ComfyUI's): norm1.bias std {std:.3f} > 0.09"
        return "eps", f"SD2 heuristic (ComfyUI's): norm1.bias std {std:.3f} <= 0.09"
    return "eps", "default: no v-prediction marker"


def detect_architecture(shapes: dict[str, tuple], metadata: dict[str, str] | None = None,
                        prediction: str | None = None, get_tensor=None) -> ArchInfo:
    """Identify a single-file checkpoint from its key names and shapes (and safetensors metadata).

    The text-encoder layout decides the family: CLIP-L under cond_stage_model.transformer -> SD1;
    OpenCLIP under cond_stage_model.model -> SD2; CLIP-L + OpenCLIP bigG under conditioner.embedders.0/1
    -> SDXL base; bigG alone under conditioner.embedders.0 -> SDXL refiner. Without text-encoder
    keys, the UNet's numbers decide (context 768 -> SD1, 1024 -> SD2, adm 2816 -> SDXL, 2560 ->
    refiner). 9 UNet input channels mean an inpainting model. The UNet's context width must
    equal the text encoders' output and SDXL needs vector conditioning (adm); a mismatch is an
    unsupported variant and raises CheckpointError."""
    shapes = {k: tuple(v) for k, v in shapes.items()}
    config = read_graphflow_config(metadata)
    prefixes = prefix_summary(shapes)
    notes = []
    unknown_sections = set(config) - set(CONFIG_SECTIONS)
    if unknown_sections:
        notes.append(f"ignored unknown {CONFIG_KEY} sections {sorted(unknown_sections)}")

    unet_shapes = {k[len(UNET_PREFIX):]: s for k, s in shapes.items() if k.startswith(UNET_PREFIX)}
    if not unet_shapes:
        raise CheckpointError(f"no UNet keys under {UNET_PREFIX}; found prefixes: {_format_prefixes(prefixes)}."
                              + _hint(prefixes))
    try:
        unet = unet_config_from_state_dict(unet_shapes)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise CheckpointError(f"the UNet keys under {UNET_PREFIX} are incomplete or of an unknown layout "
                              f"({type(e).__name__}: {e}); {len(unet_shapes)} UNet keys found") from None
    unet_values = _overrides(UNetConfig, config.get("unet"), "unet")
    if unet_values:
        unet = replace(unet, **unet_values)

    arch, towers, missing = _locate_towers(shapes)
    if missing:
        raise CheckpointError(f"{ARCH_NAMES[arch]} text encoder incomplete: missing {', '.join(missing)}; "
                              f"found prefixes: {_format_prefixes(prefixes)}")
    context, adm = unet.context_dim, unet.adm_in_channels
    if arch is None:
        arch = config.get("arch") or {(768, 0): "sd1", (1024, 0): "sd2", (2048, 2816): "sdxl",
                                      (1280, 2560): "sdxl_refiner"}.get((context, adm))
        if arch not in ARCH_TOWERS:
            raise CheckpointError(f"no text encoder keys and the UNet (context {context}, adm {adm}) matches no "
                                  f"known architecture; found prefixes: {_format_prefixes(prefixes)}")
        notes.append("no text encoder in the file: CLIP must come from a separate text encoder file")
    if arch.startswith("sdxl") != bool(adm):
        raise CheckpointError(f"unsupported variant: {ARCH_NAMES[arch]} text encoders with a UNet whose vector "
                              f"conditioning (adm_in_channels) is {adm}")

    tower_overrides = config.get("text_encoders") or {}
    if not isinstance(tower_overrides, dict):
        raise CheckpointError(f"{CONFIG_KEY}: 'text_encoders' must map tower names to config overrides")
    if towers:
        width = 0
        for spec in towers:
            hidden_key = spec.prefix + ("embeddings.token_embedding.weight" if spec.layout == HF else "token_embedding.weight")
            width += shapes[hidden_key][1]
        if context != width:
            raise CheckpointError(f"the UNet attends to context width {context} but the {ARCH_NAMES[arch]} text "
                                  f"encoders give {width}: unsupported or mismatched checkpoint")

    vae = None
    vae_shapes = {k[len(VAE_PREFIX):]: s for k, s in shapes.items()
                  if k.startswith(VAE_PREFIX) and k[len(VAE_PREFIX):].split(".")[0] in VAE_PARTS}
    vae_values = _overrides(VAEConfig, config.get("vae"), "vae")
    if vae_shapes:
        vae = _vae_config(vae_shapes, vae_values, "first_stage_model.")
    else:
        notes.append(f"no VAE in the file (no keys under {VAE_PREFIX}): a separate VAE file is needed")

    latent_format = SDXL if arch.startswith("sdxl") else SD1
    lf = config.get("latent_format") or {}
    if lf:
        latent_format = latent_format.with_scale(float(lf["scale_factor"]), lf.get("shift_factor"))
    if vae is not None and vae.latent_channels != latent_format.channels:
        raise CheckpointError(f"the VAE has {vae.latent_channels} latent channels, {ARCH_NAMES[arch]} uses "
                              f"{latent_format.channels}")
    if unet.in_channels not in (latent_format.channels, 2 * latent_format.channels + 1):
        raise CheckpointError(f"the UNet takes {unet.in_channels} input channels; expected {latent_format.channels} "
                              f"(or {2 * latent_format.channels + 1} for inpainting)")

    pred, source = _detect_prediction(arch, unet, shapes, metadata, config, prediction, get_tensor)
    return ArchInfo(arch=arch, prediction=pred, prediction_source=source, unet=unet, vae=vae, towers=towers,
                    latent_format=latent_format, tower_overrides=tower_overrides, prefixes=prefixes, notes=notes)


def _vae_config(vae_shapes, overrides, where: str) -> VAEConfig:
    try:
        config = vae_config_from_state_dict(vae_shapes)
    except (ValueError, KeyError, IndexError) as e:
        raise CheckpointError(f"the VAE keys under {where} are incomplete or of an unknown layout "
                              f"({type(e).__name__}: {e})") from None
    return replace(config, **overrides) if overrides else config


# -- building modules --------------------------------------------------------------------------

def _assign(module: nn.Module, source, device, dtype, what: str, keys=None) -> nn.Module:
    """Read `source`'s tensors one at a time onto device/dtype and assign them into the meta-built module."""
    keys = list(source.shapes if keys is None else keys)
    state = {}
    for key in keys:
        state[key] = source.get(key, device, dtype)
    expected = set(module.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(f"{what}: weights do not fit the detected configuration; missing {missing[:5]}"
                              f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                              f"{'...' if len(unexpected) > 5 else ''}")
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(f"{what}: {e}") from None
    leftovers = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if leftovers:
        raise CheckpointError(f"{what}: no weights for {leftovers[:5]}")
    return module.requires_grad_(False).eval()


def _resolve(device, dtype, component: str) -> tuple[torch.device, torch.dtype]:
    device = torch.device(device) if device is not None else compute_device()
    return device, dtype or default_dtype(component, device)


def build_unet(source, config: UNetConfig, device, dtype) -> UNet:
    with torch.device("meta"):
        unet = UNet(config)
    return _assign(unet, source, device, dtype, f"UNet ({UNET_PREFIX})")


def build_vae(source, config: VAEConfig, latent_format: LatentFormat, device, dtype, what=VAE_PREFIX) -> VAE:
    with torch.device("meta"):
        module = AutoencoderKL(config)
    keys = [k for k in source.shapes if k.split(".")[0] in VAE_PARTS]
    module = _assign(module, source, device, dtype, f"VAE ({what})", keys=keys)
    return VAE(module, latent_format)


def build_text_encoder(source, arch: str, towers, overrides: dict, device, dtype, clip_skip=None) -> TextEncoder:
    built = []
    for spec in towers:
        view = KeyView(source, spec.prefix)
        try:
            built.append(tower_from_weights(spec, view.shapes, view.get, device, dtype, overrides.get(spec.name)))
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"text encoder {spec.name} ({spec.prefix or 'standalone'}): {e}") from None
    return TextEncoder(arch, built, clip_skip)


@dataclass
class Checkpoint:
    model: DiffusionModel
    clip: TextEncoder | None
    vae: VAE | None
    info: ArchInfo


def load_checkpoint(path, device=None, dtype=None, prediction: str | None = None,
                    allow_pickle: bool = False) -> Checkpoint:
    """Load a single-file SD1/SD2/SDXL checkpoint. `dtype` overrides every component's dtype
    (defaults: fp32 on CPU; on CUDA fp16 UNet/CLIP and bf16 VAE, fp32 VAE without bf16).
    `prediction` ("eps"/"v") overrides what the file says. A file without a VAE or text
    encoder gives None for that part (info.notes says so)."""
    with WeightFile(path, allow_pickle) as f:
        info = detect_architecture(f.shapes, f.metadata, prediction, get_tensor=f.get)
        unet_device, unet_dtype = _resolve(device, dtype, "unet")
        unet = build_unet(f.view(UNET_PREFIX), info.unet, unet_device, unet_dtype)
        model = DiffusionModel(unet, info.arch, info.prediction, info.latent_format)
        vae = clip = None
        if info.vae is not None:
            vae = build_vae(f.view(VAE_PREFIX), info.vae, info.latent_format, *_resolve(device, dtype, "vae"))
        if info.towers:
            clip = build_text_encoder(f, info.arch, info.towers, info.tower_overrides,
                                      *_resolve(device, dtype, "text_encoder"))
    return Checkpoint(model, clip, vae, info)


# -- standalone VAE files ----------------------------------------------------------------------

_DIFFUSERS_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out",
                       "query": "q", "key": "k", "value": "v", "proj_attn": "proj_out"}


def diffusers_vae_key(key: str, num_up_blocks: int) -> str | None:
    """A diffusers AutoencoderKL key -> the LDM key (None for keys LDM has no place for)."""
    rules = [
        (r"^(encoder|decoder)\.conv_norm_out\.", lambda m: f"{m[1]}.norm_out."),
        (r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", lambda m: f"encoder.down.{m[1]}.block.{m[2]}."),
        (r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.", lambda m: f"encoder.down.{m[1]}.downsample.conv."),
        (r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.",
         lambda m: f"decoder.up.{num_up_blocks - 1 - int(m[1])}.block.{m[2]}."),
        (r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.",
         lambda m: f"decoder.up.{num_up_blocks - 1 - int(m[1])}.upsample.conv."),
        (r"^(encoder|decoder)\.mid_block\.resnets\.(\d)\.", lambda m: f"{m[1]}.mid.block_{int(m[2]) + 1}."),
        (r"^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0|query|key|value|proj_attn)\.",
         lambda m: f"{m[1]}.mid.attn_1.{_DIFFUSERS_VAE_ATTN[m[2]]}."),
        (r"^(encoder|decoder)\.(conv_in|conv_out)\.", lambda m: m[0]),
        (r"^(quant_conv|post_quant_conv)\.", lambda m: m[0]),
    ]
    for pattern, target in rules:
        m = re.match(pattern, key)
        if m:
            return (target(m) + key[m.end():]).replace(".conv_shortcut.", ".nin_shortcut.")
    return None


class _DiffusersVAEView:
    """A diffusers-layout VAE file seen with LDM names (1x1 attention weights as conv kernels)."""

    def __init__(self, source):
        ups = {int(k.split(".")[2]) for k in source.shapes if k.startswith("decoder.up_blocks.")}
        self.source, self.names, self.shapes = source, {}, {}
        for key, shape in source.shapes.items():
            ldm = diffusers_vae_key(key, len(ups))
            if ldm is None:
                continue
            if ".mid.attn_1." in ldm and ldm.endswith(".weight") and len(shape) == 2:
                shape = (*shape, 1, 1)
            self.names[ldm], self.shapes[ldm] = key, shape

    def get(self, key: str, device=None, dtype=None) -> torch.Tensor:
        return self.source.get(self.names[key], device, dtype).reshape(self.shapes[key])


def load_vae(path, device=None, dtype=None, latent_format: LatentFormat | None = None,
             allow_pickle: bool = False) -> VAE:
    """A standalone VAE file: LDM layout (bare `encoder.down.N...` keys, or under
    `first_stage_model.`, or a whole checkpoint's VAE) or diffusers layout (`encoder.down_blocks...`).
    Latents are raw, so the latent format only names the channel count: SD1's for 4 channels
    unless given (or set in graphflow.config)."""
    with WeightFile(path, allow_pickle) as f:
        config = f.config()
        prefixes = prefix_summary(f.shapes)
        if any(k.startswith(VAE_PREFIX) for k in f.shapes):
            source, where = f.view(VAE_PREFIX), VAE_PREFIX
        elif "encoder.down.0.block.0.conv1.weight" in f.shapes:
            source, where = KeyView(f, ""), "LDM layout"
        elif "encoder.down_blocks.0.resnets.0.conv1.weight" in f.shapes:
            source, where = _DiffusersVAEView(f), "diffusers layout"
        else:
            raise CheckpointError(f"{Path(path).name}: no VAE keys (expected LDM 'encoder.down.0.block...', optionally "
                                  f"under {VAE_PREFIX}, or diffusers 'encoder.down_blocks...'); found prefixes: "
                                  f"{_format_prefixes(prefixes)}")
        shapes = {k: s for k, s in source.shapes.items() if k.split(".")[0] in VAE_PARTS}
        vae_config = _vae_config(shapes, _overrides(VAEConfig, config.get("vae"), "vae"), where)
        if latent_format is None:
            latent_format = SD1 if vae_config.latent_channels == 4 else LatentFormat(
                "custom", vae_config.latent_channels, 1.0)
            lf = config.get("latent_format") or {}
            if lf:
                latent_format = latent_format.with_scale(float(lf["scale_factor"]), lf.get("shift_factor"))
        return build_vae(source, vae_config, latent_format, *_resolve(device, dtype, "vae"), what=where)


# -- standalone text encoder files -------------------------------------------------------------

def _standalone_tower(shapes) -> TowerSpec:
    """A lone CLIP text model: transformers layout (text_model.* or flattened) or OpenCLIP's."""
    for prefix in ("text_model.", ""):
        if prefix + "embeddings.token_embedding.weight" in shapes:
            hidden = shapes[prefix + "embeddings.token_embedding.weight"][1]
            if hidden == 768 or "text_projection.weight" not in shapes:
                return TowerSpec(prefix=prefix, **CLIP_L)
            name = "clip_h" if hidden == 1024 else "clip_g"
            return TowerSpec(name=name, prefix=prefix, layout=HF, pad_token=0, hidden_act="gelu")
    if "token_embedding.weight" in shapes and "transformer.resblocks.0.ln_1.weight" in shapes:
        hidden = shapes["token_embedding.weight"][1]
        return TowerSpec(name="clip_h" if hidden == 1024 else "clip_g", prefix="", **OPEN_CLIP)
    raise CheckpointError(f"no CLIP text model keys; found prefixes: {_format_prefixes(prefix_summary(shapes))}")


class _StandaloneView:
    """A standalone HF tower whose keys may lack `text_model.` and carry `text_projection.weight`."""

    def __init__(self, source, spec: TowerSpec):
        self.source, self.spec = source, spec
        self.shapes = {}
        for k, s in source.shapes.items():
            if k.startswith("text_projection"):
                self.shapes[k] = s
            elif k.startswith(spec.prefix):
                self.shapes[k[len(spec.prefix):]] = s

    def get(self, key, device=None, dtype=None):
        return self.source.get(key if key.startswith("text_projection") else self.spec.prefix + key, device, dtype)


def load_text_encoder(paths, arch: str | None = None, device=None, dtype=None, allow_pickle: bool = False) -> TextEncoder:
    """CLIP from separate file(s): a single-file checkpoint (its text encoders), one CLIP text
    model (transformers or OpenCLIP layout: 768 wide -> SD1's CLIP-L, 1024 -> SD2's ViT-H,
    1280 -> bigG as for the SDXL refiner), or two files [CLIP-L, bigG] for SDXL."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    device, dtype = _resolve(device, dtype, "text_encoder")
    files = [WeightFile(p, allow_pickle) for p in paths]
    try:
        if len(files) == 1:
            f = files[0]
            found_arch, towers, missing = _locate_towers(f.shapes)
            if found_arch is not None:
                if missing:
                    raise CheckpointError(f"{f.path.name}: {ARCH_NAMES[found_arch]} text encoder incomplete: "
                                          f"missing {', '.join(missing)}")
                return build_text_encoder(f, arch or found_arch, towers, f.config().get("text_encoders") or {},
                                          device, dtype)
        specs = [_standalone_tower(f.shapes) for f in files]
        names = [s.name for s in specs]
        guessed = {("clip_l",): "sd1", ("clip_h",): "sd2", ("clip_g",): "sdxl_refiner",
                   ("clip_l", "clip_g"): "sdxl"}.get(tuple(names))
        arch = arch or guessed
        if arch is None or [s.name for s in ARCH_TOWERS[arch]] != names:
            raise CheckpointError(f"text encoder file(s) hold {names}; cannot make a CLIP for "
                                  f"{arch or 'any known architecture'} from them")
        built = []
        for f, spec in zip(files, specs):
            view = _StandaloneView(f, spec)
            overrides = (f.config().get("text_encoders") or {}).get(spec.name)
            try:
                built.append(tower_from_weights(replace(spec, prefix=""), view.shapes, view.get, device, dtype,
                                                overrides))
            except (ValueError, KeyError) as e:
                raise CheckpointError(f"{f.path.name}: {e}") from None
        return TextEncoder(arch, built)
    finally:
        for f in files:
            f.close()


# -- inspect -----------------------------------------------------------------------------------

_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                       "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32",
                       "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def _is_float(dtype: str) -> bool:
    return dtype.startswith(("F", "BF", "float", "bfloat"))


def _count(f: "WeightFile", keys) -> int:
    """Parameters: floating-point tensors only (not position_ids-like index buffers)."""
    return sum(math.prod(f.shapes[k]) for k in keys if _is_float(f.dtypes[k]))


def _dtypes(f: "WeightFile", keys) -> str:
    counts = Counter(_SAFETENSORS_DTYPES.get(f.dtypes[k], f.dtypes[k]) for k in keys if _is_float(f.dtypes[k]))
    return ", ".join(d + (f" ({n} tensors)" if len(counts) > 1 else "") for d, n in counts.most_common())


def _millions(n: int) -> str:
    return f"{n / 1e6:,.1f}M" if n >= 1e5 else f"{n:,}"


def inspect_report(path, allow_pickle: bool = False) -> str:
    """A readable description of a checkpoint, from its header (no weights are loaded)."""
    with WeightFile(path, allow_pickle) as f:
        info = detect_architecture(f.shapes, f.metadata, get_tensor=f.get)
        size = f.path.stat().st_size
        lines = [f"file: {f.path.name} ({size / 2**20:,.1f} MiB, {f.format}, {len(f.shapes)} tensors)",
                 f"architecture: {info.name} [{info.arch}]",
                 f"prediction: {info.prediction} ({info.prediction_source})",
                 f"latent: {info.latent_channels} channels, scaling factor {info.latent_format.scale_factor}"
                 + (f", shift {info.latent_format.shift_factor}" if info.latent_format.shift_factor else ""),
                 "components:"]
        used = set()
        unet_keys = [k for k in f.shapes if k.startswith(UNET_PREFIX)]
        used.update(unet_keys)
        u = info.unet
        lines.append(f"  unet: {_millions(_count(f, unet_keys))} params, {_dtypes(f, unet_keys)}; "
                     f"in {u.in_channels} ch{' (inpainting)' if info.inpaint else ''}, context {u.context_dim}, "
                     f"adm {u.adm_in_channels}, channels {u.model_channels} x {list(u.channel_mult)}, "
                     f"transformer depth {list(u.transformer_depth)}")
        if info.vae is not None:
            vae_keys = [k for k in f.shapes if k.startswith(VAE_PREFIX)]
            used.update(vae_keys)
            lines.append(f"  vae: {_millions(_count(f, vae_keys))} params, {_dtypes(f, vae_keys)}; "
                         f"{info.vae.latent_channels} latent channels, downscale {info.vae.downscale}, "
                         f"channels {info.vae.ch} x {list(info.vae.ch_mult)}")
        else:
            lines.append("  vae: none")
        for spec in info.towers:
            keys = [k for k in f.shapes if k.startswith(spec.prefix)]
            used.update(keys)
            width_key = spec.prefix + ("embeddings.token_embedding.weight" if spec.layout == HF else "token_embedding.weight")
            layer_ids = {k[len(spec.prefix):].split(".")[2] for k in keys if ".layers." in k or ".resblocks." in k}
            layout = "OpenCLIP layout" if spec.layout == OPENCLIP else "transformers layout"
            lines.append(f"  text encoder {spec.name}: {_millions(_count(f, keys))} params, "
                         f"{_dtypes(f, keys)}; width {f.shapes[width_key][1]}, {len(layer_ids)} layers, {layout}")
        if not info.towers:
            lines.append("  text encoder: none")
        other = prefix_summary(k for k in f.shapes if k not in used)
        if other:
            lines.append(f"other keys: {_format_prefixes(other)}")
        for note in info.notes:
            lines.append(f"note: {note}")
    return "\n".join(lines)
