"""Where models, inputs, outputs and plugins live, and safe resolution of names inside them.

A name from a workflow or a client is always relative to its folder: absolute paths, `..`
and symlinks that lead outside are refused.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

BUNDLED = Path(__file__).parent / "bundled"  # the shipped demo checkpoint and example inputs
MODEL_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# kinds ComfyUI keeps in more than one folder (the older name second)
KIND_FOLDERS = {"diffusion_models": ("diffusion_models", "unet")}


class UnsafePathError(ValueError):
    """A name tries to leave its folder."""


def safe_join(base: Path, name: str) -> Path:
    if not name or "\x00" in name:
        raise UnsafePathError(f"empty or invalid file name {name!r}")
    relative = Path(name)
    if relative.is_absolute() or relative.anchor or ".." in relative.parts or name.startswith(("/", "\\")) or "\\" in name:
        raise UnsafePathError(f"file name {name!r} must stay inside its folder (no absolute paths or '..')")
    base = Path(base).resolve()
    path = (base / relative).resolve()  # follows symlinks
    if path != base and base not in path.parents:
        raise UnsafePathError(f"file name {name!r} leads outside its folder")
    return path


@dataclass
class Folders:
    home: Path = field(default_factory=lambda: Path(os.environ.get("GRAPHFLOW_HOME", ".")).resolve())
    models: Path | None = None
    inputs: Path | None = None
    outputs: Path | None = None
    temp: Path | None = None
    plugins: list[Path] = field(default_factory=list)

    def __post_init__(self):
        env = os.environ.get
        self.home = Path(self.home).resolve()
        self.models = Path(self.models or env("GRAPHFLOW_MODELS_DIR") or self.home / "models").resolve()
        self.inputs = Path(self.inputs or env("GRAPHFLOW_INPUT_DIR") or self.home / "inputs").resolve()
        self.outputs = Path(self.outputs or env("GRAPHFLOW_OUTPUT_DIR") or self.home / "outputs").resolve()
        self.temp = Path(self.temp or self.home / "temp").resolve()
        extra = [Path(p) for p in env("GRAPHFLOW_PLUGINS", "").split(os.pathsep) if p]
        self.plugins = [Path(p).resolve() for p in [self.home / "plugins", *self.plugins, *extra]]

    def model_dirs(self, kind: str) -> list[Path]:
        """Search path for a kind of model (checkpoints, vae, loras, text_encoders): the user's folder first."""
        names = KIND_FOLDERS.get(kind, (kind,))
        return [*(self.models / name for name in names), *(BUNDLED / name for name in names)]

    def list_models(self, kind: str) -> list[str]:
        names = set()
        for base in self.model_dirs(kind):
            if base.is_dir():
                for path in base.rglob("*"):
                    if path.suffix.lower() in MODEL_EXTENSIONS and path.is_file():
                        names.add(path.relative_to(base).as_posix())
        return sorted(names)

    def find_model(self, kind: str, name: str) -> Path:
        for base in self.model_dirs(kind):
            path = safe_join(base, name)
            if path.is_file():
                return path
        searched = ", ".join(str(d) for d in self.model_dirs(kind))
        raise FileNotFoundError(f"no {kind} file named {name!r} in {searched}")

    def input_dirs(self) -> list[Path]:
        """Where LoadImage looks: the user's inputs (uploads go there), then the bundled examples."""
        return [self.inputs, BUNDLED / "inputs"]

    def list_inputs(self) -> list[str]:
        names = set()
        for base in self.input_dirs():
            if base.is_dir():
                names.update(p.relative_to(base).as_posix() for p in base.rglob("*")
                             if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        return sorted(names)

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


folders = Folders()


def configure(**paths) -> Folders:
    """Replace the process-wide folders (the CLI and server call this from their flags)."""
    global folders
    new = Folders(**paths)
    folders.__dict__.update(new.__dict__)  # keep the same object so imports of `folders` see it
    return folders
