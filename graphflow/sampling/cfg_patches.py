"""Post-CFG MODEL patches that reshape the guided prediction (guidance.py runs a MODEL's
`post_cfg_functions` after the CFG combination, with the cond / uncond x0 predictions and the cfg):

    epsilon scaling  Ning et al. 2023, "Elucidating the Exposure Bias in Diffusion Models"
                     (arXiv:2308.15321), its uniform schedule, as ComfyUI's Epsilon Scaling
    CFG-Zero*        Fan et al. 2025, "CFG-Zero*: Improved Classifier-Free Guidance for Flow Matching
                     Models" (arXiv:2503.18886), its optimized scale, as ComfyUI's CFGZeroStar
    CFGNorm, Mahiro  ComfyUI's own post-CFG rescalings (no paper)

and the ones that act before the combination (`pre_cfg_functions`: they return new cond / uncond
predictions) or replace it (`cfg_function`, ComfyUI's sampler_cfg_function):

    APG              Sadat et al. 2024, "Eliminating Oversaturation and Artifacts of High Guidance
                     Scales in Diffusion Models" (Adaptive Projected Guidance), as ComfyUI's APG
    TCFG             Kwon et al. 2025, "TCFG: Tangential Damping Classifier-free Guidance"
                     (arXiv:2503.18137), as ComfyUI's TCFG
    FreSca           Huang et al. 2025, "FreSca: Scaling in Frequency Space Enhances Diffusion
                     Models" (arXiv:2504.02154), as ComfyUI's FreSca
    RenormCFG        Lumina-Image 2.0's renormalised CFG, as ComfyUI's RenormCFG
    Perp-Neg         graphflow.sampling.guidance.perp_neg_combine, as ComfyUI's PerpNeg node
    latent operation a LATENT_OPERATION (sharpen, tonemap) applied to the guidance, as ComfyUI's
                     LatentApplyOperationCFG
    video / window   per-frame CFG ramps (ComfyUI's Video Linear / Triangle CFG Guidance) and a
                     cfg value inside a sigma window (ComfyUI_essentials' Guidance Timestep)

Each returns a shallow copy of the MODEL with its function added (the input is not changed)."""

import copy

import torch


def _with_post_cfg(model, post_cfg):
    patched = copy.copy(model)
    patched.post_cfg_functions = (*getattr(model, "post_cfg_functions", ()), post_cfg)
    return patched


def _with_pre_cfg(model, pre_cfg):
    patched = copy.copy(model)
    patched.pre_cfg_functions = (*getattr(model, "pre_cfg_functions", ()), pre_cfg)
    return patched


def with_cfg_function(model, cfg_function):
    # one slot, as ComfyUI's sampler_cfg_function: the last node applied wins (RescaleCFG's too)
    patched = copy.copy(model)
    patched.cfg_function = cfg_function
    options = getattr(model, "options", None)
    if options and "cfg_rescale" in options:
        patched.options = {k: v for k, v in options.items() if k != "cfg_rescale"}
    return patched


def _per_image(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(1, t.ndim))


def project(v0: torch.Tensor, v1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """v0's components parallel and orthogonal to v1, per image (over the last three dims)."""
    v1 = torch.nn.functional.normalize(v1, dim=[-1, -2, -3])
    parallel = (v0 * v1).sum(dim=[-1, -2, -3], keepdim=True) * v1
    return parallel, v0 - parallel


def adaptive_projected_guidance(model, eta: float = 1.0, norm_threshold: float = 5.0, momentum: float = 0.0):
    """APG, a pre-CFG function as ComfyUI's: the guidance g = D_cond - D_uncond, optionally a running
    sum g_k = momentum g_{k-1} + g (reset when sigma rises: a new run) and rescaled to an L2 norm of
    at most norm_threshold per image, is split into its parts parallel and orthogonal to D_cond, the
    parallel part (which oversaturates) weighted by eta: g'. The positive prediction becomes
    D_uncond + g' + (D_cond - D_uncond) / cfg, so the CFG combination after it gives
    D = D_cond + cfg g'. That is the paper's D_cond + (w - 1) g' with w = cfg + 1: with eta 1,
    norm_threshold 0 and momentum 0 it is CFG at cfg + 1 (ComfyUI's numbers, kept). Later patches
    (RescaleCFG, post-CFG functions) see the modified positive prediction, as in ComfyUI. At cfg 1
    the negative is not evaluated and its prediction is 0 (as in ComfyUI), so g = D_cond. With
    momentum, each step compares sigma with the last step's (one host sync a step, as ComfyUI)."""
    state = {"running": None, "sigma": None}

    def pre_cfg(args):
        cond, uncond = args["cond_denoised"], args["uncond_denoised"]
        cfg = args["cond_scale"]
        sigma = float(args["sigma"].reshape(-1)[0]) if momentum != 0 else None
        guidance = cond - uncond
        if momentum != 0:
            if state["sigma"] is not None and sigma > state["sigma"]:
                state["running"] = None
            state["sigma"] = sigma
            state["running"] = guidance if state["running"] is None else momentum * state["running"] + guidance
            guidance = state["running"]
        if norm_threshold > 0:
            norm = guidance.norm(p=2, dim=[-1, -2, -3], keepdim=True)
            guidance = guidance * torch.minimum(torch.ones_like(norm), norm_threshold / norm)
        parallel, orthogonal = project(guidance, cond)
        return (uncond + (orthogonal + eta * parallel)) + (cond - uncond) / cfg, uncond

    return _with_pre_cfg(model, pre_cfg)


def epsilon_scaling(model, scaling_factor: float = 1.005):
    """Epsilon scaling: the guided noise estimate x - D is divided by scaling_factor (above 1: a
    smaller noise estimate, countering the exposure bias of sampling), D' = x - (x - D) / factor."""
    factor = scaling_factor or 1e-9

    def post_cfg(args):
        x = args["x"]
        return x - (x - args["denoised"]) / factor

    return _with_post_cfg(model, post_cfg)


def optimized_scale(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """CFG-Zero*'s s* = <positive, negative> / (|negative|^2 + 1e-8) per image, shaped to broadcast."""
    dot = (positive * negative).sum(dim=_per_image(positive), keepdim=True)
    return dot / ((negative * negative).sum(dim=_per_image(negative), keepdim=True) + 1e-8)


def cfg_zero_star(model):
    """CFG-Zero*: the unconditional prediction scaled by alpha = s* of the noise estimates x - D_cond
    and x - D_uncond before guidance, D = alpha D_uncond + cfg (D_cond - alpha D_uncond), added to
    the guided prediction as D_cfg + (alpha - 1) D_uncond + cfg (1 - alpha) D_uncond (ComfyUI's
    rounding order). alpha 1 is plain CFG; at cfg 1 it changes nothing. The paper's zero-init of the
    first steps is not part of it (ComfyUI's node has none)."""
    def post_cfg(args):
        cfg, x, uncond = args["cond_scale"], args["x"], args["uncond_denoised"]
        alpha = optimized_scale(x - args["cond_denoised"], x - uncond)
        return args["denoised"] + uncond * (alpha - 1.0) + cfg * uncond * (1.0 - alpha)

    return _with_post_cfg(model, post_cfg)


def cfg_norm(model, strength: float = 1.0):
    """CFGNorm: at every pixel the guided prediction's norm over channels is capped at the positive
    prediction's, D' = strength * D * min(1, |D_cond|_c / (|D|_c + 1e-8))."""
    def post_cfg(args):
        denoised = args["denoised"]
        scale = (args["cond_denoised"].norm(dim=1, keepdim=True) / (denoised.norm(dim=1, keepdim=True) + 1e-8))
        return denoised * scale.clamp(min=0.0, max=1.0) * strength

    return _with_post_cfg(model, post_cfg)


def mahiro(model):
    """Mahiro: mixes the guided prediction D with the "naive leap" L = cfg D_cond by how much the
    signed square roots of the uncond leap cfg D_uncond and of (L + D) / 2 agree: s the mean over
    pixels of their cosine similarity over channels (one number for the batch), w = (s + 1) / 2,
    result w D + (1 - w) L."""
    def post_cfg(args):
        cfg, denoised = args["cond_scale"], args["denoised"]
        leap, uncond_leap = args["cond_denoised"] * cfg, args["uncond_denoised"] * cfg
        merge = (leap + denoised) / 2
        similarity = torch.nn.functional.cosine_similarity(uncond_leap.abs().sqrt() * uncond_leap.sign(),
                                                          merge.abs().sqrt() * merge.sign()).mean()
        weight = 2 * (similarity + 1)
        return (weight * denoised + (4 - weight) * leap) / 4

    return _with_post_cfg(model, post_cfg)


def tangential_damping(cond_score: torch.Tensor, uncond_score: torch.Tensor) -> torch.Tensor:
    """TCFG's damped unconditional score: uncond_score projected onto v1, the top right singular
    vector of the per-image 2 x N matrix [uncond_score; cond_score] (its tangential part dropped).
    v1 comes from the 2 x 2 Gram matrix's top eigenvector in closed form instead of an SVD: same
    projection, no host sync, no solver."""
    b = cond_score.shape[0]
    u, c = uncond_score.reshape(b, -1).float(), cond_score.reshape(b, -1).float()
    guu, gcc, guc = ((u * u).sum(1).double(), (c * c).sum(1).double(), (u * c).sum(1).double())
    top = (guu + gcc) / 2 + (((guu - gcc) / 2) ** 2 + guc ** 2).sqrt()
    # the top eigenvector of [[guu, guc], [guc, gcc]]: (guc, top - guu) or (top - gcc, guc), whichever is longer
    first = torch.stack([guc, top - guu], 1)
    second = torch.stack([top - gcc, guc], 1)
    pick = first.norm(dim=1, keepdim=True) >= second.norm(dim=1, keepdim=True)
    left = torch.where(pick, first, second).float()
    v1 = torch.nn.functional.normalize(left[:, :1] * u + left[:, 1:] * c, dim=1)
    damped = (u * v1).sum(1, keepdim=True) * v1
    return damped.reshape(uncond_score.shape).to(uncond_score.dtype)


def tcfg(model):
    """TCFG: the unconditional noise estimate x - D_uncond is replaced by its projection onto the
    main direction the two estimates share (tangential_damping); the positive stays. Does nothing
    when the negative was not evaluated (cfg 1)."""
    def pre_cfg(args):
        cond, uncond, x = args["cond_denoised"], args["uncond_denoised"], args["x"]
        if args["uncond"] is None:
            return cond, uncond
        return cond, x - tangential_damping(x - cond, x - uncond)

    return _with_pre_cfg(model, pre_cfg)


def fourier_filter(x: torch.Tensor, scale_low: float = 1.0, scale_high: float = 1.5,
                   freq_cutoff: int = 20) -> torch.Tensor:
    """x [B, C, ..., H, W] with its centred 2-D spectrum (over H, W) scaled by scale_low near the
    centre and by scale_high elsewhere, in float32, as ComfyUI's FreSca: along every dim after the
    channels the low region is [n // 2 - k, n // 2 + k) with k = min(freq_cutoff, n // 2), so an odd
    size's last index stays "high" and, for a video latent [B, C, T, H, W], so do the frames outside
    that range along T (whose spectrum is not taken): all their frequencies get scale_high."""
    dtype = x.dtype
    spectrum = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
    mask = torch.full(x.shape[2:], float(scale_high), device=x.device)
    low = tuple(slice(n // 2 - min(freq_cutoff, n // 2), n // 2 + min(freq_cutoff, n // 2)) for n in x.shape[2:])
    mask[low] = scale_low
    filtered = torch.fft.ifftn(torch.fft.ifftshift(spectrum * mask, dim=(-2, -1)), dim=(-2, -1)).real
    return filtered.to(dtype)


def fresca(model, scale_low: float = 1.0, scale_high: float = 1.25, freq_cutoff: int = 20):
    """FreSca: the guidance D_cond - D_uncond is filtered in frequency (fourier_filter) before the
    CFG combination, so low and high frequencies of the guidance can be weighted apart:
    D_cond' = D_uncond + filter(D_cond - D_uncond). Both scales 1 is plain CFG; when the negative
    was not evaluated (cfg 1) nothing changes (as ComfyUI's)."""
    def pre_cfg(args):
        cond, uncond = args["cond_denoised"], args["uncond_denoised"]
        if args["uncond"] is None:
            return cond, uncond
        return uncond + fourier_filter(cond - uncond, scale_low, scale_high, freq_cutoff), uncond

    return _with_pre_cfg(model, pre_cfg)


def renorm_cfg(model, cfg_trunc: float = 100.0, renorm: float = 1.0):
    """RenormCFG (Lumina-Image 2.0): while sigma < cfg_trunc, CFG whose result's norm per image is
    capped at renorm times the positive prediction's (renorm 0: no cap); at or above cfg_trunc the
    positive prediction alone. Replaces the CFG combination. ComfyUI compares the batch's first
    sigma; here each image's own (the same in a sampler run), without a host sync."""
    def cfg_function(args):
        cond, uncond, cfg, sigma = args["cond_denoised"], args["uncond_denoised"], args["cond_scale"], args["sigma"]
        guided = uncond + cfg * (cond - uncond)
        if renorm > 0:
            dims = _per_image(cond)
            limit = torch.linalg.vector_norm(cond, dim=dims, keepdim=True) * renorm
            norm = torch.linalg.vector_norm(guided, dim=dims, keepdim=True)
            guided = torch.where(norm >= limit, guided * (limit / norm), guided)
        truncated = (sigma.reshape(-1, *[1] * (cond.ndim - 1)) < cfg_trunc).to(cond.device)
        return torch.where(truncated, guided, cond)

    return with_cfg_function(model, cfg_function)


def perp_neg(model, empty_conditioning, neg_scale: float = 1.0):
    """ComfyUI's PerpNeg node: the CFG combination replaced by Perp-Neg's (perp_neg_combine) with
    the prediction of empty_conditioning, one more model evaluation a step. PerpNegGuider does the
    same in one batched call."""
    from .guidance import perp_neg_combine, prepare_conds

    prepared = {}

    def cfg_function(args):
        x, model_ = args["x"], args["model"]
        key = (tuple(x.shape), x.device)
        if key not in prepared:
            prepared[key] = prepare_conds(empty_conditioning, model_, key[0], x.device, negative=True)
        nocond = args["predict"](prepared[key], x, args["sigma"])
        return perp_neg_combine(args["cond_denoised"], args["uncond_denoised"], nocond, neg_scale,
                                args["cond_scale"])

    return with_cfg_function(model, cfg_function)


def latent_operation_cfg(model, operation):
    """ComfyUI's LatentApplyOperationCFG: before the combination the guidance g = D_cond - D_uncond
    goes through `operation` (a LATENT_OPERATION), D_cond' = D_uncond + op(g), so plain CFG gives
    D_uncond + cfg op(g); without an unconditional prediction (cfg 1) D_cond' = op(D_cond)."""
    def pre_cfg(args):
        cond, uncond = args["cond_denoised"], args["uncond_denoised"]
        if uncond is None:
            return operation(cond), uncond
        return operation(cond - uncond) + uncond, uncond

    return _with_pre_cfg(model, pre_cfg)


def cfg_predictions(args) -> tuple[torch.Tensor, torch.Tensor]:
    """A CFG function's (cond, uncond) predictions; without an unconditional one (the sampler's
    cfg 1) it counts as 0, as ComfyUI's sampler_cfg_function sees it."""
    cond, uncond = args["cond_denoised"], args["uncond_denoised"]
    return cond, torch.zeros_like(cond) if uncond is None else uncond


def _frame_ramp_cfg(ramp, min_cfg: float):
    """CFG whose scale differs per frame (per latent in the batch): ramp(frames, device) -> [frames]
    in 0..1 places each frame's scale between min_cfg (0) and the sampler's cfg (1). Without an
    unconditional prediction (cfg 1) it counts as 0 (cfg_predictions)."""
    def cfg_function(args):
        cond, uncond = cfg_predictions(args)
        frames = cond.shape[0]
        scale = min_cfg + ramp(frames, cond.device) * (args["cond_scale"] - min_cfg)
        return uncond + scale.reshape(frames, *[1] * (cond.ndim - 1)).to(cond.dtype) * (cond - uncond)
    return cfg_function


def video_linear_cfg(model, min_cfg: float = 1.0):
    """ComfyUI's VideoLinearCFGGuidance: the cfg rises linearly over the frames, min_cfg at the first
    (the init image's), the sampler's cfg at the last."""
    return with_cfg_function(model, _frame_ramp_cfg(lambda n, device: torch.linspace(0.0, 1.0, n, device=device),
                                                     min_cfg))


def video_triangle_cfg(model, min_cfg: float = 1.0):
    """ComfyUI's VideoTriangleCFGGuidance: the cfg rises linearly from min_cfg at the first frame
    to the sampler's cfg at the middle one and falls back to min_cfg at the last."""
    def triangle(n, device):
        t = torch.linspace(0.0, 1.0, n, device=device)
        return 2 * (t - torch.floor(t + 0.5)).abs()

    return with_cfg_function(model, _frame_ramp_cfg(triangle, min_cfg))


def timestep_window_cfg(model, value: float, sigma_start: float, sigma_end: float):
    """ComfyUI_essentials' Guidance Timestep: plain CFG whose scale is `value` while the step's
    sigma (the batch's first) is at most sigma_start and above sigma_end, the sampler's cfg
    elsewhere. Without an unconditional prediction (cfg 1) it counts as 0 (cfg_predictions), so
    inside the window the result is value x the positive prediction."""
    def cfg_function(args):
        cond, uncond = cfg_predictions(args)
        scale = value if sigma_end < float(args["sigma"].flatten()[0]) <= sigma_start else args["cond_scale"]
        return uncond + (cond - uncond) * scale

    return with_cfg_function(model, cfg_function)
