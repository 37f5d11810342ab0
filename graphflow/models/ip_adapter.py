"""IP-Adapter (Ye et al. 2023, "IP-Adapter: Text Compatible Image Prompt Adapter for
Text-to-Image Diffusion Models"): an image prompt for SD1.x / SDXL UNets through decoupled
cross-attention, as h94/IP-Adapter's files and ComfyUI_IPAdapter_plus apply it.

A file holds
  image_proj   CLIP vision features -> image tokens [N, C] (C: the UNet's context width)
                 basic: image_embeds [D] -> Linear(D, N C) -> reshape [N, C] -> LayerNorm(C)
                 plus:  penultimate hidden states [T, D] -> Perceiver Resampler: N learned
                        latents [N, W] that, after proj_in (D -> W), go through 4 blocks of
                          latents += PerceiverAttention(x, latents)   (queries from the
                                     latents, keys / values from [x, latents], 64-wide heads)
                          latents += FeedForward(latents)  (LayerNorm, Linear 4W, GELU, Linear)
                        then proj_out (W -> C) and LayerNorm(C)
  ip_adapter   per UNet cross-attention (attn2) `N.to_k_ip.weight` / `N.to_v_ip.weight` (C -> the
               attention's inner width); N = 1, 3, 5, ... numbers the attn2 layers in diffusers'
               order (down blocks, up blocks, middle block; the even numbers were the attn1s)

Each attn2 then computes, before its output projection,
    attention(q, k_text, v_text) + weight * attention(q, to_k_ip(tokens), to_v_ip(tokens))
("V only" embeds scaling; "K+V" scales to_k_ip's and to_v_ip's outputs by the weight instead).
With CFG the negative prompt's rows get the uncond tokens: those of image_negative, else of zero
image embeddings (basic) or of a black image's hidden states (plus), as ComfyUI_IPAdapter_plus.
Between start and end percent of the schedule only; outside it the attention is the plain one.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .attention import attention
from .diffusion_model import DiffusionModel
from .lora import _shallow
from .weight_files import CheckpointError, WeightFile, read_pickle

HEAD_WIDTH = 64  # the Resampler's attention heads
EMBEDS_SCALINGS = ("V only", "K+V")


class IPAdapterError(CheckpointError):
    """A file that is no usable IP-Adapter, or a model it does not fit."""


@dataclass(frozen=True)
class IPAdapterConfig:
    kind: str  # "basic" (image_embeds) or "plus" (penultimate hidden states, Resampler)
    embed_dim: int  # the CLIP vision feature width it takes
    tokens: int  # image tokens it makes
    context_dim: int  # their width (the UNet's cross-attention context)
    width: int = 0  # plus: the Resampler's latent width
    depth: int = 0  # plus: Resampler blocks

    @property
    def heads(self) -> int:
        return self.width // HEAD_WIDTH


class ImageProjection(nn.Module):
    def __init__(self, cfg: IPAdapterConfig):
        super().__init__()
        self.tokens, self.context_dim = cfg.tokens, cfg.context_dim
        self.proj = nn.Linear(cfg.embed_dim, cfg.tokens * cfg.context_dim)
        self.norm = nn.LayerNorm(cfg.context_dim)

    def forward(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """[B, D] -> [B, N, C]."""
        return self.norm(self.proj(image_embeds).reshape(-1, self.tokens, self.context_dim))


class PerceiverAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, heads * HEAD_WIDTH, bias=False)
        self.to_kv = nn.Linear(dim, 2 * heads * HEAD_WIDTH, bias=False)
        self.to_out = nn.Linear(heads * HEAD_WIDTH, dim, bias=False)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        x, latents = self.norm1(x), self.norm2(latents)
        b, n, _ = latents.shape
        k, v = self.to_kv(torch.cat([x, latents], dim=1)).chunk(2, dim=-1)
        q, k, v = (t.view(b, -1, self.heads, HEAD_WIDTH).transpose(1, 2) for t in (self.to_q(latents), k, v))
        return self.to_out(attention(q, k, v).transpose(1, 2).reshape(b, n, -1))


class Resampler(nn.Module):
    def __init__(self, cfg: IPAdapterConfig):
        super().__init__()
        self.latents = nn.Parameter(torch.zeros(1, cfg.tokens, cfg.width))
        self.proj_in = nn.Linear(cfg.embed_dim, cfg.width)
        self.proj_out = nn.Linear(cfg.width, cfg.context_dim)
        self.norm_out = nn.LayerNorm(cfg.context_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(cfg.width, cfg.heads),
                           nn.Sequential(nn.LayerNorm(cfg.width), nn.Linear(cfg.width, 4 * cfg.width, bias=False),
                                         nn.GELU(), nn.Linear(4 * cfg.width, cfg.width, bias=False))])
            for _ in range(cfg.depth))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> [B, N, C]."""
        x = self.proj_in(hidden_states)
        latents = self.latents.expand(x.shape[0], -1, -1)
        for attn, ff in self.layers:
            latents = latents + attn(x, latents)
            latents = latents + ff(latents)
        return self.norm_out(self.proj_out(latents))


class IPAdapter(nn.Module):
    """The image projection and the per-attn2 key / value projections (in diffusers' order)."""

    def __init__(self, cfg: IPAdapterConfig, inner_dims: list[int]):
        super().__init__()
        self.config = cfg
        self.image_proj = Resampler(cfg) if cfg.kind == "plus" else ImageProjection(cfg)
        self.to_k_ip = nn.ModuleList(nn.Linear(cfg.context_dim, d, bias=False) for d in inner_dims)
        self.to_v_ip = nn.ModuleList(nn.Linear(cfg.context_dim, d, bias=False) for d in inner_dims)

    def features(self, clip_vision_output) -> torch.Tensor:
        """What the image projection takes from a CLIP vision output."""
        if self.config.kind == "plus":
            return clip_vision_output.penultimate_hidden_states
        return clip_vision_output.image_embeds

    @torch.no_grad()
    def tokens(self, features: torch.Tensor) -> torch.Tensor:
        p = next(self.image_proj.parameters())
        width = features.shape[-1]
        if width != self.config.embed_dim or features.ndim != (3 if self.config.kind == "plus" else 2):
            want = "penultimate hidden states [B, T, " if self.config.kind == "plus" else "image embeddings [B, "
            raise IPAdapterError(f"this IP-Adapter takes CLIP vision {want}{self.config.embed_dim}], got "
                                 f"{tuple(features.shape)}: use the CLIP vision model it was trained with "
                                 f"(ViT-H for the SD1.5 and *_vit-h SDXL files, ViT-bigG for the others)")
        return self.image_proj(features.to(p.device, p.dtype)).float()


def read_ip_adapter_state(path: Path) -> dict[str, torch.Tensor]:
    """Flat `image_proj.*` / `ip_adapter.*` keys from a .safetensors file or the .bin pickle's
    {"image_proj": {...}, "ip_adapter": {...}}."""
    if path.suffix == ".safetensors":
        with WeightFile(path) as f:
            return {k: f.get(k) for k in f.shapes}
    raw = read_pickle(path)
    if not isinstance(raw, dict):
        raise IPAdapterError(f"{path.name} holds a {type(raw).__name__}, not an IP-Adapter state dict")
    flat = {}
    for group, value in raw.items():
        if isinstance(value, dict):
            flat.update({f"{group}.{k}": v for k, v in value.items() if torch.is_tensor(v)})
        elif torch.is_tensor(value):
            flat[group] = value
    return flat


def load_ip_adapter(path) -> IPAdapter:
    """An IP-Adapter file (basic or plus, SD1.5 or SDXL), float32 on the CPU."""
    path = Path(path)
    state = read_ip_adapter_state(path)
    proj = {k[len("image_proj."):]: v for k, v in state.items() if k.startswith("image_proj.")}
    layers = {k[len("ip_adapter."):]: v for k, v in state.items() if k.startswith("ip_adapter.")}
    if not proj or not layers:
        from .file_kind import identify

        kind = identify({k: tuple(v.shape) for k, v in state.items()})
        found = f"{len(state)} tensors such as {', '.join(sorted(state)[:2])}" if state else "no tensors"
        raise IPAdapterError(f"{path.name} is no IP-Adapter: expected image_proj.* and ip_adapter.N.to_k_ip.weight "
                             f"keys (h94/IP-Adapter's files), found {found}." + (f" {kind.advice()}" if kind else ""))
    if any("lora" in k for k in layers) or "proj.0.weight" in proj or "perceiver_resampler.proj_in.weight" in proj:
        raise IPAdapterError(f"{path.name} is a FaceID or 'full' IP-Adapter; only the basic and plus image "
                             f"adapters (ip-adapter_*, ip-adapter-plus_*) are supported")
    numbers = sorted({int(k.split(".")[0]) for k in layers if k.split(".")[0].isdigit()})
    try:
        to_k = [layers[f"{n}.to_k_ip.weight"] for n in numbers]
        to_v = [layers[f"{n}.to_v_ip.weight"] for n in numbers]
        context_dim = to_k[0].shape[1]
        if "latents" in proj:
            width = proj["latents"].shape[2]
            depth = len({k.split(".")[1] for k in proj if k.startswith("layers.")})
            cfg = IPAdapterConfig("plus", proj["proj_in.weight"].shape[1], proj["latents"].shape[1], context_dim,
                                  width, depth)
        else:
            cfg = IPAdapterConfig("basic", proj["proj.weight"].shape[1], proj["proj.weight"].shape[0] // context_dim,
                                  context_dim)
        adapter = IPAdapter(cfg, [w.shape[0] for w in to_k])
        adapter.image_proj.load_state_dict({k: v.float() for k, v in proj.items()})
        adapter.to_k_ip.load_state_dict({f"{i}.weight": w.float() for i, w in enumerate(to_k)})
        adapter.to_v_ip.load_state_dict({f"{i}.weight": w.float() for i, w in enumerate(to_v)})
    except (KeyError, IndexError, RuntimeError) as e:
        raise IPAdapterError(f"{path.name}: the IP-Adapter weights do not fit together ({e})") from None
    return adapter.eval().requires_grad_(False)


def cross_attentions(unet: nn.Module) -> list[str]:
    """The paths of the UNet's attn2 modules in diffusers' order: input, output, then middle blocks."""
    paths = [name for name, _ in unet.named_modules() if name.endswith(".attn2")]
    order = {"input_blocks": 0, "output_blocks": 1, "middle_block": 2}
    return sorted(paths, key=lambda p: order.get(p.split(".")[0], 3))  # stable: block order kept within


def _ip_attention(to_k: nn.Linear, to_v: nn.Linear, cond: torch.Tensor, uncond: torch.Tensor, weight: float,
                  sigma_range: tuple[float, float] | None, scaling: str):
    keys_values: dict = {}  # (negative rows, batch, device, dtype) -> the image tokens' keys and values
    active = [None, True]  # [the UNetRows judged last, its verdict]: sigma is read once per UNet call

    def extra(q: torch.Tensor) -> torch.Tensor | None:
        from graphflow.sampling.guidance import unet_rows

        rows = unet_rows.get()
        if sigma_range is not None and rows is not None:
            if active[0] is not rows:
                s = float(rows.sigma.reshape(-1)[0])
                active[:] = [rows, sigma_range[1] <= s <= sigma_range[0]]
            if not active[1]:
                return None
        b, heads = q.shape[0], q.shape[1]
        negative = rows.negative if rows is not None and any(rows.negative) and len(rows.negative) == b else None
        key = (negative, b, q.device, q.dtype)
        if key not in keys_values:
            if to_k.weight.device != q.device or to_k.weight.dtype != q.dtype:
                to_k.to(q.device, q.dtype)  # run in the UNet's device and dtype, moved once
                to_v.to(q.device, q.dtype)
            tokens = cond.to(q.device, q.dtype).expand(b, -1, -1)
            if negative is not None:
                rows_mask = torch.tensor(negative, device=q.device)[:, None, None]
                tokens = torch.where(rows_mask, uncond.to(q.device, q.dtype).expand(b, -1, -1), tokens)
            with torch.no_grad():
                k, v = to_k(tokens), to_v(tokens)
            if scaling == "K+V":
                k, v = k * weight, v * weight
            keys_values[key] = tuple(t.view(b, -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (k, v))
        out = attention(q, *keys_values[key])
        return out if scaling == "K+V" else out * weight
    return extra


def apply_ip_adapter(model: DiffusionModel, adapter: IPAdapter, cond: torch.Tensor, uncond: torch.Tensor,
                     weight: float, sigma_range: tuple[float, float] | None = None,
                     scaling: str = "V only") -> DiffusionModel:
    """A new MODEL whose UNet cross-attentions (shallow copies) add the image prompt's attention.
    cond / uncond: image tokens [1, N, C] for the positive / negative prompt's rows. sigma_range
    (sigma_start, sigma_end): active only while sigma_end <= sigma <= sigma_start (None: always).
    Weights are shared; the input model is unchanged."""
    if scaling not in EMBEDS_SCALINGS:
        raise ValueError(f"embeds scaling {scaling!r} is not supported; expected one of {', '.join(EMBEDS_SCALINGS)}")
    if model.is_flow:
        raise IPAdapterError(f"IP-Adapter is for SD1.x / SDXL UNets, not {model.arch}")
    paths = cross_attentions(model.unet)
    if len(paths) != len(adapter.to_k_ip):
        raise IPAdapterError(f"this IP-Adapter has weights for {len(adapter.to_k_ip)} cross-attention layers, the "
                             f"{model.arch} model has {len(paths)}: it was made for another model (SD1.5: 16, SDXL: 70)")
    modules = dict(model.unet.named_modules())
    for path, to_k in zip(paths, adapter.to_k_ip):
        attn2 = modules[path]
        if to_k.out_features != attn2.to_k.out_features or attn2.to_k.in_features != adapter.config.context_dim:
            raise IPAdapterError(f"this IP-Adapter's layer for {path} maps {to_k.in_features} to {to_k.out_features} "
                                 f"features; the model's attention takes a {attn2.to_k.in_features}-wide context into "
                                 f"{attn2.to_k.out_features}: it was made for another model")
    unet = _shallow(model.unet)
    copied = {"": unet}
    for index, path in enumerate(paths):
        parent = unet
        parts = path.split(".")
        for depth, part in enumerate(parts):
            prefix = ".".join(parts[:depth + 1])
            if prefix not in copied:
                copied[prefix] = _shallow(parent._modules[part])
                parent._modules[part] = copied[prefix]
            parent = copied[prefix]
        extra = _ip_attention(adapter.to_k_ip[index], adapter.to_v_ip[index], cond, uncond, weight, sigma_range, scaling)
        parent.extra_attention = extra if parent.extra_attention is None else _sum(parent.extra_attention, extra)
    return model.with_unet(unet)


def _sum(first, second):
    """Two IP-Adapters applied one after the other: both image prompts' attentions add up."""
    def extra(q: torch.Tensor) -> torch.Tensor | None:
        a, b = first(q), second(q)
        return b if a is None else a if b is None else a + b
    return extra
