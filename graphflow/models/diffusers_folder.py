"""diffusers-format model folders (as downloaded from Hugging Face) loaded as MODEL / CLIP / VAE.

A folder holds model_index.json and one subfolder per component: unet/ (UNet2DConditionModel),
vae/ (AutoencoderKL), text_encoder/ and text_encoder_2/ (CLIPTextModel / WithProjection, in
transformers' layout), tokenizer*/ (not read: graphflow's CLIP vocabulary is the same) and
scheduler/scheduler_config.json. UNet and VAE keys are renamed to the LDM layout
(graphflow.models.diffusers_names) and the result is detected and built as a single-file
checkpoint would be. What weights cannot show comes from the components' config.json: attention
heads and GroupNorm groups, the VAE's scaling factor, the text encoders' activation; and from
scheduler_config.json the prediction type (epsilon / v_prediction) and rescale_betas_zero_snr
(sampled on the zero-terminal-SNR schedule). The family: text_encoder + text_encoder_2 -> SDXL
base, text_encoder_2 alone -> SDXL refiner, else the text encoder's activation (quick_gelu -> SD1,
gelu -> SD2). SD3/FLUX folders (transformer/) are refused with a message.
"""

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from .architecture import ARCH_NAMES, UNET_PREFIX, VAE_PREFIX, ArchInfo, detect_architecture
from .checkpoint import (Checkpoint, _resolve, _set_sources, _standalone_tower, build_unet, build_vae, tower_of)
from .diffusers_names import RenamedView, unet_names, vae_view
from .diffusion_model import DiffusionModel
from .text_encoders import TextEncoder
from .weight_files import CheckpointError, WeightFile, config_metadata

WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                "model.fp16.safetensors", "diffusion_pytorch_model.bin", "pytorch_model.bin",
                "diffusion_pytorch_model.fp16.bin", "pytorch_model.fp16.bin")
TEXT_FOLDERS = ("text_encoder", "text_encoder_2")
SIZE_EMBEDDING = 256  # graphflow's SDXL UNet embeds each size/crop number in 256 channels, as SDXL does


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
    """The component's weights file (full precision preferred over an .fp16 variant)."""
    found = next((folder / n for n in WEIGHT_NAMES if (folder / n).is_file()), None)
    if found is None and any(folder.glob("*.index.json")):
        raise CheckpointError(f"{folder}: sharded weights (*.index.json) are not supported; "
                              f"expected one of {', '.join(WEIGHT_NAMES[:2])}")
    return found


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


def read_folder(path) -> Folder:
    """The folder's layout; CheckpointError says what is missing or unknown."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such folder")
    if (path / "transformer").is_dir() and not (path / "unet").is_dir():
        raise CheckpointError(f"{path.name} is a diffusers folder with transformer/ (SD3 or FLUX): not supported; "
                              f"load the single-file release with LoadCheckpoint / LoadDiffusionModel instead")
    unet_dir = path / "unet"
    unet = weight_file(unet_dir) if unet_dir.is_dir() else None
    if unet is None:
        found = sorted(p.name + "/" for p in path.iterdir() if p.is_dir()) or ["nothing"]
        raise CheckpointError(f"{path.name} is not a diffusers SD1/SD2/SDXL folder: expected unet/ with "
                              f"{WEIGHT_NAMES[0]}; found {', '.join(found)}")
    unet_config = _config(unet_dir)
    vae = weight_file(path / "vae") if (path / "vae").is_dir() else None
    vae_config = _config(path / "vae") if vae is not None else {}
    files, configs = {}, {}
    for sub in TEXT_FOLDERS:
        if (path / sub).is_dir() and weight_file(path / sub) is not None:
            files[sub], configs[sub] = weight_file(path / sub), _config(path / sub)
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
    return Folder(path, arch, unet, unet_config, vae, vae_config, text, text_configs, scheduler, notes, clip_skip)


def _heads(config: dict) -> dict:
    """UNetConfig's head layout from diffusers' config, where `attention_head_dim` counts heads
    (num_attention_heads when given): one count for all levels (SD1), or per level of 64-wide heads."""
    heads = config.get("num_attention_heads") or config.get("attention_head_dim")
    if heads is None:
        return {}
    if isinstance(heads, int):
        return {"num_heads": heads, "num_head_channels": -1}
    channels = config["block_out_channels"]
    types = config.get("down_block_types") or ["CrossAttnDownBlock2D"] * len(channels)
    widths = {c // h for c, h, kind in zip(channels, heads, types) if "CrossAttn" in kind}
    widths.add(channels[-1] // heads[-1])  # the middle block's
    if len(widths) != 1:
        raise CheckpointError(f"unet/config.json: attention heads {heads} over channels "
                              f"{channels} are not of one width; graphflow's UNet needs that")
    return {"num_heads": -1, "num_head_channels": widths.pop()}


def _prediction(folder: Folder, prediction) -> tuple[str | None, bool, list[str]]:
    """(prediction, zero-terminal SNR, notes) from scheduler_config.json."""
    s, notes = folder.scheduler, []
    value = s.get("prediction_type", "epsilon" if s else None)
    if value not in (None, "epsilon", "v_prediction"):
        raise CheckpointError(f"scheduler/scheduler_config.json: prediction_type {value!r} is not supported "
                              f"(epsilon or v_prediction)")
    zsnr = bool(s.get("rescale_betas_zero_snr"))
    if zsnr:
        notes.append("scheduler rescale_betas_zero_snr: sampled on the zero-terminal-SNR schedule")
    schedule = (s.get("beta_schedule", "scaled_linear"), s.get("beta_start", 0.00085), s.get("beta_end", 0.012),
                s.get("num_train_timesteps", 1000))
    if s and schedule != ("scaled_linear", 0.00085, 0.012, 1000):
        notes.append(f"scheduler training schedule {schedule} ignored: sampled on SD's scaled_linear "
                     f"0.00085..0.012 over 1000 steps")
    if prediction is None and value is not None:
        prediction = {"epsilon": "eps", "v_prediction": "v"}[value]
    return prediction, zsnr, notes


def _unet_source(unet_file: WeightFile) -> RenamedView:
    try:
        names = unet_names(unet_file.shapes)
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(f"unet/{unet_file.path.name}: key {e} has no place in graphflow's UNet "
                              f"(not a UNet2DConditionModel of SD1/SD2/SDXL)") from None
    return RenamedView(unet_file, names)


def describe(folder: Folder, prediction=None) -> ArchInfo:
    """The ArchInfo the folder's UNet (and VAE) shapes and configs give (reads headers only)."""
    with WeightFile(folder.unet) as u:
        shapes = {UNET_PREFIX + k: s for k, s in _unet_source(u).shapes.items()}
    if folder.vae is not None:
        with WeightFile(folder.vae) as v:
            shapes.update({VAE_PREFIX + k: s for k, s in vae_view(v).shapes.items()})
    return _detect(folder, shapes, prediction)


def _detect(folder: Folder, shapes: dict, prediction) -> ArchInfo:
    u, v = folder.unet_config, folder.vae_config
    if folder.arch == "sdxl" and u.get("addition_time_embed_dim", SIZE_EMBEDDING) != SIZE_EMBEDDING:
        raise CheckpointError(f"unet/config.json: addition_time_embed_dim {u['addition_time_embed_dim']}; "
                              f"SDXL's is {SIZE_EMBEDDING}")
    unet = {**_heads(u), **({"norm_groups": u["norm_num_groups"]} if "norm_num_groups" in u else {})}
    vae = {"norm_groups": v["norm_num_groups"]} if "norm_num_groups" in v else {}
    latent = {"scale_factor": v["scaling_factor"]} if "scaling_factor" in v else {}
    if latent and v.get("shift_factor") is not None:
        latent["shift_factor"] = v["shift_factor"]
    prediction, zsnr, notes = _prediction(folder, prediction)
    metadata = config_metadata(arch=folder.arch, unet=unet or None, vae=vae or None, latent_format=latent or None)
    info = detect_architecture(shapes, metadata, prediction)
    if prediction is not None and info.prediction_source == "given by the caller":
        source = "scheduler/scheduler_config.json" if folder.scheduler else "given by the caller"
        info = replace(info, prediction_source=source)
    kept = [n for n in info.notes if not n.startswith(("no text encoder", "no VAE"))]
    towers = tuple(_tower_spec(name, file) for name, file in folder.text.items())
    return replace(info, towers=towers, notes=folder.notes + notes + kept, zero_terminal_snr=zsnr,
                   prefixes={p: 1 for p in ("unet/", "vae/", *(f.parent.name + "/" for f in folder.text.values()))})


def _tower_spec(name: str, file: Path):
    """The tower's spec with its prefix as the file has it (transformers saves `text_model.*`,
    newer versions flattened names)."""
    with WeightFile(file) as f:
        try:
            return _standalone_tower(f.shapes, {"text_encoders": {name: {}}})
        except CheckpointError as e:
            raise CheckpointError(f"{file.parent.name}/{file.name}: {e}") from None


def load_diffusers(path, device=None, dtype=None, prediction: str | None = None) -> Checkpoint:
    """Load a diffusers folder as load_checkpoint loads a file (same dtypes and devices; each
    component registered with the memory manager, read back from its own file when dropped).
    `prediction` ("eps"/"v") overrides scheduler_config.json."""
    folder = read_folder(path)
    parts = {"diffusion_model", "vae", "text_encoder"}
    ckpt = _read(folder, device, dtype, prediction, parts)
    _set_sources(ckpt, lambda part: _read(folder, device, dtype, prediction, {part}))
    return ckpt


def _read(folder: Folder, device, dtype, prediction, parts) -> Checkpoint:
    """The folder's components named in `parts` (as graphflow.models.checkpoint's _read_checkpoint)."""
    info = describe(folder, prediction)
    model = vae = clip = None
    if "diffusion_model" in parts:
        with WeightFile(folder.unet) as u:
            unet = build_unet(_unet_source(u), info.unet, *_resolve(device, dtype, "unet"))
        model = DiffusionModel(unet, info.arch, info.prediction, info.latent_format)
        model.zsnr = info.zero_terminal_snr
    if folder.vae is not None and "vae" in parts:
        with WeightFile(folder.vae) as v:
            vae = build_vae(vae_view(v), info.vae, info.latent_format, *_resolve(device, dtype, "vae"), what="vae/")
    towers = [spec for spec in info.towers if {"text_encoder", f"text_encoder:{spec.name}"} & parts]
    if towers:
        device_t, dtype_t = _resolve(device, dtype, "text_encoder")
        built = []
        for spec in towers:
            file = folder.text[spec.name]
            with WeightFile(file) as f:
                built.append(tower_of(f, spec, device_t, dtype_t, f"{file.parent.name}/{file.name}",
                                      _text_overrides(folder.text_configs[spec.name])))
        clip = TextEncoder(info.arch, built, folder.clip_skip)
    return Checkpoint(model, clip, vae, info)


def _text_overrides(config: dict) -> dict:
    """What a CLIPTextConfig says that shapes don't."""
    return {k: config[k] for k in ("hidden_act", "num_attention_heads", "layer_norm_eps") if k in config}


def folder_report(path) -> str:
    """`graphflow inspect FOLDER`: what the diffusers folder is and holds."""
    folder = read_folder(path)
    info = describe(folder)
    lines = [f"{folder.path.name}: diffusers folder, {ARCH_NAMES[info.arch]}"
             + (" inpainting" if info.inpaint else ""),
             f"  prediction: {info.prediction} ({info.prediction_source})"
             + (", zero-terminal SNR" if info.zero_terminal_snr else ""),
             f"  unet: {folder.unet.relative_to(folder.path)} (context {info.context_dim}, "
             f"{info.in_channels} input channels)"]
    if folder.vae is not None:
        lines.append(f"  vae: {folder.vae.relative_to(folder.path)} (latent scale {info.latent_format.scale_factor})")
    for name, file in folder.text.items():
        lines.append(f"  text encoder {name}: {file.relative_to(folder.path)}")
    lines += [f"  note: {n}" for n in info.notes]
    return "\n".join(lines)
