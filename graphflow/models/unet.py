"""The latent-diffusion UNet of Stable Diffusion 1.x / 2.x / SDXL (base and refiner).

Parameter names mirror the original LDM checkpoints (`model.diffusion_model.*` without
the prefix), so a checkpoint loads with a plain `load_state_dict` and saves with a plain
`state_dict()`. The block layout follows LDM's `openaimodel.UNetModel`:

    input_blocks.0            conv_in
    input_blocks.k            [ResBlock, SpatialTransformer?]  or  [Downsample]
    middle_block              [ResBlock, SpatialTransformer, ResBlock]
    output_blocks.k           [ResBlock, SpatialTransformer?, Upsample?]
    out                       GroupNorm, SiLU, conv_out
"""

import contextvars
import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .block_runner import run_blocks
from .configs import UNetConfig, unet_config_from_state_dict  # noqa: F401 (the config lives in configs.py, torch-free)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [B, dim] of float timesteps [B], cos half first (LDM's order), in float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ResBlock(nn.Module):
    def __init__(self, channels: int, emb_channels: int, out_channels: int, groups: int):
        super().__init__()
        self.in_layers = nn.Sequential(
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        # index 2 held LDM's Dropout; the placeholder keeps the checkpoint key out_layers.3
        self.out_layers = nn.Sequential(
            nn.GroupNorm(groups, out_channels), nn.SiLU(), nn.Identity(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_layers(emb)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Attention(nn.Module):
    # (keys, values) -> (keys, values) on the inputs of to_k / to_v: hypernetworks, set on shallow
    # copies (graphflow.models.hypernetwork)
    kv_patches = ()
    # (queries [B, heads, L, d], the tokens' (h, w) grid or None) -> a second attention's output
    # added to this one's before to_out (IP-Adapter's decoupled cross-attention; the grid for its
    # mask), set on shallow copies (graphflow.models.ip_adapter)
    extra_attention = None
    # (this module, queries, keys, values [B, heads, L, d], the tokens' (h, w) grid) -> the attention's
    # output in place of attention(q, k, v): regional prompts, each region's text attended to where
    # its mask is (graphflow.models.region_attention); set on shallow copies
    attention_override = None

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None = None):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        context = x if context is None else context
        keys = values = context
        for patch in self.kv_patches:
            keys, values = patch(keys, values)
        b, n, _ = x.shape
        q, k, v = (t.view(b, -1, self.heads, t.shape[-1] // self.heads).transpose(1, 2)
                   for t in (self.to_q(x), self.to_k(keys), self.to_v(values)))
        out = attention(q, k, v) if self.attention_override is None else self.attention_override(self, q, k, v, size)
        if self.extra_attention is not None:
            extra = self.extra_attention(q, size)
            if extra is not None:
                out = out + extra
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        # index 1 held LDM's Dropout
        self.net = nn.Sequential(GEGLU(dim, dim * 4), nn.Identity(), nn.Linear(dim * 4, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    # GLIGEN's gated self-attention bound to its grounding tokens, run after the self-attention;
    # set on shallow copies for one call (graphflow.models.gligen)
    gated_self_attention = None
    # patch(queries, keys, (h, w)) -> (queries, keys, (h, w) or None, restore) around the
    # self-attention (ComfyUI's attn1_patch / attn1_output_patch): HyperTile and ToMe hand attn1
    # regrouped or fewer query tokens and the key/value tokens (the block's own tokens at first;
    # keys batched differently from the queries are regrouped as ComfyUI's attention reshapes
    # them, by the queries' batch), with the grid the queries now form for the next patch;
    # restore(out) puts the output back in the block's token layout; set on shallow copies
    # (graphflow.models.hypertile, graphflow.models.tome)
    self_attention_patches = ()

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None,
                 disable_self_attn: bool = False):
        super().__init__()
        # the x4 upscaler's upper levels: attn1 reads the context too (LDM's disable_self_attn)
        self.disable_self_attn = disable_self_attn
        self.attn1 = Attention(dim, heads, dim_head, context_dim if disable_self_attn else None)
        self.ff = FeedForward(dim)
        self.attn2 = Attention(dim, heads, dim_head, context_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        """x [B, h*w, C] tokens of an h x w grid (size, for the self-attention patches)."""
        if self.disable_self_attn:
            x = x + self.attn1(self.norm1(x), context)
        elif self.self_attention_patches:
            x = x + self._patched_self_attention(self.norm1(x), size)
        else:
            x = x + self.attn1(self.norm1(x))
        if self.gated_self_attention is not None:
            x = self.gated_self_attention(x)
        x = x + self.attn2(self.norm2(x), context, size)
        return x + self.ff(self.norm3(x))

    def _patched_self_attention(self, tokens: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
        restores = []
        queries = keys = tokens
        for patch in self.self_attention_patches:
            queries, keys, size, restore = patch(queries, keys, size)
            restores.append(restore)
        if keys.shape[0] != queries.shape[0]:
            keys = keys.reshape(queries.shape[0], -1, keys.shape[-1])
        out = self.attn1(queries, None if keys is queries else keys)
        for restore in reversed(restores):
            out = restore(out)
        return out


class SpatialTransformer(nn.Module):
    def __init__(self, channels: int, heads: int, dim_head: int, depth: int,
                 context_dim: int | None, use_linear: bool, groups: int, disable_self_attn: bool = False):
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner) if use_linear else nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, dim_head, context_dim, disable_self_attn) for _ in range(depth))
        self.proj_out = nn.Linear(inner, channels) if use_linear else nn.Conv2d(inner, channels, 1)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        b, c, h, w = x.shape
        t = self.norm(x)
        if not self.use_linear:
            t = self.proj_in(t)
        t = t.permute(0, 2, 3, 1).reshape(b, h * w, -1)  # tokens in row-major pixel order
        if self.use_linear:
            t = self.proj_in(t)
        for block in self.transformer_blocks:
            t = block(t, context, (h, w))
        if self.use_linear:
            t = self.proj_out(t)
        t = t.reshape(b, h, w, -1).permute(0, 3, 1, 2)
        if not self.use_linear:
            t = self.proj_out(t)
        return x + t


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        # Up to the size of the skip connection it meets (odd sizes: 5 -> 9, not 10), as LDM does
        # when given an output shape; without one, plain doubling.
        if size is None:
            return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class Block(nn.Sequential):
    """LDM's TimestepEmbedSequential: hands each layer the inputs it needs."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor | None,
                up_size: tuple[int, int] | None = None, temporal=None) -> torch.Tensor:
        """temporal: (layer index, fn(x) -> x) run after that layer (an AnimateDiff motion module's
        temporal transformer: graphflow.models.animatediff), or None."""
        for k, layer in enumerate(self):
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, Upsample):
                x = layer(x, up_size)
            else:
                x = layer(x)
            if temporal is not None and k == temporal[0]:
                x = temporal[1](x)
        return x


# The (h, w) of the latent the running UNet was called on (ComfyUI's transformer_options
# "original_shape"), for self-attention patches that depend on it (graphflow.models.hypertile)
latent_size: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("unet_latent_size", default=None)


def transformer_block_levels(unet: "UNet") -> dict[str, int]:
    """Path of each BasicTransformerBlock -> its resolution level: 0 at the latent's size, k at
    1/2^k of it (input blocks after k Downsamples, the output blocks mirrored, the middle last)."""
    deepest = len(unet.config.channel_mult) - 1
    levels = {}
    level = 0
    for k, block in enumerate(unet.input_blocks):
        if any(isinstance(layer, Downsample) for layer in block):
            level += 1
        levels.update({f"input_blocks.{k}.{path}": level for path, m in block.named_modules()
                       if isinstance(m, BasicTransformerBlock)})
    levels.update({f"middle_block.{path}": deepest for path, m in unet.middle_block.named_modules()
                   if isinstance(m, BasicTransformerBlock)})
    level = deepest
    for k, block in enumerate(unet.output_blocks):
        levels.update({f"output_blocks.{k}.{path}": level for path, m in block.named_modules()
                       if isinstance(m, BasicTransformerBlock)})
        if any(isinstance(layer, Upsample) for layer in block):
            level -= 1
    return levels


def _add_control(h: torch.Tensor, residuals, k: int) -> torch.Tensor:
    if residuals is None or residuals[k] is None:
        return h
    return h + residuals[k].to(h.device, h.dtype)


class UNet(nn.Module):
    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = cfg = config
        mc, groups = cfg.model_channels, cfg.norm_groups
        emb_dim = mc * 4

        def transformer(ch: int, depth: int, level: int | None = None) -> SpatialTransformer:
            heads, dim_head = cfg.heads(ch)
            cross = level is not None and bool(cfg.disable_self_attentions and cfg.disable_self_attentions[level])
            return SpatialTransformer(ch, heads, dim_head, depth, cfg.context_dim, cfg.use_linear_in_transformer, groups,
                                      cross)

        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if cfg.adm_in_channels:
            self.label_emb = nn.Sequential(nn.Sequential(
                nn.Linear(cfg.adm_in_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)))
        elif cfg.num_classes:
            self.label_emb = nn.Embedding(cfg.num_classes, emb_dim)

        self.input_blocks = nn.ModuleList([Block(nn.Conv2d(cfg.in_channels, mc, 3, padding=1))])
        skip_channels = [mc]
        ch = mc
        depths = iter(cfg.input_depths())
        for level, (mult, n_res) in enumerate(zip(cfg.channel_mult, cfg.num_res_blocks)):
            for _ in range(n_res):
                layers = [ResBlock(ch, emb_dim, mult * mc, groups)]
                ch = mult * mc
                depth = next(depths)
                if depth:
                    layers.append(transformer(ch, depth, level))
                self.input_blocks.append(Block(*layers))
                skip_channels.append(ch)
            if level != len(cfg.channel_mult) - 1:
                self.input_blocks.append(Block(Downsample(ch)))
                skip_channels.append(ch)

        middle = [ResBlock(ch, emb_dim, ch, groups)]
        if cfg.transformer_depth_middle:
            middle += [transformer(ch, cfg.transformer_depth_middle), ResBlock(ch, emb_dim, ch, groups)]
        self.middle_block = Block(*middle)

        self.output_blocks = nn.ModuleList()
        depths = iter(cfg.output_depths())
        for level in reversed(range(len(cfg.channel_mult))):
            n_res = cfg.num_res_blocks[level]
            for i in range(n_res + 1):
                out_ch = cfg.channel_mult[level] * mc
                layers = [ResBlock(ch + skip_channels.pop(), emb_dim, out_ch, groups)]
                ch = out_ch
                depth = next(depths)
                if depth:
                    layers.append(transformer(ch, depth, level))
                if level and i == n_res:
                    layers.append(Upsample(ch))
                self.output_blocks.append(Block(*layers))

        self.out = nn.Sequential(nn.GroupNorm(groups, ch), nn.SiLU(), nn.Conv2d(mc, cfg.out_channels, 3, padding=1))

    # {(part, block index): (layer index, fn(x, frames) -> x)}: AnimateDiff's temporal modules, set on a
    # shallow copy (graphflow.models.animatediff.attach_motion); part "input", "middle" or "output"
    temporal_layers = None

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor | None = None,
                y: torch.Tensor | None = None, control: dict | None = None,
                num_frames: int | None = None) -> torch.Tensor:
        """x [B, in_channels, h, w], timesteps float [B] in [0, 999], context [B, T, context_dim],
        y [B, adm_in_channels] (SDXL) or integer class labels [B] (num_classes) -> the prediction
        [B, out_channels, h, w] (eps or v).
        Inputs are moved to the UNet's device and dtype; the output stays in them.

        control (ControlNets, T2I-Adapters; lists may hold None for "nothing here"):
          "input":  one tensor per input block, added to its output (T2I-Adapter features),
          "middle": tensors added to the middle block's output,
          "output": one tensor per input block, added to its skip connection as the decoder takes it
                    (ControlNet residuals).

        num_frames: frames per video when the batch holds videos (AnimateDiff's temporal layers; the
        whole batch is one video when not given); ignored without temporal layers."""
        token = latent_size.set(tuple(x.shape[-2:]))
        try:
            if self.temporal_layers:
                from .animatediff import video_frames

                frames = num_frames or x.shape[0]
                if x.shape[0] % frames:
                    raise ValueError(f"a batch of {x.shape[0]} is no whole number of {frames}-frame videos")
                frames_token = video_frames.set(frames)
                try:
                    return self._forward(x, timesteps, context, y, control, frames)
                finally:
                    video_frames.reset(frames_token)
            return self._forward(x, timesteps, context, y, control)
        finally:
            latent_size.reset(token)

    def _temporal(self, part: str, k: int, frames: int | None):
        if frames is None or (part, k) not in self.temporal_layers:
            return None
        after, run = self.temporal_layers[(part, k)]
        return after, lambda h: run(h, frames)

    def _forward(self, x, timesteps, context, y, control, frames: int | None = None) -> torch.Tensor:
        dtype, device = self.out[2].weight.dtype, self.out[2].weight.device
        timesteps = torch.as_tensor(timesteps, device=device)
        if timesteps.dim() == 0:
            timesteps = timesteps.expand(x.shape[0])
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(dtype))
        if self.config.adm_in_channels:
            if y is None:
                raise ValueError(f"this UNet needs the vector conditioning y [B, {self.config.adm_in_channels}]")
            emb = emb + self.label_emb(y.to(device, dtype))
        elif self.config.num_classes:
            if y is None:
                raise ValueError("this UNet needs class labels y [B] (the x4 upscaler: the low-res image's noise level)")
            emb = emb + self.label_emb(y.to(device).long().reshape(-1)).to(dtype)
        if context is not None:
            context = context.to(device, dtype)

        # Layout: activations follow the weights' memory format. Channels-last activations with
        # plain weights measured 1.3x slower on CPU (oneDNN reorders every weight on every call).
        stack = UNetBlocks(self, x.to(device, dtype), emb, context, control or {}, timesteps, frames)
        return self.out(run_blocks(stack))


class UNetBlocks:
    """The UNet's input, middle and output blocks, for graphflow.models.block_runner. first() runs
    input blocks 0 (conv_in) and 1; its probe is block 1's residual (what First Block Cache compares,
    as the pack does); rest() the other blocks, up to the output head. Skip connections, ControlNet
    residuals and the block patches (Deep Shrink, FreeU) apply as without a cache."""

    def __init__(self, unet, x, emb, context, control, timesteps, frames):
        self.unet, self.hidden, self.emb, self.context, self.control = unet, x, emb, context, control
        self.timesteps, self.frames, self.skips = timesteps, frames, []

    def _input(self, k, h):
        unet = self.unet
        h = unet.input_blocks[k](h, self.emb, self.context, temporal=unet._temporal("input", k, self.frames))
        h = _add_control(h, self.control.get("input"), k)
        # Deep Shrink (graphflow.models.deep_shrink): patch(h, block index, timesteps) -> h, set on a
        # shallow copy, before or after the block's output is kept as a skip connection
        for patch in getattr(unet, "input_block_patches", ()):
            h = patch(h, k, self.timesteps)
        self.skips.append(h)
        for patch in getattr(unet, "input_block_patches_after_skip", ()):
            h = patch(h, k, self.timesteps)
        return h

    def _first(self):
        self._before = self._input(0, self.hidden)
        self._after_first = self._input(1, self._before) if len(self.unet.input_blocks) > 1 else self._before

    def first(self):
        self._first()
        after, before = self._after_first, self._before
        # Deep Shrink may resize between the two: then the output stands for the residual
        return after, after - before if after.shape == before.shape else after

    def rest(self):
        unet, h, skips, context, emb = self.unet, self._after_first, self.skips, self.context, self.emb
        control = self.control
        for k in range(len(skips), len(unet.input_blocks)):
            h = self._input(k, h)
        h = unet.middle_block(h, emb, context, temporal=unet._temporal("middle", 0, self.frames))
        for k in range(len(control.get("middle") or ())):
            h = _add_control(h, control["middle"], k)
        patches = getattr(unet, "output_block_patches", ())  # FreeU: set on a shallow copy (graphflow.models.freeu)
        for k, block in enumerate(unet.output_blocks):
            # ControlNet residuals join the skip before any patch sees it, as in ComfyUI
            skip = _add_control(skips.pop(), control.get("output"), len(skips))
            for patch in patches:
                h, skip = patch(h, skip)
            h = torch.cat([h, skip], dim=1)
            # Any multiple of 8 pixels works: a block that upsamples goes to the next skip's size.
            h = block(h, emb, context, skips[-1].shape[2:] if skips else None, unet._temporal("output", k, self.frames))
        return h

    def all(self):
        self._first()
        return self.rest()
