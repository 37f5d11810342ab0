"""LoRA-family files applied to a MODEL and a CLIP without touching the originals.

Formats (per patched layer, all in float32; `strength` multiplies the whole change):
  LoRA / LoCon  `lora_down` [r, in(, kh, kw)], `lora_up` [out, r(, 1, 1)], optional `alpha`:
                delta = (alpha / r) up @ down; with LoCon's Tucker core `lora_mid` [r, r, kh, kw]
                the down projection is `mid` contracted with `down` (down is then [r, in, 1, 1])
  LoHa          `hada_w1_a/b`, `hada_w2_a/b` (optional CP cores `hada_t1/t2`):
                delta = (alpha / r) (w1_a @ w1_b) * (w2_a @ w2_b), r = w1_b's rows
  LoKr          `lokr_w1` or `lokr_w1_a @ lokr_w1_b`, `lokr_w2` or `lokr_w2_a @ lokr_w2_b` (or CP
                with `lokr_t2`): delta = s kron(w1, w2), s = alpha / r when a factor is
                decomposed (r = its rank), else 1
  GLoRA         `a1.weight`, `a2.weight`, `b1.weight`, `b2.weight` (LyCORIS), depending on the weight
                W itself: delta = s (W a1 a2 + b1 b2) (convs: a1, a2 act on W's input channels),
                or, in old LyCORIS files (a1 [r, in], a2 [in, r] on a square W), s (b2 b1 + W a2 a1);
                s = alpha / r, as ComfyUI reads both
  OFT           `oft_blocks` [n, b, b] (LyCORIS; `rescale` is read and, as by ComfyUI, not used), on a
                weight of n * b output rows: Q = blocks - blocksᵀ, bounded to norm alpha when alpha > 0
                (alpha is OFT's constraint, not a scale), R = (I + Q)(I - Q)⁻¹; each block of b rows
                W_k' = W_k + strength² (Rᵀ - I) W_k (ComfyUI applies strength twice: to R - I and to
                the change; at strength 1 it is the rotation Rᵀ W_k). OFT with dora_scale is refused
  BOFT          `oft_blocks` [m, n, b, b] (4-dim): m butterfly stages, each R_i (as OFT's, bounded by
                alpha, blended strength R_i + (1 - strength) I) acting on blocks of b rows after
                interleaving pairs of row groups 2^i b/2 long, then the rows put back; times
                `rescale` if present; W + strength (that - W), as ComfyUI. BOFT with dora_scale is refused
  set           `set_weight`: the weight replaced by it, whatever the strength (ComfyUI's "set")
  full diff     `diff`: delta = diff (any weight: linear, conv, norm, embedding); LyCORIS's norm
                layer diffs `w_norm` / `b_norm` are read as `diff` / `diff_b`
  bias diff     `diff_b`: the module's bias + diff_b (alone or beside any of the above)
  DoRA          any of the above with `dora_scale` (LyCORIS/kohya), as ComfyUI applies it: with
                one entry per output row ([out, 1, ...], LyCORIS's wd_on_out)
                W' = dora_scale * (W + delta) / ||W||, the norm of the layer's weight before this
                module (ComfyUI's weight_decompose takes the un-merged rows' norms there, where
                LyCORIS and PEFT take the merged ones), else per input column
                W' = dora_scale * (W + delta) / ||W + delta||; W + strength (W' - W).
                PEFT's `lora_magnitude_vector` (one per output row, which ComfyUI does not read)
                is applied as PEFT merges it: W' = m * (W + delta) / ||W + delta|| per row

Key layouts:
  kohya         `<prefix><module path with '_'>.<part>`, prefixes `lora_unet_` (UNet, diffusers'
                block names or LDM's; FLUX/SD3's own module names), `lora_te_` (SD1/SD2 text
                encoder), `lora_te1_` / `lora_te2_` (SDXL CLIP-L / bigG), text modules in
                transformers' names (text_model.encoder.layers.0.self_attn.q_proj); T5 of SD3 /
                FLUX numbered after the CLIP towers as ComfyUI does (SD3 `lora_te3_`, FLUX
                `lora_te2_` or `lora_te3_`) + transformers' T5 path (encoder_block_0_layer_0_SelfAttention_q)
  diffusers/PEFT `unet.` / `transformer.` / `text_encoder.` / `text_encoder_2.` + dotted module
                path + `.lora_A.weight` / `.lora_B.weight` (or Mochi's `.lora_A` / `.lora_B`, `.lora.down.weight` /
                `.lora.up.weight`, `.lora_A.default.weight`, `.lora_linear_layer.down.weight`, or old attention
                processors' `processor.to_q_lora.down.weight`), `.alpha`,
                `.lora_magnitude_vector`; PEFT's `base_model.model.` is dropped (with no component
                prefix after it, the names are the transformer's, as ComfyUI reads SD3's)
  LyCORIS       SimpleTuner's `lycoris_` + diffusers' module path with '_' (as `lora_unet_`)
  bare          diffusers' transformer names with no prefix (`transformer_blocks.0.attn.to_q...`, as
                ComfyUI reads Qwen-Image's and DiffSynth's FLUX LoRAs) as `transformer.`; any other
                dotted module path with no prefix (Mochi's, ACE-Step's, Omnigen2's official LoRAs) as
                `diffusion_model.` + the path
  Cascade       `lora_prior_unet_` / `lora_prior_te_` (Stable Cascade's kohya LoRAs) as `lora_unet_` / `lora_te_`
  ComfyUI/BFL   `diffusion_model.` + the model's own module path + the parts of either layout;
                text encoders as `text_encoders.<clip_l|clip_g|clip_h>.transformer.` + the module's
                path in transformers' names (what ComfyUI's LoraSave writes, graphflow.models.lora_extract)
  FLUX / SD3    also diffusers' module names (`transformer.transformer_blocks.0.attn.to_q`,
                `single_transformer_blocks.0.proj_mlp`, kohya-style `lora_transformer_...`):
                separate q/k/v (and FLUX's proj_mlp) patch row blocks of our fused qkv / linear1
                (see flow_lora_names)

`apply_lora` returns new model/clip objects that share the input's networks and carry the LoRA as
weight patches (graphflow.memory.WeightPatch, after any the input carried): the memory manager
applies a model's patches to the shared weights before it runs and restores the originals when
another patch set (the un-patched model, another LoRA) runs, so no patched copy of the network is
kept and a graph can keep using the un-patched model. A patched fp8 weight is stored stochastically
rounded, seeded by its ComfyUI state-dict key, as ComfyUI's patcher does
(cast_layers.stochastic_round). A LoRA module that matches no layer is an error
(a LoRA for another architecture must not silently do nothing); strength 0 returns the input.
"""

import copy
import functools
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from graphflow.memory import WeightPatch

from .weight_files import CheckpointError, WeightFile
from .diffusers_names import RESNET
from .diffusion_model import DiffusionModel
from .flow_lora_names import flow_lora_names
from .text_encoders import TextEncoder

UNSUPPORTED = {"on_input": "IA3", "oft_diag": "old LyCORIS OFT (oft_diag)", "boft_": "BOFT"}
NORM_PARTS = {"w_norm": "diff", "b_norm": "diff_b"}  # LyCORIS's trained norm layers: plain diffs
PARTS = ("lora_down.weight", "lora_up.weight", "lora_mid.weight", "alpha", "dora_scale", "magnitude", "diff", "diff_b",
         "set_weight",
         "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
         "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2",
         "a1.weight", "a2.weight", "b1.weight", "b2.weight", "oft_blocks", "rescale")
# diffusers/PEFT part spellings -> kohya's
DIFFUSERS_PARTS = {"lora_A.weight": "lora_down.weight", "lora_B.weight": "lora_up.weight",
                   "lora_A": "lora_down.weight", "lora_B": "lora_up.weight",  # Mochi's, with no .weight
                   "lora_A.default.weight": "lora_down.weight",  # PEFT's with its adapter name left in
                   "lora_B.default.weight": "lora_up.weight",
                   "lora.down.weight": "lora_down.weight", "lora.up.weight": "lora_up.weight",
                   "lora_down.weight": "lora_down.weight", "lora_up.weight": "lora_up.weight",
                   "lora_mid.weight": "lora_mid.weight",
                   "lora_linear_layer.down.weight": "lora_down.weight",  # old diffusers text encoder LoRAs
                   "lora_linear_layer.up.weight": "lora_up.weight",
                   "lora_magnitude_vector": "magnitude", "lora_magnitude_vector.weight": "magnitude",
                   "dora_scale": "dora_scale", "alpha": "alpha"}
DIFFUSERS_PREFIXES = {"unet.": "lora_unet_", "transformer.": "lora_unet_", "diffusion_model.": "lora_unet_",
                      "model.diffusion_model.": "lora_unet_", "text_encoder.": "lora_te_",
                      "text_encoder_2.": "lora_te2_"}
# diffusers' transformer names with no prefix at all: ComfyUI reads Qwen-Image's LoRAs so (its QwenImage key map)
BARE_TRANSFORMER_STARTS = ("transformer_blocks.", "img_in.", "txt_in.", "txt_norm.", "time_text_embed.", "norm_out.",
                           "proj_out.")
# old diffusers attention-processor LoRAs: attn1.processor.to_q_lora.up.weight -> attn1.to_q
PROCESSOR_NAMES = {"to_q": "to_q", "to_k": "to_k", "to_v": "to_v", "to_out": "to_out.0"}
PROCESSOR_PARTS = {"_lora.down.weight": "lora_down.weight", "_lora.up.weight": "lora_up.weight"}
RESNET_NAMES = {ldm: name for name, ldm in RESNET.items()}  # LDM ResBlock part -> diffusers'
TEXT_ENCODERS = "text_encoders."  # ComfyUI's text-encoder prefix: module names kept dotted
TEXT_ENCODER_KEYS = ("lora_te", TEXT_ENCODERS)  # the starts of every text-encoder module's keys
DORA_EPS = torch.finfo(torch.float32).eps


class LoraError(CheckpointError):
    """A LoRA file that cannot be applied to the given model, with what was found."""


def _cp(core: torch.Tensor, b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """A CP/Tucker-decomposed conv weight: core [r, r, kh, kw] with b [r, in] and a [out, r]."""
    return torch.einsum("i j k l, j r, i p -> p r k l", core, b.flatten(1), a.flatten(1))


@dataclass
class LoraModule:
    """One patched layer: its tensors by kohya part name (see the module docstring)."""
    parts: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def patches_weight(self) -> bool:
        return any(n != "diff_b" for n in self.parts)

    @property
    def kind(self) -> str:
        names = self.parts.keys()
        if not self.patches_weight:
            return "bias diff"
        if any(n.startswith("hada_") for n in names):
            return "LoHa"
        if any(n.startswith("lokr_") for n in names):
            return "LoKr"
        if "a1.weight" in names:
            return "GLoRA"
        if "oft_blocks" in names:
            return "BOFT" if self.parts["oft_blocks"].dim() == 4 else "OFT"
        if "diff" in names:
            return "diff"
        if "set_weight" in names:
            return "set"
        return "LoRA"

    @property
    def alpha(self) -> float | None:
        return float(self.parts["alpha"]) if "alpha" in self.parts else None

    @property
    def rank(self) -> int:
        return self.parts["lora_down.weight"].shape[0]

    def check(self) -> str | None:
        """What is missing for this module's format, or None."""
        has = self.parts.keys()
        need = {"LoRA": [{"lora_down.weight", "lora_up.weight"}],
                "LoHa": [{"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"}],
                "LoKr": [{"lokr_w1"} if "lokr_w1" in has else {"lokr_w1_a", "lokr_w1_b"},
                         {"lokr_w2"} if "lokr_w2" in has else {"lokr_w2_a", "lokr_w2_b"}],
                "GLoRA": [{"a1.weight", "a2.weight", "b1.weight", "b2.weight"}],
                "OFT": [{"oft_blocks"}], "BOFT": [{"oft_blocks"}], "diff": [{"diff"}], "set": [{"set_weight"}],
                "bias diff": []}[self.kind]
        if self.kind == "OFT" and self.parts["oft_blocks"].dim() != 3:
            return (f"its oft_blocks {tuple(self.parts['oft_blocks'].shape)} are neither OFT's [blocks, size, size] "
                    f"nor BOFT's [stages, blocks, size, size]")
        if self.kind in ("OFT", "BOFT") and "dora_scale" in self.parts:
            return f"dora_scale is not supported on {self.kind} modules"
        if "hada_t1" in has or "hada_t2" in has:
            need.append({"hada_t1", "hada_t2"})
        missing = sorted(set().union(*need) - has)
        return f"a {self.kind} module needs {', '.join(missing)}" if missing else None

    def delta(self, weight: torch.Tensor) -> torch.Tensor:
        """The change to `weight` at strength 1 (before DoRA), in float32. Only GLoRA's depends
        on the weight's values; the others need its shape (a meta tensor will do)."""
        shape, device = weight.shape, weight.device
        p = {k: v.to(device, torch.float32) for k, v in self.parts.items()}
        alpha, kind = self.alpha, self.kind
        if kind == "LoRA":
            down, up = p["lora_down.weight"], p["lora_up.weight"]
            if "lora_mid.weight" in p:  # Tucker: fold the core into down -> [r, in, kh, kw]
                down = _cp(p["lora_mid.weight"], down, torch.eye(down.shape[0], device=device))
            delta, rank = up.flatten(1) @ down.flatten(1), self.rank
            scale = (alpha if alpha is not None else rank) / rank
        elif kind == "LoHa":
            rank = p["hada_w1_b"].shape[0]
            if "hada_t1" in p:
                m1 = _cp(p["hada_t1"], p["hada_w1_b"], p["hada_w1_a"])
                m2 = _cp(p["hada_t2"], p["hada_w2_b"], p["hada_w2_a"])
            else:
                m1, m2 = p["hada_w1_a"] @ p["hada_w1_b"], p["hada_w2_a"] @ p["hada_w2_b"]
            delta, scale = m1 * m2, (alpha if alpha is not None else rank) / rank
        elif kind == "LoKr":
            rank = None
            w1 = p.get("lokr_w1")
            if w1 is None:
                rank, w1 = p["lokr_w1_b"].shape[0], p["lokr_w1_a"] @ p["lokr_w1_b"]
            w2 = p.get("lokr_w2")
            if w2 is None:
                rank = p["lokr_w2_b"].shape[0]
                w2 = (_cp(p["lokr_t2"], p["lokr_w2_b"], p["lokr_w2_a"]) if "lokr_t2" in p
                      else p["lokr_w2_a"] @ p["lokr_w2_b"])
            if w2.dim() == 4:
                w1 = w1[:, :, None, None]
            delta = torch.kron(w1.contiguous(), w2.contiguous())
            scale = alpha / rank if alpha is not None and rank is not None else 1.0
        elif kind == "GLoRA":
            delta, rank = self._glora(weight, p)
            scale = alpha / rank if alpha is not None else 1.0
        else:
            delta, scale = p["diff"], 1.0
        if delta.numel() != shape.numel():
            got = ", ".join(f"{k} {tuple(v.shape)}" for k, v in self.parts.items() if v.dim())
            raise ValueError(f"the {kind} module ({got}) does not fit a weight of shape {tuple(shape)}")
        return (delta * scale).reshape(shape)

    @staticmethod
    def _glora(weight: torch.Tensor, p: dict) -> tuple[torch.Tensor, int]:
        """GLoRA's change and rank, telling old LyCORIS files from new ones by shapes as ComfyUI does."""
        a1, a2, b1, b2 = (p[n].flatten(1) for n in ("a1.weight", "a2.weight", "b1.weight", "b2.weight"))
        w = weight.float()
        old = b2.shape[1] == b1.shape[0] == a1.shape[0] == a2.shape[1]
        new = b2.shape[0] == b1.shape[1] == a1.shape[1] == a2.shape[0]
        if old and (not new or a2.shape[0] == w.shape[0] == w.shape[1]):
            if w.flatten(1).shape[1] != a2.shape[0] or (b2 @ b1).shape != w.flatten(1).shape:
                raise ValueError(f"the GLoRA module does not fit a weight of shape {tuple(w.shape)}")
            return (b2 @ b1 + w.flatten(1) @ a2 @ a1).reshape(w.shape), a1.shape[0]
        if not new or w.shape[1] != a1.shape[0] or b1.shape[0] != w.shape[0]:
            raise ValueError(f"the GLoRA module does not fit a weight of shape {tuple(w.shape)}")
        through = torch.einsum("o i ..., i j -> o j ...", torch.einsum("o i ..., i j -> o j ...", w, a1), a2)
        return through.reshape(w.shape) + (b1 @ b2).reshape(w.shape), a2.shape[0]

    def _rotations(self, w: torch.Tensor) -> torch.Tensor:
        """OFT's / BOFT's orthogonal blocks R = (I + Q)(I - Q)⁻¹ from oft_blocks, checked against w."""
        blocks = self.parts["oft_blocks"].to(w.device, torch.float32)
        count, size = blocks.shape[-3:-1]
        rows = size * 2 ** (blocks.shape[0] - 1) if blocks.dim() == 4 else size  # BOFT's last butterfly span
        if w.shape[0] != count * size or w.shape[0] % rows:
            raise ValueError(f"the {self.kind} module's {count} blocks of {size} rows do not fit a weight of shape "
                             f"{tuple(w.shape)}")
        q = blocks - blocks.transpose(-1, -2)
        if (self.alpha or 0) > 0:  # the constraint: Q scaled down to norm alpha when it is larger
            q = q * (self.alpha / (q.norm() + 1e-8)).clamp(max=1)
        eye = torch.eye(size, device=w.device)
        return (eye + q) @ torch.linalg.inv(eye - q)

    def _oft_change(self, w: torch.Tensor) -> torch.Tensor:
        """OFT's (Rᵀ - I) W per block of output rows, at strength 1 (see the module docstring)."""
        r = self._rotations(w)
        count, size = r.shape[:2]
        eye = torch.eye(size, device=w.device)
        return torch.einsum("k n m, k n ... -> k m ...", r - eye, w.unflatten(0, (count, size))).flatten(0, 1)

    def _boft(self, w: torch.Tensor, strength: float) -> torch.Tensor:
        """BOFT's new weight (see the module docstring)."""
        r = self._rotations(w)
        size = r.shape[-1]
        r = strength * r + (1 - strength) * torch.eye(size, device=w.device)
        out = w
        for i, stage in enumerate(r):
            span = 2 ** i * (size // 2)  # row groups of this length are interleaved in pairs
            out = out.unflatten(0, (-1, 2, span)).transpose(1, 2).flatten(0, 2).unflatten(0, (-1, size))
            out = torch.einsum("b i j, b j ... -> b i ...", stage, out)
            out = out.flatten(0, 1).unflatten(0, (-1, span, 2)).transpose(1, 2).flatten(0, 2)
        if "rescale" in self.parts:
            out = out * self.parts["rescale"].to(w.device, torch.float32)
        return w + strength * (out - w)

    def patched(self, weight: torch.Tensor, strength: float) -> torch.Tensor:
        """The new weight (float32) at `strength`."""
        w = weight.float()
        if self.kind == "set":  # ComfyUI's "set" patch: the weight replaced, whatever the strength
            new = self.parts["set_weight"].to(weight.device, torch.float32)
            if new.numel() != w.numel():
                raise ValueError(f"the set_weight {tuple(new.shape)} does not fit a weight of shape {tuple(w.shape)}")
            return new.reshape(w.shape)
        if self.kind == "OFT":
            return w + strength * strength * self._oft_change(w)
        if self.kind == "BOFT":
            return self._boft(w, strength)
        delta = self.delta(weight)
        if "dora_scale" not in self.parts and "magnitude" not in self.parts:
            return w + strength * delta
        peft = "magnitude" in self.parts
        scale = self.parts["magnitude" if peft else "dora_scale"].to(weight.device, torch.float32)
        merged = w + delta
        rows = -1, *[1] * (w.dim() - 1)
        if peft or (scale.dim() > 1 and scale.shape[0] == w.shape[0]) or (scale.dim() == 1 and w.shape[0] == scale.numel()):
            if scale.numel() != w.shape[0]:
                raise ValueError(f"lora_magnitude_vector {tuple(scale.shape)} does not fit a weight of shape {tuple(w.shape)}")
            # one magnitude per output row; ComfyUI normalises a dora_scale by the un-merged rows
            norm = (merged if peft else w).flatten(1).norm(dim=1).reshape(rows)
        elif scale.numel() == w.shape[1]:  # per input column (LyCORIS's default before wd_on_out)
            norm = merged.transpose(0, 1).flatten(1).norm(dim=1).reshape(1, -1, *[1] * (w.dim() - 2))
        else:
            raise ValueError(f"dora_scale {tuple(scale.shape)} fits neither axis of a weight of shape {tuple(w.shape)}")
        merged = merged * (scale.reshape(norm.shape) / (norm + DORA_EPS))
        return w + strength * (merged - w)


@dataclass
class SlicedLora:
    """LoRA modules each patching a block of rows of one fused weight (diffusers' separate to_q /
    to_k / to_v onto our qkv): each sees its rows as the weight it was trained on, so DoRA's norms
    are those of that weight too. pieces: (row blocks as (start, stop) pairs, module)."""
    pieces: list = field(default_factory=list)

    def patched(self, weight: torch.Tensor, strength: float) -> torch.Tensor:
        new = weight.float().clone()
        for rows, lora in self.pieces:
            index = torch.cat([torch.arange(a, b, device=weight.device) for a, b in rows])
            new[index] = lora.patched(weight[index], strength)
        return new


def _split_key(key: str) -> tuple[str, str]:
    """A file key -> (kohya module name, kohya part name); ('', '') when it is no LoRA key."""
    if key.startswith("base_model.model."):  # PEFT; without a component prefix: the transformer's
        key = key[len("base_model.model."):]  # diffusers names (ComfyUI reads SD3's so)
        if not key.startswith((TEXT_ENCODERS, *DIFFUSERS_PREFIXES)):
            key = "transformer." + key
    if key.startswith(BARE_TRANSFORMER_STARTS):
        key = "transformer." + key
    if key.startswith("lycoris_"):  # SimpleTuner's LyCORIS: kohya style over diffusers' module names
        key = "lora_unet_" + key[len("lycoris_"):]
    if key.startswith(("lora_prior_unet_", "lora_prior_te_")):  # Stable Cascade's kohya LoRAs
        key = "lora_" + key[len("lora_prior_"):]
    if key.startswith(TEXT_ENCODERS):
        part = next((p for p in PARTS if key.endswith("." + p)), "")
        return (key[:-len(part) - 1], part) if part else (key, "")
    for prefix, kohya in DIFFUSERS_PREFIXES.items():
        if key.startswith(prefix):
            body = key[len(prefix):]
            processor = next((p for p in PROCESSOR_PARTS if body.endswith(p)), None)
            path = body[:-len(processor)].split(".") if processor else []
            if len(path) >= 2 and path[-2] == "processor" and path[-1] in PROCESSOR_NAMES:
                path = path[:-2] + PROCESSOR_NAMES[path[-1]].split(".")
                return kohya + "_".join(path), PROCESSOR_PARTS[processor]
            part = next((p for p in sorted(DIFFUSERS_PARTS, key=len, reverse=True)
                         if body.endswith("." + p)), None)
            if part is None:
                part = next((p for p in PARTS if body.endswith("." + p)), None)
                if part is None:
                    return key, ""
                kohya_part = part
            else:
                kohya_part = DIFFUSERS_PARTS[part]
            return kohya + body[:-len(part) - 1].replace(".", "_"), kohya_part
    name, _, rest = key.partition(".")
    if rest and not key.startswith("lora_") and rest not in PARTS and rest not in NORM_PARTS:
        # a bare module path (Mochi's, ACE-Step's, Omnigen2's, DiffSynth's FLUX LoRAs): the model's own
        # names or diffusers' (`single_transformer_blocks.0...`), as ComfyUI maps them per family
        return _split_key("diffusion_model." + key)
    return name, rest


def _what_it_is(shapes) -> str:
    """A hint for a file that is no LoRA, from its keys."""
    from .file_kind import identify

    kind = identify(shapes)
    return "" if kind is None or kind.folder == "loras" else ". " + kind.advice()


def _read_modules(path, file, skipped: list | None = None) -> dict[str, LoraModule]:
    with WeightFile(path) as f:
        modules: dict[str, LoraModule] = {}
        unexpected = []
        for key in f.shapes:
            name, part = _split_key(key)
            kind = next((k for k in UNSUPPORTED if k in part), None)
            if kind:
                raise LoraError(f"{file}: {name} is a {UNSUPPORTED[kind]} module ({key}); supported are LoRA, "
                                f"LoCon, LoHa, LoKr, GLoRA, OFT, BOFT, DoRA and full-diff modules")
            if part not in PARTS and part not in NORM_PARTS:
                if skipped is not None:  # ComfyUI leaves such keys unread ("lora key not loaded")
                    unexpected.append(key)
                    continue
                if part in ("lora_up.bias", "lora_down.bias", "bias"):
                    raise LoraError(f"{file}: {key} patches a bias; bias patches are not supported")
                raise LoraError(f"{file}: unexpected key {key!r}; expected a LoRA file: kohya-style "
                                f"<lora_unet_|lora_te_...>.lora_down.weight / .lora_up.weight / .alpha (or "
                                f"LoHa hada_*, LoKr lokr_*, dora_scale), or diffusers/PEFT-style "
                                f"<unet.|transformer.|text_encoder.>...lora_A.weight / .lora_B.weight"
                                f"{_what_it_is(f.shapes)}")
            tensor = f.get(key)
            part = NORM_PARTS.get(part, part)
            modules.setdefault(name, LoraModule()).parts[part] = tensor
        if unexpected and not modules:
            raise LoraError(f"{file}: unexpected key {unexpected[0]!r}; expected a LoRA file{_what_it_is(f.shapes)}")
    if skipped is not None:
        skipped.extend(unexpected)
    return modules


def lora_modules(state: dict[str, torch.Tensor], name: str = "LoRA") -> dict[str, LoraModule]:
    """kohya module name -> LoraModule, from LoRA tensors in memory (a trained LORA_MODEL)."""
    modules: dict[str, LoraModule] = {}
    for key, tensor in state.items():
        module, part = _split_key(key)
        if part not in PARTS:
            raise LoraError(f"{name}: unexpected key {key!r}; expected LoRA parts ({', '.join(PARTS[:6])}, ...)")
        modules.setdefault(module, LoraModule()).parts[part] = tensor
    return _checked(modules, name)


def read_lora(path, skipped: list | None = None) -> dict[str, LoraModule]:
    """kohya module name -> LoraModule, from a file in any layout above. A key that is no LoRA part
    is an error, or, with a `skipped` list, added to it and left unread (as ComfyUI does) when the
    file has LoRA modules besides."""
    file = Path(path).name
    try:
        modules = _read_modules(path, file, skipped)
    except LoraError:
        raise
    except CheckpointError as e:
        raise LoraError(f"{e}; expected a LoRA file") from None
    return _checked(modules, file)


def _checked(modules: dict[str, LoraModule], name: str) -> dict[str, LoraModule]:
    for module_name, module in modules.items():
        problem = module.check()
        if problem:
            raise LoraError(f"{name}: {module_name}: {problem} (has {', '.join(sorted(module.parts))})")
    if not modules:
        raise LoraError(f"{name} holds no LoRA modules")
    return modules


# -- names ------------------------------------------------------------------------------------

def unet_diffusers_blocks(unet: nn.Module) -> dict[str, str]:
    """LDM block path -> diffusers block path for our UNet, read off its structure."""
    names = {"time_embed.0": "time_embedding.linear_1", "time_embed.2": "time_embedding.linear_2",
             "label_emb.0.0": "add_embedding.linear_1", "label_emb.0.2": "add_embedding.linear_2",
             "input_blocks.0.0": "conv_in", "out.0": "conv_norm_out", "out.2": "conv_out",
             "middle_block.0": "mid_block.resnets.0", "middle_block.1": "mid_block.attentions.0",
             "middle_block.2": "mid_block.resnets.1"}
    level = index = 0
    for n, block in enumerate(unet.input_blocks):
        if n == 0:
            continue
        if hasattr(block[0], "op"):  # a downsampler closes the level
            names[f"input_blocks.{n}.0.op"] = f"down_blocks.{level}.downsamplers.0.conv"
            level, index = level + 1, 0
            continue
        names[f"input_blocks.{n}.0"] = f"down_blocks.{level}.resnets.{index}"
        if len(block) > 1:
            names[f"input_blocks.{n}.1"] = f"down_blocks.{level}.attentions.{index}"
        index += 1
    level = index = 0
    for n, block in enumerate(unet.output_blocks):
        names[f"output_blocks.{n}.0"] = f"up_blocks.{level}.resnets.{index}"
        upsampled = False
        for j in range(1, len(block)):
            if hasattr(block[j], "transformer_blocks"):
                names[f"output_blocks.{n}.{j}"] = f"up_blocks.{level}.attentions.{index}"
            else:
                names[f"output_blocks.{n}.{j}.conv"] = f"up_blocks.{level}.upsamplers.0.conv"
                upsampled = True
        level, index = (level + 1, 0) if upsampled else (level, index + 1)
    return names


def unet_diffusers_name(path: str, blocks: dict[str, str]) -> str | None:
    """An LDM module/parameter path of our UNet -> diffusers' name for it."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        head = ".".join(parts[:cut])
        if head in blocks:
            rest = ".".join(parts[cut:])
            target = blocks[head]
            if ".resnets." in target and rest:
                for old, new in RESNET_NAMES.items():
                    if rest == old or rest.startswith(old + "."):
                        rest = new + rest[len(old):]
                        break
            return target + ("." + rest if rest else "")
    return None


def _patchable(module: nn.Module, every_weight: bool = False) -> bool:
    """A layer LoRAs are trained for (linear, conv); with every_weight also any other layer with a
    weight (norms, embeddings), which full and bias diffs patch (ComfyUI's LoraSave writes them)."""
    if every_weight:
        return isinstance(module._parameters.get("weight"), nn.Parameter)
    return isinstance(module, (nn.Linear, nn.Conv2d))


def unet_lora_names(unet: nn.Module, every_weight: bool = False) -> dict[str, str]:
    """kohya name (diffusers and LDM spellings) -> our UNet module path (every_weight: see _patchable)."""
    blocks = unet_diffusers_blocks(unet) if hasattr(unet, "input_blocks") else {}
    names = {}
    for path, module in unet.named_modules():
        if not _patchable(module, every_weight):
            continue
        names["lora_unet_" + path.replace(".", "_")] = path
        diffusers = unet_diffusers_name(path, blocks) if blocks else None
        if diffusers:
            names["lora_unet_" + diffusers.replace(".", "_")] = path
    return names


def text_lora_names(clip: TextEncoder, every_weight: bool = False) -> dict[str, tuple[int, str]]:
    """kohya name -> (tower index, module path within the tower's transformers model); with
    every_weight also ComfyUI's `text_encoders.` names, for every layer with a weight."""
    prefixes = {"sdxl": ("lora_te1_", "lora_te2_")}.get(clip.arch, ("lora_te_",))
    if clip.arch in ("sd3", "flux"):  # kohya numbers the flow models' towers CLIP-L 1, CLIP-G 2 (T5 3)
        prefixes = tuple("lora_te1_" if t is clip.clip_l else "lora_te2_" for t in clip.towers)
    names = {}
    for index, (tower, prefix) in enumerate(zip(clip.towers, prefixes)):
        inner = tower.transformer
        inner_path = "text_model." if inner is not tower.model else ""
        comfy = f"{TEXT_ENCODERS}{tower.name}.transformer."
        # ComfyUI's aliases: diffusers' `text_encoder.` (lora_te_) is SDXL's CLIP-L too, and
        # lora_te1_ is SD1's CLIP-L / SD2's CLIP-H too
        kohya = [prefix] + (["lora_te_"] if prefix == "lora_te1_" else
                            ["lora_te1_"] if clip.arch in ("sd1", "sd2") else [])
        for path, module in inner.named_modules():
            if _patchable(module, every_weight):
                for p in kohya:
                    names[p + "text_model_" + path.replace(".", "_")] = (index, inner_path + path)
                if every_weight:
                    names[f"{comfy}text_model.{path}"] = (index, inner_path + path)
        if tower.projection is not None:
            if prefix in ("lora_te1_", "lora_te2_") or clip.arch == "stable_cascade":  # OneTrainer's SD3
                names[prefix + "text_projection"] = (index, "text_projection")  # LoRAs; Cascade's
            if every_weight:
                names[comfy + "text_projection"] = (index, "text_projection")
    return names


def t5_lora_names(clip, every_weight: bool = False) -> dict[str, str]:
    """kohya name -> module path in the T5 encoder of SD3 / FLUX / T5-only text encoders, as ComfyUI
    numbers it: `lora_te<n>_` after the CLIP towers (SD3 lora_te3_; FLUX OneTrainer's lora_te2_
    and lora_te3_; T5 alone lora_te1_), plus `text_encoders.t5xxl.transformer.` + the path
    (`umt5xxl` for Wan's UMT5, ComfyUI's name for it)."""
    t5 = getattr(clip, "t5", None)
    if t5 is None:
        return {}
    has_l, has_g = getattr(clip, "clip_l", None) is not None, getattr(clip, "clip_g", None) is not None
    indices = [1 + has_l + has_g] + ([3] if has_l and not has_g else [])
    names = {}
    for path, module in t5.model.named_modules():
        if _patchable(module, every_weight):
            for n in indices:
                names[f"lora_te{n}_" + path.replace(".", "_")] = path
            if every_weight:
                names[f"{TEXT_ENCODERS}{t5.comfy_name}.transformer.{path}"] = path
    return names


# -- patching ---------------------------------------------------------------------------------

def _shallow(module: nn.Module) -> nn.Module:
    clone = copy.copy(module)
    clone._modules = dict(module._modules)
    clone._parameters = dict(module._parameters)
    clone._buffers = dict(module._buffers)
    return clone


def copied_modules(root: nn.Module, paths) -> tuple[nn.Module, dict[str, nn.Module]]:
    """A shallow copy of `root` in which the modules at `paths` (and those on the way to them) are
    shallow copies too, so attributes set on them change the copy only: (copy, {path: module}).
    A path `root` lacks raises KeyError(path)."""
    clone = _shallow(root)
    copied = {"": clone}
    for path in paths:
        parent, prefix = clone, ""
        for part in path.split(".") if path else ():  # "": the root itself
            prefix = f"{prefix}.{part}" if prefix else part
            if prefix not in copied:
                if part not in parent._modules:
                    raise KeyError(path)
                copied[prefix] = _shallow(parent._modules[part])
                parent._modules[part] = copied[prefix]
            parent = copied[prefix]
    return clone, {path: copied[path] for path in paths}


def patched_copy(root: nn.Module, weights: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of `root` whose parameters (or buffers) named in `weights` are replaced; only the
    modules on the way to them are copied (shallowly), every other submodule and parameter is shared."""
    clone, owners = copied_modules(root, {name.rpartition(".")[0] for name in weights})
    for name, value in weights.items():
        path, _, param = name.rpartition(".")
        parent = owners[path]
        if param in parent._buffers:  # a merged buffer (graphflow.models.merge)
            parent._buffers[param] = value
        else:
            parent._parameters[param] = nn.Parameter(value, requires_grad=False)
    return clone


def _change(lora: LoraModule, strength: float, weight: torch.Tensor, seed: int = 0) -> torch.Tensor:
    from .cast_layers import stochastic_round

    return stochastic_round(lora.patched(weight, strength), weight.dtype, seed)


def _bias_change(diff: torch.Tensor, strength: float, bias: torch.Tensor) -> torch.Tensor:
    return (bias.float() + strength * diff.to(bias.device, torch.float32)).to(bias.dtype)


def _change_scaled(lora: LoraModule, strength: float, layer, weight: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A scaled-fp8 layer's weight (graphflow.models.cast_layers): the LoRA changes the weight
    times its scale, and the result is stored back over the same scale (stochastically rounded)."""
    from .cast_layers import scaled, stochastic_round

    scale = layer.scale_weight.to(weight.device, torch.float32)
    new = scaled(lora.patched(scaled(weight.float(), scale), strength), 1 / scale)
    return stochastic_round(new, weight.dtype, seed)


def _weight_patches(root: nn.Module, patches: dict[str, LoraModule], strength: float,
                    lora_name: str, key_prefix: str = "diffusion_model.") -> tuple[WeightPatch, ...]:
    """The LoRA as weight patches on `root`, each checked against its weight's shape (on the meta
    device: nothing is computed until the manager applies them). An fp8 weight is rounded
    stochastically, seeded as ComfyUI seeds it: the CRC-32 of its state-dict key (key_prefix + path)."""
    out = []
    for path, lora in patches.items():
        layer = root.get_submodule(path)
        diff_b = lora.parts.get("diff_b") if isinstance(lora, LoraModule) else None
        if diff_b is not None:
            if layer._parameters.get("bias") is None or layer.bias.numel() != diff_b.numel():
                has = "no bias" if layer._parameters.get("bias") is None else f"a bias of {tuple(layer.bias.shape)}"
                raise LoraError(f"{lora_name}: {path}: its diff_b {tuple(diff_b.shape)} does not fit: the layer has "
                                f"{has}; the LoRA was probably made for another architecture or model size")
            out.append(WeightPatch(path + ".bias", functools.partial(_bias_change, diff_b.reshape(layer.bias.shape),
                                                                     strength)))
            if not lora.patches_weight:
                continue
        elif isinstance(lora, SlicedLora) and any("diff_b" in piece.parts for _, piece in lora.pieces):
            raise LoraError(f"{lora_name}: {path}: bias diffs of separate q/k/v modules are not supported")
        shape = getattr(layer, "weight_shape", layer.weight.shape)  # a GGUF layer's: its values', not its blocks'
        try:
            lora.patched(torch.empty(shape, device="meta"), strength)
        except ValueError as e:
            raise LoraError(f"{lora_name}: {path}: {e}; the LoRA was probably made for another architecture "
                            f"or model size") from None
        seed = zlib.crc32(f"{key_prefix}{path}.weight".encode())
        if getattr(layer, "scale_weight", None) is not None:
            out.append(WeightPatch(path + ".weight", functools.partial(_change_scaled, lora, strength, layer, seed=seed),
                                   seed))
        else:
            out.append(WeightPatch(path + ".weight", functools.partial(_change, lora, strength, seed=seed), seed))
    return tuple(out)


def apply_lora(model: DiffusionModel | None, clip: TextEncoder | None, lora_path, strength_model: float = 1.0,
               strength_clip: float = 1.0, strict: bool = True, warn=None,
               modules: dict[str, LoraModule] | None = None) -> tuple[DiffusionModel | None, TextEncoder | None]:
    """(model, clip) with the LoRA applied, as new objects; the inputs are not modified.
    strict: every LoRA module must match a layer (else LoraError listing the unmatched ones);
    with strict=False unmatched modules, and keys of the file that are no LoRA parts, are skipped,
    with a call of `warn` listing them (as ComfyUI does), but a LoRA that matches nothing still fails.
    With clip None, text-encoder modules are ignored (a model-only load). `modules`: the file's
    read_lora already read (hooks re-apply one LoRA at several strengths), lora_path then names it."""
    name = Path(lora_path).name
    skipped = None if strict else []
    modules = read_lora(lora_path, skipped) if modules is None else modules
    if skipped and warn is not None:
        warn(f"{name}: {len(skipped)} keys were not loaded (no LoRA parts graphflow reads, as ComfyUI's "
             f"'lora key not loaded'): {', '.join(sorted(skipped))}")
    unet_names = unet_lora_names(model.unet, every_weight=True) if model is not None else {}
    flow_names = flow_lora_names(model.unet) if model is not None else {}
    text_names = text_lora_names(clip, every_weight=True) if clip is not None else {}
    t5_names = t5_lora_names(clip, every_weight=True) if clip is not None else {}
    unet_patches, text_patches, t5_patches, unmatched = {}, {}, {}, []
    for key, lora in modules.items():
        if key in unet_names:
            unet_patches[unet_names[key]] = lora
        elif key in flow_names and flow_names[key][1] is None:
            unet_patches[flow_names[key][0]] = lora
        elif key in flow_names:
            path, rows = flow_names[key]
            sliced = unet_patches.setdefault(path, SlicedLora())
            if not isinstance(sliced, SlicedLora):
                raise LoraError(f"{name}: {key} patches part of {path}, which another module patches whole")
            sliced.pieces.append((rows, lora))
        elif key in text_names:
            tower, path = text_names[key]
            text_patches.setdefault(tower, {})[path] = lora
        elif key in t5_names:
            t5_patches[t5_names[key]] = lora
        elif clip is None and key.startswith(TEXT_ENCODER_KEYS):
            continue
        else:
            unmatched.append(key)
    arch = model.arch if model is not None else clip.arch if clip is not None else "?"
    if unmatched and (strict or not (unet_patches or text_patches or t5_patches)):
        raise LoraError(f"{name}: {len(unmatched)} of {len(modules)} LoRA modules match no layer of this {arch} "
                        f"model (e.g. {', '.join(sorted(unmatched)[:4])}); it was probably made for another "
                        f"architecture")
    if unmatched and warn is not None:
        warn(f"{name}: {len(unmatched)} of {len(modules)} LoRA modules match no layer of this {arch} model and "
             f"were skipped: {', '.join(sorted(unmatched))}")
    if model is not None and strength_model != 0 and unet_patches:
        model = model.with_patches(model.patches + _weight_patches(model.unet, unet_patches, strength_model, name))
    if clip is not None and strength_clip != 0 and text_patches:
        towers = list(clip.towers)
        for index, patches in text_patches.items():
            tower = towers[index]
            towers[index] = tower.with_patches(tower.patches + _weight_patches(
                tower.model, patches, strength_clip, name, tower.comfy_key_prefix))
        clip = clip.with_towers(towers)
    if clip is not None and strength_clip != 0 and t5_patches:
        t5 = clip.t5
        prefix = f"{t5.comfy_name}.transformer."
        t5_weights = _weight_patches(t5.model, t5_patches, strength_clip, name, prefix)
        clip = clip.with_t5(t5.with_patches(t5.patches + t5_weights))
    return model, clip
