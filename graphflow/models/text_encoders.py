"""CLIP text encoders of SD1 / SD2 / SDXL and the CLIP socket (`TextEncoder`).

Each CLIP "tower" is a transformers CLIPTextModel (or CLIPTextModelWithProjection where the
checkpoint holds OpenCLIP's text_projection). Towers and how real pipelines read them:

    arch          towers (checkpoint prefix)                               output            pooled
    sd1           clip_l  cond_stage_model.transformer.text_model.         last layer + LN   clip_l EOS state
    sd2           clip_h  cond_stage_model.model.            (OpenCLIP)    penultimate + LN  clip_h projected
    sdxl          clip_l  conditioner.embedders.0.transformer.text_model.  penultimate       -
                  clip_g  conditioner.embedders.1.model.     (OpenCLIP)    penultimate       clip_g projected
    sdxl_refiner  clip_g  conditioner.embedders.0.model.     (OpenCLIP)    penultimate       clip_g projected

SDXL concatenates clip_l (768) and clip_g (1280) states into 2048 channels. The pooled output
always comes from the final layer through the final layer norm (and projection), whatever the
clip skip. `clip_skip` (ComfyUI's stop_at_clip_layer) picks hidden_states[clip_skip]: -1 the
last layer, -2 the penultimate; past a tower's first layer (-13 on a 12-layer CLIP-L) that tower
gives its last layer through the final layer norm, as ComfyUI's does. SD1/SD2 apply the final layer norm to the picked layer (as
ComfyUI, A1111, diffusers and SD2's FrozenOpenCLIPEmbedder do); SDXL does not (as SDXL's
original embedders, ComfyUI and diffusers do).

Prompt weights follow ComfyUI: the empty prompt is encoded alongside, and a token of weight w
becomes empty + (z - empty) * w at its position; pooled comes from the first window, unweighted.

OpenCLIP checkpoints store the text transformer in open_clip's names (resblocks, fused
in_proj q/k/v, text_projection as a [width, dim] matrix); `openclip_to_hf` maps them onto
transformers' names, `hf_to_openclip` back.
"""

import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from torch import nn
# transformers is imported where a model is built: architecture detection (validation reads a
# checkpoint's header) needs this module's layout tables, not transformers' start-up cost.

from .attention import kernels
from .configs import (ARCH_TOWERS, CLIP_L, DEFAULT_CLIP_SKIP, HF, LAYER_NORM_HIDDEN, OPEN_CLIP,  # noqa: F401
                      OPENCLIP, TowerSpec)
from .embeddings import embedding_lookup
from .tokenizer import BOS, EOS, WINDOW, TokenWindows, empty_window, tokenize_prompt


# -- key layouts -------------------------------------------------------------------------------
# Keys below are relative to the tower: HF names as transformers' CLIPTextModelWithProjection
# has them ("text_model.encoder.layers.0...", "text_projection.weight").

_OPENCLIP_BLOCK = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
                   "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
_OPENCLIP_TOP = {"token_embedding.weight": "text_model.embeddings.token_embedding.weight",
                 "positional_embedding": "text_model.embeddings.position_embedding.weight",
                 "ln_final.weight": "text_model.final_layer_norm.weight",
                 "ln_final.bias": "text_model.final_layer_norm.bias"}
OPENCLIP_IGNORED = ("logit_scale", "attn_mask")  # not part of the text transformer's computation


def openclip_key_map(key: str) -> list[tuple[str, object]]:
    """OpenCLIP key -> [(HF key, op)], op: None (as is), "T" (transpose) or i (the i-th third of
    a fused q/k/v tensor). [] for keys that carry nothing we use; KeyError for unknown keys."""
    if key in _OPENCLIP_TOP:
        return [(_OPENCLIP_TOP[key], None)]
    if key == "text_projection":
        return [("text_projection.weight", "T")]
    if key in OPENCLIP_IGNORED:
        return []
    parts = key.split(".")
    if len(parts) >= 5 and parts[:2] == ["transformer", "resblocks"]:
        layer, rest = parts[2], ".".join(parts[3:])
        base = f"text_model.encoder.layers.{layer}."
        if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
            kind = rest.rsplit("_", 1)[1]
            return [(f"{base}self_attn.{p}_proj.{kind}", i) for i, p in enumerate("qkv")]
        module, param = rest.rsplit(".", 1)
        if module in _OPENCLIP_BLOCK:
            return [(f"{base}{_OPENCLIP_BLOCK[module]}.{param}", None)]
    raise KeyError(key)


def _apply(op, t):
    if op is None:
        return t
    if op == "T":
        return t.T.contiguous() if isinstance(t, torch.Tensor) else tuple(reversed(t))
    if isinstance(t, torch.Tensor):
        n = t.shape[0] // 3
        return t[op * n:(op + 1) * n]
    return (t[0] // 3, *t[1:])


def hf_key_map(key: str) -> list[tuple[str, object]]:
    """Key below `...transformer.text_model.` (SD1/SDXL CLIP-L) -> [(HF key, op)]."""
    if key == "embeddings.position_ids":  # a buffer some files carry (sometimes corrupted): rebuilt
        return []
    if key.startswith("text_projection"):
        return [(key, None)]
    return [("text_model." + key, None)]


def tower_key_map(layout: str) -> Callable[[str], list[tuple[str, object]]]:
    return openclip_key_map if layout == OPENCLIP else hf_key_map


def to_hf_shapes(shapes: dict[str, tuple], layout: str) -> dict[str, tuple]:
    """Tower shapes in HF names. Raises KeyError naming the first unknown key."""
    key_map, out = tower_key_map(layout), {}
    for key, shape in shapes.items():
        for hf_key, op in key_map(key):
            out[hf_key] = _apply(op, tuple(shape))
    return out


def hf_to_openclip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers CLIPTextModel(WithProjection) state (text_model.* names) -> OpenCLIP names."""
    reverse = {v: k for k, v in _OPENCLIP_TOP.items()}
    out, qkv = {}, {}
    for key, t in state.items():
        key = key if key.startswith(("text_model.", "text_projection")) else "text_model." + key
        if key in reverse:
            out[reverse[key]] = t
        elif key == "text_projection.weight":
            out["text_projection"] = t.T.contiguous()
        elif key.startswith("text_model.encoder.layers."):
            layer, rest = key[len("text_model.encoder.layers."):].split(".", 1)
            base = f"transformer.resblocks.{layer}."
            module, param = rest.rsplit(".", 1)
            if module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
                qkv.setdefault((base, param), {})[module[-6]] = t
            else:
                inverse = {v: k for k, v in _OPENCLIP_BLOCK.items()}
                out[f"{base}{inverse[module]}.{param}"] = t
        elif key != "text_model.embeddings.position_ids":
            raise KeyError(key)
    for (base, param), parts in qkv.items():
        out[f"{base}attn.in_proj_{param}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


# -- configs -----------------------------------------------------------------------------------

def clip_config_from_shapes(hf_shapes: dict[str, tuple], hidden_act: str, overrides: dict | None = None):
    """CLIPTextConfig from HF-named shapes. Heads are not visible in weights: hidden/64 (CLIP's
    convention, at least 1) unless `overrides` (checkpoint metadata) say otherwise."""
    try:
        vocab, hidden = hf_shapes["text_model.embeddings.token_embedding.weight"]
        positions = hf_shapes["text_model.embeddings.position_embedding.weight"][0]
        intermediate = hf_shapes["text_model.encoder.layers.0.mlp.fc1.weight"][0]
    except KeyError as e:
        raise ValueError(f"text encoder weights lack {e.args[0]}") from None
    layers = 1 + max(int(k.split(".")[3]) for k in hf_shapes if k.startswith("text_model.encoder.layers."))
    projection = hf_shapes.get("text_projection.weight")
    values = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                  num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                  max_position_embeddings=positions, hidden_act=hidden_act, layer_norm_eps=1e-5,
                  projection_dim=projection[0] if projection else hidden,
                  bos_token_id=BOS, eos_token_id=EOS, pad_token_id=1)
    values.update(overrides or {})
    if values["vocab_size"] <= EOS:
        raise ValueError(f"text encoder vocabulary has {values['vocab_size']} tokens; CLIP's tokenizer needs {EOS + 1}")
    if values["max_position_embeddings"] < WINDOW:
        raise ValueError(f"text encoder has {values['max_position_embeddings']} positions; prompts come in {WINDOW}-token windows")
    if values["hidden_size"] % values["num_attention_heads"]:
        raise ValueError(f"hidden size {values['hidden_size']} is not divisible by {values['num_attention_heads']} heads")
    from transformers import CLIPTextConfig

    return CLIPTextConfig(**values)


def build_tower_module(config, projection: bool) -> nn.Module:
    """The transformers model for a CLIPTextConfig, with parameters on the meta device (no init cost)."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    with torch.device("meta"):
        return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)


def text_transformer(model: nn.Module) -> nn.Module:
    """The module holding embeddings/encoder/final_layer_norm (transformers >= 5.6 flattened
    CLIPTextModel; CLIPTextModelWithProjection and older versions wrap it as .text_model)."""
    return model.text_model if hasattr(model, "text_model") else model


def load_tower_weights(model: nn.Module, hf_state: dict[str, torch.Tensor]) -> None:
    """Assign HF-named tensors (text_model.*, text_projection.weight) into a meta-built model
    without copying, then rebuild the position_ids buffer. Raises ValueError on a key mismatch."""
    inner = text_transformer(model)
    inner_state = {k[len("text_model."):]: v for k, v in hf_state.items() if k.startswith("text_model.")}
    missing, unexpected = [], [k for k in hf_state if not k.startswith(("text_model.", "text_projection."))]
    result = inner.load_state_dict(inner_state, strict=False, assign=True)
    missing += ["text_model." + k for k in result.missing_keys]
    unexpected += ["text_model." + k for k in result.unexpected_keys]
    if hasattr(model, "text_projection"):
        if "text_projection.weight" in hf_state:
            model.text_projection.load_state_dict({"weight": hf_state["text_projection.weight"]}, assign=True)
        else:
            missing.append("text_projection.weight")
    elif "text_projection.weight" in hf_state:
        unexpected.append("text_projection.weight")
    if missing or unexpected:
        raise ValueError(f"text encoder weights do not fit the model: missing {missing[:6]}, unexpected {unexpected[:6]}")
    device = inner.embeddings.token_embedding.weight.device
    positions = inner.embeddings.position_embedding.weight.shape[0]
    inner.embeddings.position_ids = torch.arange(positions, device=device).expand(1, -1)
    model.requires_grad_(False)
    model.eval()


# -- towers and the CLIP socket ----------------------------------------------------------------

class ClipTower:
    """One CLIP text transformer and the token conventions of its checkpoint."""

    def __init__(self, spec: TowerSpec, model: nn.Module, patches: tuple = ()):
        self.spec = spec
        self.model = model
        self.patches = patches  # graphflow.memory.WeightPatch on `model` (LoRA), applied when it runs

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def transformer(self) -> nn.Module:
        return text_transformer(self.model)

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def projection(self) -> nn.Linear | None:
        return getattr(self.model, "text_projection", None)

    @property
    def comfy_key_prefix(self) -> str:
        """What ComfyUI's state dict puts before `model`'s parameter paths (clip_l.transformer.
        text_model.encoder...): its keys seed an fp8 weight's stochastic rounding after a patch.
        transformers >= 5.6 builds CLIPTextModel without the text_model level ComfyUI keeps."""
        return f"{self.name}.transformer." + ("text_model." if self.transformer is self.model else "")

    def with_model(self, model: nn.Module) -> "ClipTower":
        """Another network in this tower's place (its weights final: no patches)."""
        return ClipTower(self.spec, model)

    def with_patches(self, patches: tuple) -> "ClipTower":
        return ClipTower(self.spec, self.model, tuple(patches))

    @torch.no_grad()
    def run(self, ids: list[list[int]], clip_skip: int, layer_norm_hidden: bool,
            vectors: dict | None = None, projected: bool = True,
            mask_after_end: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Token windows [N][77] -> (hidden states [N, 77, D], pooled [N, P]), float32 on CPU.
        vectors {(window, position): [D]} replace those token embeddings (textual inversion).
        projected=False: the pooled output before the text projection (ComfyUI's "unprojected").
        mask_after_end: no token attends to those after the first end token (ComfyUI's
        enable_attention_masks, Stable Cascade's CLIP-G)."""
        from graphflow import memory  # the manager puts the tower on the device and takes it off after

        with memory.use(self.model, "text_encoder", f"text_encoder:{self.name}", self.patches):
            embedding = self.transformer.embeddings.token_embedding
            tokens = torch.tensor(ids, dtype=torch.long, device=memory.manager().device_for(self.model))
            mask = None
            if mask_after_end:
                first_end = (tokens == EOS).int().argmax(dim=1)
                mask = (torch.arange(tokens.shape[1], device=tokens.device)[None] <= first_end[:, None]).long()
            if vectors:
                _install_vector_hook(embedding)
            token = _VECTORS.set(vectors or None)
            try:
                with kernels(tokens.device):
                    out = self.transformer(input_ids=tokens, attention_mask=mask, output_hidden_states=True)
            finally:
                _VECTORS.reset(token)
            hidden = tower_hidden(self, out, clip_skip, layer_norm_hidden)
            pooled = out.pooler_output
            if projected and self.projection is not None:
                pooled = self.projection(pooled)
            return hidden.float().cpu(), pooled.float().cpu()


def check_clip_skip(clip_skip: int) -> None:
    """-1 the last layer, -2 the one before... Past a tower's first layer (-13 on a 12-layer CLIP-L)
    the tower gives its last layer through the final layer norm, as ComfyUI's CLIP does."""
    if isinstance(clip_skip, bool) or not isinstance(clip_skip, int) or clip_skip > -1:
        raise ValueError(f"clip_skip must be a negative integer (-1 the last layer, -2 the one before), got {clip_skip!r}")


def tower_hidden(tower: "ClipTower", out, clip_skip: int, layer_norm: bool) -> torch.Tensor:
    """The hidden states a tower gives at clip_skip from a transformers output with hidden states."""
    if -clip_skip > tower.num_layers:  # ComfyUI: a layer before the first means the last, normed
        return out.last_hidden_state
    hidden = out.hidden_states[clip_skip]
    return tower.transformer.final_layer_norm(hidden) if layer_norm else hidden


# Embedding vectors for the forward running in this thread: the transformer's forward takes ids
# only, so a hook on the token embedding puts them in. The hook stays installed and reads a context
# variable, so two threads sharing one text encoder (server workers) never see each other's.
_VECTORS: ContextVar[dict | None] = ContextVar("graphflow_embedding_vectors", default=None)
_hook_lock = threading.Lock()


def _put_vectors(module, inputs, output):
    vectors = _VECTORS.get()
    if not vectors:
        return None
    output = output.clone()
    for (window, position), vector in vectors.items():
        output[window, position] = vector.to(output.device, output.dtype)
    return output


def _install_vector_hook(embedding: nn.Module) -> None:
    with _hook_lock:
        if not getattr(embedding, "_graphflow_vectors", False):
            embedding.register_forward_hook(_put_vectors)
            embedding._graphflow_vectors = True


class TextEncoder:
    """The CLIP socket: prompt -> (cond [1, 77*k, D], pooled [1, P]).

    `clip_skip` None means the architecture's default (-1 for SD1, -2 for SD2/SDXL);
    `with_clip_skip` gives a new encoder sharing the weights (ComfyUI's CLIPSetLastLayer)."""

    def __init__(self, arch: str, towers: list[ClipTower], clip_skip: int | None = None):
        if arch not in ARCH_TOWERS:
            raise ValueError(f"unknown architecture {arch!r}; expected one of {tuple(ARCH_TOWERS)}")
        self.arch = arch
        self.towers = list(towers)
        self.clip_skip = DEFAULT_CLIP_SKIP[arch] if clip_skip is None else clip_skip
        self._check_clip_skip(self.clip_skip)
        # SetClipHooks' (graphflow.sampling.hooks.ClipHooks): put on what it encodes; kept by the with_* copies
        self.hooks = None

    def _check_clip_skip(self, clip_skip: int) -> None:
        check_clip_skip(clip_skip)

    def with_clip_skip(self, clip_skip: int) -> "TextEncoder":
        return self._like(TextEncoder(self.arch, self.towers, clip_skip))

    def with_towers(self, towers: list[ClipTower]) -> "TextEncoder":
        return self._like(TextEncoder(self.arch, towers, self.clip_skip))

    def _like(self, clone: "TextEncoder") -> "TextEncoder":
        clone.hooks = self.hooks
        return clone

    def tower(self, name: str) -> ClipTower:
        for t in self.towers:
            if t.name == name:
                return t
        raise KeyError(f"this {self.arch} text encoder has no {name} tower (has {[t.name for t in self.towers]})")

    @property
    def output_dim(self) -> int:
        return sum(t.hidden_size for t in self.towers)

    @property
    def device(self) -> torch.device:
        return self.towers[0].transformer.embeddings.token_embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.towers[0].transformer.embeddings.token_embedding.weight.dtype

    def to(self, device=None, dtype=None) -> "TextEncoder":
        for t in self.towers:
            t.model.to(device=device, dtype=dtype)
        return self

    def tokenize(self, prompt: str) -> dict[str, TokenWindows]:
        return {t.name: tokenize_prompt(prompt, t.spec.pad_token, embedding_lookup(t.name, t.hidden_size))
                for t in self.towers}

    def encode(self, prompt: str, clip_skip: int | None = None,
               projected: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
        return self.encode_tokens(self.tokenize(prompt), clip_skip, projected)

    def encode_each(self, prompts: dict[str, str],
                    clip_skip: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each tower encodes its own prompt ({tower name: prompt}; ComfyUI's CLIPTextEncodeSDXL
        gives clip_g text_g and clip_l text_l). As ComfyUI does, the tower with fewer 77-token
        windows gets empty-prompt windows appended, so both cover the same token positions."""
        if sorted(prompts) != sorted(t.name for t in self.towers):
            raise ValueError(f"need one prompt for each tower {[t.name for t in self.towers]}, got {sorted(prompts)}")
        tokens = {}
        for tower in self.towers:
            if not isinstance(prompts[tower.name], str):
                raise TypeError(f"prompt for {tower.name} must be a string, got {type(prompts[tower.name]).__name__}")
            tokens[tower.name] = tokenize_prompt(prompts[tower.name], tower.spec.pad_token,
                                                 embedding_lookup(tower.name, tower.hidden_size))
        count = max(len(w.ids) for w in tokens.values())
        for tower in self.towers:
            windows = tokens[tower.name]
            extra = count - len(windows.ids)
            tokens[tower.name] = TokenWindows(windows.ids + [empty_window(tower.spec.pad_token)] * extra,
                                              windows.weights + [[1.0] * WINDOW] * extra, windows.vectors)
        return self.encode_tokens(tokens, clip_skip)

    def encode_tokens(self, tokens: dict[str, TokenWindows], clip_skip: int | None = None, projected: bool = True):
        """{tower name: windows} -> (cond [1, 77*k, D], pooled). A tower with more windows than
        another is cut to the shorter length, as ComfyUI's SDXL encoder does. projected=False: the
        pooled output before the text projection (GLIGEN reads that one)."""
        clip_skip = self.clip_skip if clip_skip is None else clip_skip
        self._check_clip_skip(clip_skip)
        layer_norm = LAYER_NORM_HIDDEN[self.arch]
        conds, pooled = [], None
        for tower in self.towers:
            cond, tower_pooled = _encode_windows(tower, tokens[tower.name], clip_skip, layer_norm, projected)
            conds.append(cond)
            pooled = tower_pooled  # the last tower's: clip_g for SDXL
        length = min(c.shape[1] for c in conds)
        return torch.cat([c[:, :length] for c in conds], dim=-1), pooled


def _encode_windows(tower: ClipTower, windows: TokenWindows, clip_skip: int, layer_norm: bool,
                    projected: bool = True):
    weighted = windows.has_weights
    ids = windows.ids + ([empty_window(tower.spec.pad_token)] if weighted else [])
    hidden, pooled = tower.run(ids, clip_skip, layer_norm, windows.vectors, projected)
    k = len(windows.ids)
    z = hidden[:k]
    if weighted:
        w = torch.tensor(windows.weights, dtype=torch.float32)[..., None]
        empty = hidden[k:]
        z = torch.where(w != 1.0, (z - empty) * w + empty, z)
    return z.reshape(1, -1, z.shape[-1]), pooled[:1]


def tower_from_weights(spec: TowerSpec, shapes: dict[str, tuple], get_tensor: Callable[..., torch.Tensor],
                       device: torch.device, dtype: torch.dtype, overrides: dict | None = None) -> ClipTower:
    """Build a tower from tower-relative checkpoint keys (prefix already stripped), one tensor at
    a time: `get_tensor(key, device, dtype)` reads it cast and moved; OpenCLIP tensors are then
    split/transposed, and everything is assigned into a meta-built model."""
    overrides = dict(overrides or {})
    hidden_act = overrides.pop("hidden_act", spec.hidden_act)
    from transformers import CLIPTextConfig

    known = set(CLIPTextConfig().to_dict())
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown text encoder config fields {sorted(unknown)}")
    key_map = tower_key_map(spec.layout)
    hf_shapes = to_hf_shapes(shapes, spec.layout)
    config = clip_config_from_shapes(hf_shapes, hidden_act, overrides)
    model = build_tower_module(config, projection="text_projection.weight" in hf_shapes)
    state = {}
    for key in shapes:
        targets = key_map(key)
        if not targets:
            continue
        tensor = get_tensor(key, device, dtype)
        for hf_key, op in targets:
            state[hf_key] = _apply(op, tensor).contiguous()
        del tensor
    load_tower_weights(model, state)
    return ClipTower(spec, model)

