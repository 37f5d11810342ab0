"""T2I-Adapter (Mou et al. 2023): a small conv net that turns the hint image into one feature map
per UNet level, added to the UNet's encoder (UNet.forward's control "input"), where diffusers'
UNet2DConditionModel adds its down_intrablock_additional_residuals: after a level's last
residual (+ attention) block, or after its downsampler for a level without attention (SDXL's
first); a feature left over goes after the middle block (SDXL's fourth).

Three kinds: the full adapter (SD1.x / SD2.x), the SDXL full adapter (diffusers'
`full_adapter_xl`: 16x pixel unshuffle, one downsampling level, TencentARC's SDXL files) and the
light adapter (`light_adapter`, TencentARC's color adapter: per level a 1x1 conv to a quarter of
the width, residual blocks, a 1x1 conv back).

Original layout (TencentARC's files), as ComfyUI reads it:

    conv_in                          after PixelUnshuffle(8): [c0, 64 * hint channels, 3, 3]
    body.{k}.down_opt                (levels after the first) 2x avg-pool, or a stride-2 conv `.op`
    body.{k}.in_conv                 width change (or when there is no plain skip: sk=False)
    body.{k}.block1, .block2         3x3 conv, ReLU, ksize conv; plus x (or skep(x))
    body.{k}.skep                    sk=False files only

with k = level * blocks_per_level + block. The light adapter's original layout (as ComfyUI reads it):

    body.{level}.in_conv, .body.{block}.block1 / .block2, .out_conv

diffusers' layouts (`adapter.conv_in`, `adapter.body.{level}.resnets.{block}`, ...) are renamed to
these on loading.
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
    downscale: int = 8  # pixel unshuffle factor (SDXL: 16)
    down_levels: tuple[int, ...] | None = None  # levels that start by halving (None: all but the first; SDXL: (2,))
    light: bool = False

    def downsamples(self, level: int) -> bool:
        return level in self.down_levels if self.down_levels is not None else level > 0


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
        self.conv_in = nn.Conv2d(cfg.hint_channels * cfg.downscale ** 2, cfg.channels[0], 3, padding=1)
        body, prev = [], cfg.channels[0]
        for level, ch in enumerate(cfg.channels):
            for b in range(cfg.blocks_per_level):
                body.append(AdapterBlock(prev, ch, cfg.downsamples(level) and b == 0, cfg))
                prev = ch
        self.body = nn.ModuleList(body)
        self._cache = None

    @property
    def dtype(self) -> torch.dtype:
        return self.conv_in.weight.dtype

    def forward(self, hint: torch.Tensor) -> list[torch.Tensor]:
        """hint [B, hint_channels, H, W] in 0..1 (H, W multiples of 64 for 4 levels) -> one feature per level."""
        from graphflow.memory import manager

        x = self.conv_in(F.pixel_unshuffle(hint.to(manager().device_for(self), self.dtype), self.config.downscale))
        features, n = [], self.config.blocks_per_level
        for level in range(len(self.config.channels)):
            for block in self.body[level * n:(level + 1) * n]:
                x = block(x)
            features.append(x)
        return features

    def control(self, applied, x: torch.Tensor, timesteps, context, y, unet_config=None, **unused) -> dict:
        """Features for the UNet's input blocks (None where none is added) and its middle. They
        depend on the hint only, so they are computed once per hint size and batch, as ComfyUI does."""
        from .controlnet import batch_chunks, place_control, window_key

        place_control(self, x)
        # the hints' batching (ComfyUI's key too) and the AnimateDiff context window whose hint frames it takes
        key = (id(applied), tuple(x.shape), batch_chunks(), x.dtype, x.device, window_key())
        # the control itself is kept with the features: a control made per tile (TiledDiffusion's cuts) and
        # freed could hand its id to the next tile's, which would take this tile's features
        if self._cache is None or self._cache[0] != key or self._cache[2] is not applied:
            # ComfyUI's scale_image_to: the pixel size rounded up to whole unshuffle cells
            d = self.config.downscale
            hint = applied.hint(-(-x.shape[2] * 8 // d) * d, -(-x.shape[3] * 8 // d) * d, x.shape[0], x.device,
                                self.dtype)
            if self.config.hint_channels == 1:  # sketch/canny adapters read grey levels (ComfyUI: channel mean)
                hint = hint.mean(1, keepdim=True)
            self._cache = (key, _fitting(feature_places(self(hint), unet_config), tuple(x.shape[2:]), unet_config),
                           applied)
        return {k: list(v) for k, v in self._cache[1].items()}


def feature_places(features: list[torch.Tensor], unet_config=None) -> dict[str, list]:
    """diffusers' rule: level by level, a feature after the level's last block if it has attention
    (or is the last level), else after its downsampler; one left over after the middle block.
    Without a UNet layout: 2 blocks per level, all with attention."""
    if unet_config is not None and not hasattr(unet_config, "num_res_blocks"):
        raise ValueError(f"T2I-Adapters guide UNet models (SD1/SD2/SDXL), not {type(unet_config).__name__}")
    if unet_config is None:
        res, attention, widths = (2,) * len(features), [True] * len(features), [f.shape[1] for f in features]
    else:
        res, depths, start = unet_config.num_res_blocks, unet_config.input_depths(), 0
        attention = []
        for n in res:
            attention.append(any(depths[start:start + n]))
            start += n
        widths = [m * unet_config.model_channels for m in unet_config.channel_mult]
    blocks, index, left = [None] * (sum(res) + len(res)), 0, list(features)
    for level, n in enumerate(res):
        index += n
        if left:
            at = index if attention[level] or level == len(res) - 1 else index + 1
            blocks[at] = _fits(left.pop(0), widths[level], level)
        index += 1
    if len(left) > 1:
        raise ValueError(f"this T2I-Adapter has {len(features)} levels, the UNet {len(res)}")
    return {"input": blocks, "middle": [_fits(f, widths[-1], "middle") for f in left]}


def _fitting(places: dict[str, list], size: tuple[int, int], unet_config=None) -> dict[str, list]:
    """Features whose map is not the size of the UNet's activation where they go left out (None),
    as ComfyUI skips them: at a latent size that is no multiple of 2 ** (levels - 1) the adapter
    (pooling down) and the UNet (stride-2 convs, rounding up) part ways after the first level."""
    if unet_config is None:
        return places
    sizes = [size]  # the UNet's input blocks' output sizes, in order
    for level, n in enumerate(unet_config.num_res_blocks):
        sizes += [size] * n
        if level < len(unet_config.num_res_blocks) - 1:
            size = tuple(-(-s // 2) for s in size)
            sizes.append(size)
    fits = lambda f, s: f is not None and tuple(f.shape[-2:]) == s  # noqa: E731
    return {"input": [f if fits(f, s) else None for f, s in zip(places["input"], sizes)],
            "middle": [f if fits(f, size) else None for f in places["middle"]]}


def _fits(feature: torch.Tensor, width: int, level) -> torch.Tensor:
    if feature.shape[1] != width:
        raise ValueError(f"this T2I-Adapter's feature for UNet level {level} is {feature.shape[1]} channels wide, "
                         f"the UNet's is {width} (an adapter for another model family?)")
    return feature


class LightAdapterBlock(nn.Module):
    """1x1 conv to a quarter of the width, residual 3x3 conv pairs, 1x1 conv back."""

    def __init__(self, in_c: int, out_c: int, blocks: int, down: bool):
        super().__init__()
        mid = out_c // 4
        self.down = down
        self.in_conv = nn.Conv2d(in_c, mid, 1)
        self.body = nn.ModuleList(LightResBlock(mid) for _ in range(blocks))
        self.out_conv = nn.Conv2d(mid, out_c, 1)

    def forward(self, x):
        if self.down:
            x = F.avg_pool2d(x, 2, 2, ceil_mode=True)
        x = self.in_conv(x)
        for block in self.body:
            x = block(x)
        return self.out_conv(x)


class LightResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.block1, self.block2 = nn.Conv2d(ch, ch, 3, padding=1), nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return x + self.block2(F.relu(self.block1(x)))


class LightAdapter(T2IAdapter):
    def __init__(self, config: T2IAdapterConfig):
        nn.Module.__init__(self)
        self.config = cfg = config
        widths = (cfg.hint_channels * cfg.downscale ** 2,) + tuple(cfg.channels)
        self.body = nn.ModuleList(LightAdapterBlock(widths[i], widths[i + 1], cfg.blocks_per_level, i > 0)
                                  for i in range(len(cfg.channels)))
        self._cache = None

    @property
    def dtype(self) -> torch.dtype:
        return self.body[0].in_conv.weight.dtype

    def forward(self, hint: torch.Tensor) -> list[torch.Tensor]:
        x = F.pixel_unshuffle(hint.to(self.body[0].in_conv.weight.device, self.dtype), self.config.downscale)
        features = []
        for block in self.body:
            x = block(x)
            features.append(x)
        return features


def from_diffusers_layout(state: dict) -> dict:
    """diffusers' T2IAdapter keys (adapter.body.{level}.resnets.{block}.*) -> the original layout."""
    if not any(k.startswith("adapter.") for k in state):
        return state
    if "adapter.body.0.out_conv.weight" in state:  # light: body.{level}.resnets.{block} -> .body.{block}
        return {k.removeprefix("adapter.").replace(".resnets.", ".body."): v for k, v in state.items()}
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
    if "body.0.out_conv.weight" in shapes:  # light
        levels = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("body."))
        return T2IAdapterConfig(
            channels=tuple(shapes[f"body.{i}.out_conv.weight"][0] for i in range(levels)),
            blocks_per_level=len({k.split(".")[3] for k in shapes if k.startswith("body.0.body.")}),
            hint_channels=shapes["body.0.in_conv.weight"][1] // 64, light=True)
    if "conv_in.weight" not in shapes or not any(k.startswith("body.") for k in shapes):
        raise CheckpointError(f"{name} is not a T2I-Adapter: expected 'conv_in.weight' and 'body.*' keys")
    n_blocks = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("body."))
    starts = [0] + sorted(int(k.split(".")[1]) for k in shapes if k.startswith("body.") and ".in_conv.weight" in k
                          and shapes[k][0] != shapes[k][1])
    per_level = starts[1] if len(starts) > 1 else n_blocks
    levels = n_blocks // per_level
    channels = tuple(shapes[f"body.{level * per_level}.block1.weight"][0] for level in range(levels))
    unshuffled = shapes["conv_in.weight"][1]
    xl = unshuffled % 256 == 0 and unshuffled // 256 in (1, 3)  # SDXL: 16x unshuffle of a grey or RGB hint
    return T2IAdapterConfig(
        channels=channels, blocks_per_level=per_level, hint_channels=unshuffled // (256 if xl else 64),
        downscale=16 if xl else 8, down_levels=(2,) if xl else None,
        ksize=shapes["body.0.block2.weight"][-1], sk=not any(".skep." in k for k in shapes),
        use_conv=any(".down_opt.op.weight" in k for k in shapes))


def load_t2i_adapter(state: dict, name: str) -> T2IAdapter:
    state = from_diffusers_layout(state)
    config = t2i_config_from_shapes({k: tuple(v.shape) for k, v in state.items()}, name)
    with torch.device("meta"):
        net = (LightAdapter if config.light else T2IAdapter)(config)
    expected = net.state_dict()
    if set(expected) != set(state) or any(tuple(state[k].shape) != tuple(expected[k].shape) for k in expected):
        raise CheckpointError(f"{name}: T2I-Adapter weights do not match the layout read from them "
                              f"(missing {sorted(set(expected) - set(state))[:5]}, unexpected {sorted(set(state) - set(expected))[:5]})")
    net.load_state_dict(state, assign=True)
    return net.eval().requires_grad_(False)
