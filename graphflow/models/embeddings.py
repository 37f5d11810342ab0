"""Textual-inversion embeddings: `embedding:name` in a prompt puts the file's vectors where tokens
would be (ComfyUI's syntax; `(embedding:name:1.2)` weights them like any tokens).

Files live in models/embeddings/ (or any subfolder of it, as ComfyUI searches them) and are named
with or without their extension. Layouts read:
  A1111 .safetensors   one tensor "emb_params" [n, D]
  A1111 .pt            {"string_to_param": {"*": [n, D]}, ...} (torch.load(weights_only=True) only)
  SDXL                 "clip_l" [n, 768] and "clip_g" [n, 1280]: each tower takes its own
  anything else        a file with one tensor: that tensor
A tower picks its own key when the file has one (clip_l, clip_h, clip_g, t5xxl, umt5xxl, as
ComfyUI's embedding_key), else the file's vectors. A name with no file is warned about and left
out (as ComfyUI does); a file that exists but is damaged, or whose vector width isn't the CLIP
tower's, is refused with an error naming the file (ComfyUI only warns: a silently dropped
embedding changes the picture without telling). T5 (SD3 / FLUX / T5-only models), which reads
the same prompt as CLIP towers, leaves vectors of another width out with a warning, as ComfyUI
does, so that a CLIP embedding in a FLUX prompt works for CLIP-L.
"""

from pathlib import Path

import torch

from ..context import warn
from ..folders import folders
from .weight_files import CheckpointError, WeightFile

EXTENSIONS = ("", ".safetensors", ".pt", ".bin")


def find_embedding(name: str) -> Path | None:
    """models/embeddings/<name>[.safetensors|.pt|.bin], else the same in any of its subfolders
    (ComfyUI searches every subfolder too: `embedding:EasyNegative` finds
    embeddings/negative/EasyNegative.safetensors); the first in name order."""
    for ext in EXTENSIONS:
        try:
            return folders.find_model("embeddings", name + ext)
        except (FileNotFoundError, ValueError):
            continue
    listed = folders.list_models("embeddings")
    for relative in listed:
        if any(relative.endswith("/" + name + ext) for ext in EXTENSIONS):
            return folders.find_model("embeddings", relative)
    return None


def _read(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix.lower() in (".pt", ".bin", ".ckpt"):  # A1111's pickles nest the vectors in dicts
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"{path.name} was refused by PyTorch's restricted unpickler (torch.load "
                                  f"weights_only=True, which loads plain tensors only): {type(e).__name__}: "
                                  f"{str(e).splitlines()[0]}") from None
        if isinstance(obj, dict) and isinstance(obj.get("string_to_param"), dict):
            return {"string_to_param": next(iter(obj["string_to_param"].values()))}
        if isinstance(obj, torch.Tensor):
            return {"": obj}
        if isinstance(obj, dict):
            return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        raise CheckpointError(f"{path.name} holds a {type(obj).__name__}, not an embedding")
    with WeightFile(path) as f:
        return {k: f.get(k, dtype=torch.float32).clone() for k in f.shapes}


def load_embedding(path: Path, tower: str, width: int, misfit_ok: bool = False) -> torch.Tensor:
    """The vectors [n, width] that `tower` (clip_l / clip_h / clip_g, t5xxl / umt5xxl) takes from an
    embedding file. misfit_ok: vectors of another width give [0, width] (nothing) instead of an error."""
    path = Path(path)
    tensors = _read(path)
    flat = {k.removeprefix("string_to_param."): v for k, v in tensors.items()}
    if tower in flat:
        vectors = flat[tower]
    elif "emb_params" in flat:
        vectors = flat["emb_params"]
    elif len(flat) == 1:
        vectors = next(iter(flat.values()))
    else:
        raise CheckpointError(f"{path.name} is not a textual-inversion embedding: expected 'emb_params', "
                              f"'string_to_param', or 'clip_l'/'clip_g' vectors; found keys "
                              f"{', '.join(repr(k) for k in list(tensors)[:4])}")
    vectors = vectors.float()
    if vectors.ndim == 1:
        vectors = vectors[None]
    if vectors.ndim == 2 and vectors.shape[1] != width and misfit_ok:
        warn(f"embedding {path.name}: its {vectors.shape[1]}-wide vectors don't fit the {tower} text encoder "
             f"({width}); left out of that encoder's prompt, as ComfyUI does")
        return vectors.new_zeros(0, width)
    if vectors.ndim != 2 or vectors.shape[1] != width:
        raise CheckpointError(f"{path.name}: vectors of shape {tuple(vectors.shape)} don't fit the {tower} text "
                              f"encoder, which expects [n, {width}] (an embedding for another model?)")
    return vectors


def embedding_lookup(tower: str, width: int, misfit_ok: bool = False):
    """name -> vectors [n, width] for tokenize_prompt; None for a name with no file (the tokenizer
    warns and goes on, as ComfyUI does); a file that is damaged or for another model is refused
    (misfit_ok: one of another width is left out with a warning: T5 beside CLIP towers)."""
    def lookup(name: str) -> torch.Tensor | None:
        path = find_embedding(name)
        return None if path is None else load_embedding(path, tower, width, misfit_ok)
    return lookup
