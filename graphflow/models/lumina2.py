"""Lumina Image 2.0 (Alpha-VLLM; also Neta Lumina): the NextDiT transformer, in the original /
ComfyUI key layout (`x_embedder`, `t_embedder.mlp.{0,2}`, `cap_embedder.{0,1}`, `noise_refiner.N`,
`context_refiner.N`, `layers.N.{attention.{qkv,out,q_norm,k_norm},feed_forward.{w1,w2,w3},
attention_norm{1,2},ffn_norm{1,2},adaLN_modulation.1}`, `final_layer.{linear,adaLN_modulation.1}`,
and an unused `norm_final`), bare as lumina_2_model_bf16.safetensors or under ComfyUI's
`model.diffusion_model.` in the all-in-one lumina_2.safetensors.

One sequence of [caption tokens, image tokens] through `layers`: the caption (Gemma-2's states,
RMS-normed and projected by cap_embedder) first goes through `context_refiner` (no modulation),
the 2x2-patched latent through `noise_refiner` (modulated by the timestep). Each block:
x += tanh(gate) * norm2(attn(norm1(x) * (1 + scale))), likewise for its SwiGLU MLP; attention is
grouped-query (qkv one projection: heads, then kv heads, then kv heads), q/k RMS-normed per head,
3-axis rotary positions (theta 10000): caption token i at (i, 0, 0), image patch (row, col) at
(caption length, row, col). The timestep is t = 1 - sigma (Lumina's time runs from noise at 0 to
data at 1), embedded unscaled; the network's output is minus the velocity of
x_t = (1 - sigma) x0 + sigma noise, so `forward` returns its negation (x0 = x - sigma v), as
ComfyUI does. Sampled as ComfyUI's Lumina2: ModelSamplingSD3-style discrete flow, shift 6.0,
multiplier 1; the FLUX VAE's latent (16 channels).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .cast_layers import Linear
from .configs import Lumina2Config, lumina2_config_from_state_dict  # noqa: F401 (configs.py: torch-free)
from .flux import apply_rope, image_ids, patchify, rope_table, text_lengths, unpatchify
from .mmdit import TimestepEmbedder, pad_to_patches


class Attention(nn.Module):
    def __init__(self, cfg: Lumina2Config):
        super().__init__()
        self.cfg = cfg
        self.qkv = Linear(cfg.dim, (cfg.num_heads + 2 * cfg.num_kv_heads) * cfg.head_dim, bias=False)
        self.out = Linear(cfg.num_heads * cfg.head_dim, cfg.dim, bias=False)
        self.q_norm = nn.RMSNorm(cfg.head_dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(cfg.head_dim, eps=1e-6)

    def forward(self, x, pe, mask=None):
        cfg, (b, n, _) = self.cfg, x.shape
        q, k, v = self.qkv(x).split([cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim,
                                     cfg.num_kv_heads * cfg.head_dim], dim=-1)
        q = apply_rope(self.q_norm(q.view(b, n, cfg.num_heads, cfg.head_dim)), pe)
        k = apply_rope(self.k_norm(k.view(b, n, cfg.num_kv_heads, cfg.head_dim)), pe)
        v = v.view(b, n, cfg.num_kv_heads, cfg.head_dim)
        groups = cfg.num_heads // cfg.num_kv_heads
        q = q.transpose(1, 2)
        k, v = k.repeat_interleave(groups, 2).transpose(1, 2), v.repeat_interleave(groups, 2).transpose(1, 2)
        return self.out(attention(q, k, v, mask).transpose(1, 2).flatten(2))


class FeedForward(nn.Module):
    def __init__(self, cfg: Lumina2Config):
        super().__init__()
        self.w1 = Linear(cfg.dim, cfg.ffn_dim, bias=False)
        self.w2 = Linear(cfg.ffn_dim, cfg.dim, bias=False)
        self.w3 = Linear(cfg.dim, cfg.ffn_dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: Lumina2Config, modulation: bool = True):
        super().__init__()
        self.attention = Attention(cfg)
        self.feed_forward = FeedForward(cfg)
        for name in ("attention_norm1", "attention_norm2", "ffn_norm1", "ffn_norm2"):
            setattr(self, name, nn.RMSNorm(cfg.dim, eps=cfg.norm_eps))
        if modulation:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), Linear(cfg.adaln_dim, 4 * cfg.dim))

    def forward(self, x, pe, t_emb=None, mask=None):
        if t_emb is None:  # the caption refiner: no modulation
            x = x + self.attention_norm2(self.attention(self.attention_norm1(x), pe, mask))
            return x + self.ffn_norm2(self.feed_forward(self.ffn_norm1(x)))
        scale_msa, gate_msa, scale_mlp, gate_mlp = self.adaLN_modulation(t_emb)[:, None].chunk(4, dim=-1)
        attended = self.attention(self.attention_norm1(x) * (1 + scale_msa), pe, mask)
        x = x + gate_msa.tanh() * self.attention_norm2(attended)
        return x + gate_mlp.tanh() * self.ffn_norm2(self.feed_forward(self.ffn_norm1(x) * (1 + scale_mlp)))


class FinalLayer(nn.Module):
    def __init__(self, cfg: Lumina2Config):
        super().__init__()
        self.linear = Linear(cfg.dim, cfg.patch_size ** 2 * cfg.in_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), Linear(cfg.adaln_dim, cfg.dim))

    def forward(self, x, t_emb):
        scale = self.adaLN_modulation(t_emb)[:, None]
        return self.linear(F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + scale))


class Lumina2(nn.Module):
    def __init__(self, config: Lumina2Config):
        super().__init__()
        self.config = cfg = config
        if sum(cfg.axes_dims) != cfg.head_dim:
            raise ValueError(f"rotary axes {cfg.axes_dims} must add up to the head size {cfg.head_dim}")
        self.x_embedder = Linear(cfg.patch_size ** 2 * cfg.in_channels, cfg.dim)
        self.noise_refiner = nn.ModuleList(Block(cfg) for _ in range(cfg.num_refiner_layers))
        self.context_refiner = nn.ModuleList(Block(cfg, modulation=False) for _ in range(cfg.num_refiner_layers))
        self.t_embedder = TimestepEmbedder(cfg.adaln_dim)
        self.cap_embedder = nn.Sequential(nn.RMSNorm(cfg.cap_feat_dim, eps=cfg.norm_eps),
                                          Linear(cfg.cap_feat_dim, cfg.dim))
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm_final = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)  # in the files, unused (as in ComfyUI and diffusers)
        self.final_layer = FinalLayer(cfg)

    def positions(self, cap_len: int, rows: int, cols: int, device) -> torch.Tensor:
        """[cap_len + rows * cols, 3] rotary coordinates: captions (i, 0, 0), patches (cap_len, row, col)."""
        cap = torch.zeros(cap_len, 3, device=device)
        cap[:, 0] = torch.arange(cap_len, device=device)
        return torch.cat([cap, image_ids(rows, cols, 1, device, cap_len)[0]])

    def forward(self, x, sigma, context, y=None, text_mask=None, control=None, **unused):
        """x [B, 16, h, w] (padded to whole patches, cropped back), sigma [B], context Gemma-2's
        states [B or 1, T, cap_feat_dim] -> velocity. text_mask [B, T] (1 keep): each sample's
        caption is cut to its kept tokens (they must lead), as ComfyUI and diffusers place the
        image right after the real caption tokens. y is ignored (no pooled vector)."""
        if control is not None:
            raise ValueError("ControlNets are not supported with Lumina 2 models")
        cfg = self.config
        if x.shape[1] != cfg.in_channels:
            raise ValueError(f"Lumina 2 takes {cfg.in_channels}-channel latents, got {x.shape[1]}")
        if context.shape[-1] != cfg.cap_feat_dim:
            raise ValueError(f"Lumina 2 takes Gemma-2's {cfg.cap_feat_dim}-wide text states, the conditioning has "
                             f"{context.shape[-1]}: encode the prompts with a CLIP loaded as type lumina2")
        b, _, H, W = x.shape
        p = cfg.patch_size
        x = pad_to_patches(x, p)
        context = context.to(x.dtype).expand(b, -1, -1)
        sigma = torch.as_tensor(sigma, device=x.device).reshape(-1).expand(b)
        if text_mask is not None:
            lengths = text_lengths(text_mask, b)
            return torch.cat([self(x[i:i + 1], sigma[i:i + 1], context[i:i + 1, :n])
                              for i, n in enumerate(lengths)])[..., :H, :W]
        h, w = x.shape[-2] // p, x.shape[-1] // p
        t_emb = self.t_embedder(1.0 - sigma.float(), x.dtype)
        cap = self.cap_embedder(context)
        pe = rope_table(self.positions(cap.shape[1], h, w, x.device), cfg.axes_dims, cfg.theta)[None, :, None]
        n_cap = cap.shape[1]
        for block in self.context_refiner:
            cap = block(cap, pe[:, :n_cap])
        img = self.x_embedder(patchify(x, p, channels_last=True))
        for block in self.noise_refiner:
            img = block(img, pe[:, n_cap:], t_emb)
        seq = torch.cat([cap, img], dim=1)
        for block in self.layers:
            seq = block(seq, pe, t_emb)
        out = self.final_layer(seq[:, n_cap:], t_emb)
        return -unpatchify(out, h, w, p, channels_last=True)[..., :H, :W]

