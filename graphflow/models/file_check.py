"""What validation says about a model file a workflow names, before anything runs.

A file the loader would refuse is reported as a problem of the input that names it: a pickle
that PyTorch's restricted unpickler refuses (it would run code; nothing of it runs here either),
a damaged or truncated safetensors file, a checkpoint whose architecture cannot be detected, and
a file of another kind than its loader takes (a LoRA given to the ControlNet loader: the kind as
graphflow.models.file_kind tells it, with the folder and loader it belongs to). So is a diffusers
model folder its loader would refuse (an incomplete download: a part or a shard missing).
Only headers are read (a pickle's object stream is unpickled with its tensors memory-mapped), so
it costs milliseconds; answers are kept per file state (path, size, modification time; a
sharded set's shards' too).
"""

from pathlib import Path

_answers: dict[tuple, str | None] = {}


def model_file_problem(kind: str, path: Path) -> str | None:
    """Why the model file at `path` (a file of models folder `kind`, or a diffusers model folder)
    cannot be loaded, or None."""
    if path.is_dir():
        return _folder_problem(path)  # a few small JSON files and headers: read anew each time
    from .weight_files import file_state

    key = (str(path), kind, file_state(path))
    if key not in _answers:
        if len(_answers) > 256:
            _answers.clear()
        _answers[key] = _problem(kind, path)
    return _answers[key]


# the kinds of file (file_kind folders) each models folder's loader takes besides its own
ALSO_LOADS = {"checkpoints": ("diffusion_models",), "diffusion_models": ("checkpoints",),
              "vae": ("checkpoints", "vae_approx"), "text_encoders": ("checkpoints", "clip_vision"),
              "clip_vision": ("checkpoints",), "upscale_models": (),
              "depthanything": ("annotators",)}  # kijai's Depth Anything V2 files are comfyui_controlnet_aux's


def _problem(kind: str, path: Path) -> str | None:
    from .weight_files import CheckpointError, WeightFile

    try:
        with WeightFile(path) as f:
            if kind == "checkpoints":
                from .architecture import detect_architecture, is_video_checkpoint

                if not is_video_checkpoint(f.shapes):  # a video checkpoint is checked as it loads
                    detect_architecture(f.shapes, f.metadata, get_tensor=f.get)
            else:
                return _wrong_kind(kind, f)
    except CheckpointError as e:
        return str(e)
    return None


# the loaders of a GGUF file of each kind (ComfyUI-GGUF's, nodes/gguf.py): the core ones don't list .gguf
GGUF_LOADERS = {"diffusion_models": "UnetLoaderGGUF", "text_encoders": "CLIPLoaderGGUF / DualCLIPLoaderGGUF"}


def _wrong_kind(kind: str, f) -> str | None:
    from dataclasses import replace

    from .file_kind import identify

    found = identify(f.shapes)
    if found is None or found.folder == kind or found.folder in ALSO_LOADS.get(kind, ()):
        return None
    if getattr(f, "format", None) == "gguf" and found.folder in GGUF_LOADERS:
        found = replace(found, loader=GGUF_LOADERS[found.folder])
    return f"{f.path.name} is not a file for models/{kind}/. {found.advice()}"


def _folder_problem(path: Path) -> str | None:
    """A diffusers folder's layout as its loader reads it (graphflow.models.diffusers_layout: no
    model_index.json, no unet/ or transformer/, a listed part missing or without weights), then its
    parts' safetensors headers (a missing shard, a truncated file). Pickled parts are left to the
    loader, as reading them needs torch; of a pickled sharded set only that its shards are there."""
    from .diffusers_layout import FlowFolder, read_folder
    from .weight_files import INDEX_SUFFIX, CheckpointError, WeightFile, read_index

    try:
        folder = read_folder(path)
    except CheckpointError as e:
        return str(e)
    model = folder.transformer if isinstance(folder, FlowFolder) else folder.unet
    for file in (model, folder.vae, *folder.text.values()):
        if file is not None and file.name.endswith((".safetensors", ".safetensors" + INDEX_SUFFIX)):
            try:
                WeightFile(file).close()
            except CheckpointError as e:
                return f"{path.name}/{file.parent.name}/{e}"
        elif file is not None and file.name.endswith(INDEX_SUFFIX):
            try:
                missing = [s for s in sorted(set(read_index(file).values())) if not (file.parent / s).is_file()]
            except CheckpointError as e:
                return f"{path.name}/{file.parent.name}/{e}"
            if missing:
                return f"{path.name}/{file.parent.name}/{file.name}: shard {missing[0]} is missing from {file.parent}"
    return None
