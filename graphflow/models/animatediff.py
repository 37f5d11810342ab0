"""AnimateDiff motion modules (Guo et al. 2023), as ComfyUI-AnimateDiff-Evolved runs them in an
SD1.5 (or SDXL) UNet: frames sit on the batch dimension and, after each UNet ResBlock + attention
pair, a temporal transformer lets every pixel attend to the same pixel in the other frames.

The single-file layout users download (guoyww's mm_sd_v15.ckpt, mm_sd_v15_v2.ckpt, v3_sd15_mm.ckpt;
HotshotXL's temporal_attentions.* names are renamed to it, as the pack does):

    down_blocks.L.motion_modules.M.temporal_transformer.   L < levels, M < 2
    up_blocks.L.motion_modules.M.temporal_transformer.     M < 3 (the up levels deepest first)
    mid_block.motion_modules.0.temporal_transformer.       v2 only
        norm                                   GroupNorm(32, C, eps 1e-6)
        proj_in, proj_out                      Linear(C, C)
        transformer_blocks.K.attention_blocks.J.{to_q, to_k, to_v (no bias), to_out.0, pos_encoder.pe}
        transformer_blocks.K.norms.J, .ff.net.0.proj, .ff.net.2, .ff_norm

Each attention block: x + to_out(attention over the frames of (norm_J(x) + pe[:frames])), 8 heads;
then x + ff(ff_norm(x)) (GEGLU). The temporal transformer's output is added to its input.

Versions, as AnimateDiff-Evolved tells them (the pack read at commit 599b71807de3, motion_module_ad.py):
v2 has the mid block; v3 has none and 32 positions; v1 none and 24 positions (AnimateLCM: no
positional encoding at all, taken as 64 frames). The pack normalises every GroupNorm (the UNet's and
the motion module's) over all frames of a video, not per frame, for every model except v3 and SD1.5
v2 ("apply_v2_models_properly"): `MotionModel.frames_group_norm`. The pack does it by replacing
torch.nn.GroupNorm.forward for the whole sampling run, so a ControlNet's (or T2I-Adapter's) GroupNorms
run over the frames too; here only the UNet's GroupNorms (and the motion module's) do, each
ControlNet normalising per frame.

Motion scale (`scale_multival`) multiplies the temporal attention's keys; effect
(`effect_multival`) blends: x (1 - effect) + motion(x) effect, as the pack does. Each is a number or
one per frame (`per_frame`: the pack's list multival, a [frames, 1, 1] tensor there, fitted to the
video's length and cut to each context window's frames). Motion LoRAs
(guoyww's v2_lora_*.ckpt) add strength * up @ down to the weights they name (no alpha), on a copy.
Several motion models on one UNet run in turn at each place, the first attached first.

Memory: the motion model itself (a cached node output, perhaps shared with a motion-LoRA copy) is never
moved or cast. The UNets run a copy of it in their compute dtype (`placed_motion`), one per motion
model and dtype, shared by every MODEL the motion model is attached to (two MODELs with one motion
model hold one device copy), made in CPU RAM (sharing the motion model's tensors where the dtypes
agree) and registered with graphflow.memory as a component of kind "motion_model": counted, loaded
to the device when a sampling run starts, right after the UNet it patches (graphflow.sampling.pipeline),
offloaded when memory is short like the other components (least recently used first; whole, or
streamed block by block when only part of it fits), and loaded again for the next run. When RAM runs
short an idle copy off the device is dropped from RAM and made again from the motion model: a copy in
another dtype holds RAM of its own; one in the motion model's dtype shares the motion model's until
it is moved back from a device (the move makes CPU tensors of its own), and shares it again once
dropped and made again.
A motion model with motion LoRAs is another motion model (its patched weights are its own): its copy
is another component, holding the weights the LoRAs leave unchanged once more.
"""

from __future__ import annotations

import contextvars
import math
import re
import threading
import weakref
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .lora import _shallow, patched_copy
from .unet import FeedForward, ResBlock, SpatialTransformer, UNet


class MotionModuleError(ValueError):
    """A file that is no motion module, or a motion module that does not fit the model."""


@dataclass(frozen=True)
class MotionModuleConfig:
    channels: tuple[int, ...] = (320, 640, 1280, 1280)  # per UNet level (SD1.5: 4, SDXL: 3)
    down_modules: int = 2  # temporal modules per down level (one per ResBlock)
    up_modules: int = 3  # per up level
    mid_block: bool = False  # v2
    pe_length: int | None = 24  # frames the positional encoding holds; None: none (AnimateLCM)
    heads: int = 8
    attention_blocks: int = 2
    transformer_layers: int = 1
    norm_groups: int = 32
    hotshot: bool = False  # HotshotXL's file (its names renamed)

    @property
    def base(self) -> str:
        """The UNet family it was made for: 'sdxl' with 3 levels, else 'sd1' (4 levels; scaled-down
        test files of other depths count as SD1.5's layout)."""
        return "sdxl" if len(self.channels) == 3 else "sd1"

    @property
    def version(self) -> str:
        if self.mid_block:
            return "v2"
        return "v3" if self.base == "sd1" and self.pe_length == 32 else "v1"

    @property
    def format(self) -> str:
        return "HotshotXL" if self.hotshot else "AnimateDiff" if self.pe_length is not None else "AnimateLCM"

    @property
    def max_frames(self) -> int:
        return 64 if self.pe_length is None else self.pe_length


_HOTSHOT = re.compile(r"temporal_attentions\.(\d+)\.")
_INDEX = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.motion_modules\.(\d+)\.")


def normalise_keys(state: dict) -> tuple[dict, bool]:
    """Keys in the AnimateDiff layout (HotshotXL's renamed, a 'module.' / 'state_dict' wrapper's prefix
    dropped), non-temporal keys left out, as the pack does; and whether the file was HotshotXL's."""
    hotshot = any(k.endswith("pos_encoder.positional_encoding") for k in state)
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "state_dict."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        if hotshot:
            key = _HOTSHOT.sub(lambda m: f"motion_modules.{m.group(1)}.temporal_transformer.", key, count=1)
            key = key.replace("pos_encoder.positional_encoding", "pos_encoder.pe")
        if "temporal" in key:
            out[key] = value
    return out, hotshot


def _require_ndim(state: dict, key: str, ndim: int, name: str) -> None:
    shape = tuple(state[key].shape)
    if len(shape) != ndim:
        raise MotionModuleError(f"{name}: {key} has shape {shape}; a {ndim}-D tensor was expected (a damaged or "
                                f"foreign file)")


def config_from_state_dict(state: dict, name: str = "motion module", hotshot: bool = False) -> MotionModuleConfig:
    """The config of a motion module's (normalised) state dict; MotionModuleError if it is none."""
    levels: dict[str, dict[int, int]] = {"down_blocks": {}, "up_blocks": {}}
    for key in state:
        m = _INDEX.match(key)
        if m:
            per = levels[m.group(1)]
            per[int(m.group(2))] = max(per.get(int(m.group(2)), 0), int(m.group(3)) + 1)
    down = levels["down_blocks"]
    if not down or sorted(down) != list(range(len(down))):
        raise MotionModuleError(
            f"{name} is no AnimateDiff motion module: expected down_blocks.N.motion_modules.M.temporal_transformer.* "
            f"keys (4 levels for SD1.5, 3 for SDXL)")
    channels = []
    for level in range(len(down)):
        key = f"down_blocks.{level}.motion_modules.0.temporal_transformer.proj_in.weight"
        if key not in state:
            raise MotionModuleError(f"{name}: motion module without {key}")
        _require_ndim(state, key, 2, name)
        channels.append(int(state[key].shape[1]))
    pes = [k for k in state if k.endswith("pos_encoder.pe")]
    for key in pes:
        _require_ndim(state, key, 3, name)
    pe = state[pes[0]] if pes else None
    attention_blocks = 1 + max((int(m.group(1)) for k in state
                                if (m := re.search(r"\.attention_blocks\.(\d+)\.", k))), default=-1)
    layers = 1 + max((int(m.group(1)) for k in state if (m := re.search(r"\.transformer_blocks\.(\d+)\.", k))),
                     default=-1)
    if not attention_blocks or not layers:
        raise MotionModuleError(f"{name}: motion module without transformer_blocks.K.attention_blocks.J "
                                f"weights (a truncated or foreign file)")
    up = levels["up_blocks"]
    return MotionModuleConfig(
        channels=tuple(channels), down_modules=max(down.values()), up_modules=max(up.values()) if up else 0,
        mid_block=any(k.startswith("mid_block.") for k in state),
        pe_length=None if pe is None else int(pe.shape[1]), attention_blocks=attention_blocks,
        transformer_layers=layers, hotshot=hotshot)


def sinusoid_positions(length: int, dim: int) -> torch.Tensor:
    """[1, length, dim]: sin at even channels, cos at odd, frequencies 10000^(-2i/dim)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(1, length, dim)
    pe[0, :, 0::2] = torch.sin(position * freq)
    pe[0, :, 1::2] = torch.cos(position * freq)
    return pe


class PositionalEncoding(nn.Module):
    def __init__(self, dim: int, length: int):
        super().__init__()
        self.register_buffer("pe", sinusoid_positions(length, dim))


class VideoGroupNorm(nn.GroupNorm):
    """The temporal transformer's GroupNorm: per image, or over all frames of each video when given
    `frames` (called as a module, so graphflow.memory's hooks move it in when it is streamed)."""

    def forward(self, x: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        return super().forward(x) if frames is None else frames_group_norm(self, x, frames)


def frames_group_norm(norm: nn.GroupNorm, x: torch.Tensor, frames: int) -> torch.Tensor:
    """GroupNorm of [videos * frames, C, h, w] with statistics over all frames of each video."""
    bf, c, h, w = x.shape
    video = x.reshape(bf // frames, frames, c, h, w).transpose(1, 2)
    out = F.group_norm(video, norm.num_groups, norm.weight, norm.bias, norm.eps)
    return out.transpose(1, 2).reshape(bf, c, h, w)


class TemporalAttention(nn.Module):
    def __init__(self, dim: int, heads: int, pe_length: int | None):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim))
        self.pos_encoder = PositionalEncoding(dim, pe_length) if pe_length else None

    def forward(self, x: torch.Tensor, frames: int, scale: float | torch.Tensor = 1.0) -> torch.Tensor:
        """x [videos * frames, pixels, C] -> the same shape, each pixel attending over its frames;
        scale a number or one per frame ([frames])."""
        bf, pixels, c = x.shape
        t = x.reshape(bf // frames, frames, pixels, c).transpose(1, 2).reshape(-1, frames, c)
        if self.pos_encoder is not None:  # (read, not called: on the CPU when the manager streams its block)
            t = t + self.pos_encoder.pe[:, :frames].to(t.device, t.dtype)
        n = t.shape[0]
        k = self.to_k(t)
        if torch.is_tensor(scale):  # one per frame: each frame's keys times its own
            k = k * scale.to(k.device, k.dtype).view(1, frames, 1)
        elif scale != 1.0:  # the pack's motion scale multiplies the keys
            k = k * scale
        q, k, v = (p.view(n, frames, self.heads, c // self.heads).transpose(1, 2)
                   for p in (self.to_q(t), k, self.to_v(t)))
        out = self.to_out(attention(q, k, v).transpose(1, 2).reshape(n, frames, c))
        return out.reshape(bf // frames, pixels, frames, c).transpose(1, 2).reshape(bf, pixels, c)


class TemporalTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, attention_blocks: int, pe_length: int | None):
        super().__init__()
        self.attention_blocks = nn.ModuleList(TemporalAttention(dim, heads, pe_length) for _ in range(attention_blocks))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(attention_blocks))
        self.ff = FeedForward(dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, frames: int, scale: float | torch.Tensor = 1.0) -> torch.Tensor:
        for attn, norm in zip(self.attention_blocks, self.norms):
            x = x + attn(norm(x), frames, scale)
        return x + self.ff(self.ff_norm(x))


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, cfg: MotionModuleConfig):
        super().__init__()
        self.norm = VideoGroupNorm(cfg.norm_groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            TemporalTransformerBlock(channels, cfg.heads, cfg.attention_blocks, cfg.pe_length)
            for _ in range(cfg.transformer_layers))
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, frames: int, scale: float | torch.Tensor = 1.0,
                norm_over_frames: bool = False) -> torch.Tensor:
        bf, c, h, w = x.shape
        t = self.norm(x, frames if norm_over_frames else None)
        t = self.proj_in(t.permute(0, 2, 3, 1).reshape(bf, h * w, c))
        for block in self.transformer_blocks:
            t = block(t, frames, scale)
        t = self.proj_out(t).reshape(bf, h, w, c).permute(0, 3, 1, 2)
        return x + t


class TemporalModule(nn.Module):
    def __init__(self, channels: int, cfg: MotionModuleConfig):
        super().__init__()
        self.temporal_transformer = TemporalTransformer(channels, cfg)


class MotionBlock(nn.Module):
    def __init__(self, channels: int, count: int, cfg: MotionModuleConfig):
        super().__init__()
        self.motion_modules = nn.ModuleList(TemporalModule(channels, cfg) for _ in range(count))


class MotionModel(nn.Module):
    """A motion module file's weights: down_blocks, up_blocks (deepest level first), mid_block (v2)."""

    def __init__(self, cfg: MotionModuleConfig, name: str = "motion module"):
        super().__init__()
        self.config = cfg
        self.name = name
        self.down_blocks = nn.ModuleList(MotionBlock(c, cfg.down_modules, cfg) for c in cfg.channels)
        self.up_blocks = nn.ModuleList(MotionBlock(c, cfg.up_modules, cfg) for c in reversed(cfg.channels))
        self.mid_block = MotionBlock(cfg.channels[-1], 1, cfg) if cfg.mid_block else None

    def frames_group_norm(self, apply_v2_properly: bool = True) -> bool:
        """Whether the pack normalises GroupNorms over all frames with this model (its GroupNorm hack):
        not for v3, not for SD1.5 v2 models (AnimateDiff, AnimateLCM) unless apply_v2_properly is off
        (the legacy loader's option); for the rest (v1, HotshotXL, AnimateDiff-SDXL)."""
        cfg = self.config
        return not (cfg.version == "v3" or (apply_v2_properly and not cfg.hotshot and cfg.base == "sd1"
                                             and cfg.version == "v2"))

    @property
    def beta_schedule(self) -> str:
        """The pack's autoselected beta schedule for this model (get_best_beta_schedule)."""
        if self.config.base == "sd1":
            return "lcm" if self.config.format == "AnimateLCM" else "sqrt_linear (AnimateDiff)"
        return "linear (HotshotXL/default)" if self.config.hotshot else "linear (AnimateDiff-SDXL)"

    def temporal_modules(self) -> dict[str, list[TemporalModule]]:
        """The temporal modules in the order the pack injects them: per part of the UNet."""
        return {"input": [m for b in self.down_blocks for m in b.motion_modules],
                "output": [m for b in self.up_blocks for m in b.motion_modules],
                "middle": [] if self.mid_block is None else list(self.mid_block.motion_modules)}


def load_motion_model(state: dict, name: str = "motion module") -> MotionModel:
    """A MotionModel from a motion module file's tensors (any layout normalise_keys knows), in the
    file's dtype (the UNet's device and dtype are taken when it first runs)."""
    state, hotshot = normalise_keys(state)
    cfg = config_from_state_dict(state, name, hotshot)
    with torch.device("meta"):  # no initialisation: every weight comes from the file
        model = MotionModel(cfg, name)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise MotionModuleError(f"{name}: the motion module's weights do not fit its layout (missing "
                                f"{missing[:3]}, unexpected {unexpected[:3]})")
    try:
        for key, value in state.items():
            if value.shape != own[key].shape:
                raise RuntimeError(f"{key}: {tuple(value.shape)} where the layout has {tuple(own[key].shape)}")
        dtype = state[next(k for k in state if k.endswith("proj_in.weight"))].dtype
        model.load_state_dict({k: v.to(dtype, copy=True) for k, v in state.items()}, assign=True)
    except RuntimeError as e:
        raise MotionModuleError(f"{name}: the motion module's weights do not fit ({e})") from None
    return model.eval().requires_grad_(False)


# ---- motion LoRAs (guoyww's v2_lora_*.ckpt) ------------------------------------------------------

def check_motion_lora(lora: dict, name: str = "motion LoRA") -> dict[str, torch.Tensor]:
    """A motion LoRA's temporal tensors (keys normalised); MotionModuleError when there are none or a
    lora down / up weight is no matrix."""
    lora = {k: v for k, v in normalise_keys(lora)[0].items() if "temporal" in k}
    if not lora:
        raise MotionModuleError(f"{name} contains no temporal keys; it is no motion LoRA")
    for key in lora:
        if ".down." in key or ".up." in key:
            _require_ndim(lora, key, 2, name)
    return lora


def motion_lora_deltas(lora: dict, motion: MotionModel, name: str = "motion LoRA") -> dict[str, torch.Tensor]:
    """{motion-module weight name: up @ down} of a motion LoRA's tensors, as the pack reads them:
    '<path>.processor.to_q_lora.down.weight' (and .up.) patch '<path>.to_q.weight' ('to_out_lora' patches
    to_out.0); non-temporal keys are dropped and mid-block ones skipped for a model without a mid block."""
    lora = check_motion_lora(lora, name)
    own = motion.state_dict()
    deltas = {}
    for key, down in lora.items():
        if ".down." not in key or (motion.mid_block is None and key.startswith("mid_block.")):
            continue
        up = lora.get(key.replace(".down.", ".up."))
        target = key.replace("processor.", "").replace("_lora", "").replace("down.", "").replace("to_out.", "to_out.0.")
        if (up is None or target not in own or own[target].shape != (up.shape[0], down.shape[1])
                or up.shape[1] != down.shape[0]):
            raise MotionModuleError(f"{name} does not fit {motion.name} ({motion.config.version}): no weight of its "
                                    f"shape for {key}")
        deltas[target] = up.float() @ down.float()
    if not deltas:
        raise MotionModuleError(f"{name} holds no lora down/up pairs")
    return deltas


def with_motion_loras(motion: MotionModel, loras) -> MotionModel:
    """A copy of the motion model with (deltas, strength) pairs added (weight + strength * delta, in
    float32); unpatched weights are shared with the input, which is unchanged."""
    if not loras:
        return motion
    own = motion.state_dict()
    weights = {}
    for deltas, strength in loras:
        for key, delta in deltas.items():
            base = weights.get(key, own[key].float())
            weights[key] = base + strength * delta.to(base.device)
    patched = patched_copy(motion, {k: v.to(own[k].dtype) for k, v in weights.items()})
    return patched


# ---- in the UNet --------------------------------------------------------------------------------

def motion_slots(unet: UNet) -> dict[str, list[tuple[int, int, int]]]:
    """Where the pack puts temporal modules, per part: (block index, layer index after which it runs,
    channels). After the block's last SpatialTransformer, else after its first ResBlock; blocks with
    neither (conv_in, Downsample) get none."""
    slots = {}
    for part, blocks in (("input", unet.input_blocks), ("output", unet.output_blocks), ("middle", [unet.middle_block])):
        slots[part] = []
        for k, block in enumerate(blocks):
            layers = list(block)
            attn = [i for i, layer in enumerate(layers) if isinstance(layer, SpatialTransformer)]
            res = [i for i, layer in enumerate(layers) if isinstance(layer, ResBlock)]
            if attn or res:
                at = attn[-1] if attn else res[0]
                channels = layers[res[0]].out_layers[3].out_channels
                slots[part].append((k, at, channels))
    return slots


@dataclass(frozen=True)
class MotionSettings:
    # a number, or one per frame of the whole video (a tuple: ADE_MultivalDynamic's list), which
    # per_frame cuts to the frames of each UNet call
    scale: float | tuple[float, ...] = 1.0
    effect: float | tuple[float, ...] = 1.0
    # (highest, lowest) sigma the motion model runs at (the pack's start / end percent); None: always
    sigma_range: tuple[float, float] | None = None
    # the context options' context_length when the MODEL samples in windows (None: without); for errors
    context_length: int | None = None

    def active(self) -> bool:
        """Whether the motion model runs in the UNet call now running (its sigma, from the sampler)."""
        if self.sigma_range is None:
            return True
        from graphflow.sampling.guidance import unet_rows

        rows = unet_rows.get()
        if rows is None:
            return True
        sigma = float(rows.sigma.reshape(-1)[0])
        return self.sigma_range[1] <= sigma <= self.sigma_range[0]


def too_many_frames(motion: MotionModel, frames: int, context_length: int | None = None) -> MotionModuleError:
    """The pack's refusal, worded by case: without context options the whole video runs at once; with
    them each window of context_length frames does (the whole video when it is no longer than that)."""
    limit = motion.config.max_frames
    held = f"AnimateDiff motion module {motion.name!r} takes at most {limit} frames at once (its positional " \
           f"encoding holds {limit} frames)"
    if context_length is None:
        return MotionModuleError(
            f"without context options, {held}; got {frames}. Use fewer frames or context options (e.g. "
            f"ADE_StandardStaticContextOptions) with a context_length of at most {limit}")
    return MotionModuleError(
        f"with context options of context_length {context_length}, {held}; got {frames} (a window of "
        f"context_length frames, or the whole video where it is no longer). Set the context options' "
        f"context_length to at most {limit}")


# (motion model) -> {compute dtype: (its copy in that dtype, the copy's temporal modules)}
_placed: "weakref.WeakKeyDictionary[MotionModel, dict]" = weakref.WeakKeyDictionary()
_placed_lock = threading.Lock()


def _copy_in(motion: MotionModel, dtype: torch.dtype) -> MotionModel:
    """A new module tree with the motion model's weights in CPU RAM and `dtype` (tensors already so
    shared with it); hooks and placement are the copy's own."""
    with torch.device("meta"):
        copy = MotionModel(motion.config, motion.name)
    state = {k: v.to("cpu", dtype if v.is_floating_point() else v.dtype) for k, v in motion.state_dict().items()}
    copy.load_state_dict(state, assign=True)
    return copy.eval().requires_grad_(False)


def _reloaded(motion_ref: weakref.ref, dtype: torch.dtype) -> MotionModel:
    motion = motion_ref()
    if motion is None:  # (not reached: the copy lives only as long as its motion model)
        raise RuntimeError("the motion model of this copy is gone")
    return _copy_in(motion, dtype)


def placed_motion(motion: MotionModel, dtype: torch.dtype) -> tuple[MotionModel, dict[str, list[TemporalModule]]]:
    """The copy of the motion model the UNets computing in `dtype` run (made once, shared by every
    MODEL with this motion model, registered with graphflow.memory as kind "motion_model"; see the
    module docstring) and its temporal modules per part of the UNet."""
    from graphflow.memory import manager

    with _placed_lock:
        copies = _placed.setdefault(motion, {})
        if dtype not in copies:
            copy = _copy_in(motion, dtype)
            copies[dtype] = (copy, copy.temporal_modules())
            # droppable from RAM, made again from the motion model: a copy in another dtype holds RAM
            # of its own; one in the motion model's dtype too once moved back from a device, and when
            # made again it shares the motion model's tensors again
            manager().set_source(copy, "motion_model", motion_memory_name(motion),
                                 partial(_reloaded, weakref.ref(motion), dtype))
        return copies[dtype]


def motion_memory_name(motion: MotionModel) -> str:
    return f"motion_model:{motion.name}@{id(motion):x}"


def unet_motion_models(unet) -> tuple[MotionModel, ...]:
    """The motion models attached to a UNet (attach_motion), the first attached first."""
    return getattr(unet, "motions", ())


def per_frame(value: float | tuple[float, ...], frames: int) -> float | torch.Tensor:
    """A multival for a UNet call of `frames` frames: a number as it is; a list (one per frame) as the
    pack takes it: fitted to the whole video's length (cut, or its last value repeated; the video is
    the call's frames, or under context windows over the batch the windowed latent's), then the
    running window's frames of it (the pack's full_length and sub_idxs)."""
    if not isinstance(value, tuple):
        return value
    from graphflow.sampling.context_windows import batch_window

    window, length = batch_window.get() or (None, frames)
    if window is None or len(window) != frames:  # not windowed (or not this call's frames): the first ones
        window, length = range(frames), max(length, frames)
    fitted = list(value[:length]) + [value[-1]] * (length - len(value))
    return torch.tensor([fitted[i] for i in window], dtype=torch.float32)


def _run_temporal(motion: MotionModel, part: str, index: int, settings: MotionSettings, norm_over_frames: bool,
                  x: torch.Tensor, frames: int) -> torch.Tensor:
    if frames > motion.config.max_frames:  # the pack refuses these before sampling
        raise too_many_frames(motion, frames, settings.context_length)
    effect = per_frame(settings.effect, frames)
    if (not torch.is_tensor(effect) and effect == 0.0) or not settings.active():
        return x
    copy, modules = placed_motion(motion, x.dtype)  # the UNet's compute dtype
    from graphflow.device import same_device
    from graphflow.memory import manager

    # loaded with the UNet in a sampling run; outside one, loaded here (compute_device's "cuda" is x's cuda:0)
    if not same_device(manager().device_for(copy), x.device):
        manager().load(copy, "motion_model", motion_memory_name(motion))
    out = modules[part][index].temporal_transformer(x, frames, per_frame(settings.scale, frames), norm_over_frames)
    if torch.is_tensor(effect):  # one per frame, for each video of the batch ([videos * frames, C, h, w])
        effect = effect.to(x.device, x.dtype).repeat(x.shape[0] // frames).view(-1, 1, 1, 1)
        out = x * (1.0 - effect) + out * effect
    elif effect != 1.0:
        out = x * (1.0 - effect) + out * effect
    return out


# frames per video of the running UNet call (the latent batch = frames), for FramesGroupNorm
video_frames: contextvars.ContextVar[int | None] = contextvars.ContextVar("video_frames", default=None)


class FramesGroupNorm(nn.GroupNorm):
    """A GroupNorm sharing another's weights whose statistics span all frames of a video (the pack's
    GroupNorm hack), when a UNet call with frames runs; per image otherwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = video_frames.get()
        if frames is None or x.ndim != 4 or x.shape[0] % frames:
            return super().forward(x)
        return frames_group_norm(self, x, frames)


def _frames_norm_copy(module: nn.Module) -> nn.Module:
    """A copy of the module tree whose GroupNorms are FramesGroupNorms; every parameter is shared."""
    clone = _shallow(module)
    if type(module) is nn.GroupNorm:
        clone.__class__ = FramesGroupNorm
        return clone
    for name, child in module._modules.items():
        if child is not None:
            clone._modules[name] = _frames_norm_copy(child)
    return clone


def _chained(first, second, x: torch.Tensor, frames: int) -> torch.Tensor:
    return second(first(x, frames), frames)


def attach_motion(unet: UNet, motion: MotionModel, settings: MotionSettings = MotionSettings(),
                  apply_v2_properly: bool = True, frames_group_norm: bool | None = None) -> UNet:
    """A shallow copy of `unet` that runs the motion model's temporal modules (the input is unchanged;
    the weights are shared); its GroupNorms over all frames where the pack's hack applies
    (MotionModel.frames_group_norm, or frames_group_norm when given). On a UNet that already runs a
    motion model, this one runs after it at each place (the pack's order for several motion models).
    MotionModuleError when the module does not fit the UNet's layout."""
    if type(unet) is not UNet:
        raise MotionModuleError("a motion module goes on an SD1.5 / SDXL UNet")
    slots = motion_slots(unet)
    modules = motion.temporal_modules()
    cfg = motion.config
    family = {"sd1": "SD1.5", "sdxl": "SDXL"}[cfg.base]
    for part, places in slots.items():
        have = modules[part]
        if part == "middle" and not have:
            continue
        fits = len(places) == len(have) and all(
            c == m.temporal_transformer.proj_in.weight.shape[1] for (_, _, c), m in zip(places, have))
        if not fits:
            wanted = [c for _, _, c in places]
            got = [m.temporal_transformer.proj_in.weight.shape[1] for m in have]
            raise MotionModuleError(
                f"{motion.name} is a {family} motion module ({cfg.version}); it does not fit this model's UNet "
                f"({part} blocks: the UNet has {len(wanted)} places of {sorted(set(wanted))} channels, the motion "
                f"module {len(got)} of {sorted(set(got))})")
    norm_over_frames = motion.frames_group_norm(apply_v2_properly) if frames_group_norm is None else frames_group_norm
    layers = dict(unet.temporal_layers or {})
    for part, places in slots.items():
        for index, ((block, after, _), _module) in enumerate(zip(places, modules[part])):
            run = partial(_run_temporal, motion, part, index, settings, norm_over_frames)
            if (part, block) in layers:
                run = partial(_chained, layers[(part, block)][1], run)
            layers[(part, block)] = (after, run)
    patched = _shallow(unet)
    if norm_over_frames:
        for name in ("input_blocks", "middle_block", "output_blocks", "out"):
            patched._modules[name] = _frames_norm_copy(unet._modules[name])
    patched.temporal_layers = layers
    patched.motion = (motion, settings)  # the last attached
    patched.motions = (*unet_motion_models(unet), motion)  # all, for graphflow.memory (sampling.pipeline)
    patched.without_motion = getattr(unet, "without_motion", unet)  # the UNet the first motion model went on
    return patched


