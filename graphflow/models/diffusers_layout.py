"""A diffusers model folder's layout: which component files and configs it holds, and the family
they make (graphflow.models.diffusers_folder loads them). Torch-free: `graphflow validate` reads a
folder's layout through here before a run (graphflow.models.file_check).

A folder holds model_index.json (the pipeline's components) and one subfolder per component, each
with its config.json and its weights: one file, or a sharded set's index
(`*.safetensors.index.json`) beside its shards. A component that model_index.json lists, or whose
subfolder is there, must hold weights: anything else is a download cut short.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from .weight_files import INDEX_SUFFIX, CheckpointError

_STEMS = ("diffusion_pytorch_model.safetensors", "model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
          "model.fp16.safetensors", "diffusion_pytorch_model.bin", "pytorch_model.bin",
          "diffusion_pytorch_model.fp16.bin", "pytorch_model.fp16.bin")
WEIGHT_NAMES = tuple(n + suffix for n in _STEMS for suffix in ("", INDEX_SUFFIX))  # one file, or a sharded set
TRANSFORMERS = {"SD3Transformer2DModel": "sd3", "FluxTransformer2DModel": "flux"}
# the text encoder in each folder: transformers' classes, named by the slot they fill
FLOW_TEXT_FOLDERS = {"sd3": {"text_encoder": "clip_l", "text_encoder_2": "clip_g", "text_encoder_3": "t5xxl"},
                     "flux": {"text_encoder": "clip_l", "text_encoder_2": "t5xxl"}}
TEXT_FOLDERS = ("text_encoder", "text_encoder_2")


def is_diffusers_folder(path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / "model_index.json").is_file() or (path / "unet").is_dir()
                              or (path / "transformer").is_dir())


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return value


def _config(folder: Path) -> dict:
    """A component's config.json ({} when there is none)."""
    return _json(folder / "config.json") if (folder / "config.json").is_file() else {}


def weight_file(folder: Path) -> Path | None:
    """The component's weights file or sharded set's index (full precision preferred over an
    .fp16 variant)."""
    return next((folder / n for n in WEIGHT_NAMES if (folder / n).is_file()), None)


@dataclass
class Folder:
    """What a diffusers folder holds: its component files and configs, and the family they make."""

    path: Path
    arch: str
    unet: Path
    unet_config: dict
    vae: Path | None
    vae_config: dict
    text: dict[str, Path]  # tower name (clip_l / clip_h / clip_g) -> weights file
    text_configs: dict[str, dict]
    scheduler: dict
    notes: list = field(default_factory=list)
    clip_skip: int | None = None  # None: the family's default
    # StableDiffusionUpscalePipeline's (the x4 upscaler): how the low-res image is noised
    low_res_scheduler: dict = field(default_factory=dict)
    max_noise_level: int | None = None


def read_folder(path) -> "Folder | FlowFolder":
    """The folder's layout; CheckpointError says what is missing or unknown."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such folder")
    found = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir()) or ["nothing"]
    indexed = (path / "model_index.json").is_file()
    if not indexed and ((path / "unet").is_dir() or (path / "transformer").is_dir()):
        raise CheckpointError(f"{path.name} is not a whole diffusers model folder: no model_index.json (a folder "
                              f"as downloaded has it beside unet/ or transformer/, vae/ and text_encoder/); "
                              f"found {', '.join(found)}")
    index = _json(path / "model_index.json") if indexed else {}
    if (path / "transformer").is_dir() and not (path / "unet").is_dir():
        return read_flow_folder(path, index)
    unet_dir = path / "unet"
    unet = weight_file(unet_dir) if unet_dir.is_dir() else None
    if unet is None:
        raise CheckpointError(f"{path.name} is not a diffusers model folder: expected unet/ (SD1/SD2/SDXL) or "
                              f"transformer/ (SD3/SD3.5/FLUX.1) with {WEIGHT_NAMES[0]} or "
                              f"{WEIGHT_NAMES[1]}; found {', '.join(found)}")
    unet_config = _config(unet_dir)
    vae = _part(path, "vae", index)
    vae_config = _config(path / "vae") if vae is not None else {}
    files, configs = {}, {}
    for sub in TEXT_FOLDERS:
        file = _part(path, sub, index)
        if file is not None:
            files[sub], configs[sub] = file, _config(path / sub)
    if "text_encoder_2" in files:
        arch = "sdxl" if "text_encoder" in files else "sdxl_refiner"
    elif "text_encoder" in files:
        act = configs["text_encoder"].get("hidden_act")
        arch = "sd2" if act == "gelu" or unet_config.get("cross_attention_dim") == 1024 else "sd1"
    else:
        context = unet_config.get("cross_attention_dim")
        arch = {768: "sd1", 1024: "sd2", 2048: "sdxl", 1280: "sdxl_refiner"}.get(context)
        if arch is None:
            raise CheckpointError(f"{path.name}: no text_encoder/ and the UNet's cross_attention_dim {context} "
                                  f"names no known family")
    names = {"sd1": ("clip_l",), "sd2": ("clip_h",), "sdxl": ("clip_l", "clip_g"), "sdxl_refiner": ("clip_g",)}[arch]
    subs = [s for s in TEXT_FOLDERS if s in files]
    text = dict(zip(names, (files[s] for s in subs)))
    text_configs = dict(zip(names, (configs[s] for s in subs)))
    scheduler_file = path / "scheduler" / "scheduler_config.json"
    scheduler = _json(scheduler_file) if scheduler_file.is_file() else {}
    notes = []
    if vae is None:
        notes.append("no vae/ in the folder: a separate VAE file is needed")
    if not text:
        notes.append("no text_encoder/ in the folder: CLIP must come from a separate text encoder file")
    if not scheduler:
        notes.append("no scheduler/scheduler_config.json: epsilon prediction assumed")
    clip_skip = None
    if arch == "sd2" and text_configs.get("clip_h", {}).get("num_hidden_layers") == 23:
        # diffusers' SD2 text encoder stops at ViT-H's 23rd of 24 layers, the one SD2 reads: its last
        clip_skip = -1
        notes.append("text encoder of 23 layers (SD2's penultimate is its last): clip_skip -1 by default")
    low_res_file = path / "low_res_scheduler" / "scheduler_config.json"
    low_res = _json(low_res_file) if low_res_file.is_file() else {}
    return Folder(path, arch, unet, unet_config, vae, vae_config, text, text_configs, scheduler, notes, clip_skip,
                  low_res, index.get("max_noise_level"))


@dataclass
class FlowFolder:
    """A diffusers SD3/SD3.5/FLUX.1 folder: its component files (a file or a sharded set's index
    each) and configs."""

    path: Path
    arch: str  # sd3 | flux
    transformer: Path
    transformer_config: dict
    vae: Path | None
    vae_config: dict
    text: dict[str, Path]  # clip_l / clip_g / t5xxl -> weights
    text_configs: dict[str, dict]
    scheduler: dict
    notes: list = field(default_factory=list)


def read_flow_folder(path: Path, index: dict) -> FlowFolder:
    """An SD3/SD3.5/FLUX.1 folder's layout (`index`: its model_index.json)."""
    config = _config(path / "transformer")
    kind = config.get("_class_name")
    if kind not in TRANSFORMERS:
        raise CheckpointError(f"{path.name}/transformer/config.json: _class_name {kind!r} is not a transformer "
                              f"graphflow loads; expected {' or '.join(TRANSFORMERS)} (SD3/SD3.5, FLUX.1)")
    arch = TRANSFORMERS[kind]
    transformer = _part(path, "transformer", index, required=True)
    vae = _part(path, "vae", index)
    text, configs, notes = {}, {}, []
    for sub, name in FLOW_TEXT_FOLDERS[arch].items():
        file = _part(path, sub, index)
        if file is not None:
            text[name], configs[name] = file, _config(path / sub)
        elif name == "t5xxl" and arch == "sd3":  # as SD3 is also released
            notes.append(f"no {sub}/ (t5xxl): the text tokens are CLIP-L's and CLIP-G's alone")
        else:
            notes.append(f"no {sub}/ ({name}): its part of the conditioning is zeros")
    if vae is None:
        notes.append("no vae/ in the folder: a separate VAE file is needed")
    scheduler_file = path / "scheduler" / "scheduler_config.json"
    scheduler = _json(scheduler_file) if scheduler_file.is_file() else {}
    return FlowFolder(path, arch, transformer, config, vae, _config(path / "vae") if vae else {}, text, configs,
                      scheduler, notes)


def _part(path: Path, sub: str, index: dict, required: bool = False) -> Path | None:
    """sub/'s weights; None where there is no sub/ and model_index.json does not list one. A part
    that is listed or present but holds no weights is an error (a download cut short)."""
    listed = isinstance(index.get(sub), list) and index[sub][:1] != [None]
    found = weight_file(path / sub) if (path / sub).is_dir() else None
    if found is None and (required or listed or (path / sub).is_dir()):
        stem = "model.safetensors" if sub.startswith("text_encoder") else "diffusion_pytorch_model.safetensors"
        state = "holds no weights" if (path / sub).is_dir() else "is missing"
        raise CheckpointError(f"{path.name}: {sub}/ {state}{' (model_index.json lists it)' if listed else ''}; "
                              f"expected {sub}/{stem}, or {sub}/{stem}{INDEX_SUFFIX} with its shards")
    return found


