"""Union ControlNet for SDXL (xinsir's ControlNet++, `controlnet-union-sdxl-1.0` and its promax
variant): one ControlNet for several kinds of hint, told which one it gets.

The body is the SDXL ControlNet's (graphflow.models.controlnet). The type travels two ways:
- the time embedding gets `control_add_embedding` (linear, SiLU, linear) of the type vector (one
  1 at the type's index among `types`, zeros for "auto"), each entry embedded sinusoidally in
  `type_embedding` (256) channels as SDXL embeds its size numbers;
- the embedded hint gets a per-channel shift: its spatial mean plus `task_embedding[type]` goes
  through `transformer_layes` (CLIP's residual attention block: LayerNorm, self-attention,
  LayerNorm, QuickGELU MLP) and `spatial_ch_projs`.
"auto" (no type) adds the embedded hint as is, as ComfyUI's SetUnionControlNetType "auto" does.

The attention runs over the tokens of one sample: one token, the hint's (ComfyUI's choice). xinsir's
and diffusers' ControlNetUnionModel pass [batch, tokens, C] to nn.MultiheadAttention, which reads
the batch as the sequence, and add the latent's token; with a batch of one, each token then only
sees itself and the result is the same as here.

The file is diffusers' layout (diffusion_pytorch_model[_promax].safetensors); the union's own
tensors keep their names (`task_embedding`, `transformer_layes.{i}.attn.in_proj_weight`, ...,
`spatial_ch_projs.*`, `control_add_embedding.linear_{1,2}.*`), the rest is renamed to the
original layout as for a plain ControlNet.
"""

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from graphflow.choices import UNION_CONTROLNET_TYPES

from .attention import attention
from .controlnet import ControlNet, ControlNetConfig
from .file_kind import UNION_KEYS
from .unet import timestep_embedding

HEADS = 8  # not in the file; with one token per sample the heads do not change the result


@dataclass
class UnionControlNetConfig(ControlNetConfig):
    types: int = 8  # task_embedding's rows: 6 (controlnet-union-sdxl-1.0), 8 (promax: + tile, repaint)
    width: int = 320  # the type transformer's width
    layers: int = 1
    type_embedding: int = 256  # sinusoidal channels per entry of the type vector


def union_config(base: ControlNetConfig, shapes: dict) -> UnionControlNetConfig:
    types, width = shapes["task_embedding"]
    layers = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("transformer_layes."))
    return UnionControlNetConfig(unet=base.unet, hint_channels=base.hint_channels, hint_block=base.hint_block,
                                 types=types, width=width, layers=layers,
                                 type_embedding=shapes["control_add_embedding.linear_1.weight"][1] // types)


class SelfAttention(nn.Module):
    """nn.MultiheadAttention's parameters (in_proj_weight/bias, out_proj), over the tokens of each sample."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias).reshape(b, n, 3, self.heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        return self.out_proj(attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class TypeBlock(nn.Module):
    """CLIP's residual attention block (xinsir's `transformer_layes` entries)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = SelfAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict(c_fc=nn.Linear(width, 4 * width), gelu=QuickGELU(),
                                             c_proj=nn.Linear(4 * width, width)))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class UnionControlNet(ControlNet):
    def __init__(self, config: UnionControlNetConfig):
        super().__init__(config)
        mc, emb_dim = config.unet.model_channels, config.unet.model_channels * 4
        self.task_embedding = nn.Parameter(torch.empty(config.types, config.width))
        self.transformer_layes = nn.Sequential(*[TypeBlock(config.width, HEADS) for _ in range(config.layers)])
        self.spatial_ch_projs = nn.Linear(config.width, mc)
        self.control_add_embedding = nn.Sequential(OrderedDict(
            linear_1=nn.Linear(config.type_embedding * config.types, emb_dim), act=nn.SiLU(),
            linear_2=nn.Linear(emb_dim, emb_dim)))

    @property
    def union_types(self) -> tuple[str, ...]:
        """The SetUnionControlNetType types this net knows ("auto" and the first `types`)."""
        return UNION_CONTROLNET_TYPES[:1 + self.config.types]

    def forward(self, x, hint, timesteps, context=None, y=None, control_type: int | None = None):
        """As ControlNet's, for hint type `control_type` (its number, 0 = openpose ... 7 = repaint;
        None = "auto")."""
        if control_type is not None and not 0 <= control_type < self.config.types:
            raise ValueError(f"this union ControlNet knows {self.config.types} types "
                             f"({', '.join(self.union_types[1:])}); got type number {control_type}")
        emb, context = self.embed(x, timesteps, context, y)
        one_hot = torch.zeros(self.config.types, device=emb.device)
        if control_type is not None:
            one_hot[control_type] = 1.0
        types = timestep_embedding(one_hot, self.config.type_embedding).reshape(1, -1)
        emb = emb + self.control_add_embedding(types.to(self.dtype))
        guided = self.input_hint_block(hint.to(emb.device, self.dtype))
        if control_type is not None:
            token = guided.mean(dim=(2, 3)) + self.task_embedding[control_type]
            shift = self.spatial_ch_projs(self.transformer_layes(token[:, None])[:, 0])
            guided = guided + shift[:, :, None, None]
        return self.encode(x, guided, emb, context)

    def control(self, applied, x, timesteps, context, y, unet_config=None, **unused) -> dict:
        hint = self.placed_hint(applied, x, context)
        return self(x, hint, timesteps, context, y, getattr(applied, "control_type", None))
