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

Chroma Radiance (ChromaRadiance, below): the same trunk in pixel space, with ComfyUI's key names
(img_in_patch, nerf_image_embedder, nerf_blocks.N, nerf_final_layer / nerf_final_layer_conv)
and a per-patch MLP head instead of the final layer; ComfyUI detects it by nerf_blocks.0.norm.scale.
"""

import contextlib
import contextvars
import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .cast_layers import Conv2d, Linear
from .configs import (ChromaConfig, ChromaRadianceConfig,  # noqa: F401 (the configs live in configs.py, torch-free)
                      chroma_config_from_state_dict)
from .flux import (DoubleStreamBlock, LastLayer, MLPEmbedder, RMSNorm, SingleStreamBlock, image_ids, pack,
                   rope_table, unpack)
from .mmdit import pad_to_patches, timestep_embedding


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
        x, vectors = self.trunk(self.img_in(img), img_ids, txt, txt_ids, sigma, guidance, text_mask)
        shift, scale = vectors(self.config.modulations - 2, 2)
        return self.final_layer.modulated(x, shift, scale)

    def trunk(self, img, img_ids, txt, txt_ids, sigma, guidance=None, text_mask=None):
        """Embedded image tokens img [B, N, hidden_size] through the double and single blocks:
        (the image tokens out [B, N, hidden_size], vectors(start, n) -> n modulation vectors)."""
        cfg, dtype = self.config, img.dtype
        b = img.shape[0]
        guidance = torch.zeros(b, device=img.device) if guidance is None else torch.as_tensor(
            guidance, dtype=torch.float32, device=img.device).reshape(-1).expand(b)
        mods = self.modulation_vectors(sigma.reshape(-1).expand(b), guidance, dtype)
        vectors = lambda start, n: tuple(mods[:, start + i:start + i + 1] for i in range(n))  # noqa: E731
        txt = self.txt_in(txt.to(dtype))
        ids = torch.cat([txt_ids, img_ids], dim=1)
        pe = rope_table(ids, cfg.axes_dim, cfg.theta)[:, None]
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
        return x[:, n:], vectors

    def forward(self, x, sigma, context, y=None, guidance=None, text_mask=None, control=None, **unused):
        """y (a pooled vector) is ignored: Chroma has none. guidance None: 0."""
        if control is not None:
            raise ValueError("ControlNets are not supported with Chroma models")
        H, W = x.shape[-2:]
        x = pad_to_patches(x, 2)  # odd latent sizes: pad as ComfyUI does, crop the output back
        if x.shape[1] * 4 != self.config.in_channels:
            raise ValueError(f"Chroma with {self.config.in_channels} packed input channels takes "
                             f"{self.config.in_channels // 4} latent channels, got {x.shape[1]}")
        b, _, h, w = x.shape
        txt_ids = torch.zeros(b, context.shape[1], 3, device=x.device)
        out = self.forward_packed(pack(x), image_ids(h // 2, w // 2, b, x.device), context, txt_ids,
                                  torch.as_tensor(sigma, device=x.device), guidance, text_mask)
        return unpack(out, h, w)[..., :H, :W]


# -- Chroma Radiance ---------------------------------------------------------------------------

# Per-call overrides of a ChromaRadianceConfig's head options (ComfyUI's transformer_options
# "chroma_radiance_options", set by the ChromaRadianceOptions node between two sigmas)
_RADIANCE_OPTIONS: contextvars.ContextVar[dict] = contextvars.ContextVar("chroma_radiance_options", default={})
RADIANCE_OPTIONS = ("nerf_tile_size",)


@contextlib.contextmanager
def radiance_options(**options):
    """Network calls inside run with these head options (nerf_tile_size) instead of the config's;
    an inner block's options replace an outer one's, as ComfyUI's chained wrappers do."""
    unknown = set(options) - set(RADIANCE_OPTIONS)
    if unknown:
        raise ValueError(f"unknown Chroma Radiance options {sorted(unknown)}; known: {list(RADIANCE_OPTIONS)}")
    token = _RADIANCE_OPTIONS.set(dict(options))
    try:
        yield
    finally:
        _RADIANCE_OPTIONS.reset(token)


def patch_position_features(patch: int, freqs: int, device=None) -> torch.Tensor:
    """[1, patch^2, freqs^2]: for each pixel (row-major) of a patch, with x, y its column and row
    scaled to 0..1, the products cos(pi fx x) cos(pi fy y) / (1 + fx fy) for fx, fy < freqs
    (fx-major), a DCT-like 2-D basis whose high-frequency products are damped. float32."""
    pos = torch.linspace(0, 1, patch, device=device)
    f = torch.arange(freqs, dtype=torch.float32, device=device)
    basis = torch.cos(pos[:, None] * f * math.pi)  # [position, frequency]
    features = basis[None, :, :, None] * basis[:, None, None, :] / (1 + f[:, None] * f[None, :])  # [y, x, fx, fy]
    return features.reshape(1, patch * patch, freqs * freqs)


class NerfEmbedder(nn.Module):
    """Each pixel of a patch: its channels next to its position features -> the head's width.
    Runs in float32 whatever the model's dtype (ComfyUI's nerf_embedder_dtype)."""

    def __init__(self, cfg: ChromaRadianceConfig):
        super().__init__()
        self.freqs = cfg.nerf_max_freqs
        self.embedder = nn.Sequential(Linear(cfg.in_channels + cfg.nerf_max_freqs ** 2, cfg.nerf_hidden_size))

    def forward(self, pixels):  # [N, P*P, C] -> [N, P*P, nerf_hidden_size]
        features = patch_position_features(math.isqrt(pixels.shape[1]), self.freqs, pixels.device)
        x = torch.cat([pixels.float(), features.expand(pixels.shape[0], -1, -1)], dim=-1)
        return self.embedder(x).to(pixels.dtype)


class NerfBlock(nn.Module):
    """One residual layer of the per-patch MLP: a gated (SiLU) MLP whose three matrices the patch's
    hidden state generates (param_generator), each matrix's columns scaled to unit length."""

    def __init__(self, cfg: ChromaRadianceConfig):
        super().__init__()
        self.width, self.inner = cfg.nerf_hidden_size, cfg.nerf_hidden_size * cfg.nerf_mlp_ratio
        self.param_generator = Linear(cfg.hidden_size, 3 * self.width * self.inner)
        self.norm = RMSNorm(self.width)

    def forward(self, x, state):  # x [N, P*P, width], state [N, hidden_size]
        n = x.shape[0]
        gate, value, out = self.param_generator(state).chunk(3, dim=-1)
        gate = F.normalize(gate.view(n, self.width, self.inner), dim=1)
        value = F.normalize(value.view(n, self.width, self.inner), dim=1)
        out = F.normalize(out.view(n, self.inner, self.width), dim=1)
        h = self.norm(x)
        return x + torch.bmm(F.silu(torch.bmm(h, gate)) * torch.bmm(h, value), out)


class NerfFinalLayer(nn.Module):
    """The head's features [B, width, H, W] -> pixels: RMS norm over the width, then a Linear
    per pixel ("linear") or a 3x3 conv across patch borders ("conv")."""

    def __init__(self, cfg: ChromaRadianceConfig):
        super().__init__()
        self.norm = RMSNorm(cfg.nerf_hidden_size)
        if cfg.nerf_final_head == "conv":
            self.conv = Conv2d(cfg.nerf_hidden_size, cfg.in_channels, 3, padding=1)
        else:
            self.linear = Linear(cfg.nerf_hidden_size, cfg.in_channels)

    def forward(self, x):
        x = self.norm(x.movedim(1, -1))
        return self.conv(x.movedim(-1, 1)) if hasattr(self, "conv") else self.linear(x).movedim(-1, 1)


class ChromaRadiance(Chroma):
    """Chroma Radiance in the original file's layout: Chroma's trunk and approximator under the
    same names; `img_in_patch` (a patch_size-strided conv) in place of img_in; the head
    `nerf_image_embedder`, `nerf_blocks.N` and `nerf_final_layer` (or `nerf_final_layer_conv`)
    in place of final_layer. Latents are images [B, 3, H, W] in -1..1; the output is the flow
    velocity as Chroma's. Each patch's pixels (of the noisy input) go through a small MLP whose
    weights come from the patch's hidden state after the single blocks; the patches are put back
    in place and the final layer maps the head's width to RGB."""

    def __init__(self, config: ChromaRadianceConfig):
        if config.nerf_final_head not in ("linear", "conv"):
            raise ValueError(f"nerf_final_head must be 'linear' or 'conv', got {config.nerf_final_head!r}")
        super().__init__(config)
        cfg = config
        del self.img_in, self.final_layer  # pixel patches come in through a conv, the head replaces the last layer
        self.img_in_patch = Conv2d(cfg.in_channels, cfg.hidden_size, cfg.patch_size, stride=cfg.patch_size)
        self.nerf_image_embedder = NerfEmbedder(cfg)
        self.nerf_blocks = nn.ModuleList(NerfBlock(cfg) for _ in range(cfg.nerf_depth))
        # the file's name tells the head's kind
        setattr(self, "nerf_final_layer_conv" if cfg.nerf_final_head == "conv" else "nerf_final_layer",
                NerfFinalLayer(cfg))

    @property
    def final_head(self) -> NerfFinalLayer:
        return getattr(self, "nerf_final_layer_conv" if self.config.nerf_final_head == "conv" else "nerf_final_layer")

    def nerf_head(self, x, hidden, tile_size: int | None = None):
        """x [B, C, H, W] (H, W multiples of the patch size), hidden [B, N, hidden_size] the N
        patches' states (row-major) -> [B, C, H, W]. The MLP runs on tile_size patches x B at a time
        (None: the config's nerf_tile_size; 0: all at once); only memory depends on it."""
        cfg, p = self.config, self.config.patch_size
        b, c, h, w = x.shape
        n = hidden.shape[1]
        pixels = F.unfold(x, p, stride=p).transpose(1, 2).reshape(b * n, c, p * p).transpose(1, 2)  # [B*N, P*P, C]
        states = hidden.reshape(b * n, -1)
        tile = cfg.nerf_tile_size if tile_size is None else tile_size
        rows = b * n if tile <= 0 or n <= tile else tile * b
        out = []
        for start in range(0, b * n, rows):
            y = self.nerf_image_embedder(pixels[start:start + rows])
            for block in self.nerf_blocks:
                y = block(y, states[start:start + rows])
            out.append(y)
        y = torch.cat(out).transpose(1, 2).reshape(b, n, -1).transpose(1, 2)  # [B, width * P*P, N]
        return self.final_head(F.fold(y, (h, w), p, stride=p))

    def forward(self, x, sigma, context, y=None, guidance=None, text_mask=None, control=None, **unused):
        """x [B, 3, H, W] pixels in -1..1 (any size: padded circularly to whole patches, as ComfyUI,
        the output cropped back); y ignored; guidance None: 0."""
        if control is not None:
            raise ValueError("ControlNets are not supported with Chroma Radiance models")
        cfg, p = self.config, self.config.patch_size
        if x.dim() != 4 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"Chroma Radiance works on images [B, {cfg.in_channels}, H, W] "
                             f"(EmptyChromaRadianceLatentImage, or VAEEncode with the pixel_space VAE), "
                             f"got shape {tuple(x.shape)}")
        H, W = x.shape[-2:]
        x = pad_to_patches(x, p)
        b, _, h, w = x.shape
        tokens = self.img_in_patch(x).flatten(2).transpose(1, 2)  # [B, N, hidden_size], patches row-major
        txt_ids = torch.zeros(b, context.shape[1], 3, device=x.device)
        hidden, _ = self.trunk(tokens, image_ids(h // p, w // p, b, x.device), context, txt_ids,
                               torch.as_tensor(sigma, device=x.device), guidance, text_mask)
        tile = _RADIANCE_OPTIONS.get().get("nerf_tile_size")
        return self.nerf_head(x, hidden, tile)[..., :H, :W]


class RadianceOptions:
    """A MODEL's network wrapper (graphflow.sampling.step_cache.wrapped_network) that runs the
    network calls at end_sigma <= sigma <= start_sigma (the batch's largest sigma, as ComfyUI reads
    it: one host sync per call) with head `options` (ComfyUI's ChromaRadianceOptions wrapper)."""

    def __init__(self, start_sigma: float, end_sigma: float, options: dict):
        self.start_sigma, self.end_sigma, self.options = float(start_sigma), float(end_sigma), dict(options)

    def __call__(self):  # a sampling run's wrapper: it keeps no state
        return self.wrap

    def wrap(self, run, xc, sigma, channels):
        if self.end_sigma <= float(sigma.max()) <= self.start_sigma:
            with radiance_options(**self.options):
                return run(xc)
        return run(xc)


def with_radiance_options(model, start_sigma: float, end_sigma: float, preserve_wrapper: bool = True, **options):
    """A copy of `model` (a DiffusionModel) whose network calls between the sigmas use `options`.
    It wraps the earlier RadianceOptions (ComfyUI's model function wrapper: one slot) when
    preserve_wrapper, an earlier one's options then winning where both apply as in ComfyUI, and
    drops them otherwise; other wrappers (EasyCache) stay."""
    patched = copy.copy(model)
    earlier = tuple(w for w in getattr(model, "network_wrappers", ())
                    if preserve_wrapper or not isinstance(w, RadianceOptions))
    patched.network_wrappers = (RadianceOptions(start_sigma, end_sigma, options), *earlier)
    return patched
