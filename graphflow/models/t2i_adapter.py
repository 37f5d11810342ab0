"""T2I-Adapter (Mou et al. 2023), the full adapter of SD1.x / SD2.x: a small conv net that turns
the hint image into one feature map per UNet level, added to the UNet's encoder after each level's
last residual block (UNet.forward's control "input").

Original layout (TencentARC's files), as ComfyUI reads it:

    conv_in                          after PixelUnshuffle(8): [c0, 64 * hint channels, 3, 3]
    body.{k}.down_opt                (levels after the first) 2x avg-pool, or a stride-2 conv `.op`
    body.{k}.in_conv                 width change (or when there is no plain skip: sk=False)
    body.{k}.block1, .block2         3x3 conv, ReLU, ksize conv; plus x (or skep(x))
    body.{k}.skep                    sk=False files only

with k = level * blocks_per_level + block. diffusers' layout (`adapter.body.{level}.resnets.{block}`)
is renamed to this on loading. SDXL adapters (a different level layout) are not supported.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .weight_files import CheckpointError



@dataclass
class T2IAdapterConfig:
    channels: tuple[int, ...] = (320, 640, 1280, 1280)
    blocks_per_level: int = 2
    hint_channels: int = 3
    ksize: int = 1
    sk: bool = True  # plain skip; False: a conv `skep` on the skip path
    use_conv: bool = False  # downsample with a stride-2 conv instead of average pooling


class AdapterBlock(nn.Module):
    def __init__(self, in_c: int, out_c: int, down: bool, cfg: T2IAdapterConfig):
        super().__init__()
        pad = cfg.ksize // 2
        self.down = down
        if down and cfg.use_conv:
            self.down_opt = nn.Module()
            self.down_opt.op = nn.Conv2d(in_c, in_c, 3, stride=2, padding=1)
        self.in_conv = nn.Conv2d(in_c, out_c, cfg.ksize, padding=pad) if in_c != out_c or not cfg.sk else None
        self.block1 = nn.Conv2d(out_c, out_c, 3, padding=1)
        self.block2 = nn.Conv2d(out_c, out_c, cfg.ksize, padding=pad)
        self.skep = None if cfg.sk else nn.Conv2d(in_c, out_c, cfg.ksize, padding=pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down:
            x = self.down_opt.op(x) if hasattr(self, "down_opt") else F.avg_pool2d(x, 2, 2)
        if self.in_conv is not None:
            x = self.in_conv(x)
        h = self.block2(F.relu(self.block1(x)))
        return h + (x if self.skep is None else self.skep(x))


class T2IAdapter(nn.Module):
    def __init__(self, config: T2IAdapterConfig):
        super().__init__()
        self.config = cfg = config
        self.conv_in = nn.Conv2d(cfg.hint_channels * 64, cfg.channels[0], 3, padding=1)
        body, prev = [], cfg.channels[0]
        for level, ch in enumerate(cfg.channels):
            for b in range(cfg.blocks_per_level):
                body.append(AdapterBlock(prev, ch, level > 0 and b == 0, cfg))
                prev = ch
        self.body = nn.ModuleList(body)
        self._cache = None

    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    def forward(self, hint: torch.Tensor) -> list[torch.Tensor]:
        """hint [B, hint_channels, H, W] in 0..1 (H, W multiples of 64 for 4 levels) -> one feature per level."""
        from graphflow.memory import manager

        x = self.conv_in(F.pixel_unshuffle(hint.to(manager().device_for(self), self.dtype), 8))
        features, n = [], self.config.blocks_per_level
        for level in range(len(self.config.channels)):
            for block in self.body[level * n:(level + 1) * n]:
                x = block(x)
            features.append(x)
        return features

    def control(self, applied, x: torch.Tensor, timesteps, context, y, unet_config=None) -> dict:
        """Features for the UNet's input blocks (None where none is added): each level's feature
        after the level's last ResBlock (SD1/SD2: input blocks 2, 5, 8, 11). They depend on the
        hint only, so they are computed once per hint size and batch, as ComfyUI does."""
        from .controlnet import place_control

        place_control(self, x)
        key = (id(applied), tuple(x.shape), x.dtype, x.device)
        if self._cache is None or self._cache[0] != key:
            hint = applied.hint(x.shape[2] * 8, x.shape[3] * 8, x.shape[0], x.device, self.dtype)
            if self.config.hint_channels == 1:  # sketch/canny adapters read grey levels (ComfyUI: channel mean)
                hint = hint.mean(1, keepdim=True)
            features = self(hint)
            res = (2,) * len(features) if unet_config is None else unet_config.num_res_blocks
            if len(res) != len(features):
                raise ValueError(f"this T2I-Adapter has {len(features)} levels, the UNet {len(res)}")
            blocks = [None] * (sum(n + 1 for n in res))  # conv_in, ResBlocks, downsamples
            index = 0
            for n, f in zip(res, features):
                index += n
                blocks[index] = f
                index += 1
            self._cache = (key, blocks)
        return {"input": list(self._cache[1])}


def from_diffusers_layout(state: dict) -> dict:
    """diffusers' T2IAdapter keys (adapter.body.{level}.resnets.{block}.*) -> the original layout."""
    if not any(k.startswith("adapter.") for k in state):
        return state
    blocks = 1 + max(int(k.split(".")[4]) for k in state if ".resnets." in k)
    out = {}
    for k, v in state.items():
        parts = k.split(".")
        if parts[1] == "conv_in":
            out[".".join(parts[1:])] = v
        elif parts[3] == "resnets":
            out[f"body.{int(parts[2]) * blocks + int(parts[4])}." + ".".join(parts[5:])] = v
        elif parts[3] == "in_conv":
            out[f"body.{int(parts[2]) * blocks}." + ".".join(parts[3:])] = v
        else:
            raise CheckpointError(f"unexpected diffusers T2I-Adapter key {k!r}")
    return out


def t2i_config_from_shapes(shapes: dict, name: str) -> T2IAdapterConfig:
    if "conv_in.weight" not in shapes or not any(k.startswith("body.") for k in shapes):
        raise CheckpointError(f"{name} is not a T2I-Adapter: expected 'conv_in.weight' and 'body.*' keys")
    n_blocks = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("body."))
    starts = [0] + sorted(int(k.split(".")[1]) for k in shapes if k.startswith("body.") and ".in_conv.weight" in k
                          and shapes[k][0] != shapes[k][1])
    per_level = starts[1] if len(starts) > 1 else n_blocks
    levels = n_blocks // per_level
    channels = tuple(shapes[f"body.{level * per_level}.block1.weight"][0] for level in range(levels))
    return T2IAdapterConfig(
        channels=channels, blocks_per_level=per_level, hint_channels=shapes["conv_in.weight"][1] // 64,
        ksize=shapes["body.0.block2.weight"][-1], sk=not any(".skep." in k for k in shapes),
        use_conv=any(".down_opt.op.weight" in k for k in shapes))


def load_t2i_adapter(state: dict, name: str) -> T2IAdapter:
    state = from_diffusers_layout(state)
    config = t2i_config_from_shapes({k: tuple(v.shape) for k, v in state.items()}, name)
    with torch.device("meta"):
        net = T2IAdapter(config)
    expected = net.state_dict()
    if set(expected) != set(state) or any(tuple(state[k].shape) != tuple(expected[k].shape) for k in expected):
        raise CheckpointError(f"{name}: T2I-Adapter weights do not match the layout read from them "
                              f"(missing {sorted(set(expected) - set(state))[:5]}, unexpected {sorted(set(state) - set(expected))[:5]})")
    net.load_state_dict(state, assign=True)
    return net.eval().requires_grad_(False)
