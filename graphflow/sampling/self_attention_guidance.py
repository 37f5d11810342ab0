"""Self-Attention Guidance (Hong et al. 2023, "Improving Sample Quality of Diffusion Models Using
Self-Attention Guidance", arXiv:2210.00939), as ComfyUI's SelfAttentionGuidance node:

    D = D_cfg + scale * (degraded - D_uncond(degraded + x - D_uncond))

`degraded` is the unconditional x0 estimate Gaussian-blurred (9x9 kernel, blur_sigma) where the
UNet's attention concentrates: the keys of the first self-attention in the middle block that
receive more than the average attention (column sum of the head-averaged map > 1), read as a
grid as ComfyUI reads them (mask_grid) and upsampled (nearest) to the latent. blur_sigma 0 leaves
the estimate unblurred (ComfyUI's kernel divides by it: NaN, a lost picture). Re-noising the degraded estimate with the
same noise and asking the model again shows what the blurred-away detail was; the difference
is pushed back in. A post-CFG function on the MODEL (guidance.py); it needs the unconditional
prediction, so it also runs at cfg 1. The attention map is recorded in a re-run of the
unconditional prediction (ComfyUI records it during the batched CFG call), so a step costs two
extra UNet evaluations here instead of one; the result is the same.
"""

import contextlib
import copy
import math

import torch
import torch.nn.functional as F



def first_middle_self_attention(unet):
    """ComfyUI's ("middle", 0, 0): the first spatial transformer block's self-attention."""
    from .perturbed_attention import middle_self_attentions
    return next(iter(middle_self_attentions(unet)), None)


@contextlib.contextmanager
def recorded_attention(attention):
    """Within the block, `attention` computes softmax(q k^T / sqrt(d)) explicitly and appends the
    probabilities [b, heads, n, n] of each call to the yielded list (forward swapped, then restored)."""
    records = []

    def forward(x, context=None):
        context = x if context is None else context
        b, n, _ = x.shape
        q, k, v = (t.view(b, -1, attention.heads, t.shape[-1] // attention.heads).transpose(1, 2)
                   for t in (attention.to_q(x), attention.to_k(context), attention.to_v(context)))
        probs = (q.float() @ k.float().transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(dim=-1)
        records.append(probs)
        out = probs.to(v.dtype) @ v
        return attention.to_out(out.transpose(1, 2).reshape(b, n, -1))

    attention.forward = forward
    try:
        yield records
    finally:
        del attention.forward


def gaussian_blur_2d(img: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur per channel with reflect padding (kernel exp(-x^2 / 2 sigma^2), normalised)."""
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, steps=kernel_size)
    pdf = torch.exp(-0.5 * (x / sigma).pow(2))
    kernel = (pdf / pdf.sum()).to(device=img.device, dtype=img.dtype)
    kernel2d = (kernel[:, None] @ kernel[None, :]).expand(img.shape[-3], 1, kernel_size, kernel_size)
    img = F.pad(img, [kernel_size // 2] * 4, mode="reflect")
    return F.conv2d(img, kernel2d, groups=img.shape[-3])


def mask_grid(n: int, lh: int, lw: int) -> tuple[int, int] | None:
    """How ComfyUI reads the n keys of the middle block as a (rows, cols) grid for an lh x lw
    latent: rows is the divisor of n nearest to round(sqrt(n lh / lw)), looked for at distance
    0, 1, ... below floor(sqrt(n) / 2), above before below; cols = n / rows. That is the middle
    block's grid for latents of usual shapes; for some odd, elongated ones (45 x 25 on SD1: an
    8 x 3 reading of a 6 x 4 grid) it is another, and the mask is read in that layout, as
    ComfyUI's is. None where no divisor is found (ComfyUI fails there)."""
    guess = round(math.sqrt(lh / lw * n))
    for distance in range(math.floor(math.sqrt(n) / 2)):
        for rows in (guess + distance, max(1, guess - distance)):
            if n % rows == 0:
                return rows, n // rows
    return None


def blur_map(x0: torch.Tensor, probs: torch.Tensor, sigma: float, threshold: float = 1.0) -> torch.Tensor | None:
    """x0 blurred where the keys of the attention probabilities [b, heads, n, n] get more than
    `threshold` in total; None when the keys can't be read as a grid (mask_grid)."""
    b, _, lh, lw = x0.shape
    n = probs.shape[-1]
    mask = probs.reshape(b, -1, n, n).mean(1).sum(1) > threshold
    grid = mask_grid(n, lh, lw)
    if grid is None:
        return None
    mask = F.interpolate(mask.reshape(b, 1, *grid).to(x0.dtype), (lh, lw))
    blurred = gaussian_blur_2d(x0, 9, sigma) if sigma > 0 else x0  # sigma 0: a delta kernel
    return blurred * mask + x0 * (1 - mask)


def self_attention_guidance(model, scale: float, blur_sigma: float):
    """A shallow copy of the MODEL with the SAG post-CFG function appended."""
    def post_cfg(args):
        denoised, uncond_pred = args["denoised"], args["uncond_denoised"]
        if any(getattr(w, "tiles_network", False) for w in getattr(args["model"], "network_wrappers", ())):
            raise ValueError("Self-Attention Guidance reads the whole latent's attention map, which TiledDiffusion "
                             "computes per tile: use one or the other")
        attention = first_middle_self_attention(args["model"].unet)
        if min(denoised.shape[2:]) <= 4 or attention is None:  # too small to pad for the blur
            return denoised
        with recorded_attention(attention) as records:
            args["predict"](args["uncond"], args["x"], args["sigma"])
        if not records:  # no unconditional prompt ran (BasicGuider): nothing to guide with
            return denoised
        degraded = blur_map(uncond_pred, records[0][-uncond_pred.shape[0]:], blur_sigma)
        if degraded is None:
            return denoised
        sag = args["predict"](args["uncond"], degraded + args["x"] - uncond_pred, args["sigma"])
        return denoised + (degraded - sag) * scale

    post_cfg.needs_uncond = True
    post_cfg.holds_first_middle_attention = True  # ComfyUI's ("middle", 0, 0) attn1 replacement (see PAG)
    post_cfg.reads_attention_map = True  # of the whole latent (TiledDiffusion refuses it)
    patched = copy.copy(model)
    patched.post_cfg_functions = (*getattr(model, "post_cfg_functions", ()), post_cfg)
    return patched
