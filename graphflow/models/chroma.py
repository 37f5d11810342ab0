"""Chroma (lodestones' 8.9B FLUX.1-schnell derivative, chroma-unlocked-v*, Chroma1-HD), in the
original single file's key layout: BFL's names (`double_blocks.0.img_attn.qkv.weight`, ...)
without ComfyUI's `model.diffusion_model.`.

FLUX's double- and single-stream blocks (graphflow.models.flux), but none of FLUX's per-block
`*_mod.lin` weights, nor time_in / vector_in / guidance_in, nor the final adaLN: one MLP, the
`distilled_guidance_layer` ("approximator": in_proj, 5 residual RMSNorm -> MLPEmbedder layers,
out_proj), maps each of `modulations` inputs [16-ch timestep embedding | 16-ch guidance
embedding | 32-ch embedding of the vector's index] to one hidden-size vector. Vector k goes, in
order: (shift, scale, gate) of each single block, then (shift, scale, gate) x 2 of each double
block's image stream, then of its text stream, then the final layer's (shift, scale). The
guidance is 0 (Chroma is de-distilled: it is sampled with real CFG; ComfyUI passes 0 unless a
FluxGuidance sets one); sigma and guidance are scaled by 1000 as in FLUX. No pooled CLIP vector.

`forward` takes and returns image-shaped latents [B, 16, h, w] like Flux. `text_mask` [B, T]
(1 keep, 0 drop) leaves text tokens out as attention keys, as Chroma's trainer and diffusers'
ChromaPipeline mask T5 padding (all but one pad token); ComfyUI passes none (its Chroma T5
tokens are not padded, see graphflow.models.flow_text).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .cast_layers import Linear
from .configs import ChromaConfig, chroma_config_from_state_dict  # noqa: F401 (the config lives in configs.py, torch-free)
from .flux import DoubleStreamBlock, LastLayer, MLPEmbedder, RMSNorm, SingleStreamBlock, image_ids, pack, rope, unpack
from .mmdit import timestep_embedding


class Approximator(nn.Module):
    def __init__(self, cfg: ChromaConfig):
        super().__init__()
        hidden = cfg.approximator_hidden
        self.in_proj = Linear(cfg.approximator_in_dim, hidden)
        self.layers = nn.ModuleList(MLPEmbedder(hidden, hidden) for _ in range(cfg.approximator_layers))
        self.norms = nn.ModuleList(RMSNorm(hidden) for _ in range(cfg.approximator_layers))
        self.out_proj = Linear(hidden, cfg.hidden_size)

    def forward(self, x):
        x = self.in_proj(x)
        for layer, norm in zip(self.layers, self.norms):
            x = x + layer(norm(x))
        return self.out_proj(x)


def approximator_input(sigma: torch.Tensor, guidance: torch.Tensor, count: int, width: int) -> torch.Tensor:
    """[B, count, width]: per vector, [timestep (width/4) | guidance (width/4) | its index (width/2)]
    sinusoidal embeddings; sigma, guidance and the index all times 1000, as Chroma was trained."""
    quarter = width // 4
    index = timestep_embedding(torch.arange(count, device=sigma.device) * 1000.0, 2 * quarter)
    shared = torch.cat([timestep_embedding(sigma * 1000, quarter), timestep_embedding(guidance * 1000, quarter)], 1)
    return torch.cat([shared[:, None].expand(-1, count, -1), index[None].expand(sigma.shape[0], -1, -1)], dim=-1)


class Chroma(nn.Module):
    def __init__(self, config: ChromaConfig):
        super().__init__()
        self.config = cfg = config
        if sum(cfg.axes_dim) != cfg.hidden_size // cfg.num_heads:
            raise ValueError(f"rotary axes {cfg.axes_dim} must add up to the head size {cfg.hidden_size // cfg.num_heads}")
        self.img_in = Linear(cfg.in_channels, cfg.hidden_size)
        self.txt_in = Linear(cfg.context_in_dim, cfg.hidden_size)
        self.distilled_guidance_layer = Approximator(cfg)
        self.double_blocks = nn.ModuleList(DoubleStreamBlock(cfg, modulation=False) for _ in range(cfg.depth))
        self.single_blocks = nn.ModuleList(SingleStreamBlock(cfg, modulation=False) for _ in range(cfg.depth_single_blocks))
        self.final_layer = LastLayer(cfg, modulation=False)

    def modulation_vectors(self, sigma: torch.Tensor, guidance: torch.Tensor, dtype) -> torch.Tensor:
        """[B, config.modulations, hidden_size]: every block's shift / scale / gate vectors."""
        cfg = self.config
        x = approximator_input(sigma.float(), guidance.float(), cfg.modulations, cfg.approximator_in_dim)
        return self.distilled_guidance_layer(x.to(dtype))

    def forward_packed(self, img, img_ids, txt, txt_ids, sigma, guidance=None, text_mask=None):
        """On packed tokens: img [B, N, in_channels], ids [B, L, 3], txt [B, T, context_in_dim]."""
        cfg, dtype = self.config, img.dtype
        b = img.shape[0]
        guidance = torch.zeros(b, device=img.device) if guidance is None else torch.as_tensor(
            guidance, dtype=torch.float32, device=img.device).reshape(-1).expand(b)
        mods = self.modulation_vectors(sigma.reshape(-1).expand(b), guidance, dtype)
        vectors = lambda start, n: tuple(mods[:, start + i:start + i + 1] for i in range(n))  # noqa: E731
        img, txt = self.img_in(img), self.txt_in(txt.to(dtype))
        ids = torch.cat([txt_ids, img_ids], dim=1)
        pe = torch.cat([rope(ids[..., i], d, cfg.theta) for i, d in enumerate(cfg.axes_dim)], dim=-3)[:, None]
        bias = None
        if text_mask is not None:  # drop masked text tokens as keys: an additive bias [B, 1, T + N]
            keep = torch.cat([text_mask.to(img.device).bool().expand(b, -1),
                              torch.ones(b, img.shape[1], dtype=torch.bool, device=img.device)], dim=1)
            bias = torch.zeros(keep.shape, device=img.device).masked_fill(~keep, float("-inf"))[:, None]
        single, double = 3 * cfg.depth_single_blocks, 6 * cfg.depth
        for i, block in enumerate(self.double_blocks):
            img, txt = block(img, txt, (vectors(single + 6 * i, 6), vectors(single + double + 6 * i, 6)), pe, bias)
        n = txt.shape[1]
        x = torch.cat([txt, img], dim=1)
        for i, block in enumerate(self.single_blocks):
            x = block(x, vectors(3 * i, 3), pe, bias)
        shift, scale = vectors(cfg.modulations - 2, 2)
        return self.final_layer.modulated(x[:, n:], shift, scale)

    def forward(self, x, sigma, context, y=None, guidance=None, text_mask=None, control=None, **unused):
        """y (a pooled vector) is ignored: Chroma has none. guidance None: 0."""
        if control is not None:
            raise ValueError("ControlNets are not supported with Chroma models")
        H, W = x.shape[-2:]
        if H % 2 or W % 2:  # odd latent sizes: pad as ComfyUI does, crop the output back
            x = F.pad(x, (0, W % 2, 0, H % 2), mode="circular")
        if x.shape[1] * 4 != self.config.in_channels:
            raise ValueError(f"Chroma with {self.config.in_channels} packed input channels takes "
                             f"{self.config.in_channels // 4} latent channels, got {x.shape[1]}")
        b, _, h, w = x.shape
        txt_ids = torch.zeros(b, context.shape[1], 3, device=x.device)
        out = self.forward_packed(pack(x), image_ids(h // 2, w // 2, b, x.device), context, txt_ids,
                                  torch.as_tensor(sigma, device=x.device), guidance, text_mask)
        return unpack(out, h, w)[..., :H, :W]
