"""HunyuanVideo 1.0 (Tencent, text-to-video): the 13B flow transformer, in Tencent's key layout as
ComfyUI's hunyuan_video_t2v_720p_bf16.safetensors holds it (bare, or under `model.diffusion_model.`):

    img_in.proj (a Conv3d over 1x2x2 patches), time_in.mlp.{0,2}, vector_in.{in_layer,out_layer},
    guidance_in.mlp.{0,2}, txt_in.{input_embedder, t_embedder.mlp.{0,2}, c_embedder.linear_{1,2},
    individual_token_refiner.blocks.N.{norm1, self_attn_qkv, self_attn_proj, norm2, mlp.fc{1,2},
    adaLN_modulation.1}}, double_blocks.N.{img,txt}_{mod.linear, attn_qkv, attn_q_norm, attn_k_norm,
    attn_proj, mlp.fc{1,2}}, single_blocks.N.{linear1, linear2, q_norm, k_norm, modulation.linear},
    final_layer.{linear, adaLN_modulation.1}

The math is FLUX's (graphflow.models.flux: double-stream blocks with joint attention, then
single-stream blocks, modulated by one vector; its rotary tables, final layer and pooled-vector
embedder are reused here) with three differences: the video is cut into 1x2x2 patches by a 3-D
convolution and the rotary positions are (frame, row, column) over (16, 56, 56) of a 128-wide head,
theta 256, text tokens at 0; the text states pass a token refiner first (2 self-attention blocks
gated by the timestep + the text's mean, SiLU MLPs); the modulation vector is the timestep's +
CLIP-L's pooled vector's + the distilled guidance's embedding. ComfyUI renames these keys to its
FLUX-like module names on load; graphflow keeps Tencent's.

The timestep is sigma x 1000 (ComfyUI's ModelSamplingDiscreteFlow multiplier), embedded as it is
(the refiner's too); the guidance (FluxGuidance, ComfyUI's default 6.0) x 1000. The output is the
velocity of x_t = (1 - sigma) x0 + sigma noise. Latent sizes that are not whole patches are padded
circularly (ComfyUI's PatchEmbed) and the output cropped back.

Image to video (HunyuanImageToVideo): the I2V model (33 input channels: the noisy latent, the start
image's latent, 1 - its mask; SkyReels' 32: no mask) takes them concatenated by the sampler
(graphflow.sampling.pipeline.hunyuan_video_concat); the v2 model modulates the first latent frame's
image tokens as clean (guiding_frame_index: token replace).
"""

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .cast_layers import Linear
from .configs import HunyuanVideoConfig, hunyuan_video_config_from_state_dict  # noqa: F401 (configs.py: torch-free)
from .flux import LastLayer, MLPEmbedder, rope_attention, rope_table, text_lengths
from .mmdit import LinearEmbedder, TimestepEmbedder, norm_modulate, pad_to_patches


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, act):
        super().__init__()
        self.fc1, self.fc2, self.act = Linear(dim, hidden), Linear(hidden, dim), act

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def split_heads(qkv, heads: int):
    """[B, L, 3 * dim] -> q, k, v [B, heads, L, head_dim]."""
    b, n, _ = qkv.shape
    return qkv.view(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)


class RefinerBlock(nn.Module):
    """x += gate1 * attn(LN(x)); x += gate2 * mlp(LN(x)); the gates from the refiner's vector."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attn_qkv = Linear(dim, 3 * dim)
        self.self_attn_proj = Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio), nn.SiLU())
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), Linear(dim, 2 * dim))

    def forward(self, x, c):
        gate_attn, gate_mlp = self.adaLN_modulation(c)[:, None].chunk(2, dim=-1)
        q, k, v = split_heads(self.self_attn_qkv(self.norm1(x)), self.heads)
        x = x + gate_attn * self.self_attn_proj(attention(q, k, v).transpose(1, 2).flatten(2))
        return x + gate_mlp * self.mlp(self.norm2(x))


class TokenRefiner(nn.Module):
    """txt_in: the text states projected to the width, then refined by self-attention blocks gated
    by the timestep's embedding + a projection of the states' mean."""

    def __init__(self, cfg: HunyuanVideoConfig):
        super().__init__()
        dim = cfg.hidden_size
        self.input_embedder = Linear(cfg.context_in_dim, dim)
        self.t_embedder = TimestepEmbedder(dim)
        self.c_embedder = LinearEmbedder(cfg.context_in_dim, dim)
        self.individual_token_refiner = nn.Module()
        self.individual_token_refiner.blocks = nn.ModuleList(
            RefinerBlock(dim, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.refiner_depth))

    def forward(self, context, timestep):
        c = self.t_embedder(timestep, context.dtype) + self.c_embedder(context.mean(dim=1))
        x = self.input_embedder(context)
        for block in self.individual_token_refiner.blocks:
            x = block(x, c)
        return x


class Modulation(nn.Module):
    """Tencent's ModulateDiT: Linear(SiLU(vec)) -> `factor` chunks of [B, 1, dim]."""

    def __init__(self, dim: int, factor: int):
        super().__init__()
        self.linear = Linear(dim, factor * dim)
        self.factor = factor

    def forward(self, vec):
        return self.linear(F.silu(vec))[:, None].chunk(self.factor, dim=-1)


def segment_mods(modulation, vec, n_tokens: int):
    """`modulation`'s chunks for `n_tokens` tokens. vec: the vector [B, D] of every token ([B, 1, D]
    chunks), or segments [(vector [B, D], count), ...] in token order, a count None taking the tokens
    left ([B, n_tokens, D] chunks: the v2 image-to-video model's first frame, ComfyUI's modulation_dims)."""
    if torch.is_tensor(vec):
        return modulation(vec)
    counts = [n_tokens - sum(c for _, c in vec if c is not None) if c is None else c for _, c in vec]
    parts = [modulation(v) for v, _ in vec]
    return tuple(torch.cat([p[i].expand(-1, n, -1) for p, n in zip(parts, counts)], dim=1)
                 for i in range(len(parts[0])))


class DoubleBlock(nn.Module):
    """FLUX's double-stream block (image and text weights apart, one joint attention) in Tencent's names."""

    def __init__(self, cfg: HunyuanVideoConfig):
        super().__init__()
        dim, self.heads = cfg.hidden_size, cfg.num_heads
        for s in ("img", "txt"):
            setattr(self, f"{s}_mod", Modulation(dim, 6))
            setattr(self, f"{s}_attn_qkv", Linear(dim, 3 * dim, bias=cfg.qkv_bias))
            setattr(self, f"{s}_attn_q_norm", nn.RMSNorm(cfg.head_dim, eps=1e-6))
            setattr(self, f"{s}_attn_k_norm", nn.RMSNorm(cfg.head_dim, eps=1e-6))
            setattr(self, f"{s}_attn_proj", Linear(dim, dim))
            setattr(self, f"{s}_mlp", FeedForward(dim, int(dim * cfg.mlp_ratio), nn.GELU(approximate="tanh")))

    def _qkv(self, s, x, mods):
        q, k, v = split_heads(getattr(self, f"{s}_attn_qkv")(norm_modulate(x, mods[0], mods[1])), self.heads)
        return getattr(self, f"{s}_attn_q_norm")(q), getattr(self, f"{s}_attn_k_norm")(k), v

    def _post(self, s, x, attn, mods):
        x = x + mods[2] * getattr(self, f"{s}_attn_proj")(attn)
        return x + mods[5] * getattr(self, f"{s}_mlp")(norm_modulate(x, mods[3], mods[4]))

    def forward(self, img, txt, vec, pe, txt_vec=None):
        """vec: the image tokens' (segment_mods); txt_vec the text's, vec when None."""
        img_mods = segment_mods(self.img_mod, vec, img.shape[1])
        txt_mods = self.txt_mod(vec if txt_vec is None else txt_vec)
        (iq, ik, iv), (tq, tk, tv) = self._qkv("img", img, img_mods), self._qkv("txt", txt, txt_mods)
        out = rope_attention(torch.cat([tq, iq], 2), torch.cat([tk, ik], 2), torch.cat([tv, iv], 2), pe)
        n = txt.shape[1]
        return self._post("img", img, out[:, n:], img_mods), self._post("txt", txt, out[:, :n], txt_mods)


class SingleBlock(nn.Module):
    """FLUX's single-stream block (attention and MLP side by side on [text, image]) in Tencent's names."""

    def __init__(self, cfg: HunyuanVideoConfig):
        super().__init__()
        dim, self.heads, self.mlp_hidden = cfg.hidden_size, cfg.num_heads, int(cfg.hidden_size * cfg.mlp_ratio)
        self.linear1 = Linear(dim, 3 * dim + self.mlp_hidden)
        self.linear2 = Linear(dim + self.mlp_hidden, dim)
        self.q_norm = nn.RMSNorm(cfg.head_dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(cfg.head_dim, eps=1e-6)
        self.modulation = Modulation(dim, 3)

    def forward(self, x, vec, pe):
        shift, scale, gate = segment_mods(self.modulation, vec, x.shape[1])
        qkv, hidden = self.linear1(norm_modulate(x, shift, scale)).split([3 * x.shape[-1], self.mlp_hidden], dim=-1)
        q, k, v = split_heads(qkv, self.heads)
        out = rope_attention(self.q_norm(q), self.k_norm(k), v, pe)
        return x + gate * self.linear2(torch.cat([out, F.gelu(hidden, approximate="tanh")], dim=2))


def batch_inputs(x, sigma, context, guidance):
    """sigma [B], context [B, T, D] in x's dtype and guidance [B] float32 (None stays None), each
    broadcast to x's batch B."""
    b = x.shape[0]
    sigma = torch.as_tensor(sigma, device=x.device).reshape(-1).expand(b)
    if guidance is not None:
        guidance = torch.as_tensor(guidance, dtype=torch.float32, device=x.device).reshape(-1).expand(b)
    return sigma, context.to(x.dtype).expand(b, -1, -1), guidance


def patch_tokens(proj, x, patch_size) -> tuple[torch.Tensor, tuple[int, ...]]:
    """x padded to whole patches (circularly) through img_in.proj -> (tokens [B, prod(grid), width], grid)."""
    img = proj(pad_to_patches(x, patch_size))
    return img.flatten(2).transpose(1, 2), img.shape[2:]


def patch_rope_table(txt_len: int, grid: tuple[int, ...], axes_dim, theta, device) -> torch.Tensor:
    """[1, 1, txt_len + prod(grid), head_dim/2, 2, 2]: text at 0 on every axis, then the patches over
    `grid`'s axes ((frame,) row, column)."""
    n = len(grid)
    axes = torch.meshgrid(*(torch.arange(size, device=device) for size in grid), indexing="ij")
    pos = torch.cat([torch.zeros(txt_len, n, device=device), torch.stack(axes, -1).reshape(-1, n).float()])
    return rope_table(pos[None], axes_dim, theta)[:, None]


def unpatchify(out, grid: tuple[int, ...], patch_size: tuple[int, ...], channels: int, size) -> torch.Tensor:
    """The final layer's [B, prod(grid), (C, *patch)] -> [B, C, *size] (the patches put back in place,
    the padding to whole patches cropped)."""
    n = len(grid)  # [B, g1.., C, p1..] -> [B, C, g1, p1, ..]
    out = out.reshape(out.shape[0], *grid, channels, *patch_size)
    out = out.permute(0, n + 1, *(i for d in range(n) for i in (1 + d, n + 2 + d)))
    out = out.reshape(out.shape[0], channels, *(g * p for g, p in zip(grid, patch_size)))
    return out[(..., *(slice(0, s) for s in size))]


class HunyuanVideo(nn.Module):
    def __init__(self, config: HunyuanVideoConfig):
        super().__init__()
        self.config = cfg = config
        if sum(cfg.axes_dim) != cfg.head_dim:
            raise ValueError(f"rotary axes {cfg.axes_dim} must add up to the head size {cfg.head_dim}")
        dim = cfg.hidden_size
        self.img_in = nn.Module()
        self.img_in.proj = nn.Conv3d(cfg.in_channels, dim, cfg.patch_size, stride=cfg.patch_size)
        self.time_in = TimestepEmbedder(dim)
        self.vector_in = MLPEmbedder(cfg.vec_in_dim, dim)
        self.guidance_in = TimestepEmbedder(dim) if cfg.guidance_embed else None
        self.txt_in = TokenRefiner(cfg)
        self.double_blocks = nn.ModuleList(DoubleBlock(cfg) for _ in range(cfg.depth))
        self.single_blocks = nn.ModuleList(SingleBlock(cfg) for _ in range(cfg.depth_single_blocks))
        # FLUX's final layer: LN, (shift, scale) from the vector, Linear to a patch of latent channels
        volume = cfg.patch_size[0] * cfg.patch_size[1] * cfg.patch_size[2]
        self.final_layer = LastLayer(SimpleNamespace(hidden_size=dim, out_channels=volume * cfg.out_channels))

    def forward(self, x, sigma, context, y=None, guidance=None, text_mask=None, control=None,
                guiding_frame_index=None, **unused):
        """x [B, 16, frames, h, w]; sigma [B]; context the text states [B or 1, T, context_in_dim]; y
        CLIP-L's pooled [B, 768] (None: zeros); guidance [B] or None (no guidance embedding) -> velocity
        of x's shape. text_mask [B, T] (1 keep): each sample's text cut to its kept tokens (they must
        lead), which is what diffusers' encoder_attention_mask gives. guiding_frame_index [B] (the v2
        image-to-video model's, HunyuanImageToVideo "v2 (replace)": 0): the first latent frame's image
        tokens are modulated with that timestep's embedding (+ y's, + the guidance's, as ComfyUI adds it
        to both) instead of sigma's (token replace)."""
        if control is not None:
            raise ValueError("ControlNets are not supported with HunyuanVideo models")
        cfg = self.config
        if x.ndim != 5 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"HunyuanVideo takes video latents [B, {cfg.in_channels}, frames, h, w], "
                             f"got {tuple(x.shape)}")
        if context.shape[-1] != cfg.context_in_dim:
            raise ValueError(f"HunyuanVideo takes {cfg.context_in_dim}-wide text states (LLaVA-Llama-3's), the "
                             f"conditioning has {context.shape[-1]}: encode the prompts with DualCLIPLoader, "
                             "type hunyuan_video (clip_l + llava_llama3)")
        b = x.shape[0]
        sigma, context, guidance = batch_inputs(x, sigma, context, guidance)
        y = torch.zeros(b, cfg.vec_in_dim, device=x.device, dtype=x.dtype) if y is None else \
            y.to(x.dtype).reshape(-1, y.shape[-1]).expand(b, -1)
        if text_mask is not None:
            lengths = text_lengths(text_mask, b)
            one = (lambda t, i: None if t is None else t[i:i + 1])
            return torch.cat([self(x[i:i + 1], sigma[i:i + 1], context[i:i + 1, :n], y[i:i + 1],
                                   one(guidance, i), guiding_frame_index=one(guiding_frame_index, i))
                              for i, n in enumerate(lengths)])
        size = x.shape[2:]
        img, grid = patch_tokens(self.img_in.proj, x, cfg.patch_size)
        timestep = 1000 * sigma.float()
        pooled = self.vector_in(y)
        vec = self.time_in(timestep, x.dtype) + pooled
        first = None
        if guiding_frame_index is not None:
            index = torch.as_tensor(guiding_frame_index, device=x.device).reshape(-1).expand(b).float()
            first = self.time_in(index, x.dtype) + pooled
        if self.guidance_in is not None and guidance is not None:
            g = self.guidance_in(1000 * guidance, x.dtype)
            vec, first = vec + g, None if first is None else first + g
        txt = self.txt_in(context, timestep)
        n = txt.shape[1]
        pe = patch_rope_table(n, grid, cfg.axes_dim, cfg.theta, x.device)
        # image tokens: the first frame's by `first` (token replace), else all by vec; text tokens by vec
        img_vec = vec if first is None else [(first, grid[1] * grid[2]), (vec, None)]
        for block in self.double_blocks:
            img, txt = block(img, txt, img_vec, pe, txt_vec=vec)
        seq = torch.cat([txt, img], dim=1)
        for block in self.single_blocks:
            seq = block(seq, vec if first is None else [(vec, n), *img_vec], pe)
        if first is None:
            out = self.final_layer(seq[:, n:], vec)  # [B, t*h*w, (C, pt, ph, pw)]
        else:
            shift, scale = segment_mods(lambda v: self.final_layer.adaLN_modulation(v)[:, None].chunk(2, dim=-1),
                                        img_vec, img.shape[1])
            out = self.final_layer.modulated(seq[:, n:], shift, scale)
        return unpatchify(out, grid, cfg.patch_size, cfg.out_channels, size)
