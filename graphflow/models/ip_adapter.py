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
("V only" embeds scaling; "K+V" scales to_k_ip's and to_v_ip's outputs by the weight instead;
the "C penalty" ones by weight * inner width / 1280, "K+mean(V)" only the values' mean over
each image's tokens, as Fooocus' channel penalty).
With CFG the negative prompt's rows get the uncond tokens: those of image_negative, else of zero
image embeddings (basic) or of a black image's hidden states (plus), as ComfyUI_IPAdapter_plus.
Between start and end percent of the schedule only; outside it the attention is the plain one.

Weight types (ComfyUI_IPAdapter_plus's) scale the weight per spatial transformer, numbered as
ComfyUI's transformer_index counts them: in the order the UNet runs them (input, middle, output
blocks; SD1.5 has 16, SDXL 11). Some keep only some transformers (SDXL "style transfer": output
block 1's alone); the "precise" ones also give, in some transformers, the positive rows zero
tokens and the negative rows the image's (a negative image prompt there). An attention mask
[M, H, W] is resized (bilinear) to each attention's token grid (the pack's grid: mask_grid) and
multiplies its image part.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .attention import attention
from .diffusion_model import DiffusionModel
from .lora import copied_modules
from .unet import latent_size
from .weight_files import CheckpointError, WeightFile, read_pickle

HEAD_WIDTH = 64  # the Resampler's attention heads
EMBEDS_SCALINGS = ("V only", "K+V", "K+V w/ C penalty", "K+mean(V) w/ C penalty")
EASE = ("ease in", "ease out", "ease in-out", "reverse in-out")
WEAK = {"weak input": ("input",), "weak middle": ("middle",), "weak output": ("output",),
        "strong middle": ("input", "output")}  # the blocks weighted 0.2
COMPOSITION_SDXL = (3,)  # the composition transformers: down_blocks.2.attentions.1 (input block 8)
COMPOSITION_SD1 = (4, 5)  # SD1.5's input blocks 7 and 8


def transformer_weights(weight_type: str, weight: float, sdxl: bool, layers: int,
                        composition_weight: float = 1.0, boost: float | None = None,
                        layer_weights: dict[int, float] | None = None) -> list[tuple[float, bool]]:
    """Per spatial transformer, in ComfyUI's transformer_index order: (weight, swapped), by
    ComfyUI_IPAdapter_plus's rules for `weight_type`; swapped: positive rows get zero tokens, the
    negative rows the image's. layers: the UNet's transformer count (SD1.5 16, SDXL 11: input,
    middle and output blocks' 6 / 1 / 9 and 4 / 1 / 6). boost: the precise types' other weight
    (IPAdapterPreciseStyleTransfer's style_boost, the composition transformers' weight;
    IPAdapterPreciseComposition's composition_boost, the others'), the weight itself when None.
    layer_weights {transformer: multiple of weight} (IPAdapterMS): only those transformers, the
    precise types still swapping, any other type as "linear"."""
    inputs = 4 if sdxl else 6
    blocks = ["input"] * inputs + ["middle"] + ["output"] * (layers - inputs - 1)
    if layer_weights is not None and weight_type not in ("style transfer precise", "composition precise"):
        weight_type = "linear"
    if weight_type in ("linear", *EASE, *WEAK) and layer_weights is None:
        out = []
        for index, block in enumerate(blocks):
            w = weight
            if weight_type in EASE:
                ramp = {"ease in": 1 - index / layers, "ease out": index / layers,
                        "ease in-out": 1 - abs(index - layers / 2) / (layers / 2),
                        "reverse in-out": abs(index - layers / 2) / (layers / 2)}[weight_type]
                w = weight * (0.05 + 0.95 * ramp)
            elif weight_type in WEAK and block in WEAK[weight_type]:
                w = weight * 0.2
            out.append((w, False))
        return out
    w, c = weight, composition_weight
    composition = COMPOSITION_SDXL if sdxl else COMPOSITION_SD1
    if layer_weights is not None:
        chosen = {index: v * w for index, v in layer_weights.items()}
    elif weight_type == "style transfer":
        chosen = {6: w} if sdxl else {i: w for i in (0, 1, 2, 3, *range(9, 16))}
    elif weight_type == "composition":
        chosen = {3: w} if sdxl else {4: w * 0.25, 5: w}
    elif weight_type == "strong style transfer":
        chosen = {i: w for i in ((0, 1, 2, *range(4, 11)) if sdxl else (0, 1, 2, 3, *range(6, 16)))}
    elif weight_type == "style and composition":
        chosen = {3: c, 6: w} if sdxl else {**{i: w for i in (0, 1, 2, 3, *range(9, 16))}, 4: c * 0.25, 5: c}
    elif weight_type == "strong style and composition":
        chosen = {**{i: w for i in range(11)}, 3: c} if sdxl else {**{i: w for i in range(16)}, 4: c, 5: c}
    elif weight_type == "style transfer precise":
        b = w if boost is None else boost
        chosen = {3: b, 6: w} if sdxl else {**{i: w for i in (0, 1, 2, 3, *range(9, 16))}, 4: b * 0.25, 5: b}
    elif weight_type == "composition precise":
        b = w if boost is None else boost
        chosen = ({**{i: b * 0.1 for i in range(11)}, 3: w, 6: b} if sdxl else
                  {**{i: b for i in range(16)}, 4: w * 0.25, 5: w, 6: b * 0.1, 7: b * 0.1, 8: b * 0.1})
    else:
        raise ValueError(f"weight type {weight_type!r} is not one of ComfyUI_IPAdapter_plus's")
    out = []
    for index in range(layers):
        in_composition = index in composition
        swapped = ((weight_type == "style transfer precise" and in_composition) or
                   (weight_type == "composition precise" and not in_composition))
        out.append((chosen.get(index, 0.0), swapped and index in chosen))
    return out


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


def transformer_numbers(paths: list[str]) -> tuple[list[int], int]:
    """For each attn2 path, its spatial transformer's number in the order the UNet runs them
    (input, middle, output blocks: ComfyUI's transformer_index), and how many there are."""
    order = {"input_blocks": 0, "middle_block": 1, "output_blocks": 2}

    def key(transformer: str):
        parts = transformer.split(".")
        return order.get(parts[0], 3), [int(p) if p.isdigit() else 0 for p in parts[1:]]

    transformers = sorted({p.split(".transformer_blocks.")[0] for p in paths}, key=key)
    return [transformers.index(p.split(".transformer_blocks.")[0]) for p in paths], len(transformers)


def _latent_index(negative, b: int, count: int, chunks: int = 0) -> list[int]:
    """Which of `count` per-latent things (masks, IPAdapterBatch's images) each of b rows takes: each
    row's latent the one of its number, the last one when there are fewer. chunks: how many
    conditioning entries the rows batch (equal chunks of the latents, UNetRows.conds): a row's
    latent is its place in its chunk, as the pack's (rows / len(cond_or_uncond) per entry, several
    positive entries batched too); 0: each side's run of rows."""
    if chunks and b % chunks == 0:
        return [min(i % (b // chunks), count - 1) for i in range(b)]
    flags = negative if negative is not None else (False,) * b
    index, run = [], 0
    for i, flag in enumerate(flags):
        run = run + 1 if i and flag == flags[i - 1] else 0
        index.append(min(run, count - 1))
    return index


def _uneven_rows(cond: torch.Tensor, uncond: torch.Tensor, negative, chunks: int, b: int) -> torch.Tensor:
    """The rows' tokens [b, L, C] when the two sides concatenate different numbers of images
    (IPAdapterStyleComposition: more or fewer composition images than style images): as the pack,
    whose attention reads its keys so, each batched entry's chunk of rows holds its side's images
    once per latent, all the chunks' tokens laid end to end and cut evenly into the b rows (so
    rows mix the sides' images, an image may straddle two rows)."""
    chunks = chunks if chunks and b % chunks == 0 else b
    size = b // chunks
    flat = torch.cat([(uncond if negative[c * size] else cond)[0].repeat(size, 1) for c in range(chunks)])
    if flat.shape[0] % b:
        raise IPAdapterError(f"the positive side's {cond.shape[1]} image tokens and the negative side's "
                             f"{uncond.shape[1]} do not share out evenly over {b} rows: give as many composition "
                             f"images as style images, or combine them")
    return flat.reshape(b, -1, flat.shape[-1])


def mask_grid(latent: tuple[int, int], tokens: int) -> tuple[int, int]:
    """The (h, w) ComfyUI_IPAdapter_plus resizes an attention mask to, from the latent's size and
    the attention's token count alone: h = latent h / sqrt(latent area / tokens), truncated, plus
    one unless that divides the tokens; w = tokens // h. The token grid itself for most sizes;
    for some odd ones another (13 x 10 latent, 4 x 3 tokens: 3 x 4)."""
    h = latent[0] / math.sqrt(latent[0] * latent[1] / tokens)
    h = int(h) + int(tokens % int(h) != 0)
    return h, tokens // h


def _row_mask(mask: torch.Tensor, size: tuple[int, int], negative, b: int, tokens: int, chunks: int = 0) -> torch.Tensor:
    """The mask resized to `size`, its rows of pixels laid end to end, centred in the attention's
    tokens (zero padded or cut where size holds more or fewer), one per row [B, 1, tokens, 1]."""
    grid = torch.nn.functional.interpolate(mask[:, None].float(), size=size, mode="bilinear").flatten(1)
    if grid.shape[1] < tokens:
        pad = tokens - grid.shape[1]
        grid = torch.nn.functional.pad(grid, (pad // 2, pad - pad // 2))
    else:
        start = (grid.shape[1] - tokens) // 2
        grid = grid[:, start:start + tokens]
    return grid[_latent_index(negative, b, mask.shape[0], chunks)].reshape(b, 1, -1, 1)


def _ip_attention(to_k: nn.Linear, to_v: nn.Linear, cond: torch.Tensor, uncond: torch.Tensor, weight: float,
                  sigma_range: tuple[float, float] | None, scaling: str, mask: torch.Tensor | None = None,
                  image_tokens: int | None = None):
    """image_tokens: the tokens each image gives (several images' concatenated in cond / uncond);
    K+mean(V) takes the values' mean over each image's own tokens, as the pack (its images are
    rows of the batch until the attention joins them). None: all the tokens are one image's."""
    keys_values: dict = {}  # (negative rows, entries, batch, device, dtype) -> the image tokens' keys and values
    masks: dict = {}  # (negative rows, entries, batch, grid, tokens, device, dtype) -> the mask per row at the grid
    active = [None, True]  # [the UNetRows judged last, its verdict]: sigma is read once per UNet call
    from graphflow.sampling.guidance import unet_rows  # once, not in every attention call
    from graphflow.sampling.model_sampling import in_sigma_window

    def extra(q: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor | None:
        rows = unet_rows.get()
        if sigma_range is not None and rows is not None:
            if active[0] is not rows:
                active[:] = [rows, in_sigma_window(rows.sigma, *sigma_range)]
            if not active[1]:
                return None
        b, heads = q.shape[0], q.shape[1]
        negative = rows.negative if rows is not None and any(rows.negative) and len(rows.negative) == b else None
        chunks = len(rows.conds) if rows is not None else 0
        key = (negative, chunks, b, q.device, q.dtype)
        if key not in keys_values:
            if to_k.weight.device != q.device or to_k.weight.dtype != q.dtype:
                to_k.to(q.device, q.dtype)  # run in the UNet's device and dtype, moved once
                to_v.to(q.device, q.dtype)
            if negative is not None and cond.shape[1] != uncond.shape[1]:
                tokens = _uneven_rows(cond, uncond, negative, chunks, b).to(q.device, q.dtype)
            else:
                rows_index = _latent_index(negative, b, cond.shape[0], chunks)
                tokens = cond.to(q.device, q.dtype)[rows_index]
                if negative is not None:
                    rows_mask = torch.tensor(negative, device=q.device)[:, None, None]
                    tokens = torch.where(rows_mask, uncond.to(q.device, q.dtype)[rows_index], tokens)
            with torch.no_grad():
                k, v = to_k(tokens), to_v(tokens)
            if scaling != "V only":
                # the C penalties weaken the narrow (high resolution) attentions: inner width / 1280
                w = weight * (k.shape[-1] / 1280 if scaling.endswith("C penalty") else 1.0)
                if scaling.startswith("K+mean(V)"):  # only the values' mean over each image's tokens is scaled
                    per_image = v.reshape(-1, image_tokens or v.shape[1], v.shape[-1])  # rows' tokens end to end
                    mean = per_image.mean(1, keepdim=True)
                    k, v = k * w, (per_image - mean + mean * w).reshape(v.shape)
                else:
                    k, v = k * w, v * w
            keys_values[key] = tuple(t.view(b, -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (k, v))
        out = attention(q, *keys_values[key])
        if scaling == "V only":
            out = out * weight
        if mask is not None:
            latent = latent_size.get()  # as the pack, the mask's grid comes from the latent's size
            grid = mask_grid(latent, q.shape[2]) if latent is not None else size
            if grid is None or (latent is None and size[0] * size[1] != q.shape[2]):
                raise IPAdapterError(f"an attention mask needs the token grid; got {q.shape[2]} tokens, grid {size}")
            grid_key = (negative, chunks, b, grid, q.shape[2], q.device, q.dtype)
            if grid_key not in masks:
                masks[grid_key] = _row_mask(mask, grid, negative, b, q.shape[2], chunks).to(q.device, q.dtype)
            out = out * masks[grid_key]
        return out
    return extra


def apply_ip_adapter(model: DiffusionModel, adapter: IPAdapter, cond: torch.Tensor, uncond: torch.Tensor,
                     weight: float, sigma_range: tuple[float, float] | None = None,
                     scaling: str = "V only", weight_type: str = "linear",
                     mask: torch.Tensor | None = None, composition_weight: float = 1.0,
                     composition_cond: torch.Tensor | None = None, boost: float | None = None,
                     layer_weights: dict[int, float] | None = None) -> DiffusionModel:
    """A new MODEL whose UNet cross-attentions (shallow copies) add the image prompt's attention.
    cond / uncond: image tokens [1, N, C] for the positive / negative prompt's rows, or [M, N, C]:
    one set per latent of the batch (IPAdapterBatch; the last one for the latents beyond M). sigma_range
    (sigma_start, sigma_end): active only while sigma_end <= sigma <= sigma_start (None: always).
    weight_type: how the weight spreads over the transformers (transformer_weights; the ones
    weighted 0 are left as they are). mask [M, H, W] or [H, W]: where the image prompt acts.
    composition_weight: the "style and composition" types' weight of the composition transformers;
    composition_cond: their positive tokens (IPAdapterStyleComposition's composition image; the
    pack's cond_alt), the others keeping cond's (the style image's). boost, layer_weights: the
    precise nodes' boosts and IPAdapterMS's per-transformer weights (transformer_weights).
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
    if mask is not None:
        mask = mask[None] if mask.ndim == 2 else mask
        if mask.ndim != 3:
            raise IPAdapterError(f"an attention mask is a MASK [B, H, W], got shape {tuple(mask.shape)}")
    numbers, layers = transformer_numbers(paths)
    sdxl = model.arch.startswith("sdxl")
    per_transformer = transformer_weights(weight_type, weight, sdxl, layers, composition_weight, boost, layer_weights)
    composition = COMPOSITION_SDXL if sdxl else COMPOSITION_SD1
    # as ComfyUI_IPAdapter_plus, a transformer weighted 0 keeps the plain attention, not one plus zero
    patched = [index for index in range(len(paths)) if per_transformer[numbers[index]][0] != 0]
    unet, copies = copied_modules(model.unet, [paths[index] for index in patched])
    for index in patched:
        layer_weight, swapped = per_transformer[numbers[index]]
        parent = copies[paths[index]]
        layer_cond = cond
        if composition_cond is not None and numbers[index] in composition:
            layer_cond = composition_cond
        layer_cond, layer_uncond = (torch.zeros_like(layer_cond), layer_cond) if swapped else (layer_cond, uncond)
        extra = _ip_attention(adapter.to_k_ip[index], adapter.to_v_ip[index], layer_cond, layer_uncond, layer_weight,
                              sigma_range, scaling, mask, adapter.config.tokens)
        parent.extra_attention = extra if parent.extra_attention is None else _sum(parent.extra_attention, extra)
    return model.with_unet(unet)


def _sum(first, second):
    """Two IP-Adapters applied one after the other: both image prompts' attentions add up."""
    def extra(q: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor | None:
        a, b = first(q, size), second(q, size)
        return b if a is None else a if b is None else a + b
    return extra


@dataclass(frozen=True)
class IPAdapterBundle:
    """What ComfyUI_IPAdapter_plus's unified loader hands on as its IPADAPTER: the adapter with the
    CLIP vision model it was trained with (the apply nodes' clip_vision when none is connected)."""
    adapter: IPAdapter
    clip_vision: object
    adapter_file: str
    clip_vision_file: str


def preset_patterns(preset: str, sdxl: bool) -> tuple[list[str], str]:
    """ComfyUI_IPAdapter_plus's unified loader presets: the file-name patterns (regular
    expressions, case-insensitive, searched in the sorted file lists; the first file matching
    wins) of the IP-Adapter (the first pattern that finds one) and of its CLIP vision model."""
    name = preset.lower()
    ext = r"\.(safetensors|bin)$"
    if name.startswith("light"):
        if sdxl:
            raise IPAdapterError(f"preset {preset!r} is for SD1.5 only")
        adapters = [r"sd15.light.v11" + ext, r"sd15.light" + ext]  # v1.1, else the first version
    elif name.startswith("standard"):
        adapters = [r"ip.adapter.sdxl.vit.h" + ext if sdxl else r"ip.adapter.sd15" + ext]
    elif name.startswith("vit-g"):
        adapters = [r"ip.adapter.sdxl" + ext if sdxl else r"sd15.vit.g" + ext]
    elif name.startswith("plus ("):
        adapters = [r"plus.sdxl.vit.h" + ext if sdxl else r"ip.adapter.plus.sd15" + ext]
    elif name.startswith("plus face"):
        adapters = [r"plus.face.sdxl.vit.h" + ext if sdxl else r"plus.face.sd15" + ext]
    elif name.startswith("full"):
        raise IPAdapterError(f"preset {preset!r} needs the 'full face' IP-Adapter, which is not supported")
    else:
        raise IPAdapterError(f"unknown IP-Adapter preset {preset!r}")
    if name.startswith("vit-g"):
        vision = r"(ViT.bigG.14.*39B.b160k|ipadapter.*sdxl|sdxl.*model\.(bin|safetensors))"
    else:
        vision = r"(ViT.H.14.*s32B.b79K|ipadapter.*sd15|sd1.?5.*model\.(bin|safetensors))"
    return adapters, vision
