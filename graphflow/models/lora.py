"""kohya-style LoRA files applied to a MODEL and a CLIP without touching the originals.

A LoRA file holds, per patched layer, `<name>.lora_down.weight` [r, in(, kh, kw)],
`<name>.lora_up.weight` [out, r(, 1, 1)] and optionally `<name>.alpha`; the layer's weight becomes

    W + strength * (alpha / r) * up @ down            (alpha defaults to r)

Names are the module paths with '.' -> '_' behind a prefix: `lora_unet_` for the UNet, in
diffusers' block names (down_blocks.0.attentions.0...) or, as some trainers write them, in LDM's
(input_blocks.1.1...); `lora_te_` for SD1/SD2's text encoder, `lora_te1_` / `lora_te2_` for
SDXL's CLIP-L / bigG, in transformers' names (text_model.encoder.layers.0.self_attn.q_proj).

`apply_lora` returns new model/clip objects whose patched layers hold new weight tensors and
whose every other parameter is the original's (shared, not copied): a graph can keep using the
un-patched model, and cached results stay valid. A LoRA module that matches no layer is an error
(a LoRA for another architecture must not silently do nothing); strength 0 returns the input.
"""

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .weight_files import CheckpointError, WeightFile
from .diffusion_model import DiffusionModel
from .text_encoders import TextEncoder

UNSUPPORTED = {"hada_": "LoHa", "lokr_": "LoKr", "dora_scale": "DoRA", "lora_mid": "LoCon with a Tucker mid",
               "diff": "full-weight diff", "w_norm": "GLoRA/norm", "on_input": "IA3"}
RESNET_NAMES = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
                "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}


class LoraError(CheckpointError):
    """A LoRA file that cannot be applied to the given model, with what was found."""


@dataclass
class LoraModule:
    down: torch.Tensor
    up: torch.Tensor
    alpha: float | None = None

    @property
    def rank(self) -> int:
        return self.down.shape[0]

    def delta(self, shape: torch.Size, device) -> torch.Tensor:
        """(alpha / r) * up @ down in float32, shaped like the patched weight."""
        down, up = self.down.to(device, torch.float32), self.up.to(device, torch.float32)
        scale = (self.alpha if self.alpha is not None else self.rank) / self.rank
        delta = up.flatten(1) @ down.flatten(1)
        if delta.numel() != shape.numel():
            raise ValueError(f"up {tuple(up.shape)} @ down {tuple(down.shape)} does not fit a weight of shape {tuple(shape)}")
        return (delta * scale).reshape(shape)


def read_lora(path) -> dict[str, LoraModule]:
    """kohya module name -> LoraModule."""
    with WeightFile(path) as f:
        parts: dict[str, dict[str, torch.Tensor]] = {}
        for key in f.shapes:
            name, _, rest = key.partition(".")
            kind = next((k for k in UNSUPPORTED if k in rest), None)
            if kind:
                raise LoraError(f"{Path(path).name}: {name} is a {UNSUPPORTED[kind]} module ({key}); only plain "
                                f"LoRA (lora_down/lora_up/alpha) is supported")
            if rest not in ("lora_down.weight", "lora_up.weight", "alpha"):
                raise LoraError(f"{Path(path).name}: unexpected key {key!r}; expected kohya-style "
                                f"<lora_unet_|lora_te_...>.lora_down.weight / .lora_up.weight / .alpha")
            parts.setdefault(name, {})[rest] = f.get(key)
    modules = {}
    for name, p in parts.items():
        if "lora_down.weight" not in p or "lora_up.weight" not in p:
            raise LoraError(f"{Path(path).name}: {name} lacks lora_down or lora_up")
        alpha = p.get("alpha")
        modules[name] = LoraModule(p["lora_down.weight"], p["lora_up.weight"],
                                   None if alpha is None else float(alpha))
    if not modules:
        raise LoraError(f"{Path(path).name} holds no LoRA modules")
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


def _patchable(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, nn.Conv2d))


def unet_lora_names(unet: nn.Module) -> dict[str, str]:
    """kohya name (diffusers and LDM spellings) -> our UNet module path."""
    blocks = unet_diffusers_blocks(unet)
    names = {}
    for path, module in unet.named_modules():
        if not _patchable(module):
            continue
        names["lora_unet_" + path.replace(".", "_")] = path
        diffusers = unet_diffusers_name(path, blocks)
        if diffusers:
            names["lora_unet_" + diffusers.replace(".", "_")] = path
    return names


def text_lora_names(clip: TextEncoder) -> dict[str, tuple[int, str]]:
    """kohya name -> (tower index, module path within the tower's transformers model)."""
    prefixes = {"sdxl": ("lora_te1_", "lora_te2_")}.get(clip.arch, ("lora_te_",))
    names = {}
    for index, (tower, prefix) in enumerate(zip(clip.towers, prefixes)):
        inner = tower.transformer
        inner_path = "text_model." if inner is not tower.model else ""
        for path, module in inner.named_modules():
            if _patchable(module):
                names[prefix + "text_model_" + path.replace(".", "_")] = (index, inner_path + path)
    return names


# -- patching ---------------------------------------------------------------------------------

def _shallow(module: nn.Module) -> nn.Module:
    clone = copy.copy(module)
    clone._modules = dict(module._modules)
    clone._parameters = dict(module._parameters)
    clone._buffers = dict(module._buffers)
    return clone


def patched_copy(root: nn.Module, weights: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of `root` whose parameters named in `weights` are replaced; only the modules on the
    way to them are copied (shallowly), every other submodule and parameter is shared."""
    clone = _shallow(root)
    copied = {"": clone}
    for name, value in weights.items():
        *path, param = name.split(".")
        parent, prefix = clone, ""
        for part in path:
            prefix = f"{prefix}.{part}" if prefix else part
            if prefix not in copied:
                copied[prefix] = _shallow(parent._modules[part])
                parent._modules[part] = copied[prefix]
            parent = copied[prefix]
        parent._parameters[param] = nn.Parameter(value, requires_grad=False)
    return clone


def _patch(root: nn.Module, patches: dict[str, LoraModule], strength: float, lora_name: str) -> nn.Module:
    weights = {}
    for path, lora in patches.items():
        weight = root.get_submodule(path).weight
        try:
            delta = lora.delta(weight.shape, weight.device)
        except ValueError as e:
            raise LoraError(f"{lora_name}: {path}: {e}; the LoRA was probably made for another architecture "
                            f"or model size") from None
        weights[path + ".weight"] = (weight.float() + strength * delta).to(weight.dtype)
    return patched_copy(root, weights)


def apply_lora(model: DiffusionModel | None, clip: TextEncoder | None, lora_path, strength_model: float = 1.0,
               strength_clip: float = 1.0, strict: bool = True,
               warn=None) -> tuple[DiffusionModel | None, TextEncoder | None]:
    """(model, clip) with the LoRA applied, as new objects; the inputs are not modified.
    strict: every LoRA module must match a layer (else LoraError listing the unmatched ones);
    with strict=False unmatched modules are skipped, with one call of `warn` listing them (as
    ComfyUI does), but a LoRA that matches nothing still fails.
    With clip None, text-encoder modules are ignored (a model-only load)."""
    name = Path(lora_path).name
    modules = read_lora(lora_path)
    unet_names = unet_lora_names(model.unet) if model is not None else {}
    text_names = text_lora_names(clip) if clip is not None else {}
    unet_patches, text_patches, unmatched = {}, {}, []
    for key, lora in modules.items():
        if key in unet_names:
            unet_patches[unet_names[key]] = lora
        elif key in text_names:
            tower, path = text_names[key]
            text_patches.setdefault(tower, {})[path] = lora
        elif clip is None and key.startswith("lora_te"):
            continue
        else:
            unmatched.append(key)
    arch = model.arch if model is not None else clip.arch if clip is not None else "?"
    if unmatched and (strict or not (unet_patches or text_patches)):
        raise LoraError(f"{name}: {len(unmatched)} of {len(modules)} LoRA modules match no layer of this {arch} "
                        f"model (e.g. {', '.join(sorted(unmatched)[:4])}); it was probably made for another "
                        f"architecture")
    if unmatched and warn is not None:
        warn(f"{name}: {len(unmatched)} of {len(modules)} LoRA modules match no layer of this {arch} model and "
             f"were skipped: {', '.join(sorted(unmatched))}")
    if model is not None and strength_model != 0 and unet_patches:
        model = model.with_unet(_patch(model.unet, unet_patches, strength_model, name))
    if clip is not None and strength_clip != 0 and text_patches:
        towers = list(clip.towers)
        for index, patches in text_patches.items():
            towers[index] = towers[index].with_model(_patch(towers[index].model, patches, strength_clip, name))
        clip = clip.with_towers(towers)
    return model, clip
