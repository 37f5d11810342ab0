"""diffusers-format model folders (as downloaded from Hugging Face) loaded as MODEL / CLIP / VAE.

A folder holds model_index.json and one subfolder per component: unet/ (UNet2DConditionModel),
vae/ (AutoencoderKL), text_encoder/ and text_encoder_2/ (CLIPTextModel / WithProjection, in
transformers' layout), tokenizer*/ (not read: graphflow's CLIP vocabulary is the same) and
scheduler/scheduler_config.json. UNet and VAE keys are renamed to the LDM layout
(graphflow.models.diffusers_names) and the result is detected and built as a single-file
checkpoint would be. What weights cannot show comes from the components' config.json: attention
heads and GroupNorm groups, the VAE's scaling factor, the text encoders' activation; and from
scheduler_config.json the prediction type (epsilon / v_prediction) and rescale_betas_zero_snr
(sampled on the zero-terminal-SNR schedule). An SDXL folder's vae/config.json latents_mean /
latents_std (4 numbers each, std above 0) standardise each latent channel before its scaling
factor, as StableDiffusionXLPipeline applies them whatever the scheduler. An EDM scheduler
(EDMEulerScheduler, EDMDPMSolverMultistepScheduler) on SDXL samples in continuous time on its
sigma_min .. sigma_max: prediction_type epsilon (diffusers' name for EDM's F-prediction) with
sigma_data 0.5 and the latent statistics is Playground v2.5's folder, sampled as its single file;
v_prediction with sigma_data 1.0 is CosXL's, sampled as its single file's edm_vpred keys
(ContinuousSchedule's v, sigma_data 1.0). Any other EDM folder is refused, naming what does not
fit, not sampled on SD's schedule. The family: text_encoder + text_encoder_2 -> SDXL base,
text_encoder_2 alone -> SDXL refiner, else the text encoder's activation (quick_gelu -> SD1, gelu
-> SD2). An SD2 UNet with 7 input channels and a class-label table (class_embedding) is the x4
upscaler (StableDiffusionUpscalePipeline's folder: graphflow.models.x4_upscaler), sampled and its
low-res image noised on its own schedule; scheduler/ and low_res_scheduler/ schedules and
model_index.json's max_noise_level that differ from it are noted.

SD3 / SD3.5 and FLUX.1 folders hold transformer/ instead of unet/: its config.json's _class_name
says which (SD3Transformer2DModel, FluxTransformer2DModel); its keys are renamed to Stability's /
BFL's (diffusers_names.transformer_view) and the head layout and FLUX's rotary axes, which the
weights cannot show, come from the config. Text encoders by folder: SD3 text_encoder (CLIP-L),
text_encoder_2 (CLIP-G), text_encoder_3 (T5-XXL; SD3 is also released without it); FLUX
text_encoder (CLIP-L), text_encoder_2 (T5-XXL). The 16-channel VAE's scaling_factor and
shift_factor come from vae/config.json, the sampling shift from scheduler_config.json
(FlowMatchEulerDiscreteScheduler: a fixed `shift`, or with use_dynamic_shifting FLUX's
resolution-dependent one from base_shift to max_shift). Any component may be sharded
(`*.safetensors.index.json`, or `*.bin.index.json` with pickled shards, read through
graphflow.models.weight_files).

Which files and configs a folder holds is read by graphflow.models.diffusers_layout (torch-free:
validation checks a folder through it before a run); this module builds the models from them.
"""

from dataclasses import replace
from pathlib import Path

from .architecture import (PLAYGROUND_MARKERS, UNET_PREFIX, VAE_PREFIX, ArchInfo, detect_architecture,
                           vae_config_from_shapes)
from .architectures import ARCHITECTURES
from .checkpoint import (Checkpoint, _resolve, _set_sources, _standalone_tower, build_flow_model, build_unet, build_vae,
                         flow_placement, tower_of)
from .diffusers_layout import FlowFolder, Folder, read_folder
from .diffusers_names import RenamedView, transformer_view, unet_names, vae_view
from .diffusion_model import BetaSchedule, DiffusionModel
from .flow_architecture import FlowInfo, detect_flow_model
from .text_encoders import TextEncoder
from .weight_files import INDEX_SUFFIX, CheckpointError, WeightFile, config_metadata

FLUX_SEQ_LENS = (256, 4096)  # image tokens where FLUX's dynamic shift reaches base_shift and max_shift
SIZE_EMBEDDING = 256  # graphflow's SDXL UNet embeds each size/crop number in 256 channels, as SDXL does


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
    if prediction is None and value is not None:
        prediction = {"epsilon": "eps", "v_prediction": "v"}[value]
    return prediction, zsnr, notes


def _numbers(value) -> list:
    """A config value's numbers, nested lists flattened (a [1, 4, 1, 1] tensor saved as lists)."""
    if isinstance(value, (list, tuple)):
        return [x for item in value for x in _numbers(item)]
    return [value]


def _latent_statistics(folder: Folder) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """vae/config.json's latents_mean and latents_std for an SDXL folder, which
    StableDiffusionXLPipeline applies whenever both are set, whatever the scheduler; None where one
    is unset or the folder is not SDXL (diffusers' SD pipelines do not read them)."""
    v = folder.vae_config
    if not folder.arch.startswith("sdxl") or v.get("latents_mean") is None or v.get("latents_std") is None:
        return None
    stats = []
    for key in ("latents_mean", "latents_std"):
        values = _numbers(v[key])
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values) or len(values) != 4:
            raise CheckpointError(f"vae/config.json {key}: {v[key]!r}, expected 4 numbers (one per latent channel)")
        if key == "latents_std" and min(values) <= 0:
            raise CheckpointError(f"vae/config.json {key}: {v[key]!r}, expected 4 numbers above 0")
        stats.append(tuple(float(x) for x in values))
    return stats[0], stats[1]


def _edm_sampling(folder: Folder, stats) -> tuple[str, float, float] | None:
    """(prediction, sigma_min, sigma_max) of an EDM scheduler's folder, None for a folder without one:
    "edm" for Playground v2.5's layout (epsilon, diffusers' name for EDM's F-prediction, sigma_data
    0.5, the VAE config's latent statistics), "v" for CosXL's (v_prediction, sigma_data 1.0, the
    single file's edm_vpred). Any other EDM folder raises CheckpointError naming what does not fit."""
    s = folder.scheduler
    kind = s.get("_class_name", "")
    if not kind.startswith("EDM"):
        return None
    value, sigma_data = s.get("prediction_type", "epsilon"), s.get("sigma_data", 0.5)
    failed = [] if folder.arch == "sdxl" else [f"the folder is {folder.arch}, expected sdxl"]
    if value == "epsilon":
        if sigma_data != 0.5:
            failed.append(f"scheduler sigma_data {sigma_data}, expected 0.5 with prediction_type epsilon")
        if stats is None and folder.arch == "sdxl":
            failed += [f"vae/config.json {key}: {folder.vae_config.get(key)!r}, expected 4 numbers"
                       for key in ("latents_mean", "latents_std") if folder.vae_config.get(key) is None]
    elif value == "v_prediction":
        if sigma_data != 1.0:
            failed.append(f"scheduler sigma_data {sigma_data}, expected 1.0 with prediction_type v_prediction")
    else:
        failed.append(f"scheduler prediction_type {value!r}, expected epsilon or v_prediction")
    if failed:
        raise CheckpointError(f"scheduler/scheduler_config.json: {kind} is read for Playground v2.5's layout (SDXL, "
                              f"epsilon, sigma_data 0.5, vae/config.json latents_mean and latents_std) or CosXL's "
                              f"(SDXL, v_prediction, sigma_data 1.0) only; here " + "; ".join(failed))
    return ("edm" if value == "epsilon" else "v"), float(s.get("sigma_min", 0.002)), float(s.get("sigma_max", 80.0))


def _schedule_notes(folder: Folder, upscaler: bool) -> list[str]:
    """The folder's training schedules where they differ from the ones graphflow samples on: SD's
    (scaled_linear 0.00085..0.012), the x4 upscaler's own (graphflow.models.x4_upscaler), on which
    it also noises the low-res image, up to its noise level 350 (the pipeline's max_noise_level)."""
    from .x4_upscaler import MAX_NOISE_LEVEL, SCHEDULE

    ours = SCHEDULE if upscaler else BetaSchedule()
    expected = (ours.kind, ours.linear_start, ours.linear_end, ours.num_timesteps)
    name = f"{'the x4 upscaler' if upscaler else 'SD'}'s {ours.kind} {ours.linear_start}..{ours.linear_end} " \
           f"over {ours.num_timesteps} steps"
    notes = []
    for what, s in (("scheduler", folder.scheduler), ("low_res_scheduler", folder.low_res_scheduler if upscaler else {})):
        schedule = (s.get("beta_schedule", "scaled_linear"), s.get("beta_start", 0.00085), s.get("beta_end", 0.012),
                    s.get("num_train_timesteps", 1000))
        if s and schedule != expected:
            notes.append(f"{what} training schedule {schedule} ignored: {name} used")
    if upscaler and folder.max_noise_level not in (None, MAX_NOISE_LEVEL):
        notes.append(f"model_index.json max_noise_level {folder.max_noise_level} ignored: the low-res image's "
                     f"noise level is at most {MAX_NOISE_LEVEL} (noise_augmentation 1.0)")
    return notes


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
    stats = _latent_statistics(folder)
    edm = _edm_sampling(folder, stats)
    if edm is not None:  # the caller's prediction, if any, still decides
        kind, sigmas = edm[0], edm[1:]
        if kind == "edm":  # the single file's markers
            shapes = {**shapes, **{marker: (1, 4, 1, 1) for marker in PLAYGROUND_MARKERS}}
        notes = [f"scheduler {folder.scheduler['_class_name']}: EDM {kind}, sigmas {sigmas[0]} .. {sigmas[1]}"]
        zsnr = False
    else:
        prediction, zsnr, notes = _prediction(folder, prediction)
    metadata = config_metadata(arch=folder.arch, unet=unet or None, vae=vae or None, latent_format=latent or None)
    info = detect_architecture(shapes, metadata, prediction)
    if stats is not None:  # StableDiffusionXLPipeline's latents * std / scaling_factor + mean
        info = replace(info, latent_format=replace(info.latent_format, channel_mean=stats[0], channel_std=stats[1]))
    if edm is not None and (info.sigma_range is not None or (kind == "v" and prediction is None)):
        info = replace(info, prediction=kind, sigma_range=sigmas, prediction_source="scheduler/scheduler_config.json")
    if prediction is not None and info.prediction_source == "given by the caller":
        source = "scheduler/scheduler_config.json" if folder.scheduler else "given by the caller"
        info = replace(info, prediction_source=source)
    if edm is None:  # an EDM scheduler has no beta schedule
        notes += _schedule_notes(folder, info.upscaler)
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
    read = _read_flow if isinstance(folder, FlowFolder) else _read  # flow models predict flow, whatever is asked
    ckpt = read(folder, device, dtype, prediction, parts)
    _set_sources(ckpt, lambda part: read(folder, device, dtype, prediction, {part}))
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
        if info.sigma_range is not None:  # an EDM scheduler: Playground v2.5's or CosXL's
            model = model.with_continuous_sampling(info.prediction, *info.sigma_range)
            if info.prediction == "v":  # as the single file's edm_vpred keys: ComfyUI's V_PREDICTION_EDM
                model.edm_v_file, model.model_type = True, "v_edm"
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
    if isinstance(folder, FlowFolder):
        return _flow_report(folder)
    info = describe(folder)
    lines = [f"{folder.path.name}: diffusers folder, {ARCHITECTURES[info.arch].name}"
             + (" x4 upscaler" if info.upscaler else "") + (" inpainting" if info.inpaint else ""),
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


# -- SD3 / SD3.5 / FLUX.1 folders (transformer/) -------------------------------------------------

def _flow_config(folder: FlowFolder, config):
    """The architecture read from shapes, with what only transformer/config.json says: the head
    count (the weights show the heads' width only where QK-norm is used) and FLUX's rotary axes."""
    c = folder.transformer_config
    changes = {}
    if "num_attention_heads" in c:
        changes["num_heads"] = c["num_attention_heads"]
        if config.hidden_size % c["num_attention_heads"]:
            raise CheckpointError(f"transformer/config.json: {c['num_attention_heads']} heads do not divide the "
                                  f"weights' width {config.hidden_size}")
    if folder.arch == "flux" and "axes_dims_rope" in c:
        changes["axes_dim"] = tuple(c["axes_dims_rope"])
        if sum(changes["axes_dim"]) != config.hidden_size // changes.get("num_heads", config.num_heads):
            raise CheckpointError(f"transformer/config.json: axes_dims_rope {c['axes_dims_rope']} do not add up "
                                  f"to the head width")
    return replace(config, **changes)


def _flow_sampling(folder: FlowFolder) -> tuple[dict, list[str]]:
    """DiffusionModel's shift settings from FlowMatchEulerDiscreteScheduler's config, and notes."""
    s = folder.scheduler
    if not s:
        return {}, ["no scheduler/scheduler_config.json: the family's default shift"]
    if s.get("use_dynamic_shifting"):
        notes = []
        lengths = (s.get("base_image_seq_len", FLUX_SEQ_LENS[0]), s.get("max_image_seq_len", FLUX_SEQ_LENS[1]))
        if tuple(lengths) != FLUX_SEQ_LENS:
            notes.append(f"scheduler base/max_image_seq_len {tuple(lengths)} ignored: the shift goes from base_shift "
                         f"at {FLUX_SEQ_LENS[0]} to max_shift at {FLUX_SEQ_LENS[1]} image tokens")
        top = float(s.get("max_shift", 1.15))
        return dict(shift_dynamic=True, base_shift=float(s.get("base_shift", 0.5)), max_shift=top,
                    sampling_shift=top), notes  # ComfyUI's mu where no resolution is known
    return dict(shift_dynamic=False, sampling_shift=float(s.get("shift", 1.0))), []


def describe_flow(folder: FlowFolder) -> FlowInfo:
    """The folder's FlowInfo (from the transformer's and VAE's headers and the configs)."""
    try:
        with WeightFile(folder.transformer) as f:
            info = detect_flow_model(transformer_view(f, folder.arch).shapes)
    except CheckpointError as e:
        raise CheckpointError(f"transformer/{folder.transformer.name}: {e}") from None
    if info is None or info.arch != folder.arch:
        raise CheckpointError(f"transformer/{folder.transformer.name}: the weights are not a "
                              f"{folder.transformer_config['_class_name']}'s")
    info.config = _flow_config(folder, info.config)
    info.text_encoders = {name: file.parent.name + "/" for name, file in folder.text.items()}
    info.notes = list(folder.notes) + _flow_sampling(folder)[1]
    if folder.vae is not None:
        with WeightFile(folder.vae) as v:
            shapes = vae_view(v).shapes
        groups = folder.vae_config.get("norm_num_groups")
        info.vae = vae_config_from_shapes(shapes, {"norm_groups": groups} if groups else {}, "vae/")
        info.vae_prefix = "vae/"
        if info.vae.latent_channels != info.latent_channels:
            raise CheckpointError(f"vae/: {info.vae.latent_channels} latent channels; {info.name} uses "
                                  f"{info.latent_channels}")
    return info


def _latent_format(folder: FlowFolder, info: FlowInfo):
    """SD3's / FLUX's latent format with vae/config.json's scaling and shift factors."""
    v = folder.vae_config
    return info.latent_format.with_scale(v.get("scaling_factor", info.latent_format.scale_factor),
                                         v.get("shift_factor"))


def _read_flow(folder: FlowFolder, device, dtype, prediction, parts) -> Checkpoint:
    """The folder's components named in `parts` (as graphflow.models.checkpoint's _read_checkpoint)."""
    from .flow_text import FlowTextEncoder
    from .text_encoder_files import _t5

    info = describe_flow(folder)
    latent = _latent_format(folder, info)
    model = vae = clip = None
    if "diffusion_model" in parts:
        with WeightFile(folder.transformer) as f:
            model = build_flow_model(transformer_view(f, folder.arch), info, *flow_placement(device, dtype))
        model.latent_format = model.read_latent_format = latent
        for name, value in _flow_sampling(folder)[0].items():
            setattr(model, name, value)
    if folder.vae is not None and "vae" in parts:
        with WeightFile(folder.vae) as v:
            vae = build_vae(vae_view(v), info.vae, latent, *_resolve(device, dtype, "vae"), what="vae/")
    wanted = [n for n in folder.text if {"text_encoder", f"text_encoder:{n}"} & parts]
    if wanted:
        device_t, dtype_t = _resolve(device, dtype, "text_encoder")
        found = {}
        for name in wanted:
            file = folder.text[name]
            what = f"{file.parent.name}/{file.name}"
            with WeightFile(file) as f:
                if name == "t5xxl":
                    found[name] = _t5(f, what, device_t, dtype_t)
                else:
                    spec = _tower_spec(name, file)
                    found[name] = tower_of(f, spec, device_t, dtype_t, what, _text_overrides(folder.text_configs[name]))
        # the transformer's token width: what CLIP is padded to where there is no T5 to set it
        clip = FlowTextEncoder(folder.arch, found.get("clip_l"), found.get("clip_g"), found.get("t5xxl"),
                               context_dim=folder.transformer_config.get("joint_attention_dim"))
    return Checkpoint(model, clip, vae, info)


def _flow_report(folder: FlowFolder) -> str:
    info = describe_flow(folder)
    sampling = _flow_sampling(folder)[0]
    if sampling.get("shift_dynamic"):
        shift = (f"dynamic (resolution-dependent), base_shift {sampling['base_shift']}, "
                 f"max_shift {sampling['max_shift']}")
    else:
        shift = str(sampling.get("sampling_shift", "the family's default"))
    lines = [f"{folder.path.name}: diffusers folder, {info.name} ({folder.transformer_config['_class_name']})",
             f"  prediction: flow, sampling shift {shift}",
             f"  transformer: {_describe_file(folder, folder.transformer)} ({info.config.hidden_size} wide, "
             f"{info.config.num_heads} heads)"]
    if folder.vae is not None:
        latent = _latent_format(folder, info)
        lines.append(f"  vae: {_describe_file(folder, folder.vae)} (latent scale {latent.scale_factor}, "
                     f"shift {latent.shift_factor})")
    for name, file in folder.text.items():
        lines.append(f"  text encoder {name}: {_describe_file(folder, file)}")
    lines += [f"  note: {n}" for n in info.notes]
    return "\n".join(lines)


def _describe_file(folder: FlowFolder, file: Path) -> str:
    shown = str(file.relative_to(folder.path))
    if file.name.endswith(INDEX_SUFFIX):
        with WeightFile(file) as f:
            shown += f", {len(f.shards)} shards"
    return shown
