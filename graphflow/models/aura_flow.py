"""AuraFlow (fal, v0.1-0.3): the MM-DiT of ComfyUI's comfy/ldm/aura/mmdit.py, in fal's key layout
(`init_x_linear`, `positional_encoding`, `register_tokens`, `cond_seq_linear`, `t_embedder.mlp.{0,2}`,
`double_layers.N.{modC,modX}.1`, `.{mlpC,mlpX}.{c_fc1,c_fc2,c_proj}`, `.attn.{w1q,w1k,w1v,w1o,w2q,...}`,
`single_layers.N.{modCX.1,mlp.*,attn.{w1q,w1k,w1v,w1o}}`, `modF.1`, `final_linear`), bare as a
diffusion-model file or under `model.diffusion_model.` in ComfyUI's all-in-one aura_flow_0.3.safetensors.

Text: Pile-T5-XL's states through cond_seq_linear, after 8 learned register tokens. Image: 2x2 patches
(features channel, row, column; odd sizes padded circularly and cropped back, as ComfyUI) through
init_x_linear, plus the centre crop of the learned 2-D position table (bilinearly enlarged first when the
latent has more patches a side than the table). Double layers keep text and image weights apart (w1* /
modC / mlpC the text's, w2* / modX / mlpX the image's) and attend jointly; single layers run on
[text, image]. Each layer: x = LN(x + gate_msa attn(LN(x) (1 + scale) + shift)), then
x = x_in + gate_mlp mlp(x (1 + scale_mlp) + shift_mlp) (AuraFlow's norm after the attention residual,
the MLP's residual from the layer's input), LayerNorms without weights (eps 1e-5) on every q and k
head; SwiGLU MLPs, no biases. The output: x (1 + scale) + shift by modF (no norm), final_linear,
unpatchified (row, column, channel).

The timestep is sigma itself (ComfyUI's ModelSamplingAuraFlow / AuraFlow's sampling_settings:
multiplier 1, shift 1.73), embedded as cos | sin of 1000 sigma x LDM's frequencies; the output is the
flow velocity (x0 = x - sigma v), as diffusers' AuraFlowTransformer2DModel.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .cast_layers import Linear
from .configs import AuraFlowConfig, aura_flow_config_from_state_dict  # noqa: F401 (configs.py: torch-free)
from .flux import patchify, unpatchify
from .mmdit import Embedder, joint_attention, modulate, pad_to_patches, timestep_embedding


def _ln(x):
    return F.layer_norm(x, x.shape[-1:], eps=1e-5)


class Mlp(nn.Module):
    def __init__(self, cfg: AuraFlowConfig):
        super().__init__()
        self.c_fc1 = Linear(cfg.dim, cfg.mlp_hidden, bias=False)
        self.c_fc2 = Linear(cfg.dim, cfg.mlp_hidden, bias=False)
        self.c_proj = Linear(cfg.mlp_hidden, cfg.dim, bias=False)

    def forward(self, x):
        return self.c_proj(F.silu(self.c_fc1(x)) * self.c_fc2(x))


def _modulation(cfg: AuraFlowConfig, n: int) -> nn.Sequential:
    return nn.Sequential(nn.SiLU(), Linear(cfg.global_conddim, n * cfg.dim, bias=False))


class Attention(nn.Module):
    """q / k / v / out projections per stream: w1* the first (text, or [text, image] in single layers),
    w2* the image's (double layers only); q and k LayerNormed per head."""

    def __init__(self, cfg: AuraFlowConfig, streams: int):
        super().__init__()
        self.heads = cfg.n_heads
        for s in range(1, streams + 1):
            for part in "qkvo":
                setattr(self, f"w{s}{part}", Linear(cfg.dim, cfg.dim, bias=False))

    def qkv(self, x, s: int):
        b, n, _ = x.shape
        q, k, v = (getattr(self, f"w{s}{p}")(x).view(b, n, self.heads, -1) for p in "qkv")
        return _ln(q), _ln(k), v

    def forward(self, *streams):
        parts = [self.qkv(x, s) for s, x in enumerate(streams, 1)]
        q, k, v = (torch.cat(t, dim=1).transpose(1, 2) for t in zip(*parts))
        out = joint_attention(q, k, v)
        outs = out.split([x.shape[1] for x in streams], dim=1)
        return [getattr(self, f"w{s}o")(o) for s, o in enumerate(outs, 1)]


def _post_attention(x, attended, mods, mlp):
    """AuraFlow's residual order: LN after the attention's residual, the MLP's residual from the layer's input."""
    _, _, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
    h = _ln(x + gate_msa[:, None] * attended)
    return x + gate_mlp[:, None] * mlp(modulate(h, shift_mlp, scale_mlp))


class DoubleLayer(nn.Module):  # ComfyUI's MMDiTBlock
    def __init__(self, cfg: AuraFlowConfig):
        super().__init__()
        self.modC, self.modX = _modulation(cfg, 6), _modulation(cfg, 6)
        self.mlpC, self.mlpX = Mlp(cfg), Mlp(cfg)
        self.attn = Attention(cfg, 2)

    def forward(self, c, x, t_emb):
        cm, xm = self.modC(t_emb).chunk(6, dim=1), self.modX(t_emb).chunk(6, dim=1)
        ca, xa = self.attn(modulate(_ln(c), cm[0], cm[1]), modulate(_ln(x), xm[0], xm[1]))
        return _post_attention(c, ca, cm, self.mlpC), _post_attention(x, xa, xm, self.mlpX)


class SingleLayer(nn.Module):  # ComfyUI's DiTBlock
    def __init__(self, cfg: AuraFlowConfig):
        super().__init__()
        self.modCX = _modulation(cfg, 6)
        self.attn = Attention(cfg, 1)
        self.mlp = Mlp(cfg)

    def forward(self, cx, t_emb):
        m = self.modCX(t_emb).chunk(6, dim=1)
        (attended,) = self.attn(modulate(_ln(cx), m[0], m[1]))
        return _post_attention(cx, attended, m, self.mlp)


class AuraFlow(nn.Module):
    def __init__(self, config: AuraFlowConfig):
        super().__init__()
        self.config = cfg = config
        self.t_embedder = Embedder(256, cfg.global_conddim)
        self.cond_seq_linear = Linear(cfg.cond_seq_dim, cfg.dim, bias=False)
        self.init_x_linear = Linear(cfg.patch_size ** 2 * cfg.in_channels, cfg.dim)
        self.positional_encoding = nn.Parameter(torch.zeros(1, cfg.max_seq, cfg.dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, 8, cfg.dim))
        self.double_layers = nn.ModuleList(DoubleLayer(cfg) for _ in range(cfg.n_double_layers))
        self.single_layers = nn.ModuleList(SingleLayer(cfg) for _ in range(cfg.n_layers - cfg.n_double_layers))
        self.final_linear = Linear(cfg.dim, cfg.patch_size ** 2 * cfg.out_channels, bias=False)
        self.modF = _modulation(cfg, 2)

    def positions(self, h: int, w: int, dtype) -> torch.Tensor:
        """[1, h w, dim]: the centre h x w window of the square position table (top-left at (side - h) // 2,
        ComfyUI's crop; diffusers' differs for odd counts on an even side), the table first enlarged
        bilinearly to the larger of h, w when that exceeds its side (ComfyUI's apply_pos_embeds)."""
        side = self.config.pos_side
        table = self.positional_encoding.to(dtype).reshape(1, side, side, -1)
        if max(h, w) > side:
            side = max(h, w)
            table = F.interpolate(table.movedim(-1, 1), (side, side), mode="bilinear").movedim(1, -1)
        top, left = (side - h) // 2, (side - w) // 2
        return table[:, top:top + h, left:left + w].reshape(1, h * w, -1)

    def forward(self, x, sigma, context, y=None, control=None, **unused):
        """x [B, 4, H, W] (an SDXL-VAE latent; padded to whole patches, cropped back), sigma [B] (the
        timestep itself: multiplier 1), context Pile-T5-XL's states [B or 1, T, 2048] -> velocity.
        y is ignored (no pooled vector)."""
        if control is not None:
            raise ValueError("ControlNets are not supported with AuraFlow models")
        cfg = self.config
        if x.shape[1] != cfg.in_channels:
            raise ValueError(f"AuraFlow takes {cfg.in_channels}-channel latents (the SDXL VAE's), got {x.shape[1]}")
        if context.shape[-1] != cfg.cond_seq_dim:
            raise ValueError(f"AuraFlow takes Pile-T5-XL's {cfg.cond_seq_dim}-wide text states, the conditioning "
                             f"has {context.shape[-1]}: encode the prompts with an AuraFlow checkpoint's CLIP")
        b, _, H, W = x.shape
        p = cfg.patch_size
        x = pad_to_patches(x, p)
        h, w = x.shape[-2] // p, x.shape[-1] // p
        img = self.init_x_linear(patchify(x, p)) + self.positions(h, w, x.dtype)
        txt = self.cond_seq_linear(context.to(x.dtype).expand(b, -1, -1))
        txt = torch.cat([self.register_tokens.to(txt.dtype).expand(b, -1, -1), txt], dim=1)
        sigma = torch.as_tensor(sigma, device=x.device).reshape(-1).expand(b)
        t_emb = self.t_embedder(timestep_embedding(sigma, freq_scale=1000.0).to(x.dtype))
        for layer in self.double_layers:
            txt, img = layer(txt, img, t_emb)
        if len(self.single_layers):
            seq = torch.cat([txt, img], dim=1)
            for layer in self.single_layers:
                seq = layer(seq, t_emb)
            img = seq[:, txt.shape[1]:]
        shift, scale = self.modF(t_emb).chunk(2, dim=1)
        out = self.final_linear(modulate(img, shift, scale))
        return unpatchify(out, h, w, p, channels_last=True)[..., :H, :W]
