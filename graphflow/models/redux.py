"""FLUX.1 Redux: the style model that turns SigLIP image tokens into extra text tokens for FLUX.

    redux_up    Linear(1152 -> 3 * 4096), SiLU
    redux_down  Linear(3 * 4096 -> 4096)

It reads the SigLIP vision model's last_hidden_state (729 tokens for a 384-pixel image) and its
output is concatenated to the T5 tokens of a FLUX conditioning (StyleModelApply). The STYLE_MODEL
socket (StyleModel, load_style_model) also carries SD1.x's T2I-Adapter style model
(graphflow.models.t2i_style), as ComfyUI's StyleModelLoader reads both.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .weight_files import CheckpointError, WeightFile


class ReduxImageEncoder(nn.Module):
    def __init__(self, redux_dim: int = 1152, txt_dim: int = 4096):
        super().__init__()
        self.redux_up = nn.Linear(redux_dim, txt_dim * 3)
        self.redux_down = nn.Linear(txt_dim * 3, txt_dim)

    @property
    def image_width(self) -> int:
        return self.redux_up.in_features

    @property
    def txt_dim(self) -> int:
        return self.redux_down.out_features

    def forward(self, image_tokens: torch.Tensor) -> torch.Tensor:
        return self.redux_down(F.silu(self.redux_up(image_tokens)))


class StyleModel:
    """The STYLE_MODEL socket: image tokens [B, N, width] -> text-space tokens [B, M, txt_dim]
    (Redux: M = N; the T2I-Adapter style model: M = 8)."""

    def __init__(self, module: nn.Module):
        self.module = module.eval()

    @property
    def image_width(self) -> int:
        return self.module.image_width

    @property
    def txt_dim(self) -> int:
        return self.module.txt_dim

    def tokens(self, clip_vision_output) -> torch.Tensor:
        """The style tokens of every image, CPU float32 [B, N, txt_dim]."""
        from graphflow import memory

        hidden = clip_vision_output.last_hidden_state
        if hidden.shape[-1] != self.image_width:
            model = "a SigLIP vision model's" if isinstance(self.module, ReduxImageEncoder) else "a CLIP ViT-L's"
            raise ValueError(f"the style model reads {self.image_width}-wide image tokens ({model}); "
                             f"this CLIP vision output is {hidden.shape[-1]} wide")
        with memory.use(self.module, "style_model", "style_model"), torch.no_grad():
            dtype = next(self.module.parameters()).dtype
            out = self.module(hidden.to(memory.manager().device_for(self.module), dtype))
        return out.float().cpu()


def load_style_model(path, device=None, dtype=None) -> StyleModel:
    """A FLUX Redux file (redux_up / redux_down weights) or a T2I-Adapter style model (style_embedding)."""
    from .checkpoint import _assign, _resolve

    with WeightFile(path) as f:
        if "style_embedding" in f.shapes and "proj" in f.shapes:
            from .t2i_style import MARKER, build_style_adapter

            if MARKER not in f.shapes:
                raise CheckpointError(f"{f.path.name}: a T2I-Adapter style model without its transformer blocks "
                                      f"('{MARKER}')")
            return StyleModel(build_style_adapter(f, *_resolve(device, dtype, "style_model")))
        if "redux_up.weight" not in f.shapes or "redux_down.weight" not in f.shapes:
            from .architecture import format_prefixes, prefix_summary

            raise CheckpointError(f"{f.path.name} is not a style model (FLUX Redux or T2I-Adapter style): expected "
                                  f"'redux_up.weight' and 'redux_down.weight', or 'style_embedding'; found prefixes: "
                                  f"{format_prefixes(prefix_summary(f.shapes))}")
        up, down = f.shapes["redux_up.weight"], f.shapes["redux_down.weight"]
        if up[0] != 3 * down[0] or down[1] != up[0]:
            raise CheckpointError(f"{f.path.name}: redux_up {list(up)} and redux_down {list(down)} do not chain "
                                  f"(expected [3 d, w] and [d, 3 d])")
        with torch.device("meta"):
            module = ReduxImageEncoder(up[1], down[0])
        keys = [k for k in f.shapes if k.startswith(("redux_up.", "redux_down."))]
        return StyleModel(_assign(module, f, *_resolve(device, dtype, "style_model"), f.path.name, keys=keys))
