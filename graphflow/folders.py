"""Where models, inputs, outputs and plugins live, and safe resolution of names inside them.

A name from a workflow or a client is always relative to its folder: absolute paths and `..`
are refused everywhere. In the inputs and outputs folders, which clients write to and read
from, symlinks that lead outside are refused too. The models folders follow links: users link
their model files and folders from shared drives and other tools, and only they put links there.

Extra model folders come from a ComfyUI-style extra_model_paths.yaml (see load_extra_model_paths).
"""

import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import yaml

BUNDLED = Path(__file__).parent / "bundled"  # the shipped demo checkpoint and example inputs
# ComfyUI's supported_pt_extensions (.sft: safetensors, as early FLUX files were named; .pkl and .pt2:
# listed as ComfyUI lists them, read by content), then a sharded set's index, of safetensors or pickled
# .bin shards (graphflow.models.weight_files reads it as one file)
MODEL_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl",
                    ".safetensors.index.json", ".bin.index.json")
# kinds whose files have other extensions than MODEL_EXTENSIONS, as the pack that adds the folder registers
# them: offered by the loaders and by GET /models/{kind} alike
KIND_EXTENSIONS = {"inpaint": (".pt", ".pth", ".safetensors", ".patch")}  # comfyui-inpaint-nodes' (Fooocus' .patch)
# kinds of user data (not models) read from a models/ subfolder by the nodes named, with their files' extensions
DATA_KINDS = {"styles": (".json",)}  # SDXL Prompt Styler's style files (nodes/pack_nodes_sdxl_styler.py)
GGUF_EXTENSIONS = (".gguf",)  # ggml's container: offered by ComfyUI-GGUF's loaders (nodes/gguf.py) only, as in ComfyUI
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mov", ".mkv", ".m4v", ".avi", ".gif")  # what LoadVideo offers
# kinds ComfyUI keeps in more than one folder, searched in ComfyUI's order (a name in both: the first wins)
KIND_FOLDERS = {"diffusion_models": ("unet", "diffusion_models"), "text_encoders": ("text_encoders", "clip"),
                "controlnet": ("controlnet", "t2i_adapter")}
SKIPPED_FOLDERS = (".git",)  # never listed, as in ComfyUI: a model repository cloned into models/


class UnsafePathError(ValueError):
    """A name tries to leave its folder."""


def safe_join(base: Path, name: str, follow_links: bool = False) -> Path:
    """base / name, refusing names that leave base. follow_links=True (models folders) allows
    symlinks inside base to lead anywhere; otherwise the resolved path must stay inside base."""
    if not name or "\x00" in name:
        raise UnsafePathError(f"empty or invalid file name {name!r}")
    relative = Path(name)
    if relative.is_absolute() or relative.anchor or ".." in relative.parts or name.startswith(("/", "\\")) or "\\" in name:
        raise UnsafePathError(f"file name {name!r} must stay inside its folder (no absolute paths or '..')")
    if follow_links:
        return (Path(base) / relative).resolve()
    base = Path(base).resolve()
    path = (base / relative).resolve()  # follows symlinks
    if path != base and base not in path.parents:
        raise UnsafePathError(f"file name {name!r} leads outside its folder")
    return path


def subfolder_name(base: Path, folder: Path) -> str:
    """The subfolder of `base` that `folder` is, as ComfyUI's "images" entries and /view name it: ""
    for base itself, never "." (the editor and ComfyUI clients build /view addresses from it)."""
    relative = Path(folder).relative_to(base).as_posix()
    return "" if relative == "." else relative


# ComfyUI's legacy names for model kinds, as its extra_model_paths.yaml may use them
COMFY_KINDS = {"clip": "text_encoders", "unet": "diffusion_models"}
# every models/ subfolder a loader reads (diffusers: folders, not files)
MODEL_KINDS = ("checkpoints", "diffusion_models", "loras", "vae", "text_encoders", "controlnet", "upscale_models",
               "clip_vision", "style_models", "embeddings", "hypernetworks", "gligen", "ipadapter", "vae_approx",
               "photomaker", "model_patches", "animatediff_models",
               "animatediff_motion_lora",
               "inpaint",  # comfyui-inpaint-nodes' folder (Fooocus head / patch, LaMa): nodes/pack_nodes_inpaint.py
               "annotators",  # comfyui_controlnet_aux's preprocessor weights: nodes/pack_nodes_controlnet_aux_depth.py
               "depthanything")  # kijai's ComfyUI-DepthAnythingV2 models: nodes/pack_nodes_depth_anything_v2.py

# kinds whose models are folders, not files (a diffusers model_index.json and its parts' subfolders)
FOLDER_KINDS = ("diffusers",)


def load_extra_model_paths(path: Path) -> dict[str, list[Path]]:
    """Read a ComfyUI-style extra_model_paths.yaml: {kind: [folders]}. Each section maps model
    kinds (checkpoints, vae, loras, text_encoders, ...) to a folder or several, one per line,
    relative to the section's base_path, itself relative to the file's folder:

        comfyui:
            base_path: /path/to/ComfyUI/
            checkpoints: models/checkpoints/
            loras: |
                models/loras/
                /mnt/shared/loras/
    """
    path = Path(path).expanduser()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"extra model paths file {path}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"extra model paths file {path}: expected sections of kind: folder entries")
    here = path.resolve().parent
    extra: dict[str, list[Path]] = {}
    for name, section in data.items():
        if not isinstance(section, dict):
            raise ValueError(f"extra model paths file {path}: section {name!r} must map model kinds to folders")
        base = here / Path(str(section.get("base_path") or "")).expanduser()
        for kind, value in section.items():
            if kind in ("base_path", "is_default") or value is None:
                continue
            for line in str(value).splitlines():
                if line.strip():
                    folder = (base / Path(line.strip()).expanduser()).resolve()
                    extra.setdefault(COMFY_KINDS.get(kind, kind), []).append(folder)
    return extra


@dataclass
class Folders:
    home: Path = field(default_factory=lambda: Path(os.environ.get("GRAPHFLOW_HOME", ".")).resolve())
    models: Path | None = None
    inputs: Path | None = None
    outputs: Path | None = None
    temp: Path | None = None
    plugins: list[Path] = field(default_factory=list)
    # a ComfyUI-style extra_model_paths.yaml; default GRAPHFLOW_EXTRA_MODEL_PATHS, else
    # <home>/extra_model_paths.yaml when there is one
    extra_model_paths: Path | None = None
    extra_models: dict[str, list[Path]] = field(default_factory=dict)

    def __post_init__(self):
        env = os.environ.get
        self.home = Path(self.home).resolve()
        self.models = Path(self.models or env("GRAPHFLOW_MODELS_DIR") or self.home / "models").resolve()
        self.inputs = Path(self.inputs or env("GRAPHFLOW_INPUT_DIR") or self.home / "inputs").resolve()
        self.outputs = Path(self.outputs or env("GRAPHFLOW_OUTPUT_DIR") or self.home / "outputs").resolve()
        self.temp = Path(self.temp or self.home / "temp").resolve()
        extra = [Path(p) for p in env("GRAPHFLOW_PLUGINS", "").split(os.pathsep) if p]
        self.plugins = [Path(p).resolve() for p in [self.home / "plugins", *self.plugins, *extra]]
        paths_file = self.extra_model_paths or env("GRAPHFLOW_EXTRA_MODEL_PATHS")
        if not paths_file and (self.home / "extra_model_paths.yaml").is_file():
            paths_file = self.home / "extra_model_paths.yaml"
        if paths_file:
            self.extra_model_paths = Path(paths_file)
            self.extra_models = load_extra_model_paths(self.extra_model_paths)

    def model_dirs(self, kind: str) -> list[Path]:
        """Search path for a kind of model (checkpoints, vae, loras, text_encoders, diffusion_models):
        the user's folders first, then the extra model folders, then the bundled models."""
        names = KIND_FOLDERS.get(kind, (kind,))
        return [*(self.models / name for name in names), *(d for name in names for d in self.extra_models.get(name, [])),
                *(BUNDLED / name for name in names)]

    def list_models(self, kind: str, extensions: tuple[str, ...] | None = None) -> list[str]:
        """The model files a loader offers (`extensions`: the GGUF loaders' GGUF_EXTENSIONS; by default
        the kind's KIND_EXTENSIONS, else MODEL_EXTENSIONS). A sharded set is offered as its index: the
        shard files an index names are left out."""
        extensions = extensions or KIND_EXTENSIONS.get(kind, MODEL_EXTENSIONS)
        bases = tuple(self.model_dirs(kind))
        return _remembered(("models", bases, extensions), lambda: _model_files(bases, extensions))

    def list_files_inside(self, kind: str, extensions: tuple[str, ...]) -> list[str]:
        """The files of a kind of user data (LUTs, fonts) with one of `extensions`, as list_models
        walks them, but only those whose real path stays inside their folder: a link out of it is
        not offered, and find_model(..., inside=True) refuses it too."""
        names = set()
        for base in self.model_dirs(kind):
            names.update(name for name in _walk_files(base)
                         if name.lower().endswith(extensions) and _stays_inside(base, base / name))
        return sorted(names)

    def find_model(self, kind: str, name: str, inside: bool = False) -> Path:
        """The first file `name` in the kind's folders. Links inside them may lead anywhere (as in
        ComfyUI), unless `inside`: then the real path must stay in the folder (list_files_inside)."""
        return self._find(kind, name, Path.is_file, "file", inside)

    def _find(self, kind: str, name: str, found, what: str, inside: bool = False) -> Path:
        """The first `name` under the kind's search path for which `found(path)` holds."""
        linked_out = False
        for base in self.model_dirs(kind):
            path = safe_join(base, name, follow_links=True)
            if inside and found(path) and not _stays_inside(base, path):
                linked_out = True
                continue
            if found(path):
                return path
        if linked_out:
            raise FileNotFoundError(f"{kind} {what} {name!r} is a link out of its folder: only files inside it are read")
        searched = ", ".join(str(d) for d in self.model_dirs(kind))
        raise FileNotFoundError(f"no {kind} {what} named {name!r} in {searched}")

    def model_state(self, kind: str, name: str, inside: bool = False) -> str:
        """A model file's identity for node caches (graphflow.models.weight_files.file_state: size
        and modification time, a sharded set's shards' too); FileNotFoundError where there is none."""
        from graphflow.models.weight_files import file_state

        return f"{name}:{file_state(self.find_model(kind, name, inside))}"

    def list_model_folders(self, kind: str) -> list[str]:
        """Folders (names relative to a search-path folder) holding a model_index.json: diffusers'
        model folders, as downloaded from Hugging Face; or a unet/ or transformer/ with its
        config.json, so that one whose model_index.json is missing is offered, and validation
        says what it lacks."""
        names = set()
        for base in self.model_dirs(kind):
            for name in _walk_files(base):
                if name.endswith("/model_index.json"):
                    names.add(name.rsplit("/", 1)[0])
                elif name.endswith(("/unet/config.json", "/transformer/config.json")):
                    names.add(name.rsplit("/", 2)[0])
        return sorted(names)

    def find_model_folder(self, kind: str, name: str) -> Path:
        return self._find(kind, name, Path.is_dir, "folder")

    def input_dirs(self) -> list[Path]:
        """Where LoadImage looks: the user's inputs (uploads go there), then the bundled examples."""
        return [self.inputs, BUNDLED / "inputs"]

    def list_inputs(self, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[str]:
        names = set()
        for base in self.input_dirs():
            if base.is_dir():
                names.update(p.relative_to(base).as_posix() for p in base.rglob("*")
                             if p.suffix.lower() in extensions and p.is_file() and _stays_inside(base, p))
        return sorted(names)

    def list_input_videos(self) -> list[str]:
        return self.list_inputs(VIDEO_EXTENSIONS)

    def input_path(self, name: str) -> Path:
        """The input file `name` (the user's first, then a bundled example); a name that exists
        nowhere resolves into the user's inputs folder."""
        for base in self.input_dirs():
            path = safe_join(base, name)
            if path.is_file():
                return path
        return safe_join(self.inputs, name)

    def output_path(self, name: str) -> Path:
        return safe_join(self.outputs, name)

    def list_output_images(self) -> list[str]:
        """The pictures in the outputs folder (LoadImageOutput's choices), newest first."""
        base = self.outputs
        if not base.is_dir():
            return []
        found = [p for p in base.rglob("*")
                 if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and _stays_inside(base, p)]
        found.sort(key=lambda p: (-p.stat().st_mtime, p.relative_to(base).as_posix()))
        return [p.relative_to(base).as_posix() for p in found]

    def output_location(self, prefix: str) -> tuple[Path, str]:
        """Where files named by a filename prefix go: (folder inside the outputs, created; file stem).
        The prefix may hold subfolders; one that leads outside raises ValueError."""
        target = safe_join(self.outputs, prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.parent, target.name


ANNOTATED_FOLDERS = ("input", "output", "temp")


def split_annotation(name: str) -> tuple[str, str | None]:
    """ComfyUI's annotated file names: "x.png [output]" -> ("x.png", "output"); the folder is
    "input", "output" or "temp", None when the name has no annotation."""
    for folder in ANNOTATED_FOLDERS:
        if name.endswith(f" [{folder}]"):
            return name[:-len(folder) - 3], folder
    return name, None


def _model_files(bases: tuple[Path, ...], extensions: tuple[str, ...]) -> list[str]:
    names = set()
    for base in bases:
        found = {name for name in _walk_files(base) if name.lower().endswith(extensions)}
        names.update(found - _shards(base, found))
    return sorted(names)


_walks: ContextVar[dict | None] = ContextVar("graphflow_folder_walks", default=None)


@contextmanager
def walks_remembered():
    """Within it (in this thread or task), each folder is walked once and its file names reused, and
    so are list_models' answers: the node catalogue lists the same few model folders for some 500 inputs."""
    if _walks.get() is not None:  # already remembered by an outer one
        yield
        return
    token = _walks.set({})
    try:
        yield
    finally:
        _walks.reset(token)


def _walk_files(base: Path) -> list[str]:
    """Names (posix, relative to base) of the files under base, following linked files and
    folders; a link loop is entered once."""
    return _remembered(base, lambda: _walk(base))


def _remembered(key, listing) -> list:
    """listing(), or what it gave for `key` earlier within walks_remembered (a copy: callers may change it)."""
    walks = _walks.get()
    if walks is None:
        return listing()
    if key not in walks:
        walks[key] = listing()
    return list(walks[key])


def _walk(base: Path) -> list[str]:
    names, seen = [], set()
    for root, dirs, files in os.walk(base, followlinks=True):
        dirs[:] = [d for d in dirs if d not in SKIPPED_FOLDERS]
        real = os.path.realpath(root)
        if real in seen:
            dirs.clear()
            continue
        seen.add(real)
        relative = Path(root).relative_to(base)
        names += [(relative / f).as_posix() for f in files if os.path.isfile(os.path.join(root, f))]
    return names


def _shards(base: Path, names) -> set[str]:
    """The files (relative to base) that the sharded sets' indexes among `names` name as shards:
    its weight_map's shard file names, in the index's own folder. Only the index's JSON is read."""
    from graphflow.models.weight_files import INDEX_SUFFIX, CheckpointError, read_index

    shards = set()
    for name in names:
        if name.lower().endswith(INDEX_SUFFIX):
            folder = name.rpartition("/")[0]
            try:
                weight_map = read_index(base / name)
            except CheckpointError:
                continue  # offered as it is: its loader says what is wrong with it
            shards.update(f"{folder}/{shard}" if folder else shard for shard in weight_map.values())
    return shards


def _stays_inside(base: Path, path: Path) -> bool:
    base = base.resolve()
    return base in path.resolve().parents


folders = Folders()


def configure(**paths) -> Folders:
    """Replace the process-wide folders (the CLI and server call this from their flags)."""
    global folders
    new = Folders(**paths)
    folders.__dict__.update(new.__dict__)  # keep the same object so imports of `folders` see it
    return folders


MAX_NAME_PART = 200  # characters in one folder or file name (filesystems allow 255; SaveImage adds a suffix)
MAX_NAME_LENGTH = 1000


def file_name_problem(name) -> str | None:
    """Why `name` can't be a file name relative to a folder (None when it can), from the text
    alone, so validation refuses it before a run; safe_join still checks at use (symlinks)."""
    if not isinstance(name, str) or not name.strip():
        return "expected a file name, got an empty one"
    if len(name) > MAX_NAME_LENGTH:
        return f"a file name of {len(name)} characters is too long (at most {MAX_NAME_LENGTH})"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return f"file name {name[:60]!r} contains a control character (newline, NUL, ...)"
    if "\\" in name:
        return f"file name {name[:60]!r} contains a backslash; use '/' for subfolders"
    if name.startswith("/"):
        return f"file name {name[:60]!r} is absolute; it must be relative to its folder"
    if drive := PureWindowsPath(name).drive:
        return f"file name {name[:60]!r} starts with a drive name ({drive!r}); it must be relative to its folder"
    parts = name.split("/")
    if ".." in parts:
        return f"file name {name[:60]!r} must stay inside its folder (no '..')"
    if all(p in ("", ".") for p in parts):
        return f"file name {name!r} names no file"
    longest = max(parts, key=len)
    if len(longest) > MAX_NAME_PART:
        return f"a folder or file name of {len(longest)} characters is too long (at most {MAX_NAME_PART})"
    return None
