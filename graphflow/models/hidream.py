"""HiDream-I1 (HiDream.ai; Full, Dev and Fast share it): the sparse MM-DiT, in the key layout of
ComfyUI's files (hidream_i1_full_fp16.safetensors, ..._dev_bf16, ..._fast_fp8; the original
repository's names, as diffusers' HiDreamImageTransformer2DModel has them): `x_embedder.proj`,
`t_embedder.timestep_embedder.linear_{1,2}`, `p_embedder.pooled_embedder.linear_{1,2}`,
`double_stream_blocks.N.block.{adaLN_modulation.1,attn1.{to_q,to_k,to_v,to_out,q_rms_norm,k_rms_norm,
to_q_t,...,k_rms_norm_t},ff_i.{gate.weight,experts.E.w{1,2,3},shared_experts.w{1,2,3}},ff_t.w{1,2,3}}`,
`single_stream_blocks.N.block.{adaLN_modulation.1,attn1.*,ff_i.*}`, `caption_projection.K.linear`,
`final_layer.{linear,adaLN_modulation.1}`, bare or under ComfyUI's `model.diffusion_model.`.

Patches are 2x2 tokens of the FLUX VAE's 16-channel latent, features (row, column, channel). The
timestep (1000 sigma, sinusoidal) and the pooled CLIP-L + CLIP-G vector (2048) are each embedded
and summed into the one vector that modulates every block. The text is T5-XXL's states and a
list of Llama 3.1 8B's per-layer states (`llama_states` [B, layers, L, 4096], ComfyUI's
"conditioning_llama3"), each projected by its own caption_projection (bias-free): block i reads
Llama layer llama_layers[i] (0 .. 31, then 31 for the rest); T5's is the last projection.

Double-stream blocks (16): image and text keep their own weights (modulation from one 12-way
adaLN, q/k/v/out, q and k RMS-normed over the whole width) and meet in one attention over
[image, text]; the text is [T5, Llama layer 31, this block's Llama layer], of which only the first
two parts are carried on (the block's layer is added fresh each time). Single-stream blocks (32):
one sequence [image, T5, Llama 31] + this block's Llama layer, cut back after the block. The
image's feed-forward is a mixture of experts: a softmax gate over 4 SwiGLU experts, the top 2
weighted by their (not renormalised) softmax scores, plus a shared SwiGLU expert (ComfyUI's and
diffusers' inference routing alike); the text's (double blocks) is one SwiGLU. Rotary positions
over three axes (64, 32, 32 of a 128-wide head; theta 10000, FLUX's tables): patches at (0, row,
column), every text token at (0, 0, 0). The output is negated: ComfyUI's velocity of
x_t = (1 - sigma) x0 + sigma noise (diffusers' transformer gives the opposite, its pipeline negates
it). Odd latent sizes are padded to whole patches (circular, as ComfyUI's pad_to_patch_size) and
the output cropped back; ComfyUI puts no cap on the size (diffusers' max_resolution padding of
non-square latents to 128 x 128 patches is not ComfyUI's).
"""

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .block_runner import run_blocks
from .cast_layers import Linear
from .configs import HiDreamConfig, hidream_config_from_state_dict  # noqa: F401 (configs.py: torch-free)
from .flux import LastLayer, apply_rope, image_ids, patchify, rope_table, unpatchify
from .mmdit import LinearEmbedder, LinearTimestepEmbedder, norm_modulate, pad_to_patches


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1, self.w2, self.w3 = Linear(dim, hidden, bias=False), Linear(hidden, dim, bias=False), \
            Linear(dim, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Gate(nn.Module):
    def __init__(self, dim: int, experts: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(experts, dim))


class MoE(nn.Module):
    """Each token: the top-k experts by softmax score, weighted by those scores, + the shared expert."""

    def __init__(self, cfg: HiDreamConfig):
        super().__init__()
        self.top_k = cfg.num_activated_experts
        self.gate = Gate(cfg.dim, cfg.num_routed_experts)
        self.experts = nn.ModuleList(SwiGLU(cfg.dim, cfg.expert_hidden) for _ in range(cfg.num_routed_experts))
        self.shared_experts = SwiGLU(cfg.dim, cfg.shared_hidden)

    def forward(self, x):
        flat = x.reshape(-1, x.shape[-1])
        scores = F.linear(flat, self.gate.weight.to(flat.dtype)).softmax(dim=-1)
        weight, chosen = scores.topk(self.top_k, dim=-1)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            rows, slot = (chosen == e).nonzero(as_tuple=True)
            if rows.numel():
                out.index_add_(0, rows, (expert(flat[rows]) * weight[rows, slot, None]).to(out.dtype))
        return out.reshape(x.shape) + self.shared_experts(x)


class Attention(nn.Module):
    def __init__(self, cfg: HiDreamConfig, single: bool):
        super().__init__()
        self.heads, dim = cfg.num_heads, cfg.dim
        streams = ("",) if single else ("", "_t")
        for s in streams:
            for name in ("to_q", "to_k", "to_v", "to_out"):
                setattr(self, name + s, Linear(dim, dim))
            # over the whole width, not per head
            setattr(self, "q_rms_norm" + s, nn.RMSNorm(dim, eps=1e-5))
            setattr(self, "k_rms_norm" + s, nn.RMSNorm(dim, eps=1e-5))

    def qkv(self, x, s: str = ""):
        def heads(t):
            return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # [B, H, L, D]

        q = getattr(self, "q_rms_norm" + s)(getattr(self, "to_q" + s)(x)).to(x.dtype)
        k = getattr(self, "k_rms_norm" + s)(getattr(self, "to_k" + s)(x)).to(x.dtype)
        return heads(q), heads(k), heads(getattr(self, "to_v" + s)(x))

    def forward(self, img, pe, txt=None):
        q, k, v = self.qkv(img)
        if txt is not None:  # one sequence [image, text]
            q, k, v = (torch.cat(pair, dim=2) for pair in zip((q, k, v), self.qkv(txt, "_t")))
        out = attention(apply_rope(q, pe), apply_rope(k, pe), v).transpose(1, 2).flatten(2)
        if txt is None:
            return self.to_out(out)
        n = img.shape[1]
        return self.to_out(out[:, :n]), self.to_out_t(out[:, n:])


class DoubleBlock(nn.Module):
    def __init__(self, cfg: HiDreamConfig):
        super().__init__()
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), Linear(cfg.dim, 12 * cfg.dim))
        self.attn1 = Attention(cfg, single=False)
        self.ff_i = MoE(cfg)
        self.ff_t = SwiGLU(cfg.dim, cfg.expert_hidden)

    def forward(self, img, txt, vec, pe):
        (shift_ai, scale_ai, gate_ai, shift_fi, scale_fi, gate_fi,
         shift_at, scale_at, gate_at, shift_ft, scale_ft, gate_ft) = self.adaLN_modulation(vec)[:, None].chunk(12, -1)
        attn_i, attn_t = self.attn1(norm_modulate(img, shift_ai, scale_ai), pe,
                                    norm_modulate(txt, shift_at, scale_at))
        img, txt = img + gate_ai * attn_i, txt + gate_at * attn_t
        img = img + gate_fi * self.ff_i(norm_modulate(img, shift_fi, scale_fi))
        return img, txt + gate_ft * self.ff_t(norm_modulate(txt, shift_ft, scale_ft))


class SingleBlock(nn.Module):
    def __init__(self, cfg: HiDreamConfig):
        super().__init__()
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), Linear(cfg.dim, 6 * cfg.dim))
        self.attn1 = Attention(cfg, single=True)
        self.ff_i = MoE(cfg)

    def forward(self, x, vec, pe):
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = self.adaLN_modulation(vec)[:, None].chunk(6, -1)
        x = x + gate_a * self.attn1(norm_modulate(x, shift_a, scale_a), pe)
        return x + gate_f * self.ff_i(norm_modulate(x, shift_f, scale_f))


def wrapped(block: nn.Module) -> nn.Module:
    """The `.block.` level of the file's names (HiDreamImageBlock)."""
    holder = nn.Module()
    holder.block = block
    return holder


def wrapped_linear(in_dim: int, dim: int) -> nn.Module:
    """caption_projection.K.linear (bias-free)."""
    holder = nn.Module()
    holder.linear = Linear(in_dim, dim, bias=False)
    return holder


class HiDream(nn.Module):
    def __init__(self, config: HiDreamConfig):
        super().__init__()
        self.config = cfg = config
        if sum(cfg.axes_dims) != cfg.head_dim:
            raise ValueError(f"rotary axes {cfg.axes_dims} must add up to the head size {cfg.head_dim}")
        if len(cfg.llama_layers) != cfg.num_layers + cfg.num_single_layers:
            raise ValueError(f"HiDream needs one Llama layer per block ({cfg.num_layers + cfg.num_single_layers}), "
                             f"got {len(cfg.llama_layers)}")
        p = cfg.patch_size
        self.t_embedder = nn.Module()
        self.t_embedder.timestep_embedder = LinearTimestepEmbedder(cfg.dim)
        self.p_embedder = nn.Module()
        self.p_embedder.pooled_embedder = LinearEmbedder(cfg.text_emb_dim, cfg.dim)
        self.x_embedder = nn.Module()
        self.x_embedder.proj = Linear(p * p * cfg.in_channels, cfg.dim)
        self.double_stream_blocks = nn.ModuleList(wrapped(DoubleBlock(cfg)) for _ in range(cfg.num_layers))
        self.single_stream_blocks = nn.ModuleList(wrapped(SingleBlock(cfg)) for _ in range(cfg.num_single_layers))
        self.final_layer = LastLayer(SimpleNamespace(hidden_size=cfg.dim, out_channels=p * p * cfg.out_channels))
        self.caption_projection = nn.ModuleList(  # one per block (Llama), then T5's
            wrapped_linear(width, cfg.dim) for width in [cfg.llama_dim] * len(cfg.llama_layers) + [cfg.t5_dim])

    def rope_table(self, rows: int, cols: int, txt_len: int, device) -> torch.Tensor:
        """[1, 1, rows * cols + txt_len, head_dim / 2, 2, 2]: patches at (0, row, col), text at 0."""
        ids = torch.cat([image_ids(rows, cols, 1, device)[0], torch.zeros(txt_len, 3, device=device)])
        return rope_table(ids[None], self.config.axes_dims, self.config.theta)[:, None]

    def forward(self, x, sigma, context, y=None, llama_states=None, image_cond=None, control=None, **unused):
        """x [B, 16, h, w] model-space latent; sigma [B]; context T5-XXL's states [B, T, 4096]; y the
        pooled CLIP-L + CLIP-G vector [B, 2048]; llama_states Llama 3.1's per-layer states
        [B, layers, L, 4096] -> velocity of x's shape. image_cond (HiDream-E1, the editing model of
        the same layout): the input image's model-space latent [B, 16, h, w'], set beside x along
        the width (ComfyUI's), the output cut back to x's."""
        if control is not None:
            raise ValueError("ControlNets are not supported with HiDream models")
        cfg = self.config
        b, c, H, W = x.shape
        if c != cfg.in_channels:
            raise ValueError(f"HiDream takes {cfg.in_channels}-channel latents (the FLUX VAE's), got {c}")
        load = "encode the prompts with a CLIP from QuadrupleCLIPLoader (CLIP-L, CLIP-G, T5-XXL, Llama 3.1 8B)"
        if y is None or llama_states is None:
            missing = "the pooled CLIP-L + CLIP-G vector (pooled_output)" if y is None else \
                "Llama 3.1's per-layer states (conditioning_llama3)"
            raise ValueError(f"HiDream needs {missing} in the conditioning: {load}")
        if context.shape[-1] != cfg.t5_dim or y.shape[-1] != cfg.text_emb_dim or llama_states.ndim != 4 \
                or llama_states.shape[-1] != cfg.llama_dim:
            raise ValueError(f"HiDream takes T5-XXL's {cfg.t5_dim}-wide states, a {cfg.text_emb_dim}-wide pooled "
                             f"vector and Llama states [B, layers, L, {cfg.llama_dim}]; got {tuple(context.shape)}, "
                             f"{tuple(y.shape)} and {tuple(llama_states.shape)}: {load}")
        if max(cfg.llama_layers) >= llama_states.shape[1]:
            raise ValueError(f"HiDream reads Llama layers up to {max(cfg.llama_layers)}, the conditioning has "
                             f"{llama_states.shape[1]}: {load}")
        p, dtype = cfg.patch_size, x.dtype
        if image_cond is not None:
            x = torch.cat([x, image_cond.to(x.device, dtype).expand(b, -1, -1, -1)], dim=-1)
        x = pad_to_patches(x, p)
        h, w = x.shape[-2] // p, x.shape[-1] // p
        sigma = torch.as_tensor(sigma, device=x.device).reshape(-1).expand(b)
        t_emb = self.t_embedder.timestep_embedder(1000 * sigma.float(), dtype)
        vec = t_emb + self.p_embedder.pooled_embedder(y.to(dtype).expand(b, -1))
        img = self.x_embedder.proj(patchify(x, p, channels_last=True))  # features (row, column, channel)
        llama = [self.caption_projection[i].linear(llama_states[:, layer].to(dtype)).expand(b, -1, -1)
                 for i, layer in enumerate(cfg.llama_layers)]
        t5 = self.caption_projection[-1].linear(context.to(dtype)).expand(b, -1, -1)
        txt = torch.cat([t5, llama[-1]], dim=1)  # carried through the double blocks
        pe = self.rope_table(h, w, txt.shape[1] + llama[0].shape[1], x.device)
        stack = HiDreamBlocks(self, img, txt, llama, vec, pe, t_emb)
        out = self.final_layer(run_blocks(stack), vec)
        return -unpatchify(out, h, w, p, channels_last=True)[..., :H, :W]


class HiDreamBlocks:
    """HiDream's double- then single-stream blocks on the image tokens (a Llama layer's states joining
    each), for graphflow.models.block_runner. TeaCache's probe (modulated) is the timestep embedding,
    as the pack compares; first() is the first double block (its probe the image tokens after it)."""

    def __init__(self, model, img, txt, llama, vec, pe, t_emb):
        self.model, self.hidden, self.txt, self.llama, self.vec, self.pe, self.t_emb = \
            model, img, txt, llama, vec, pe, t_emb
        self.text_tokens = txt.shape[1]  # T5's and the last Llama layer's, carried through the double blocks

    def modulated(self, ret_mode: bool = False):
        return self.t_emb

    def _double(self, i, img):
        img, txt = self.model.double_stream_blocks[i].block(img, torch.cat([self.txt, self.llama[i]], dim=1),
                                                            self.vec, self.pe)
        self.txt = txt[:, :self.text_tokens]
        return img

    def first(self):
        self._after_first = self._double(0, self.hidden)
        return self._after_first, self._after_first

    def rest(self):
        img = self._after_first
        for i in range(1, len(self.model.double_stream_blocks)):
            img = self._double(i, img)
        n, x_seq = img.shape[1], torch.cat([img, self.txt], dim=1)
        for i, holder in enumerate(self.model.single_stream_blocks, start=len(self.model.double_stream_blocks)):
            x_seq = holder.block(torch.cat([x_seq, self.llama[i]], dim=1), self.vec, self.pe)[:, :x_seq.shape[1]]
        return x_seq[:, :n]

    def all(self):
        self.first()
        return self.rest()
