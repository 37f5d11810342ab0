"""Post-CFG MODEL patches that reshape the guided prediction (guidance.py runs a MODEL's
`post_cfg_functions` after the CFG combination, with the cond / uncond x0 predictions and the cfg):

    APG              Sadat et al. 2024, "Eliminating Oversaturation and Artifacts of High Guidance
                     Scales in Diffusion Models" (Adaptive Projected Guidance), as ComfyUI's APG
    epsilon scaling  Ning et al. 2023, "Elucidating the Exposure Bias in Diffusion Models"
                     (arXiv:2308.15321), its uniform schedule, as ComfyUI's Epsilon Scaling
    latent operation a LATENT_OPERATION (sharpen, tonemap) applied to the guidance, as ComfyUI's
                     LatentApplyOperationCFG

Each returns a shallow copy of the MODEL with its function appended (the input is not changed)."""

import copy

import torch


def _with_post_cfg(model, post_cfg):
    patched = copy.copy(model)
    patched.post_cfg_functions = (*getattr(model, "post_cfg_functions", ()), post_cfg)
    return patched


def project(v0: torch.Tensor, v1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """v0's components parallel and orthogonal to v1, per image (over the last three dims)."""
    v1 = torch.nn.functional.normalize(v1, dim=[-1, -2, -3])
    parallel = (v0 * v1).sum(dim=[-1, -2, -3], keepdim=True) * v1
    return parallel, v0 - parallel


def adaptive_projected_guidance(model, eta: float = 1.0, norm_threshold: float = 5.0, momentum: float = 0.0):
    """APG: the guidance g = D_cond - D_uncond, optionally a running sum g_k = momentum g_{k-1} + g
    (reset when sigma rises: a new run) and rescaled to an L2 norm of at most norm_threshold per
    image, is split into its parts parallel and orthogonal to D_cond, the parallel part (which
    oversaturates) weighted by eta; the result is CFG on ComfyUI's modified prediction,
    D = D_uncond + cfg (D_uncond + g' + (D_cond - D_uncond) / cfg - D_uncond) = D_cond + cfg g'.
    That is the paper's D_cond + (w - 1) g' with w = cfg + 1: with eta 1, norm_threshold 0 and
    momentum 0 it is CFG at cfg + 1 (ComfyUI's numbers, kept). Without an unconditional prediction
    (cfg 1) it does nothing. With momentum, each step compares sigma with the last step's (one
    host sync a step, as ComfyUI)."""
    state = {"running": None, "sigma": None}

    def post_cfg(args):
        cond, uncond = args["cond_denoised"], args["uncond_denoised"]
        if uncond is None:
            return args["denoised"]
        cfg = args["cond_scale"]
        guidance = cond - uncond
        if momentum != 0:
            sigma = float(args["sigma"].reshape(-1)[0])
            if state["sigma"] is not None and sigma > state["sigma"]:
                state["running"] = None
            state["sigma"] = sigma
            state["running"] = guidance if state["running"] is None else momentum * state["running"] + guidance
            guidance = state["running"]
        if norm_threshold > 0:
            norm = guidance.norm(p=2, dim=[-1, -2, -3], keepdim=True)
            guidance = guidance * torch.minimum(torch.ones_like(norm), norm_threshold / norm)
        parallel, orthogonal = project(guidance, cond)
        modified_cond = (uncond + (orthogonal + eta * parallel)) + (cond - uncond) / cfg
        return uncond + (modified_cond - uncond) * cfg

    return _with_post_cfg(model, post_cfg)


def epsilon_scaling(model, scaling_factor: float = 1.005):
    """Epsilon scaling: the guided noise estimate x - D is divided by scaling_factor (above 1: a
    smaller noise estimate, countering the exposure bias of sampling), D' = x - (x - D) / factor."""
    factor = scaling_factor or 1e-9

    def post_cfg(args):
        x = args["x"]
        return x - (x - args["denoised"]) / factor

    return _with_post_cfg(model, post_cfg)


def latent_operation_cfg(model, operation):
    """ComfyUI's LatentApplyOperationCFG: the guidance g = D_cond - D_uncond goes through
    `operation` (a LATENT_OPERATION) before the CFG combination, D = D_uncond + cfg op(g); without an
    unconditional prediction (cfg 1) D = op(D_cond), as ComfyUI's zero stand-in gives. ComfyUI does
    this before the combination; after it, the same is D + cfg (op(g) - g)."""

    def post_cfg(args):
        cond, uncond, cfg = args["cond_denoised"], args["uncond_denoised"], args["cond_scale"]
        guidance = cond if uncond is None else cond - uncond
        return args["denoised"] + cfg * (operation(guidance) - guidance)

    return _with_post_cfg(model, post_cfg)
