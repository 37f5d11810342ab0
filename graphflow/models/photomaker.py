"""PhotoMaker v1's ID encoder (TencentARC's photomaker-v1.bin, Li et al. 2023) for SDXL, as
ComfyUI's PhotoMakerLoader / PhotoMakerEncode use it.

    vision_model        CLIP ViT-L/14 (transformers' names; graphflow.models.clip_vision)
    visual_projection   pooled class token -> CLIP-L width (768), no bias
    visual_projection_2 pooled class token -> CLIP-G width (1280), no bias
    fuse_module         mlp1: LayerNorm(2D) -> Linear(2D, D) -> GELU -> Linear(D, D)
                        mlp2: LayerNorm(D) -> Linear(D, D) -> GELU -> Linear(D, D), plus its input
                        layer_norm(D)                       (D = 768 + 1280: SDXL's text width)

The ID embedding of an image is cat(visual_projection(pooled), visual_projection_2(pooled)) [D];
the fused embedding of the prompt's class-word token p with it is

    layer_norm(mlp2(mlp1(cat(p, id)) + p))

(GELU exact; layer norms eps 1e-5). All widths come from the weights' shapes; the tower's
activation is quick_gelu, OpenAI ViT-L's, whatever its width.

Files: photomaker-v1.bin, a pickle {"id_encoder": {...}, "lora_weights": {...}} (read with
PyTorch's restricted unpickler), or a .safetensors with the same tensors under `id_encoder.`
(or bare). The LoRA part is not used here: users load it with a LoRA loader, as in ComfyUI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .clip_vision import CLIP_MEAN, CLIP_STD, CLIPVisionConfig, CLIPVisionModel, clip_vision_config_from_shapes, preprocess
from .tokenizer import TokenWindows
from .weight_files import PICKLE_SUFFIXES, CheckpointError, WeightFile, read_pickle

TRIGGER = "photomaker"  # ComfyUI's trigger word (PhotoMaker's own pipeline used "img")
ID_ENCODER = "id_encoder"
MARKERS = ("vision_model.embeddings.patch_embedding.weight", "visual_projection_2.weight",
           "fuse_module.layer_norm.weight")


@dataclass
class PhotoMakerConfig:
    vision: CLIPVisionConfig
    text_widths: tuple[int, int] = (768, 1280)  # SDXL's CLIP-L and CLIP-G

    @property
    def embed_dim(self) -> int:
        return sum(self.text_widths)


class FuseMLP(nn.Module):
    def __init__(self, dim_in: int, dim: int, residual: bool):
        super().__init__()
        self.layernorm = nn.LayerNorm(dim_in)
        self.fc1, self.fc2 = nn.Linear(dim_in, dim), nn.Linear(dim, dim)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc2(F.gelu(self.fc1(self.layernorm(x))))
        return y + x if self.residual else y


class FuseModule(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.mlp1 = FuseMLP(2 * dim, dim, residual=False)
        self.mlp2 = FuseMLP(dim, dim, residual=True)
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, prompt_embeds: torch.Tensor, id_embeds: torch.Tensor) -> torch.Tensor:
        x = self.mlp1(torch.cat([prompt_embeds, id_embeds], dim=-1)) + prompt_embeds
        return self.layer_norm(self.mlp2(x))


class PhotoMakerIDEncoder(CLIPVisionModel):
    def __init__(self, config: PhotoMakerConfig):
        super().__init__(config.vision)
        self.photomaker_config = config
        self.visual_projection_2 = nn.Linear(config.vision.hidden_size, config.text_widths[1], bias=False)
        self.fuse_module = FuseModule(config.embed_dim)

    def id_embeds(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels [B, 3, S, S] -> ID embeddings [B, D]."""
        x, _ = self.hidden_states(pixels)
        pooled = self.vision_model.post_layernorm(x[:, 0])
        return torch.cat([self.visual_projection(pooled), self.visual_projection_2(pooled)], dim=-1)


class PhotoMaker:
    """The PHOTOMAKER socket: the ID encoder and what it needs to run."""

    def __init__(self, module: PhotoMakerIDEncoder):
        self.module = module.eval()
        self.config = module.photomaker_config

    def fuse(self, image: torch.Tensor, prompt_embeds: torch.Tensor) -> torch.Tensor:
        """IMAGE [1, H, W, C] and class-token embeddings [n, D] -> fused embeddings [n, D], float32 CPU."""
        from graphflow import memory

        pixels = preprocess(image[..., :3], self.config.vision.image_size, CLIP_MEAN, CLIP_STD)
        with memory.use(self.module, "clip_vision", "photomaker"), torch.no_grad():
            device = memory.manager().device_for(self.module)
            dtype = self.module.visual_projection.weight.dtype
            ids = self.module.id_embeds(pixels.to(device, dtype))
            fused = self.module.fuse_module(prompt_embeds.to(device, dtype), ids.expand(len(prompt_embeds), -1))
        return fused.float().cpu()


# -- the prompt --------------------------------------------------------------------------------

def trigger_word(text: str) -> int | None:
    """The trigger's word number as ComfyUI's PhotoMakerEncode counts it: its place among the
    text's space-separated words, from 1 (it must stand alone between spaces; the first one
    counts), or None when there is none."""
    words = text.split(" ")
    return words.index(TRIGGER) + 1 if TRIGGER in words else None


def drop_word(windows: TokenWindows, word: int) -> TokenWindows:
    """`windows` without the tokens whose word id (TokenWindows.words) is `word`, each window filled
    back to its length with its own last entry, as ComfyUI's PhotoMakerEncode does. Word ids number
    weighted segments and embeddings, not space-separated words, so for most prompts this drops
    nothing and the trigger word stays in the prompt (ComfyUI's result)."""
    ids, weights, words, vectors = [], [], [], {}
    for w, (row, row_weights, row_words) in enumerate(zip(windows.ids, windows.weights, windows.words)):
        keep = [p for p, number in enumerate(row_words) if number != word]
        picks = keep + [len(row) - 1] * (len(row) - len(keep))
        ids.append([row[p] for p in picks])
        weights.append([row_weights[p] for p in picks])
        words.append([row_words[p] for p in picks])
        vectors.update({(w, new): windows.vectors[(w, p)] for new, p in enumerate(picks) if (w, p) in windows.vectors})
    return TokenWindows(ids, weights, vectors, words)


# -- loading -----------------------------------------------------------------------------------

def read_photomaker_state(path: Path) -> dict[str, torch.Tensor]:
    """The ID encoder's tensors (bare names) of a .bin pickle {"id_encoder": {...}, ...} or a
    .safetensors with `id_encoder.`-prefixed (or bare) keys."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raw = read_pickle(path)
        if not isinstance(raw, dict):
            raise CheckpointError(f"{path.name} holds a {type(raw).__name__}, not a PhotoMaker state dict")
        if isinstance(raw.get(ID_ENCODER), dict):
            raw = raw[ID_ENCODER]
        state = {k: v for k, v in raw.items() if isinstance(k, str) and torch.is_tensor(v)}
    else:
        with WeightFile(path) as f:
            prefix = ID_ENCODER + "." if any(k.startswith(ID_ENCODER + ".") for k in f.shapes) else ""
            state = {k[len(prefix):]: f.get(k) for k in f.shapes if k.startswith(prefix)}
    return {k: v for k, v in state.items() if not k.endswith("position_ids")}


def _not_photomaker(path: Path, state: dict) -> CheckpointError:
    from .file_kind import identify

    if any(k.startswith("qformer_perceiver.") for k in state):
        return CheckpointError(f"{path.name} is a PhotoMaker v2 file; only PhotoMaker v1 (photomaker-v1.bin) "
                               f"is supported, as in ComfyUI's core nodes")
    kind = identify({k: tuple(v.shape) for k, v in state.items()})
    found = f"{len(state)} tensors such as {', '.join(sorted(state)[:2])}" if state else "no tensors"
    return CheckpointError(f"{path.name} is not a PhotoMaker v1 file: expected an 'id_encoder' part with "
                           f"{', '.join(MARKERS)} (TencentARC's photomaker-v1.bin), found {found}."
                           + (f" {kind.advice()}" if kind else ""))


def photomaker_config_from_shapes(shapes: dict[str, tuple]) -> PhotoMakerConfig:
    """The config of an ID encoder's tensors (bare names) from their names and shapes."""
    vision = clip_vision_config_from_shapes(shapes, {"hidden_act": "quick_gelu"})
    return PhotoMakerConfig(vision, (shapes["visual_projection.weight"][0], shapes["visual_projection_2.weight"][0]))


def load_photomaker(path, device=None, dtype=None) -> PhotoMaker:
    """A PhotoMaker v1 file's ID encoder, on the device and in the dtype CLIP vision models load in."""
    from .checkpoint import _resolve

    path = Path(path)
    state = read_photomaker_state(path)
    if not all(m in state for m in MARKERS):
        raise _not_photomaker(path, state)
    try:
        config = photomaker_config_from_shapes({k: tuple(v.shape) for k, v in state.items()})
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(f"{path.name}: the PhotoMaker ID encoder's layout could not be read ({e})") from None
    device, dtype = _resolve(device, dtype, "clip_vision")
    with torch.device("meta"):
        module = PhotoMakerIDEncoder(config)
    expected = set(module.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(f"{path.name}: the PhotoMaker weights do not fit together; missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    try:
        module.load_state_dict({k: v.to(device, dtype) for k, v in state.items()}, strict=True, assign=True)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(f"{path.name}: the PhotoMaker weights do not fit together ({e})") from None
    return PhotoMaker(module.requires_grad_(False))
