"""ControlNet (Zhang, Rao & Agrawala 2023) for the SD1.x / SD2.x / SDXL UNet.

A trainable copy of the UNet's encoder (time embedding, input blocks, middle block) reads the noisy
latent plus a hint image (edges, a pose, a mask) embedded by `input_hint_block`; a zero-initialised
1x1 conv after every input block (`zero_convs`) and after the middle block (`middle_block_out`)
gives residuals that the UNet adds to its skip connections and middle output (UNet.forward's
`control`). Parameter names are the original LDM layout (lllyasviel's files) without the
`control_model.` prefix:

    time_embed, label_emb (SDXL), input_blocks, middle_block     as in graphflow.models.unet
    input_hint_block.{0,2,...,14}   conv(hint, c0) SiLU [conv(ci, ci) SiLU conv(ci, ci+1, stride 2) SiLU]... conv(c3, mc)
    zero_convs.{i}.0                1x1 conv per input block
    middle_block_out.0              1x1 conv

Control-LoRA files (Stability's "control-lora", key `lora_controlnet`) store the encoder as
low-rank differences to the base model's UNet (`<key>.up` @ `<key>.down`) plus full tensors for the
rest; `load_controlnet(path)` gives a ControlLoraFile, built on the sampled model's UNet
weights when a sampling run starts, as ComfyUI's ControlLora.pre_run does.

diffusers' layout (`diffusion_pytorch_model.safetensors`: `controlnet_cond_embedding.*`,
`down_blocks.*`, `controlnet_down_blocks.*`, `controlnet_mid_block.*`) is renamed to the original
one on loading (`from_diffusers_layout`).
"""

import copy
import math
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .diffusers_names import UNetLevels, unet_key
from .unet import Block, Downsample, ResBlock, SpatialTransformer, UNetConfig, timestep_embedding
from .weight_files import CheckpointError, WeightFile

PREFIXES = ("control_model.", "")


@dataclass
class ControlNetConfig:
    unet: UNetConfig  # the encoder's layout; decoder fields (out_channels, output depths) unused
    hint_channels: int = 3
    hint_block: tuple[int, ...] = (16, 32, 96, 256)  # input_hint_block's widths before its last conv


def controlnet_config_from_shapes(shapes: dict[str, tuple[int, ...]], overrides: dict | None = None) -> ControlNetConfig:
    """The config of a ControlNet state dict (no prefix) from key names and shapes; `overrides`
    are UNetConfig fields the shapes cannot show (head layout, GroupNorm groups)."""
    shapes = {k: tuple(v) for k, v in shapes.items()}
    mc, in_channels = shapes["input_blocks.0.0.weight"][:2]
    n_blocks = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("input_blocks."))
    channel_mult, num_res_blocks, depths, res = [], [], [], 0
    for i in range(1, n_blocks):
        if f"input_blocks.{i}.0.op.weight" in shapes:
            num_res_blocks.append(res)
            res = 0
            continue
        if res == 0:
            channel_mult.append(shapes[f"input_blocks.{i}.0.in_layers.2.weight"][0] // mc)
        res += 1
        depths.append(len({k.split(".")[4] for k in shapes if k.startswith(f"input_blocks.{i}.1.transformer_blocks.")}))
    num_res_blocks.append(res)
    per_level, start = [], 0
    for n in num_res_blocks:
        per_level.append(max(depths[start:start + n], default=0))
        start += n
    default = [d for d, n in zip(per_level, num_res_blocks) for _ in range(n)]
    context_dim = next((s[1] for k, s in shapes.items() if k.endswith("attn2.to_k.weight")), None)
    linear = next((len(s) == 2 for k, s in shapes.items() if k.endswith(".proj_in.weight")), False)
    heads = dict(num_heads=8, num_head_channels=-1) if context_dim == 768 else dict(num_heads=-1, num_head_channels=64)
    unet = dict(
        in_channels=in_channels, model_channels=mc, channel_mult=tuple(channel_mult),
        num_res_blocks=tuple(num_res_blocks), transformer_depth=tuple(per_level),
        transformer_depth_middle=len({k.split(".")[3] for k in shapes if k.startswith("middle_block.1.transformer_blocks.")}),
        transformer_depth_input=None if depths == default else tuple(depths),
        context_dim=context_dim, use_linear_in_transformer=linear,
        adm_in_channels=shapes["label_emb.0.0.weight"][1] if "label_emb.0.0.weight" in shapes else 0, **heads)
    names = {f.name for f in fields(UNetConfig)}
    unet.update({k: tuple(v) if isinstance(v, list) else v for k, v in (overrides or {}).items() if k in names})
    return ControlNetConfig(unet=UNetConfig(**unet), hint_channels=shapes["input_hint_block.0.weight"][1],
                            hint_block=hint_encoder_widths(shapes))


def hint_encoder(in_channels: int, widths: tuple[int, ...], out_channels: int) -> nn.Sequential:
    """`input_hint_block`: the hint from pixels to latent size, a stride-2 conv between each pair of widths."""
    hint = [nn.Conv2d(in_channels, widths[0], 3, padding=1), nn.SiLU()]
    for a, b in zip(widths, widths[1:]):
        hint += [nn.Conv2d(a, a, 3, padding=1), nn.SiLU(), nn.Conv2d(a, b, 3, padding=1, stride=2), nn.SiLU()]
    hint.append(nn.Conv2d(widths[-1], out_channels, 3, padding=1))
    return nn.Sequential(*hint)


def hint_encoder_widths(shapes: dict) -> tuple[int, ...]:
    convs = sorted(int(k.split(".")[1]) for k in shapes if k.startswith("input_hint_block.") and k.endswith(".weight"))
    return tuple(shapes[f"input_hint_block.{i}.weight"][0] for i in convs[:-1:2])


class ControlNet(nn.Module):
    def __init__(self, config: ControlNetConfig):
        super().__init__()
        self.config = config
        cfg = config.unet
        mc, groups, emb_dim = cfg.model_channels, cfg.norm_groups, cfg.model_channels * 4

        def transformer(ch: int, depth: int) -> SpatialTransformer:
            heads, dim_head = cfg.heads(ch)
            return SpatialTransformer(ch, heads, dim_head, depth, cfg.context_dim, cfg.use_linear_in_transformer, groups)

        def zero_conv(ch: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(ch, ch, 1))

        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if cfg.adm_in_channels:
            self.label_emb = nn.Sequential(nn.Sequential(
                nn.Linear(cfg.adm_in_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)))

        self.input_hint_block = hint_encoder(config.hint_channels, config.hint_block, mc)

        # the UNet's encoder, as in graphflow.models.unet.UNet
        self.input_blocks = nn.ModuleList([Block(nn.Conv2d(cfg.in_channels, mc, 3, padding=1))])
        self.zero_convs = nn.ModuleList([zero_conv(mc)])
        ch = mc
        depths = iter(cfg.input_depths())
        for level, (mult, n_res) in enumerate(zip(cfg.channel_mult, cfg.num_res_blocks)):
            for _ in range(n_res):
                layers = [ResBlock(ch, emb_dim, mult * mc, groups)]
                ch = mult * mc
                depth = next(depths)
                if depth:
                    layers.append(transformer(ch, depth))
                self.input_blocks.append(Block(*layers))
                self.zero_convs.append(zero_conv(ch))
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(Block(Downsample(ch)))
                self.zero_convs.append(zero_conv(ch))
        middle = [ResBlock(ch, emb_dim, ch, groups)]
        if cfg.transformer_depth_middle:
            middle += [transformer(ch, cfg.transformer_depth_middle), ResBlock(ch, emb_dim, ch, groups)]
        self.middle_block = Block(*middle)
        self.middle_block_out = zero_conv(ch)

    @property
    def dtype(self) -> torch.dtype:
        return self.middle_block_out[0].weight.dtype

    def forward(self, x: torch.Tensor, hint: torch.Tensor, timesteps: torch.Tensor,
                context: torch.Tensor | None = None, y: torch.Tensor | None = None) -> dict[str, list[torch.Tensor]]:
        """x [B, C, h, w] (the UNet's input), hint [B, hint_channels, 8h, 8w] in 0..1 ->
        {"output": one residual per UNet input block (for its skip connection), "middle": [one]}."""
        emb, context = self.embed(x, timesteps, context, y)
        return self.encode(x, self.input_hint_block(hint.to(emb.device, self.dtype)), emb, context)

    def embed(self, x, timesteps, context, y) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(time (+ label) embedding, context), on the net's device and in its dtype."""
        from graphflow.memory import manager

        dtype, device = self.dtype, manager().device_for(self)  # its last blocks may be streamed in
        timesteps = torch.as_tensor(timesteps, device=device)
        if timesteps.dim() == 0:
            timesteps = timesteps.expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(timesteps, self.config.unet.model_channels).to(dtype))
        if self.config.unet.adm_in_channels:
            if y is None:
                raise ValueError(f"this ControlNet needs the vector conditioning y [B, {self.config.unet.adm_in_channels}]")
            emb = emb + self.label_emb(y.to(device, dtype))
        if context is not None:
            context = context.to(device, dtype)
        return emb, context

    def encode(self, x, guided: torch.Tensor, emb: torch.Tensor, context) -> dict[str, list[torch.Tensor]]:
        """The encoder over x, the embedded hint `guided` added after its first block."""
        h = x.to(emb.device, self.dtype)
        outs = []
        for k, (block, zero) in enumerate(zip(self.input_blocks, self.zero_convs)):
            h = block(h, emb, context)
            if k == 0:
                h = h + guided
            outs.append(zero(h))
        h = self.middle_block(h, emb, context)
        return {"output": outs, "middle": [self.middle_block_out(h)]}

    def control(self, applied: "ControlApplied", x, timesteps, context, y, unet_config=None, **unused) -> dict:
        """The residuals for the UNet input x, with the applied hint at x's pixel size."""
        return self(x, self.placed_hint(applied, x, context), timesteps, context, y)

    def placed_hint(self, applied: "ControlApplied", x, context) -> torch.Tensor:
        """The applied hint at x's pixel size, the net placed beside x (refused for a model of
        another text width)."""
        expected = self.config.unet.context_dim
        if context is not None and expected is not None and context.shape[-1] != expected:
            raise ValueError(f"this ControlNet was made for a model with {expected}-wide text embeddings, but "
                             f"the model being sampled gives {context.shape[-1]} (an SD1 ControlNet on SDXL, say)")
        place_control(self, x)
        return applied.hint(x.shape[2] * 8, x.shape[3] * 8, x.shape[0], x.device, self.dtype)


def _diffusers_name(key: str, levels: UNetLevels, hint_blocks: int) -> str:
    """One diffusers ControlNetModel key -> its original-layout name."""
    parts = key.split(".")
    head, rest = parts[0], parts[1:]
    if head == "controlnet_cond_embedding":
        index = 0 if rest[0] == "conv_in" else 2 + 2 * hint_blocks if rest[0] == "conv_out" else 2 + 2 * int(rest[1])
        return f"input_hint_block.{index}." + ".".join(rest[-1:])
    if head == "controlnet_down_blocks":
        return f"zero_convs.{rest[0]}.0." + ".".join(rest[1:])
    if head == "controlnet_mid_block":
        return "middle_block_out.0." + ".".join(rest)
    return unet_key(key, levels)  # the encoder half of a UNet


def from_diffusers_layout(keys) -> dict[str, str]:
    """{original-layout name: diffusers key} for a diffusers ControlNetModel state dict."""
    keys = list(keys)
    levels = UNetLevels(keys)
    hint_blocks = len({k.split(".")[2] for k in keys if k.startswith("controlnet_cond_embedding.blocks.")})
    names = {}
    for k in keys:
        try:
            names[_diffusers_name(k, levels, hint_blocks)] = k
        except (KeyError, ValueError, IndexError):
            raise CheckpointError(f"unexpected key {k!r} in a diffusers-layout ControlNet") from None
    return names


def place_control(net: nn.Module, x: torch.Tensor) -> None:
    """Run in the sampled model's dtype (as ComfyUI casts it) and on its device: where the memory
    manager put the net for the sampling run (graphflow.sampling.pipeline), else moved there."""
    from graphflow.device import same_device
    from graphflow.memory import manager

    # compute_device's "cuda" is x's cuda:0: a partly loaded net (its last blocks streamed) is left so
    if not same_device(manager().device_for(net), x.device):
        net.to(x.device)
    if next(net.parameters()).dtype != x.dtype:
        net.to(dtype=x.dtype)


def _describe(shapes) -> str:
    from .file_kind import identify

    kind = identify(shapes)
    if kind is not None:
        return f"{len(shapes)} tensors. {kind.advice()}"
    return f"{len(shapes)} tensors, first keys {sorted(shapes)[:3]}"


def _strip(shapes) -> str | None:
    for prefix in PREFIXES:
        if f"{prefix}input_hint_block.0.weight" in shapes and f"{prefix}input_blocks.0.0.weight" in shapes:
            return prefix
    return None


def load_control_model(path, base=None, device="cpu", dtype: torch.dtype | None = None):
    """What ControlNetLoader / DiffControlNetLoader load: a ControlNet (plain, Control-LoRA or
    difference file) or a T2I-Adapter, told apart by their keys. A Control-LoRA without `base`
    is a ControlLoraFile, built on the sampled model when sampling starts (`base` is then unused)."""
    with WeightFile(path) as wf:
        shapes = wf.shapes
        if "pos_embed_input.proj.weight" in shapes:  # SD3 / SD3.5
            from .mmdit_controlnet import load_mmdit_controlnet

            return _named(load_mmdit_controlnet, wf, device, dtype)
        if "controlnet_blocks.0.weight" in shapes and "transformer_blocks.0.img_mlp.net.0.proj.weight" in shapes:
            from .qwen_image_controlnet import load_qwen_image_controlnet  # Qwen-Image (InstantX's)

            return _named(load_qwen_image_controlnet, wf, device, dtype)
        if "controlnet_x_embedder.weight" in shapes or "pos_embed_input.weight" in shapes:  # FLUX
            from .flux_controlnet import load_flux_controlnet

            return _named(load_flux_controlnet, wf, device, dtype)
        # T2I-Adapters: full, SDXL, light (a diffusers-layout ControlNet has a conv_in too)
        if "controlnet_cond_embedding.conv_in.weight" not in shapes and any(k in shapes for k in (
                "conv_in.weight", "adapter.conv_in.weight", "body.0.out_conv.weight", "adapter.body.0.out_conv.weight")):
            from .t2i_adapter import load_t2i_adapter

            state = {k: wf.get(k, device, dtype) for k in shapes}
            return load_t2i_adapter(state, wf.path.name)
    return load_controlnet(path, base=base, device=device, dtype=dtype)


def _named(load, wf, device, dtype):
    try:
        return load(wf, device, dtype)
    except CheckpointError as e:
        raise CheckpointError(f"{wf.path.name}: {e}") from None


def load_controlnet(path, base=None, device="cpu", dtype: torch.dtype | None = None) -> ControlNet:
    """A ControlNet from an original-layout file (with or without `control_model.`); a
    "difference" file is added to `base` (a DiffusionModel or UNet). A Control-LoRA file gives a
    ControlLoraFile, whichever the base: as in ComfyUI it is built on the model it is sampled
    with (`bind`; graphflow.sampling.pipeline binds it when a run starts). Pickled .pth files
    load through torch.load(weights_only=True). A union ControlNet (SDXL ControlNet++, its
    tensors under their own names) loads as a graphflow.models.union_controlnet.UnionControlNet."""
    from .union_controlnet import UNION_KEYS, UnionControlNet, union_config

    with WeightFile(path) as wf:
        name = wf.path.name
        overrides = wf.config().get("unet", {})
        if "lora_controlnet" in wf.shapes:
            return ControlLoraFile(wf.path, device, dtype)
        union = {k: s for k, s in wf.shapes.items() if k.startswith(UNION_KEYS)}
        if "controlnet_cond_embedding.conv_in.weight" in wf.shapes:  # diffusers' layout
            try:
                names = from_diffusers_layout(k for k in wf.shapes if k not in union)
            except CheckpointError as e:
                raise CheckpointError(f"{name}: {e}") from None
            shapes = {ours: wf.shapes[theirs] for ours, theirs in names.items()}
            prefix, read = "", lambda k: wf.get(names[k], device, dtype)  # noqa: E731
        else:
            prefix = _strip({k: s for k, s in wf.shapes.items() if k != "difference"})
            read = lambda k: wf.get(prefix + k, device, dtype)  # noqa: E731
            shapes = None if prefix is None else {k[len(prefix):]: s for k, s in wf.shapes.items()
                                                  if k.startswith(prefix) and k != "difference" and k not in union}
        if prefix is None:
            raise CheckpointError(
                f"{name} is not a ControlNet: expected original-layout keys 'control_model.input_hint_block.0.weight' "
                f"and 'control_model.input_blocks.0.0.weight' (or without the prefix), or diffusers' "
                f"'controlnet_cond_embedding.conv_in.weight', found {_describe(wf.shapes)}")
        try:
            config = controlnet_config_from_shapes(shapes, overrides)
            if union:
                config = union_config(config, union)
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{name}: the ControlNet's layout could not be read from its weights ({e})") from None
        with torch.device("meta"):
            net = UnionControlNet(config) if union else ControlNet(config)
        state = {k: read(k) for k in shapes} | {k: wf.get(k, device, dtype) for k in union}
        if "difference" in wf.shapes:  # a "diff" ControlNet: encoder weights stored relative to the base
            if base is None:
                raise CheckpointError(f"{name} stores its weights as differences to a base model: load it with "
                                      f"DiffControlNetLoader and the checkpoint's MODEL connected")
            base_state = _base_state(base)
            for k in state:
                if k in base_state and base_state[k].shape == state[k].shape:
                    state[k] = state[k] + base_state[k].to(state[k].device, state[k].dtype)
    _assign(net, state, name)
    # lllyasviel's shuffle ControlNet was trained with its residuals averaged over the image; ComfyUI
    # tells it by the file name (control_v11e_sd15_shuffle[_fp16])
    net.global_average_pooling = wf.path.stem.endswith(("_shuffle", "_shuffle_fp16"))
    return net.eval().requires_grad_(False)


def _base_state(base) -> dict:
    """The base model's UNet weights, with its LoRAs merged in (a MODEL) or as they are (a UNet)."""
    from graphflow.memory import manager

    return manager().weights(getattr(base, "unet", base), getattr(base, "patches", ()))


def _assign(net: nn.Module, state: dict, name: str) -> None:
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        raise CheckpointError(f"{name}: ControlNet weights do not match the layout read from them: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]}")
    net.load_state_dict(state, assign=True)


class ControlLoraFile:
    """A Control-LoRA as ControlNetLoader and DiffControlNetLoader load it: as ComfyUI's
    ControlLora.pre_run, the ControlNet is built from the weights of the model being sampled (its
    LoRAs merged; not DiffControlNetLoader's model) when a sampling run starts (`bind`), and
    rebuilt only for another model."""

    def __init__(self, path, device="cpu", dtype: torch.dtype | None = None):
        self.path, self.device, self.dtype = path, device, dtype
        self._bound = None  # (the model's key, the ControlNet built on it)

    def bind(self, model) -> ControlNet:
        unet = getattr(model, "unet", model)
        key = (id(unet), tuple(id(p) for p in getattr(model, "patches", ())))
        if self._bound is None or self._bound[0] != key:
            with WeightFile(self.path) as wf:
                overrides = wf.config().get("unet", {})
                self._bound = (key, _load_control_lora(wf, model, self.device, self.dtype, overrides))
        return self._bound[1]

    def control(self, applied, *args, **kwargs) -> dict:
        if self._bound is None:
            raise ValueError(f"{Path(self.path).name} is a Control-LoRA: it is built on the sampled model when "
                             f"sampling starts, which it was not given")
        return self._bound[1].control(applied, *args, **kwargs)


def _load_control_lora(wf: WeightFile, base, device, dtype, overrides) -> ControlNet:
    """ComfyUI's ControlLora: encoder weights = base UNet weight + up @ down where the file has a
    low-rank pair, the file's own tensor where it has one, else the base UNet's."""
    name = wf.path.name
    unet = getattr(base, "unet", base)
    base_state = _base_state(base)
    shapes = {k: s for k, s in wf.shapes.items() if k != "lora_controlnet"}
    full = {}
    for k, s in base_state.items():
        if k.startswith(("input_blocks.", "middle_block.", "time_embed.", "label_emb.")):
            full[k] = tuple(s.shape)
    full.update({k: s for k, s in shapes.items() if not k.endswith((".up", ".down"))})
    if "input_hint_block.0.weight" not in full:
        raise CheckpointError(f"{name}: a Control-LoRA file needs input_hint_block.* tensors")
    config = controlnet_config_from_shapes(full, {**{f.name: getattr(unet.config, f.name) for f in fields(UNetConfig)
                                                    if f.name in ("num_heads", "num_head_channels", "norm_groups")},
                                                  **overrides})
    with torch.device("meta"):
        net = ControlNet(config)
    state = {}
    for k in net.state_dict():
        if k + ".up" in shapes or k.removesuffix(".weight") + ".up" in shapes:
            stem = k.removesuffix(".weight") if k.removesuffix(".weight") + ".up" in shapes else k
            up, down = wf.get(stem + ".up").float(), wf.get(stem + ".down").float()
            diff = (up.flatten(1) @ down.flatten(1)).reshape(base_state[k].shape)
            state[k] = (base_state[k].float().cpu() + diff).to(device, dtype or base_state[k].dtype)
        elif k in shapes:
            state[k] = wf.get(k, device, dtype)
        elif k in base_state:
            state[k] = base_state[k].to(device, dtype or base_state[k].dtype).clone()
    _assign(net, state, name)
    return net.eval().requires_grad_(False)


def whole_image_masks(applied) -> list[str]:
    """What whole-image masks a control carries: an inpainting ControlNet's mask, and
    Advanced-ControlNet's strength mask, timestep keyframe masks and masked weights (each scales
    the residuals over the whole image, so a tile would get the whole mask stretched onto it)."""
    keyframes = getattr(getattr(applied, "keyframes", None), "frames", ())
    weights = [getattr(applied, "weights_override", None)] + [getattr(frame, "weights", None) for frame in keyframes]
    masked = [getattr(holder, "mask", None) is not None for holder in weights]
    strength_mask = getattr(applied, "strength_mask", None)
    found = (("a mask (an inpainting ControlNet's)", getattr(applied, "mask", None) is not None),
             ("an Advanced-ControlNet strength mask (mask_optional)", strength_mask is not None),
             ("a timestep keyframe's mask", any(getattr(frame, "mask", None) is not None for frame in keyframes)),
             ("masked weights (Scaled Soft Masked Weights)", any(masked)))
    return [what for what, given in found if given]


def resize_hint(image: torch.Tensor, height: int, width: int, mode: str = "nearest-exact") -> torch.Tensor:
    """IMAGE [B, H, W, C] -> [B, C, height, width]: centre-cropped to the aspect ratio (the same
    round(excess / 2) cut from both sides), then resized (nearest-exact by default), as ComfyUI's
    ControlNet prepares its hint (common_upscale(..., 'center'))."""
    from graphflow.images import center_crop_to_aspect

    t = center_crop_to_aspect(image.movedim(-1, 1).float(), width, height)
    if tuple(t.shape[2:]) != (height, width):
        t = F.interpolate(t, size=(height, width), mode=mode)
    return t


def _repeat(t: torch.Tensor, batch: int) -> torch.Tensor:
    """Cycled or cut to `batch` along the first dim (ComfyUI's repeat_to_batch_size)."""
    if t.shape[0] == batch:
        return t
    return t.repeat(math.ceil(batch / t.shape[0]), *[1] * (t.ndim - 1))[:batch]


def _broadcast(t: torch.Tensor, batch: int) -> torch.Tensor:
    """A hint batch matched to a model batch of `batch` rows, as ComfyUI's broadcast_image_to: the
    rows are chunks of one conditioning entry each (positive and negative run together), so the
    hints are cycled or cut to one chunk's size and that repeated per chunk (one hint: every row)."""
    if t.shape[0] in (1, batch):
        return _repeat(t, batch)
    return _repeat(_repeat(t, batch // batch_chunks()), batch)


def extend_to(t: torch.Tensor, count: int) -> torch.Tensor:
    """Cut to `count` along the first dim, or extended by repeating the last row (Advanced-ControlNet's
    extend_to_batch_size)."""
    if t.shape[0] >= count:
        return t[:count]
    return torch.cat([t, t[-1:].expand(count - t.shape[0], *t.shape[1:])])


def window_frames(t: torch.Tensor) -> torch.Tensor:
    """A per-frame batch (hint images, strength masks) for the AnimateDiff context window now running
    (graphflow.sampling.context_windows.control_window), as Advanced-ControlNet indexes one under
    AnimateDiff-Evolved's windows: the window's frames of the hint matched to the whole video's frame
    count (extend_to: frames past its end take its last one, without making the extended copy). A
    single frame, or no such window, leaves t as it is (broadcast later). A T2I-Adapter's hint too:
    the pack's T2IAdapterAdvanced (control.py at 0e70221a05a6) fails on frames past a short hint's
    end (IndexError) where its ControlNetAdvanced repeats the last frame; the latter is taken as the
    intent."""
    from graphflow.sampling.context_windows import control_window

    window = control_window.get()
    if window is None or t.shape[0] == 1:
        return t
    frames, _ = window
    last = t.shape[0] - 1  # extend_to(t, full)'s frames, without making the whole video's copy
    return t.index_select(0, torch.tensor([min(f, last) for f in frames], device=t.device))


def window_key() -> tuple | None:
    """The context window now running whose frames controls take (for caches of per-window results)."""
    from graphflow.sampling.context_windows import control_window

    return control_window.get()


def batch_chunks() -> int:
    """How many conditioning entries the model call now running batches (1 outside sampling)."""
    from graphflow.sampling.guidance import unet_rows

    rows = unet_rows.get()
    return len(rows.conds) if rows is not None and rows.conds else 1


@dataclass(frozen=True)
class UnionTyped:
    """A union ControlNet with the hint type SetUnionControlNetType chose (its number in
    graphflow.choices.UNION_CONTROLNET_TYPES less one; None: "auto"). The net is shared with the
    loader's output, which keeps its own type (auto): the weights are held once."""
    net: nn.Module
    control_type: int | None

    @property
    def needs_vae(self) -> bool:
        return getattr(self.net, "needs_vae", False)

    nbytes = 0  # the weights are counted where the net was loaded (graphflow.cache)


class ControlApplied:
    """One ControlNet or T2I-Adapter applied to a conditioning: the net, its hint image, strength and
    the sigma range it is active in, chained to the control applied before it (stacked controls
    add up). Travels in the conditioning options under "control", as ComfyUI's does. mask: for
    inpainting ControlNets, the part of the image to keep [B, 1, H, W] (1 = keep), which they read
    as an extra hint channel; none keeps everything. A UnionTyped net gives its net and its type
    (`control_type`, which union nets read)."""

    def __init__(self, net, image: torch.Tensor, strength: float, start_percent: float = 0.0,
                 end_percent: float = 1.0, previous: "ControlApplied | None" = None, vae=None,
                 mask: torch.Tensor | None = None):
        self.control_type = net.control_type if isinstance(net, UnionTyped) else None
        net = net.net if isinstance(net, UnionTyped) else net
        self.net, self.image, self.strength = net, image, float(strength)
        self.start_percent, self.end_percent = float(start_percent), float(end_percent)
        self.previous, self.vae, self.mask = previous, vae, mask
        self._hint = self._latent = None

    def with_hint(self, image: torch.Tensor, previous: "ControlApplied | None") -> "ControlApplied":
        """This control with another hint image and another control before it (a tiled redraw cuts
        each hint to its tile); the net, strength, range and mask stay."""
        out = copy.copy(self)
        out.image, out.previous, out._hint, out._latent = image, previous, None, None
        return out

    def cut(self, region: tuple[int, int, int, int], size: tuple[int, int], shift: tuple[int, int] = (0, 0),
            run: dict | None = None):
        """This control chain for one tile (y, x, h, w) of a latent of `size` (h, w) sampled in tiles
        (TiledDiffusion): each hint stretched to the latent's pixel size as a whole call stretches it,
        rolled by `shift` latent pixels as the latent was, and cut to the tile. `run`: the sampling
        run's dict, which keeps the stretched hints and the cuts for the run (not on the conditioning,
        which outlives it). ValueError for a control whose input can't be cut (a latent hint, a
        whole-image mask)."""
        if self.vae is not None:
            raise ValueError("TiledDiffusion: cutting a ControlNet that reads its hint as a latent (it takes a VAE: "
                             "SD3, FLUX InstantX / Union) to tiles is not built yet (the pack cuts the encoded hint)")
        masks = whole_image_masks(self)
        if masks:
            raise ValueError(f"TiledDiffusion: a ControlNet that carries {masks[0]} can't be cut to tiles")
        run = {} if run is None else run
        key = ("cut", id(self), tuple(region), tuple(size), tuple(shift))
        if key in run:  # the same tile and shift as an earlier step: its hint is already resized and placed
            return run[key][1]
        height, width = 8 * size[0], 8 * size[1]
        stretched_key = ("stretched", id(self), height, width)
        if stretched_key not in run:  # once a run, not per tile (the control is kept so its id stays its own)
            run[stretched_key] = (self, resize_hint(self.image, height, width))
        stretched = run[stretched_key][1]
        y, x, h, w = (8 * v for v in region)
        if shift == (0, 0):
            tile = stretched[:, :, y:y + h, x:x + w]
        else:  # the tile of the rolled hint, read without rolling the whole: roll(s)[i] = hint[(i - s) mod n]
            rows = (torch.arange(y, y + h) - 8 * shift[0]) % height
            cols = (torch.arange(x, x + w) - 8 * shift[1]) % width
            tile = stretched[:, :, rows][:, :, :, cols]
        previous = None if self.previous is None else self.previous.cut(region, size, shift, run)
        out = self.with_hint(tile.movedim(1, -1), previous)
        run[key] = (self, out)
        return out

    def sigma_range(self, schedule) -> tuple[float, float]:
        """(sigma_start, sigma_end) through the schedule's own percent_to_sigma (ComfyUI's rule:
        0 % is above every sigma, 100 % is sigma 0)."""
        return schedule.percent_to_sigma(self.start_percent), schedule.percent_to_sigma(self.end_percent)

    def residuals(self, x: torch.Tensor, sigma: torch.Tensor, timesteps: torch.Tensor, context, y, schedule,
                  unet_config=None, **extra) -> dict | None:
        """Summed residuals of this control and the ones before it, or None where none is active.
        unet_config: the model's layout (where T2I-Adapter features go, SD3/FLUX depths); extra:
        FLUX's guidance, and the flow model itself as `base` (SD3.5 large ControlNets embed with it)."""
        out = None if self.previous is None else self.previous.residuals(x, sigma, timesteps, context, y, schedule,
                                                                          unet_config, **extra)
        mine = self.own_residuals(x, sigma, timesteps, context, y, schedule, unet_config, **extra)
        if mine is None:
            return out
        if out is None:
            return mine
        for k, v in mine.items():
            before = out.get(k, [])
            # summed place by place; the longer list's extra places kept (ComfyUI's control_merge)
            out[k] = [a if b is None else b if a is None else a + b for a, b in zip(before, v)] \
                + before[len(v):] + v[len(before):]
        return out

    def own_residuals(self, x, sigma, timesteps, context, y, schedule, unet_config=None, **extra) -> dict | None:
        """This control's residuals alone (None where it is not active): the net's, each averaged
        over the image for a shuffle net, times the strength."""
        if not self.in_range(sigma, schedule):
            return None
        mine = self.net_residuals(x, timesteps, context, y, unet_config, **extra)
        return {k: [None if r is None else r * self.strength for r in v] for k, v in mine.items()}

    def in_range(self, sigma, schedule) -> bool:
        if self.start_percent > 0 or self.end_percent < 1:  # a range: read sigma back (a sync) only then
            start, end = self.sigma_range(schedule)
            from graphflow.sampling.model_sampling import in_sigma_window

            return in_sigma_window(sigma, start, end, rounded=True)
        return True

    def net_residuals(self, x, timesteps, context, y, unet_config=None, **extra) -> dict:
        mine = self.net.control(self, x, timesteps, context, y, unet_config, **extra)
        if getattr(self.net, "global_average_pooling", False):  # each residual its per-channel mean everywhere
            mine = {k: [None if r is None else r.mean((2, 3), keepdim=True).expand_as(r) for r in v]
                    for k, v in mine.items()}
        return mine

    def hint(self, height: int, width: int, batch: int, device, dtype) -> torch.Tensor:
        hint = self._hint
        if hint is None or tuple(hint.shape[2:]) != (height, width) or hint.device != device or hint.dtype != dtype:
            # kept on the device: one copy per run, not one per step
            self._hint = hint = resize_hint(self.image, height, width).to(device, dtype)
        return _broadcast(window_frames(hint), batch)  # resized whole (once a run), then cut per window

    def latent_hint(self, height: int, width: int, batch: int, device, dtype, shift: bool = True) -> torch.Tensor:
        """The hint as a model-space latent of height x width (SD3/FLUX ControlNets): resized at
        the VAE's pixel size, encoded, shifted and scaled as the sampled latent is (ComfyUI's rule);
        shift=False: scaled only (InstantX's SD3 ControlNets were trained so)."""
        if self.vae is None:
            raise ValueError("this ControlNet reads the hint as a latent: connect a VAE to the apply node")
        if self._latent is None or self._latent[0] != (height, width, shift):
            f, fmt = self.vae.downscale, self.vae.latent_format
            pixels = resize_hint(self.image, height * f, width * f).movedim(1, -1)
            raw = self.vae.encode(pixels)
            self._latent = ((height, width, shift), fmt.process_in(raw) if shift else raw * fmt.scale_factor)
        return _broadcast(window_frames(self._latent[1]), batch).to(device, dtype)

    def mask_hint(self, height: int, width: int, batch: int, device, dtype) -> torch.Tensor:
        """The kept part [B, 1, height, width] at latent size (nearest-exact, centre-cropped, as
        ComfyUI resizes its extra hint channels); all ones without a mask."""
        if self.mask is None:
            return torch.ones(batch, 1, height, width, device=device, dtype=dtype)
        # matched to the hint images' batch first, then broadcast with them (ComfyUI concatenates it to the hint);
        # in an AnimateDiff context window the hint has the window's frames, and the mask is matched to their
        # count, not cut to the window (Advanced-ControlNet's extra concat: each window takes the first masks)
        window = window_key()
        keep = _repeat(resize_hint(self.mask.movedim(1, -1), height, width),
                       self.image.shape[0] if window is None else len(window[0]))
        return _broadcast(keep, batch).to(device, dtype)
