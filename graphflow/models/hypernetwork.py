"""Hypernetworks (the A1111 / NovelAI kind), applied as ComfyUI's HypernetworkLoader does.

A file holds, per attention input width (768 for SD1's text context, 320 / 640 / 1280 for its
self-attentions), two small MLPs: one for the keys' input, one for the values'. Every attention
of the UNet (self- and cross-) whose key input has a width in the file gets

    keys   = k_in + mlp_k(k_in) * strength
    values = v_in + mlp_v(v_in) * strength

before its to_k / to_v projections (k_in = v_in = the context for cross-attention, the hidden
states for self-attention). An MLP is the A1111 `HypernetworkModule.linear` Sequential: per step of
`layer_structure` a Linear, then the activation, then a LayerNorm when `is_layer_norm`. As in
ComfyUI, the activation is left out only after a Linear that is the file's last layer (unless
`activate_output`): ComfyUI counts the LayerNorms when it looks for the last layer, so with
`is_layer_norm` the last Linear's output is activated too (A1111, which trained the files, does
not activate it). Dropout is left out (ComfyUI's modules stay in training mode, so its use_dropout
files drop 30% at random).

Files:
  .pt           A1111's pickle (read with the restricted unpickler): {768: [k_state, v_state],
                ..., "activation_func": "relu", "is_layer_norm": False, "activate_output": False,
                "layer_structure": [1, 2, 1], ...}, k_state keys `linear.<n>.weight` / `.bias`
  .safetensors  the same flattened: `<width>.<0 = k | 1 = v>.linear.<n>.weight`, the settings as
                strings in the metadata (activation_func, is_layer_norm, activate_output)
"""

from pathlib import Path

import torch
from torch import nn

from .diffusion_model import DiffusionModel
from .lora import copied_modules
from .weight_files import CheckpointError, WeightFile, read_pickle

ACTIVATIONS = {"linear": nn.Identity, "relu": nn.ReLU, "leakyrelu": nn.LeakyReLU, "elu": nn.ELU,
               "swish": nn.Hardswish, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "softsign": nn.Softsign,
               "mish": nn.Mish}  # ComfyUI's set (A1111's "swish" is Hardswish there too)


class HypernetworkError(CheckpointError):
    """A file that is no usable hypernetwork, with what was found."""


def _mlp(state: dict[str, torch.Tensor], activation: str, activate_output: bool, what: str) -> nn.Sequential:
    layers = {}
    for key, tensor in state.items():
        name, _, part = key.rpartition(".")
        prefix, _, index = name.rpartition(".")
        if prefix != "linear" or not index.isdigit() or part not in ("weight", "bias"):
            raise HypernetworkError(f"{what}: unexpected key {key!r}; expected linear.<n>.weight / .bias")
        layers.setdefault(int(index), {})[part] = tensor.float()
    linears = [i for i in sorted(layers) if layers[i]["weight"].dim() == 2]
    if not linears:
        raise HypernetworkError(f"{what}: no Linear layers")
    out = []
    for i in sorted(layers):
        w, b = layers[i]["weight"], layers[i].get("bias")
        if w.dim() == 2:
            layer = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
            out.append(layer)
            if i != max(layers) or activate_output:  # max(layers): a LayerNorm after it counts (ComfyUI's rule)
                out.append(ACTIVATIONS[activation]())
        else:  # A1111 puts the optional LayerNorm after the activation
            layer = nn.LayerNorm(w.shape[0])
            out.append(layer)
        layer.load_state_dict({"weight": w, **({"bias": b} if b is not None else {})})
    return nn.Sequential(*out).eval().requires_grad_(False)


def _settings(raw: dict, name: str) -> tuple[str, bool]:
    activation = str(raw.get("activation_func") or "linear").lower()
    if activation not in ACTIVATIONS:
        raise HypernetworkError(f"{name}: activation_func {activation!r} is not supported; expected one of "
                                f"{', '.join(ACTIVATIONS)}")
    output = raw.get("activate_output", False)
    return activation, output if isinstance(output, bool) else str(output).lower() == "true"


def read_hypernetwork(path) -> dict[int, tuple[nn.Sequential, nn.Sequential]]:
    """width -> (keys' MLP, values' MLP), float32 on the CPU."""
    path = Path(path)
    name = path.name
    if path.suffix == ".safetensors":
        with WeightFile(path) as f:
            nested: dict = {}
            for key in f.shapes:
                width, which, rest = (key.split(".", 2) + ["", ""])[:3]
                if not (width.isdigit() and which in ("0", "1") and rest):
                    raise HypernetworkError(f"{name}: unexpected key {key!r}; expected <width>.<0|1>.linear.<n>."
                                            f"weight as a hypernetwork")
                nested.setdefault(int(width), [{}, {}])[int(which)][rest] = f.get(key)
            raw = {**{k: v for k, v in (f.metadata or {}).items()}, **nested}
    else:
        raw = read_pickle(path)
        if not isinstance(raw, dict):
            raise HypernetworkError(f"{name} holds a {type(raw).__name__}, not a hypernetwork dict")
    activation, activate_output = _settings(raw, name)
    out = {}
    for width, pair in raw.items():
        if not isinstance(width, int):
            continue
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(p, dict) for p in pair)):
            raise HypernetworkError(f"{name}: entry {width} is not a [keys, values] pair of state dicts")
        mlps = tuple(_mlp(state, activation, activate_output, f"{name}: {width}.{i}") for i, state in enumerate(pair))
        for mlp in mlps:
            first, last = mlp[0], [m for m in mlp if isinstance(m, nn.Linear)][-1]
            if first.in_features != width or last.out_features != width:
                raise HypernetworkError(f"{name}: the MLP for width {width} maps {first.in_features} to "
                                        f"{last.out_features} features; it must keep the width")
        out[width] = mlps
    if not out:
        found = ", ".join(sorted(map(str, raw))[:6])
        raise HypernetworkError(f"{name} holds no hypernetwork layers (found {found or 'nothing'}); expected an "
                                f"A1111 hypernetwork: {{768: [keys, values], ...}}")
    return out


def hypernetwork_patch(layers: dict[int, tuple[nn.Module, nn.Module]], strength: float):
    """(keys, values) -> (keys, values) for Attention.kv_patches."""
    def patch(keys: torch.Tensor, values: torch.Tensor):
        pair = layers.get(keys.shape[-1])
        if pair is None:
            return keys, values
        mlp_k, mlp_v = pair
        if mlp_k[0].weight.device != keys.device or mlp_k[0].weight.dtype != keys.dtype:
            for mlp in pair:  # run in the UNet's device and dtype, moved once
                mlp.to(keys.device, keys.dtype)
        return keys + mlp_k(keys) * strength, values + mlp_v(values) * strength
    return patch


def apply_hypernetwork(model: DiffusionModel, layers: dict, strength: float) -> DiffusionModel:
    """A new MODEL whose UNet attentions (shallow copies) carry the patch; weights are shared and
    the input model is unchanged."""
    from .unet import Attention

    patch = hypernetwork_patch(layers, strength)
    attentions = {path: m for path, m in model.unet.named_modules() if isinstance(m, Attention)}
    unet, copies = copied_modules(model.unet, attentions)
    for path, module in attentions.items():
        copies[path].kv_patches = (*module.kv_patches, patch)
    widths = {m.to_k.in_features for m in model.unet.modules() if isinstance(m, Attention)}
    if not widths & set(layers):
        raise HypernetworkError(f"the hypernetwork is for attention widths {sorted(layers)}; this {model.arch} "
                                f"model's are {sorted(widths) or 'none (no UNet attention)'}")
    return model.with_unet(unet)
