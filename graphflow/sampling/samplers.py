"""Samplers by ComfyUI name, k-diffusion style: each a plain function

    sampler(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, **options) -> x

denoiser(x, sigma_batch, **extra_args) -> D(x; sigma), the x0 estimate, in sigma space
(x = x0 + sigma * eps; Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models", hereafter EDM). sigmas: float32 tensor on x's device, decreasing, usually
ending in 0. The probability-flow ODE is dx/dsigma = (x - D(x; sigma)) / sigma (EDM eq. 3 with
sigma(t) = t, s(t) = 1); the DPM-Solver family works in lambda = -log sigma instead.

callback({"i", "x", "sigma", "sigma_hat", "denoised"}) is called once per step, before the
update (the progress / preview / interrupt hook: raising in it stops sampling). `disable` is
accepted for k-diffusion compatibility; there is no progress bar.

Stochastic samplers take `noise_sampler` (sigma, sigma_next) -> N(0, I) noise, or `seed` to make
ComfyUI's default one (gaussian on x's device, or a Brownian tree for the SDE samplers; see
noise.py). The math mirrors k-diffusion / ComfyUI operation for operation, in float32 on 0-d
sigma tensors, so results agree with ComfyUI's to float rounding; multistep coefficients (lms,
uni_pc) are computed in float64.
"""

import inspect
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.polynomial import Polynomial

from .model_sampling import append_dims, in_sigma_window
from .noise import brownian_noise_sampler, gaussian_noise_sampler

# ComfyUI runs these on steps + 1 sigmas with the second-to-last dropped.
DISCARD_PENULTIMATE_SIGMA = frozenset({"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"})
# ComfyUI's "ddim" is "euler" whose inpainting re-noise uses fresh noise (seed + 1).
RANDOM_INPAINT_NOISE = frozenset({"ddim"})
# UniPC stops at this sigma instead of 0 (its lambda must stay finite). ComfyUI writes it over the
# caller's last sigma in place, so the flow models' inverse noise scaling after sampling divides
# by 1 - UNI_PC_END_SIGMA rather than by 1 (the pipeline does the same).
UNI_PC_END_SIGMA = 0.001
UNI_PC_SAMPLERS = frozenset({"uni_pc", "uni_pc_bh2"})


@dataclass(frozen=True)
class SamplerChoice:
    """A SAMPLER value (KSamplerSelect): a sampler of SAMPLERS by name, with options for it, and
    the sigma adjusters of the nodes that wrap it (sigma_adjust.py: they change the sigma the model
    is called with, not the sampler's steps)."""

    name: str
    options: dict = field(default_factory=dict)
    sigma_adjusters: tuple = ()


def to_d(x, sigma, denoised):
    """dx/dsigma of the probability-flow ODE (EDM eq. 3)."""
    return (x - denoised) / append_dims(sigma, x.ndim)


def get_ancestral_step(sigma_from, sigma_to, eta=1.0):
    """Split a step sigma_from -> sigma_to into a deterministic step down to sigma_down and fresh
    noise of std sigma_up, sigma_down^2 + sigma_up^2 = sigma_to^2; eta = 1 is DDPM's ancestral
    sampling (Ho et al. 2020) in sigma space, eta = 0 the ODE."""
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
    return sigma_down, sigma_up


def _step_info(i, x, sigma, denoised, sigma_hat=None):
    return {"i": i, "x": x, "sigma": sigma, "sigma_hat": sigma if sigma_hat is None else sigma_hat, "denoised": denoised}


@torch.no_grad()
def sample_euler(denoiser, x, sigmas, extra_args=None, callback=None, disable=None):
    """Euler's method on the PF-ODE (EDM Algorithm 2 without churn). ComfyUI's "ddim" is this:
    DDIM with eta = 0 (Song et al. 2021) is exactly an Euler step in sigma space (EDM sec. 3)."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        d = to_d(x, sigmas[i], denoised)
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


@torch.no_grad()
def sample_euler_ancestral(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                           eta=1.0, s_noise=1.0, noise_sampler=None, seed=None):
    """Euler step down to sigma_down, then fresh noise up to sigma_{i+1} (k-diffusion)."""
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        if sigma_down == 0:
            x = denoised
        else:
            d = to_d(x, sigmas[i], denoised)
            x = x + d * (sigma_down - sigmas[i]) + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_heun(denoiser, x, sigmas, extra_args=None, callback=None, disable=None):
    """Heun's 2nd-order method (EDM Algorithm 1); a plain Euler step into sigma = 0."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        d = to_d(x, sigmas[i], denoised)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            denoised_2 = denoiser(x_2, sigmas[i + 1] * s_in, **extra_args)
            d_2 = to_d(x_2, sigmas[i + 1], denoised_2)
            x = x + (d + d_2) / 2 * dt
    return x


def dpm_2_step(denoiser, x, sigma, sigma_to, d, s_in, extra_args):
    """One DPM-Solver-2 step from sigma to sigma_to, d the slope at x: an Euler half-step to the
    log-midpoint sigma, then the full step with the midpoint's slope (Euler alone into 0)."""
    if sigma_to == 0:
        return x + d * (sigma_to - sigma)
    sigma_mid = sigma.log().lerp(sigma_to.log(), 0.5).exp()
    x_2 = x + d * (sigma_mid - sigma)
    d_2 = to_d(x_2, sigma_mid, denoiser(x_2, sigma_mid * s_in, **extra_args))
    return x + d_2 * (sigma_to - sigma)


@torch.no_grad()
def sample_dpm_2(denoiser, x, sigmas, extra_args=None, callback=None, disable=None):
    """DPM-Solver-2 (Lu et al. 2022, "DPM-Solver", Alg. 1 with r = 1/2) in sigma space: an Euler
    half-step to the log-midpoint sigma, then the full step with the midpoint slope (EDM sec. 3)."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        d = to_d(x, sigmas[i], denoised)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        x = dpm_2_step(denoiser, x, sigmas[i], sigmas[i + 1], d, s_in, extra_args)
    return x


@torch.no_grad()
def sample_dpm_2_ancestral(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                           eta=1.0, s_noise=1.0, noise_sampler=None, seed=None):
    """DPM-Solver-2 down to sigma_down, then fresh noise up to sigma_{i+1}."""
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        x = dpm_2_step(denoiser, x, sigmas[i], sigma_down, to_d(x, sigmas[i], denoised), s_in, extra_args)
        if sigma_down != 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def lms_coefficient(order, t, i, j):
    """Integral over [t_i, t_{i+1}] of the Lagrange basis polynomial of node t_{i-j} on the nodes
    t_i, ..., t_{i-order+1}: the Adams-Bashforth weight of d_{i-j}. Exact (k-diffusion integrates
    numerically to 1e-4)."""
    if order - 1 > i:
        raise ValueError(f"order {order} too high for step {i}")
    basis = Polynomial([1.0])
    for k in range(order):
        if k != j:
            basis = basis * Polynomial([-t[i - k], 1.0]) / (t[i - j] - t[i - k])
    antiderivative = basis.integ()
    return float(antiderivative(t[i + 1]) - antiderivative(t[i]))


@torch.no_grad()
def sample_lms(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, order=4):
    """Linear multistep (Adams-Bashforth in sigma, variable step; k-diffusion's LMS) of up to
    `order` previous slopes; the step into sigma = 0 takes the denoised value."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    t = sigmas.detach().cpu().double().numpy()
    ds = []
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        ds.append(to_d(x, sigmas[i], denoised))
        if len(ds) > order:
            ds.pop(0)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            cur_order = min(i + 1, order)
            coeffs = [lms_coefficient(cur_order, t, i, j) for j in range(cur_order)]
            x = x + sum(coeff * d for coeff, d in zip(coeffs, reversed(ds)))
    return x


def _t_fn(sigma):
    return sigma.log().neg()  # lambda = log(alpha / sigma_vp) = -log sigma


def _sigma_fn(t):
    return t.neg().exp()


@torch.no_grad()
def sample_dpmpp_2s_ancestral(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                              eta=1.0, s_noise=1.0, noise_sampler=None, seed=None):
    """DPM-Solver++(2S) (Lu et al. 2022b, arXiv:2211.01095, Alg. 1, r = 1/2) down to sigma_down,
    then fresh noise up to sigma_{i+1}."""
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = _t_fn(sigmas[i]), _t_fn(sigma_down)
            r = 1 / 2
            h = t_next - t
            s = t + r * h
            x_2 = (_sigma_fn(s) / _sigma_fn(t)) * x - (-h * r).expm1() * denoised
            denoised_2 = denoiser(x_2, _sigma_fn(s) * s_in, **extra_args)
            x = (_sigma_fn(t_next) / _sigma_fn(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_sde(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                     eta=1.0, s_noise=1.0, noise_sampler=None, seed=None, r=1 / 2, brownian_on_cpu=True):
    """DPM-Solver++ (stochastic, 2 evaluations per step; k-diffusion's "DPM++ SDE"): each of the
    two DPM-Solver++ sub-steps (Lu et al. 2022b) is split into an ancestral step down plus
    Brownian noise back up."""
    if len(sigmas) <= 1:
        return x
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or brownian_noise_sampler(x, sigmas, seed, cpu=brownian_on_cpu)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        if sigmas[i + 1] == 0:
            x = denoised  # ComfyUI's; an Euler step there lands on it only up to rounding
        else:
            t, t_next = _t_fn(sigmas[i]), _t_fn(sigmas[i + 1])
            h = t_next - t
            s = t + h * r
            fac = 1 / (2 * r)
            # step 1: to the intermediate point s
            sd, su = get_ancestral_step(_sigma_fn(t), _sigma_fn(s), eta)
            s_ = _t_fn(sd)
            x_2 = (_sigma_fn(s_) / _sigma_fn(t)) * x - (t - s_).expm1() * denoised
            x_2 = x_2 + noise_sampler(_sigma_fn(t), _sigma_fn(s)) * s_noise * su
            denoised_2 = denoiser(x_2, _sigma_fn(s) * s_in, **extra_args)
            # step 2: the full step with the blended denoised estimate
            sd, su = get_ancestral_step(_sigma_fn(t), _sigma_fn(t_next), eta)
            t_next_ = _t_fn(sd)
            denoised_d = (1 - fac) * denoised + fac * denoised_2
            x = (_sigma_fn(t_next_) / _sigma_fn(t)) * x - (t - t_next_).expm1() * denoised_d
            x = x + noise_sampler(_sigma_fn(t), _sigma_fn(t_next)) * s_noise * su
    return x


@torch.no_grad()
def sample_dpmpp_2m(denoiser, x, sigmas, extra_args=None, callback=None, disable=None):
    """DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2): exponential-integrator step in lambda with a
    second-order correction from the previous denoised value; first and last steps 1st order."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        t, t_next = _t_fn(sigmas[i]), _t_fn(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (_sigma_fn(t_next) / _sigma_fn(t)) * x - (-h).expm1() * denoised
        else:
            h_last = t - _t_fn(sigmas[i - 1])
            r = h_last / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (_sigma_fn(t_next) / _sigma_fn(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                        eta=1.0, s_noise=1.0, noise_sampler=None, seed=None, solver_type="midpoint",
                        brownian_on_cpu=True):
    """DPM-Solver++(2M) SDE (Lu et al. 2022b sec. 5 / k-diffusion): the SDE variant of 2M,
    x_{i+1} = (sigma_{i+1}/sigma_i) e^{-eta h} x + (1 - e^{-(1+eta) h}) D + 2nd-order term
              + sigma_{i+1} sqrt(1 - e^{-2 eta h}) * Brownian noise."""
    if len(sigmas) <= 1:
        return x
    if solver_type not in ("heun", "midpoint"):
        raise ValueError("solver_type must be 'heun' or 'midpoint'")
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or brownian_noise_sampler(x, sigmas, seed, cpu=brownian_on_cpu)
    s_in = x.new_ones([x.shape[0]])
    old_denoised = None
    h_last = None
    h = None
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            eta_h = eta * h
            x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + ((-h - eta_h).expm1().neg() / (-h - eta_h) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * (-h - eta_h).expm1().neg() * (1 / r) * (denoised - old_denoised)
            if eta:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() * s_noise
        old_denoised = denoised
        h_last = h
    return x


@torch.no_grad()
def sample_dpmpp_3m_sde(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                        eta=1.0, s_noise=1.0, noise_sampler=None, seed=None, brownian_on_cpu=True):
    """DPM-Solver++(3M) SDE (k-diffusion; 3rd-order multistep from Lu et al. 2022b with the SDE
    noise term of 2M SDE): phi_2, phi_3 corrections from the two previous denoised values."""
    if len(sigmas) <= 1:
        return x
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or brownian_noise_sampler(x, sigmas, seed, cpu=brownian_on_cpu)
    s_in = x.new_ones([x.shape[0]])
    denoised_1, denoised_2 = None, None
    h, h_1, h_2 = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, s = -sigmas[i].log(), -sigmas[i + 1].log()
            h = s - t
            h_eta = h * (eta + 1)
            x = torch.exp(-h_eta) * x + (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                r0 = h_1 / h
                r1 = h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                r = h_1 / h
                d = (denoised - denoised_1) / r
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + phi_2 * d
            if eta:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


def _on_device_brownian(sampler):
    def sample(*args, **kwargs):
        return sampler(*args, brownian_on_cpu=False, **kwargs)
    sample.__name__ = sampler.__name__ + "_gpu"
    sample.__doc__ = f"{sampler.__name__} with the Brownian tree on x's device (ComfyUI's _gpu variant)."
    sample.__signature__ = inspect.signature(sampler)
    return sample


sample_dpmpp_sde_gpu = _on_device_brownian(sample_dpmpp_sde)
sample_dpmpp_2m_sde_gpu = _on_device_brownian(sample_dpmpp_2m_sde)
sample_dpmpp_3m_sde_gpu = _on_device_brownian(sample_dpmpp_3m_sde)


@torch.no_grad()
def sample_ddpm(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, seed=None):
    """DDPM ancestral sampling (Ho et al. 2020, eq. 11): the posterior mean from eps plus the
    posterior std times fresh noise, done in the variance-preserving space x / sqrt(1 + sigma^2)."""
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        sigma, sigma_prev = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigma, denoised))
        eps = (x - denoised) / sigma
        x_vp = x / torch.sqrt(1.0 + sigma ** 2.0)
        alpha_cumprod = 1 / (sigma * sigma + 1)
        alpha_cumprod_prev = 1 / (sigma_prev * sigma_prev + 1)
        alpha = alpha_cumprod / alpha_cumprod_prev
        x = (1.0 / alpha).sqrt() * (x_vp - (1 - alpha) * eps / (1 - alpha_cumprod).sqrt())
        if sigma_prev > 0:
            x = x + ((1 - alpha) * (1.0 - alpha_cumprod_prev) / (1.0 - alpha_cumprod)).sqrt() * noise_sampler(sigma, sigma_prev)
            x = x * torch.sqrt(1.0 + sigma_prev ** 2.0)
    return x


@torch.no_grad()
def sample_lcm(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, seed=None):
    """Latent Consistency Model multistep sampling (Luo et al. 2023, Alg. 1): jump to the
    denoised estimate, re-noise to the next sigma with fresh noise."""
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1]
    return x


@torch.no_grad()
def sample_lcm_upscale(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, total_upscale=2.0,
                       upscale_method="bislerp", upscale_steps=None, seed=None):
    """LCM sampling that grows the latent as it goes (ComfyUI's SamplerLCMUpscale): after each of the
    first upscale_steps steps the denoised latent is resized, the scale rising linearly from 1 to
    total_upscale (upscale_steps None: half the steps + 1), then re-noised to the next sigma.
    The fresh noise is ComfyUI's: it draws randn_like from the global generator that its starting
    noise seeded with the seed, i.e. one stream seeded with `seed` on x's device, drawn at each
    step's size; on the CPU that stream has first given the starting noise (a batch of x's shape)."""
    from graphflow.images import bislerp, resize_nchw

    extra_args = extra_args or {}
    noise_sampler = gaussian_noise_sampler(x, seed)
    if isinstance(seed, int) and x.device.type == "cpu":
        noise_sampler(None, None)  # the starting noise's draw from the same CPU stream
    if upscale_steps is None:
        upscale_steps = max(len(sigmas) // 2 + 1, 2)
    else:
        upscale_steps = min(upscale_steps + 1, len(sigmas) + 1)
    upscales = np.linspace(1.0, total_upscale, upscale_steps)[1:]
    height, width = x.shape[-2:]
    for i in range(len(sigmas) - 1):
        s_in = x.new_ones([x.shape[0]])
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        x = denoised
        if i < len(upscales):
            size = round(width * upscales[i]), round(height * upscales[i])
            x = bislerp(x, *size) if upscale_method == "bislerp" else resize_nchw(x, *size, upscale_method)
        if sigmas[i + 1] > 0:
            x = x + sigmas[i + 1] * noise_sampler(sigmas[i], sigmas[i + 1], x.shape)
    return x


@torch.no_grad()
def sample_ipndm(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, max_order=4):
    """Improved PNDM (Zhang & Chen 2023, "DEIS", sec. 4 / Liu et al. 2022 "PNDM"): fixed-weight
    Adams-Bashforth on the slopes, warming up from Euler; the step into sigma = 0 takes the
    denoised value."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    history = []  # previous slopes, oldest first
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, sigma * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigma, denoised))
        d = (x - denoised) / sigma
        order = min(max_order, i + 1)
        if sigma_next == 0:
            x_next = denoised
        elif order == 1:
            x_next = x + (sigma_next - sigma) * d
        elif order == 2:
            x_next = x + (sigma_next - sigma) * (3 * d - history[-1]) / 2
        elif order == 3:
            x_next = x + (sigma_next - sigma) * (23 * d - 16 * history[-1] + 5 * history[-2]) / 12
        else:
            x_next = x + (sigma_next - sigma) * (55 * d - 59 * history[-1] + 37 * history[-2] - 9 * history[-3]) / 24
        history = (history + [d])[-(max_order - 1):]
        x = x_next
    return x


def _unipc_coefficients(lambdas_prev, lambda_t, order, variant, need_predictor, need_corrector):
    """UniPC's rk ratios and the solved rho weights (Zhao et al. 2023, "UniPC", arXiv:2302.04867,
    Alg. 2 (UniC) and 3 (UniP), data-prediction form), in float64.
    lambdas_prev: lambda of the stored denoised values, most recent last."""
    lambda_0 = lambdas_prev[-1]
    h = lambda_t - lambda_0
    rks = [(lambdas_prev[-(k + 1)] - lambda_0) / h for k in range(1, order)] + [1.0]
    hh = -h  # data prediction integrates e^{-h}
    h_phi_1 = np.expm1(hh)  # h * phi_1(h) = e^{hh} - 1
    h_phi_k = h_phi_1 / hh - 1
    b_h = hh if variant == "bh1" else np.expm1(hh)  # B(h)
    rows, b = [], []
    factorial = 1
    for k in range(1, order + 1):
        rows.append(np.power(rks, k - 1))
        b.append(h_phi_k * factorial / b_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    R, b = np.stack(rows), np.array(b)
    rhos_p = None
    if need_predictor and order >= 2:
        rhos_p = np.array([0.5]) if order == 2 else np.linalg.solve(R[:-1, :-1], b[:-1])
    rhos_c = None
    if need_corrector:
        rhos_c = np.array([0.5]) if order == 1 else np.linalg.solve(R, b)
    return rks[:-1], h_phi_1, b_h, rhos_p, rhos_c


@torch.no_grad()
def sample_uni_pc(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, variant="bh1"):
    """UniPC multistep predictor-corrector (Zhao et al. 2023), data prediction, order
    min(3, steps - 1), lower orders at the start and the end, corrector on every step but the
    last. Written in sigma space: with lambda = -log sigma and m the denoised values,
        x_t = (sigma_t / sigma_0) x - (e^{-h} - 1) m_0 - B(h) sum_k rho_k D_k,
    which is the paper's variance-preserving update divided by alpha_t. The model evaluated at
    the predicted x_t serves both the corrector and the next step (no extra evaluations).
    As in ComfyUI, a final sigma of 0 is replaced by 0.001 (lambda must stay finite)."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    if sigmas[-1] == 0:
        sigmas = torch.cat([sigmas[:-1], sigmas.new_tensor([UNI_PC_END_SIGMA])])
    steps = len(sigmas) - 1
    if steps < 1:
        return x
    order = max(1, min(3, steps - 1))
    lambdas = (-sigmas.double().log()).tolist()

    m = [denoiser(x, sigmas[0] * s_in, **extra_args)]  # stored denoised values, most recent last
    m_lambdas = [lambdas[0]]
    if callback is not None:
        callback(_step_info(0, x, sigmas[0], m[-1]))
    for k in range(1, steps + 1):
        step_order = min(order, k, steps + 1 - k)
        use_corrector = k < steps
        rks, h_phi_1, b_h, rhos_p, rhos_c = _unipc_coefficients(
            m_lambdas[-step_order:], lambdas[k], step_order, variant, True, use_corrector)
        m_0 = m[-1]
        d1s = [(m[-(j + 1)] - m_0) / rk for j, rk in enumerate(rks, start=1)]
        x_base = (sigmas[k] / sigmas[k - 1]) * x - float(h_phi_1) * m_0
        predicted = x_base
        if rhos_p is not None:
            predicted = x_base - float(b_h) * sum(float(r) * d for r, d in zip(rhos_p, d1s))
        if use_corrector:
            m_t = denoiser(predicted, sigmas[k] * s_in, **extra_args)
            correction = sum(float(r) * d for r, d in zip(rhos_c[:-1], d1s)) + float(rhos_c[-1]) * (m_t - m_0)
            x = x_base - float(b_h) * correction
            m = (m + [m_t])[-order:]
            m_lambdas = (m_lambdas + [lambdas[k]])[-order:]
            if callback is not None:
                callback(_step_info(k, x, sigmas[k], m_t))
        else:
            x = predicted
    return x


def sample_uni_pc_bh2(denoiser, x, sigmas, extra_args=None, callback=None, disable=None):
    """UniPC with B(h) = e^h - 1 (the paper's bh2 variant; better at low step counts)."""
    return sample_uni_pc(denoiser, x, sigmas, extra_args=extra_args, callback=callback, disable=disable, variant="bh2")


# ---- CFG++ (Chung et al. 2024, "CFG++: Manifold-constrained Classifier Free Guidance") ---------
# A CFG++ step takes the guided x0 estimate for where it goes but the unconditional one for the
# noise direction it re-adds: x_next = D_cfg + sigma_next * (x - D_uncond) / sigma for Euler. The
# guided denoiser hands the unconditional prediction over through its post_cfg hook; a denoiser
# without one (no CFG) has D_uncond = D, and the sampler reduces to its plain counterpart.

def half_log_snr(sigma, flow: bool = False):
    """lambda = log(alpha / sigma): -log sigma for eps/v models (alpha = 1 in sigma space),
    log((1 - sigma) / sigma) for flow models (x = (1 - sigma) x0 + sigma eps)."""
    return sigma.logit().neg() if flow else sigma.log().neg()


def sigma_of_half_log_snr(lam, flow: bool = False):
    return lam.neg().sigmoid() if flow else lam.neg().exp()


def _signal_scale(sigma, flow: bool):
    """alpha: the signal's scale at sigma (1 in sigma space, 1 - sigma for flow models)."""
    return 1 - sigma if flow else torch.ones_like(sigma)


def _below_one(sigmas, flow: bool, schedule=None):
    """Flow models' lambda is -inf at sigma = 1: start just below it (ComfyUI's
    offset_first_sigma_for_snr: the model's sigma 1e-4 of the way into sampling)."""
    if not flow or len(sigmas) <= 1 or sigmas[0] < 1:
        return sigmas
    sigmas = sigmas.clone()
    sigmas[0] = 1.0 - 1e-4 if schedule is None else _percent_to_sigma(schedule, 1e-4)
    return sigmas


class _UncondRecorder:
    """post_cfg hook keeping the last unconditional prediction of the CFG denoiser."""

    def __init__(self):
        self.uncond = None

    def __call__(self, args):
        self.uncond = args["uncond_denoised"]
        return args["denoised"]


def _accepts_post_cfg(denoiser) -> bool:
    try:
        params = inspect.signature(denoiser).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "post_cfg" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _guided(denoiser, extra_args):
    """(x, sigma) -> (denoised, uncond_denoised) for the CFG++ samplers."""
    if not _accepts_post_cfg(denoiser):
        def plain(x, sigma):
            denoised = denoiser(x, sigma, **extra_args)
            return denoised, denoised
        return plain
    recorder = _UncondRecorder()

    def guided(x, sigma):
        denoised = denoiser(x, sigma, post_cfg=recorder, **extra_args)
        return denoised, recorder.uncond
    return guided


@torch.no_grad()
def sample_euler_ancestral_cfg_pp(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                                  eta=1.0, s_noise=1.0, noise_sampler=None, seed=None, flow=False):
    """Euler ancestral with CFG++: x = D_cfg + sigma_down * (x - D_uncond) / sigma + sigma_up * noise
    (flow: the same in the variance-exploding coordinates x / alpha, alpha = 1 - sigma, as ComfyUI)."""
    model = _guided(denoiser, extra_args or {})
    noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised, uncond = model(x, sigmas[i] * s_in)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        alpha_s, alpha_t = _signal_scale(sigmas[i], flow), _signal_scale(sigmas[i + 1], flow)
        d = to_d(x, sigmas[i], alpha_s * uncond)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i] / alpha_s, sigmas[i + 1] / alpha_t, eta=eta)
        x = alpha_t * denoised + alpha_t * sigma_down * d
        if eta > 0 and s_noise > 0:
            x = x + alpha_t * noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_euler_cfg_pp(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, flow=False):
    """Euler with CFG++: x_next = D_cfg + sigma_next * (x - D_uncond) / sigma (flow:
    (1 - sigma_next) D_cfg + sigma_next (x - (1 - sigma) D_uncond) / sigma)."""
    return sample_euler_ancestral_cfg_pp(denoiser, x, sigmas, extra_args, callback, disable, eta=0.0, s_noise=0.0,
                                         noise_sampler=lambda *_: None, flow=flow)


@torch.no_grad()
def sample_euler_cfg_pp_alternative(denoiser, x, sigmas, extra_args=None, callback=None, disable=None):
    """SamplerEulerCFGpp's "alternative" version (ComfyUI's sample_euler_pp): an Euler step along
    d = (x - D_cfg + D_uncond - D_cfg) / sigma, i.e. the plain Euler slope plus the guidance term
    (D_uncond - D_cfg) / sigma once more; in the same coordinates for every model (no flow switch,
    as ComfyUI)."""
    model = _guided(denoiser, extra_args or {})
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised, uncond = model(x, sigmas[i] * s_in)
        d = to_d(x - denoised + uncond, sigmas[i], denoised)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


@torch.no_grad()
def sample_dpmpp_2s_ancestral_cfg_pp(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                                     eta=1.0, s_noise=1.0, noise_sampler=None, seed=None):
    """DPM-Solver++(2S) ancestral with CFG++ as ComfyUI v0.3.64 has it (the same for every model,
    flow ones included): both sub-steps start from x + (D_cfg - D_uncond) and move along the guided
    estimates, x_2 = (s_mid / s) (x + D - U) - expm1(-h / 2) D, then
    x = (sigma_down / s) (x + D - U_2) - expm1(-h) D_2, where U_2 is the unconditional prediction
    at x_2: ComfyUI's step reads the one its post-CFG hook recorded last. Into sigma_down = 0 it
    lands on D; fresh noise as dpmpp_2s_ancestral."""
    model = _guided(denoiser, extra_args or {})
    noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised, uncond = model(x, sigmas[i] * s_in)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        if sigma_down == 0:
            x = denoised + to_d(x, sigmas[i], uncond) * sigma_down
        else:
            t, t_next = _t_fn(sigmas[i]), _t_fn(sigma_down)
            h = t_next - t
            s = t + h / 2
            x_2 = (_sigma_fn(s) / _sigma_fn(t)) * (x + (denoised - uncond)) - (-h / 2).expm1() * denoised
            denoised_2, uncond_2 = model(x_2, _sigma_fn(s) * s_in)
            x = (_sigma_fn(t_next) / _sigma_fn(t)) * (x + (denoised - uncond_2)) - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_2m_cfg_pp(denoiser, x, sigmas, extra_args=None, callback=None, disable=None):
    """DPM-Solver++(2M) with CFG++ (ComfyUI's): x_next = D_cfg + e^{-h} (x - D_uncond) plus the
    second-order term (1 - e^{-h}) / (2r) (D_cfg - D_uncond,prev)."""
    model = _guided(denoiser, extra_args or {})
    s_in = x.new_ones([x.shape[0]])
    old_uncond = None
    for i in range(len(sigmas) - 1):
        denoised, uncond = model(x, sigmas[i] * s_in)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        t, t_next = _t_fn(sigmas[i]), _t_fn(sigmas[i + 1])
        h = t_next - t
        mix = -torch.exp(-h) * uncond
        if old_uncond is not None and sigmas[i + 1] != 0:
            r = (t - _t_fn(sigmas[i - 1])) / h
            mix = mix - torch.expm1(-h) * (1 / (2 * r)) * (denoised - old_uncond)
        x = denoised + mix + torch.exp(-h) * x
        old_uncond = uncond
    return x


# ---- more single-step and multistep ODE solvers --------------------------------------------

@torch.no_grad()
def sample_heunpp2(denoiser, x, sigmas, extra_args=None, callback=None, disable=None):
    """Heun++ (ComfyUI's heunpp2, from sd-webui-samplers-scheduler): Heun's method that also
    looks two sigmas ahead, averaging the slopes at sigma_i, sigma_{i+1}, sigma_{i+2} with weights
    sigma_{i+1} / (3 sigma_0) and sigma_{i+2} / (3 sigma_0) (the rest on the first). The last step
    is Euler, the one before it Heun with weight sigma_{i+1} / (2 sigma_0)."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    s_end = sigmas[-1]
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        d = to_d(x, sigmas[i], denoised)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == s_end:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = to_d(x_2, sigmas[i + 1], denoiser(x_2, sigmas[i + 1] * s_in, **extra_args))
        if sigmas[i + 2] == s_end:
            w2 = sigmas[i + 1] / (2 * sigmas[0])
            x = x + (d * (1 - w2) + d_2 * w2) * dt
        else:
            x_3 = x_2 + d_2 * (sigmas[i + 2] - sigmas[i + 1])
            d_3 = to_d(x_3, sigmas[i + 2], denoiser(x_3, sigmas[i + 2] * s_in, **extra_args))
            w2, w3 = sigmas[i + 1] / (3 * sigmas[0]), sigmas[i + 2] / (3 * sigmas[0])
            x = x + ((1 - w2 - w3) * d + w2 * d_2 + w3 * d_3) * dt
    return x


def _dpm_solver_step(eps, cache, x, t, t_next, order, r1=None):
    """One DPM-Solver step of order 1, 2 (midpoint r1, default 1/2) or 3 (r1 = 1/3, r2 = 2/3) in
    lambda = -log sigma (Lu et al. 2022, "DPM-Solver", Algorithms 1 and 2, noise-prediction form in
    sigma space). eps(cache, key, x, t) evaluates the model once per key and step, so the 2nd- and
    3rd-order steps of DPM-Solver-23 share their first two evaluations."""
    sigma = _sigma_fn
    h = t_next - t
    e = eps(cache, "eps", x, t)
    if order == 1:
        return x - sigma(t_next) * h.expm1() * e
    if order == 2:
        r1 = 1 / 2 if r1 is None else r1
        s1 = t + r1 * h
        e_1 = eps(cache, "eps_r1", x - sigma(s1) * (r1 * h).expm1() * e, s1)
        return x - sigma(t_next) * h.expm1() * e - sigma(t_next) / (2 * r1) * h.expm1() * (e_1 - e)
    r1, r2 = 1 / 3, 2 / 3
    s1, s2 = t + r1 * h, t + r2 * h
    e_1 = eps(cache, "eps_r1", x - sigma(s1) * (r1 * h).expm1() * e, s1)
    u2 = x - sigma(s2) * (r2 * h).expm1() * e - sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (e_1 - e)
    e_2 = eps(cache, "eps_r2", u2, s2)
    return x - sigma(t_next) * h.expm1() * e - sigma(t_next) / r2 * (h.expm1() / h - 1) * (e_2 - e)


def _dpm_solver_eps(denoiser, x_like, extra_args):
    s_in = x_like.new_ones([x_like.shape[0]])

    def eps(cache, key, x, t):
        if key not in cache:
            denoised = denoiser(x, _sigma_fn(t) * s_in, **extra_args)
            cache[key] = (x - denoised) / _sigma_fn(t)
            if key == "eps":
                cache["denoised"] = denoised
        return cache[key]
    return eps


def _sigma_range(sigmas):
    """ComfyUI's (sigma_min, sigma_max) for the DPM-Solver samplers: they end at the last nonzero
    sigma instead of at 0."""
    sigma_min = sigmas[-1] if sigmas[-1] > 0 else sigmas[-2]
    return sigma_min, sigmas[0]


@torch.no_grad()
def sample_dpm_fast(denoiser, x, sigmas, extra_args=None, callback=None, disable=None):
    """DPM-Solver-fast (Lu et al. 2022, sec. 3.4): len(sigmas) - 1 model evaluations spent on
    floor(n / 3) + 1 steps uniform in lambda = -log sigma, third-order steps with a final 2nd / 1st
    order one. Only the schedule's ends are used: it runs from sigmas[0] to the last nonzero sigma
    (ComfyUI's), returning x there, not the denoised estimate."""
    if len(sigmas) <= 1:
        return x
    nfe = len(sigmas) - 1
    sigma_min, sigma_max = _sigma_range(sigmas)
    m = nfe // 3 + 1
    ts = torch.linspace(float(_t_fn(sigma_max)), float(_t_fn(sigma_min)), m + 1)  # host: step sizes without syncs
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    eps = _dpm_solver_eps(denoiser, x, extra_args or {})
    for i, order in enumerate(orders):
        cache = {}
        eps(cache, "eps", x, ts[i])
        if callback is not None:
            callback(_step_info(i, x, _sigma_fn(ts[i]), cache["denoised"]))
        x = _dpm_solver_step(eps, cache, x, ts[i], ts[i + 1], order)
    return x


@torch.no_grad()
def sample_dpm_adaptive(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, order=3, rtol=0.05,
                        atol=0.0078, h_init=0.05, pcoeff=0.0, icoeff=1.0, dcoeff=0.0, accept_safety=0.81,
                        eta=0.0, s_noise=1.0, noise_sampler=None, seed=None):
    """DPM-Solver-12 / 23 with adaptive step size (Lu et al. 2022, sec. 3.4 / k-diffusion): a lower-
    and a higher-order step sharing evaluations estimate the local error, and a PID controller on
    it picks the next step in lambda. Runs from sigmas[0] to the last nonzero sigma, ignoring the
    rest of the schedule; the callback comes once per attempted step, its i the share of the
    lambda range done, in schedule steps. eta > 0 (SamplerDPMAdaptative): each step goes down to
    the ancestral sigma_down and an accepted one adds fresh noise back up (k-diffusion), and the
    controller assumes order 1.5."""
    if len(sigmas) <= 1:
        return x
    if order not in (2, 3):
        raise ValueError("order should be 2 or 3")
    total = len(sigmas) - 1
    sigma_min, sigma_max = _sigma_range(sigmas)
    t_start, t_end = _t_fn(sigma_max), _t_fn(sigma_min)
    atol, rtol = torch.tensor(atol), torch.tensor(rtol)
    controller = _PIDStepSizeController(h_init, pcoeff, icoeff, dcoeff, 1.5 if eta else order, accept_safety)
    eps = _dpm_solver_eps(denoiser, x, extra_args or {})
    if eta:
        noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    s, x_prev = t_start, x
    while s < t_end - 1e-5:
        t = torch.minimum(t_end, s + controller.h)
        t_step, sigma_up = t, None
        if eta:
            sigma_down, _ = get_ancestral_step(_sigma_fn(s), _sigma_fn(t), eta)
            t_step = torch.minimum(t_end, _t_fn(sigma_down))
            sigma_up = (_sigma_fn(t) ** 2 - _sigma_fn(t_step) ** 2) ** 0.5
        cache = {}
        eps(cache, "eps", x, s)
        if callback is not None:
            done = int((s - t_start) / (t_end - t_start) * total)
            callback(_step_info(min(done, total - 1), x, _sigma_fn(s), cache["denoised"]))
        if order == 2:
            x_low = _dpm_solver_step(eps, cache, x, s, t_step, 1)
            x_high = _dpm_solver_step(eps, cache, x, s, t_step, 2)
        else:
            x_low = _dpm_solver_step(eps, cache, x, s, t_step, 2, r1=1 / 3)
            x_high = _dpm_solver_step(eps, cache, x, s, t_step, 3)
        delta = torch.maximum(atol, rtol * torch.maximum(x_low.abs(), x_prev.abs()))
        error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
        if controller.propose_step(error):
            if sigma_up is not None:
                x_high = x_high + sigma_up * s_noise * noise_sampler(_sigma_fn(s), _sigma_fn(t))
            x_prev, x, s = x_low, x_high, t
    return x


class _PIDStepSizeController:
    """PID control of the step size from the error (Söderlind 2003; k-diffusion's defaults: I only)."""

    def __init__(self, h, pcoeff, icoeff, dcoeff, order, accept_safety, eps=1e-8):
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety = accept_safety
        self.eps = eps
        self.errs = []

    def propose_step(self, error) -> bool:
        inv_error = 1 / (float(error) + self.eps)
        if not self.errs:
            self.errs = [inv_error, inv_error, inv_error]
        self.errs[0] = inv_error
        factor = self.errs[0] ** self.b1 * self.errs[1] ** self.b2 * self.errs[2] ** self.b3
        factor = 1 + math.atan(factor - 1)  # soft limiter
        accept = factor >= self.accept_safety
        if accept:
            self.errs[2], self.errs[1] = self.errs[1], self.errs[0]
        self.h *= factor
        return accept
@torch.no_grad()
def sample_dpmpp_2m_sde_heun(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                             eta=1.0, s_noise=1.0, noise_sampler=None, seed=None, brownian_on_cpu=True):
    """DPM-Solver++(2M) SDE with the Heun-type second-order correction (solver_type="heun")."""
    return sample_dpmpp_2m_sde(denoiser, x, sigmas, extra_args, callback, disable, eta=eta, s_noise=s_noise,
                               noise_sampler=noise_sampler, seed=seed, solver_type="heun",
                               brownian_on_cpu=brownian_on_cpu)


sample_dpmpp_2m_sde_heun_gpu = _on_device_brownian(sample_dpmpp_2m_sde_heun)


@torch.no_grad()
def sample_ipndm_v(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, max_order=4):
    """iPNDM with variable step sizes (zju-pi diff-solvers' iPNDM_v, as ComfyUI has it): the
    Adams-Bashforth weights of ipndm adjusted for uneven sigma steps h_n = sigma_{n+1} - sigma_n.
    Its order-2 weights are exact variable-step AB2 and on uniform steps its order-3 weights are
    AB3's; on uneven steps the order-3/4 weights are not the exact variable-step ones (the source
    has "1 - a * b / c" where the exact weight is "(1 - a) * b / c"), kept for ComfyUI parity.
    lms is the exact variable-step Adams-Bashforth method."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    t = sigmas
    history = []  # previous slopes, oldest first
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, t[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, t[i], denoised))
        d = (x - denoised) / t[i]
        order = min(max_order, i + 1)
        h = t[i + 1] - t[i]
        if t[i + 1] == 0:
            x_next = denoised
        elif order == 1:
            x_next = x + h * d
        else:
            h1 = t[i] - t[i - 1]
            if order == 2:
                coeffs = [(2 + h / h1) / 2, -(h / h1) / 2]
            else:
                h2 = t[i - 1] - t[i - 2]
                temp1 = (1 - h / (3 * (h + h1)) * (h * (h + h1)) / (h1 * (h1 + h2))) / 2
                if order == 3:
                    coeffs = [(2 + h / h1) / 2 + temp1, -(h / h1) / 2 - (1 + h1 / h2) * temp1, temp1 * h1 / h2]
                else:
                    h3 = t[i - 2] - t[i - 3]
                    ratio = h1 * (h1 + h2) / (h2 * (h2 + h3))
                    temp2 = ((1 - h / (3 * (h + h1))) / 2 + (1 - h / (2 * (h + h1))) * h / (6 * (h + h1 + h2))) \
                        * (h * (h + h1) * (h + h1 + h2)) / (h1 * (h1 + h2) * (h1 + h2 + h3))
                    coeffs = [(2 + h / h1) / 2 + temp1 + temp2,
                              -(h / h1) / 2 - (1 + h1 / h2) * temp1 - (1 + h1 / h2 + ratio) * temp2,
                              temp1 * h1 / h2 + (h1 / h2 + ratio * (1 + h2 / h3)) * temp2,
                              -temp2 * ratio * h1 / h2]
            slope = coeffs[0] * d + sum(c * old for c, old in zip(coeffs[1:], reversed(history)))
            x_next = x + h * slope
        history = (history + [d])[-(max_order - 1):]
        x = x_next
    return x


def deis_coefficients(sigmas: torch.Tensor, max_order: int = 3, points: int = 10000,
                      sigma_range: tuple[float, float] = (0.002, 80.0)) -> list[list[float]]:
    """DEIS "tAB" weights (Zhang & Chen 2023, "Fast Sampling of Diffusion Models with Exponential
    Integrator", eq. 15): step i moves x by sum_j C_ij d_{i-j}, C_ij = integral over [t_i, t_{i+1}]
    of the Lagrange basis polynomial of t_{i-j} (in the VP time t) times dsigma/dt. t is the time of
    the VP-SDE whose beta_min, beta_max map t in [1e-3, 1] onto sigma_range (EDM's), as ComfyUI and
    the diff-solvers reference do; the integral is their left Riemann sum over `points` points, in
    float64. Step i's order is min(i + 1, max_order); first-order steps get [] (plain Euler)."""
    sigma_min, sigma_max = sigma_range
    eps_s = 1e-3
    beta_d = 2 * (math.log(sigma_min ** 2 + 1) / eps_s - math.log(sigma_max ** 2 + 1)) / (eps_s - 1)
    beta_min = math.log(sigma_max ** 2 + 1) - 0.5 * beta_d
    s = sigmas.detach().cpu().double()
    t = ((beta_min ** 2 + 2 * beta_d * (s ** 2 + 1).log()).sqrt() - beta_min) / beta_d  # sigma -> VP time
    out = []
    for i in range(len(t) - 1):
        order = min(i + 1, max_order)
        if order == 1 or s[i + 1] <= 0:  # the step into sigma = 0 is Euler
            out.append([])
            continue
        taus = torch.linspace(float(t[i]), float(t[i + 1]), points, dtype=torch.float64)
        dtau = (t[i + 1] - t[i]) / points
        # sigma(t)^2 = e^{beta_d t^2 / 2 + beta_min t} - 1, so dsigma/dt = (beta_d t + beta_min)(sigma^2 + 1) / (2 sigma)
        alpha = torch.exp(-0.5 * taus ** 2 * beta_d - taus * beta_min)
        dsigma_dt = 0.5 * (beta_d * taus + beta_min) / torch.sqrt(alpha * (1 - alpha))
        nodes = [t[i - k] for k in range(order)]
        row = []
        for j in range(order):
            basis = torch.ones_like(taus)
            for k in range(order):
                if k != j:
                    basis = basis * (taus - nodes[k]) / (nodes[j] - nodes[k])
            row.append(float(torch.sum(dsigma_dt * basis) * dtau))
        out.append(row)
    return out


@torch.no_grad()
def sample_deis(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, max_order=3):
    """DEIS multistep (tAB, order 3 by default; see deis_coefficients), warming up from Euler; the
    step into sigma = 0 is Euler (lands on the denoised value)."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    coefficients = deis_coefficients(sigmas, max_order)
    history = []
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        d = (x - denoised) / sigmas[i]
        order = 1 if sigmas[i + 1] <= 0 else min(max_order, i + 1)
        if order == 1:
            x_next = x + (sigmas[i + 1] - sigmas[i]) * d
        else:
            coeffs = coefficients[i]
            x_next = x + coeffs[0] * d + sum(c * old for c, old in zip(coeffs[1:], reversed(history)))
        history = (history + [d])[-(max_order - 1):]
        x = x_next
    return x


@torch.no_grad()
def _res_multistep(denoiser, x, sigmas, extra_args=None, callback=None, eta=0.0, s_noise=1.0,
                   noise_sampler=None, seed=None, cfg_pp=False):
    """RES multistep (Zhang et al. 2023, "Improved order analysis and design of exponential
    integrator for diffusion models", arXiv:2308.02157, the 2nd-order multistep method): an
    exponential-integrator step in lambda = -log sigma with phi-function weights
    b1 = phi_1(-h) - phi_2(-h) / c2, b2 = phi_2(-h) / c2 on the current and previous denoised values.
    eta > 0: ancestral (step to sigma_down, noise up to sigma_{i+1}); cfg_pp: CFG++ (steps along
    the unconditional prediction, the guidance D_cfg - D_uncond added to x first)."""
    model = _guided(denoiser, extra_args or {})
    if eta > 0:
        noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    s_in = x.new_ones([x.shape[0]])

    def phi1(t):
        return torch.expm1(t) / t

    def phi2(t):
        return (phi1(t) - 1.0) / t

    old_sigma_down = old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised, uncond = model(x, sigmas[i] * s_in)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        if sigma_down == 0 or old_denoised is None:
            if cfg_pp:
                x = denoised + to_d(x, sigmas[i], uncond) * sigma_down
            else:
                x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_old, t_next, t_prev = _t_fn(sigmas[i]), _t_fn(old_sigma_down), _t_fn(sigma_down), _t_fn(sigmas[i - 1])
            h = t_next - t
            c2 = (t_prev - t_old) / h
            b1 = torch.nan_to_num(phi1(-h) - phi2(-h) / c2, nan=0.0)
            b2 = torch.nan_to_num(phi2(-h) / c2, nan=0.0)
            if cfg_pp:
                x = x + (denoised - uncond)
                x = _sigma_fn(h) * x + h * (b1 * uncond + b2 * old_denoised)
            else:
                x = _sigma_fn(h) * x + h * (b1 * denoised + b2 * old_denoised)
        if sigmas[i + 1] > 0 and eta > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
        old_denoised = uncond if cfg_pp else denoised
        old_sigma_down = sigma_down
    return x


@torch.no_grad()
def sample_res_multistep(denoiser, x, sigmas, extra_args=None, callback=None, disable=None):
    """RES 2nd-order multistep (see _res_multistep)."""
    return _res_multistep(denoiser, x, sigmas, extra_args, callback)


@torch.no_grad()
def sample_res_multistep_cfg_pp(denoiser, x, sigmas, extra_args=None, callback=None, disable=None):
    """RES multistep with CFG++."""
    return _res_multistep(denoiser, x, sigmas, extra_args, callback, cfg_pp=True)


@torch.no_grad()
def sample_res_multistep_ancestral(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                                   eta=1.0, s_noise=1.0, noise_sampler=None, seed=None):
    """RES multistep, ancestral."""
    return _res_multistep(denoiser, x, sigmas, extra_args, callback, eta, s_noise, noise_sampler, seed)


@torch.no_grad()
def sample_res_multistep_ancestral_cfg_pp(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                                          eta=1.0, s_noise=1.0, noise_sampler=None, seed=None):
    """RES multistep, ancestral, with CFG++."""
    return _res_multistep(denoiser, x, sigmas, extra_args, callback, eta, s_noise, noise_sampler, seed, cfg_pp=True)


@torch.no_grad()
def sample_gradient_estimation(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, ge_gamma=2.0,
                               cfg_pp=False):
    """Gradient estimation (Permenter & Yuan 2024, "Interpreting and Improving Diffusion Models from
    an Optimization Perspective"): Euler plus (ge_gamma - 1) (d_i - d_{i-1}) dt, an extrapolation
    of the slope from the previous one. cfg_pp: the Euler part as CFG++."""
    model = _guided(denoiser, extra_args or {})
    s_in = x.new_ones([x.shape[0]])
    old_d = None
    for i in range(len(sigmas) - 1):
        denoised, uncond = model(x, sigmas[i] * s_in)
        d = to_d(x, sigmas[i], uncond if cfg_pp else denoised)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            x = denoised + d * sigmas[i + 1] if cfg_pp else x + d * dt
            if i >= 1:
                x = x + (ge_gamma - 1) * (d - old_d) * dt
        old_d = d
    return x


@torch.no_grad()
def sample_gradient_estimation_cfg_pp(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                                      ge_gamma=2.0):
    """Gradient estimation with CFG++."""
    return sample_gradient_estimation(denoiser, x, sigmas, extra_args, callback, disable, ge_gamma, cfg_pp=True)


def _er_sde_noise_scaler(x):
    return x * ((x ** 0.3).exp() + 10.0)


def er_sde_options(solver_type: str = "ER-SDE", eta: float = 1.0, s_noise: float = 1.0) -> dict:
    """er_sde's noise_scaler and s_noise for ComfyUI's SamplerER_SDE (as of the catalogue's
    ComfyUI, v0.3.64): "ER-SDE" is the paper's scale function phi(l) = l (e^{l^0.3} + 10) whatever
    eta (ComfyUI's tooltip: eta does not apply to it); "Reverse-time SDE" is phi(l) = l^(eta + 1)
    (l^2, the plain reverse SDE, at eta = 1), and at eta = 0 the ODE; "ODE" is phi(l) = l with no
    noise (the probability-flow ODE)."""
    from graphflow.choices import ER_SDE_SOLVER_TYPES
    if solver_type not in ER_SDE_SOLVER_TYPES:
        raise ValueError(f"unknown ER-SDE solver type {solver_type!r}; expected one of {', '.join(ER_SDE_SOLVER_TYPES)}")
    if solver_type == "ER-SDE":
        return {"noise_scaler": _er_sde_noise_scaler, "s_noise": s_noise}
    if solver_type == "ODE" or eta == 0:
        return {"noise_scaler": lambda x: x, "s_noise": 0.0}
    return {"noise_scaler": lambda x: x ** (eta + 1), "s_noise": s_noise}


@torch.no_grad()
def sample_er_sde(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, s_noise=1.0,
                  noise_sampler=None, seed=None, noise_scaler=None, max_stage=3, flow=False, schedule=None):
    """ER-SDE-Solver-3 (Cui et al. 2023, "Elucidating the solution space of extended reverse-time
    SDE for diffusion models", arXiv:2309.06169), VP form: with the paper's lambda = sigma / alpha
    (sigma itself in sigma space), stage 1 is the exact step for constant D under the noise scale
    function phi(l) = l (e^{l^0.3} + 10) (the paper's default), stages 2-3 add first and second
    differences of D with their integrals taken over 200 points; fresh noise keeps the marginals."""
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    noise_scaler = noise_scaler or _er_sde_noise_scaler
    s_in = x.new_ones([x.shape[0]])
    points = 200.0
    index = torch.arange(0, points, dtype=torch.float32, device=x.device)
    sigmas = _below_one(sigmas, flow, schedule)
    lam = half_log_snr(sigmas, flow).neg().exp() if flow else sigmas  # sigma / alpha
    old_denoised = old_denoised_d = None
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        stage = min(max_stage, i + 1)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lam_s, lam_t = lam[i], lam[i + 1]
            alpha_t = sigmas[i + 1] / lam_t
            r_alpha = alpha_t / (sigmas[i] / lam_s)
            r = noise_scaler(lam_t) / noise_scaler(lam_s)
            x = r_alpha * r * x + alpha_t * (1 - r) * denoised
            if stage >= 2:
                dt = lam_t - lam_s
                positions = lam_t + index * (-dt / points)
                scaled = noise_scaler(positions)
                integral = torch.sum(1 / scaled) * (-dt / points)
                denoised_d = (denoised - old_denoised) / (lam_s - lam[i - 1])
                x = x + alpha_t * (dt + integral * noise_scaler(lam_t)) * denoised_d
                if stage >= 3:
                    integral_u = torch.sum((positions - lam_s) / scaled) * (-dt / points)
                    denoised_u = (denoised_d - old_denoised_d) / ((lam_s - lam[i - 2]) / 2)
                    x = x + alpha_t * (dt ** 2 / 2 + integral_u * noise_scaler(lam_t)) * denoised_u
                old_denoised_d = denoised_d
            if s_noise > 0:
                x = x + alpha_t * noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * \
                    (lam_t ** 2 - lam_s ** 2 * r ** 2).sqrt().nan_to_num(nan=0.0)
        old_denoised = denoised
    return x


def _h_phi_1(h):
    return torch.expm1(h)


def _h_phi_2(h):
    return (torch.expm1(h) - h) / h


@torch.no_grad()
def sample_seeds_2(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0,
                   noise_sampler=None, seed=None, r=0.5, solver_type="phi_1", flow=False, schedule=None):
    """SEEDS-2 (Gonzalez et al. 2023, "SEEDS: Exponential SDE Solvers for Fast High-Quality
    Sampling from Diffusion Models", arXiv:2305.14267): a 2-stage exponential SDE step in
    lambda = log(alpha / sigma), data prediction, the stage at r * h; the noise of the two
    sub-intervals is drawn separately and combined so it is one consistent Brownian increment.
    eta = 0: the deterministic exponential 2-stage method (DPM-Solver++(2S))."""
    if solver_type not in ("phi_1", "phi_2"):
        raise ValueError("solver_type must be 'phi_1' or 'phi_2'")
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    inject = eta > 0 and s_noise > 0
    s_in = x.new_ones([x.shape[0]])
    sigmas = _below_one(sigmas, flow, schedule)
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lam_s, lam_t = half_log_snr(sigmas[i], flow), half_log_snr(sigmas[i + 1], flow)
        h = lam_t - lam_s
        h_eta = h * (eta + 1)
        lam_1 = torch.lerp(lam_s, lam_t, r)
        sigma_1 = sigma_of_half_log_snr(lam_1, flow)
        alpha_1, alpha_t = sigma_1 * lam_1.exp(), sigmas[i + 1] * lam_t.exp()
        x_2 = sigma_1 / sigmas[i] * (-r * h * eta).exp() * x - alpha_1 * _h_phi_1(-r * h_eta) * denoised
        if inject:
            sde_noise = (-2 * r * h * eta).expm1().neg().sqrt() * noise_sampler(sigmas[i], sigma_1)
            x_2 = x_2 + sde_noise * sigma_1 * s_noise
        denoised_2 = denoiser(x_2, sigma_1 * s_in, **extra_args)
        if solver_type == "phi_1":
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x \
                - alpha_t * _h_phi_1(-h_eta) * torch.lerp(denoised, denoised_2, 1 / (2 * r))
        else:
            b2 = _h_phi_2(-h_eta) / r
            b1 = _h_phi_1(-h_eta) - b2
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x - alpha_t * (b1 * denoised + b2 * denoised_2)
        if inject:
            segment = (r - 1) * h * eta
            sde_noise = sde_noise * segment.exp() + segment.mul(2).expm1().neg().sqrt() * noise_sampler(sigma_1, sigmas[i + 1])
            x = x + sde_noise * sigmas[i + 1] * s_noise
    return x


@torch.no_grad()
def sample_seeds_3(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0,
                   noise_sampler=None, seed=None, r_1=1 / 3, r_2=2 / 3, flow=False, schedule=None):
    """SEEDS-3 (Gonzalez et al. 2023): the 3-stage exponential SDE step (stages at r_1 h, r_2 h),
    data prediction in lambda = log(alpha / sigma), with one consistent Brownian path over the stages."""
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    inject = eta > 0 and s_noise > 0
    s_in = x.new_ones([x.shape[0]])
    sigmas = _below_one(sigmas, flow, schedule)
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lam_s, lam_t = half_log_snr(sigmas[i], flow), half_log_snr(sigmas[i + 1], flow)
        h = lam_t - lam_s
        h_eta = h * (eta + 1)
        lam_1, lam_2 = torch.lerp(lam_s, lam_t, r_1), torch.lerp(lam_s, lam_t, r_2)
        sigma_1, sigma_2 = sigma_of_half_log_snr(lam_1, flow), sigma_of_half_log_snr(lam_2, flow)
        alpha_1, alpha_2, alpha_t = sigma_1 * lam_1.exp(), sigma_2 * lam_2.exp(), sigmas[i + 1] * lam_t.exp()
        x_2 = sigma_1 / sigmas[i] * (-r_1 * h * eta).exp() * x - alpha_1 * _h_phi_1(-r_1 * h_eta) * denoised
        if inject:
            sde_noise = (-2 * r_1 * h * eta).expm1().neg().sqrt() * noise_sampler(sigmas[i], sigma_1)
            x_2 = x_2 + sde_noise * sigma_1 * s_noise
        denoised_2 = denoiser(x_2, sigma_1 * s_in, **extra_args)
        a3_2 = r_2 / r_1 * _h_phi_2(-r_2 * h_eta)
        a3_1 = _h_phi_1(-r_2 * h_eta) - a3_2
        x_3 = sigma_2 / sigmas[i] * (-r_2 * h * eta).exp() * x - alpha_2 * (a3_1 * denoised + a3_2 * denoised_2)
        if inject:
            segment = (r_1 - r_2) * h * eta
            sde_noise = sde_noise * segment.exp() + segment.mul(2).expm1().neg().sqrt() * noise_sampler(sigma_1, sigma_2)
            x_3 = x_3 + sde_noise * sigma_2 * s_noise
        denoised_3 = denoiser(x_3, sigma_2 * s_in, **extra_args)
        b3 = _h_phi_2(-h_eta) / r_2
        b1 = _h_phi_1(-h_eta) - b3
        x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x - alpha_t * (b1 * denoised + b3 * denoised_3)
        if inject:
            segment = (r_2 - 1) * h * eta
            sde_noise = sde_noise * segment.exp() + segment.mul(2).expm1().neg().sqrt() * noise_sampler(sigma_2, sigmas[i + 1])
            x = x + sde_noise * sigmas[i + 1] * s_noise
    return x


def stochastic_adams_coefficients(lambdas: torch.Tensor, lambda_s: float, lambda_t: float, tau: float) -> torch.Tensor:
    """SA-Solver's b_j (Xue et al. 2023, "SA-Solver: Stochastic Adams Solver for Fast Sampling of
    Diffusion Models", eqs. 15 / 18, data prediction, sigma space): the weights of D at the nodes
    `lambdas` such that sum_j b_j D_j = (1 + tau^2) integral_{lambda_s}^{lambda_t}
    e^{-(1 + tau^2)(lambda_t - l)} P(l) dl for the interpolating polynomial P of the D_j (times
    alpha_t, 1 in sigma space, they are the solver's weights). Exact on
    monomials l^p by the recurrence J_p = t^p - s^p e^{-kh} - (p / k) J_{p-1}, then a Vandermonde
    solve; in float64."""
    k = 1.0 + tau ** 2
    s, t = float(lambda_s), float(lambda_t)
    decay = math.exp(-k * (t - s))
    n = len(lambdas)
    monomial = []
    for p in range(n):
        j = t ** p - s ** p * decay
        if p:
            j -= p / k * monomial[-1]
        monomial.append(j)
    nodes = lambdas.detach().cpu().double()
    vandermonde = torch.stack([nodes ** p for p in range(n)])  # [p, j]
    return torch.linalg.solve(vandermonde, torch.tensor(monomial, dtype=torch.float64))


def simple_order_2_coefficients(lambda_prev: float, lambda_s: float, lambda_t: float, tau: float,
                                corrector: bool) -> torch.Tensor:
    """SA-Solver's simplified order-2 weights (Xue et al. 2023, appendix D; ComfyUI's
    simple_order_2), [older, newer], in the form of stochastic_adams_coefficients (without alpha):
    they sum to 1 - e^{-(1 + tau^2) h}, the newer (corrector) or older (predictor, nodes
    lambda_prev and lambda_s) one taking the first-order correction (1 + tau^2) h / 2 (times h /
    (lambda_prev - lambda_s) for the predictor's extrapolation)."""
    k = 1.0 + tau ** 2
    h = float(lambda_t) - float(lambda_s)
    total = -math.expm1(-k * h)
    if corrector:
        newer = 0.5 * k * h
        return torch.tensor([total - newer, newer], dtype=torch.float64)
    older = 0.5 * k * h ** 2 / (float(lambda_prev) - float(lambda_s))
    return torch.tensor([older, total - older], dtype=torch.float64)


def sa_solver_tau(start_sigma: float, end_sigma: float, eta: float = 1.0):
    """SA-Solver's stochasticity tau(sigma): eta between start_sigma and end_sigma (inclusive), 0
    (the ODE) outside and everywhere when eta <= 0 (ComfyUI's get_tau_interval_func). The bounds
    are compared in the sigma's float32, as ComfyUI's comparison of the sigma tensor with Python
    floats does: a flow model's step whose sigma is the float32 nearest a bound (FLUX's simple
    schedule at t = 0.8 and 0.2) is inside."""
    def tau_func(sigma) -> float:
        if eta <= 0:
            return 0.0
        return eta if in_sigma_window(torch.as_tensor(sigma), start_sigma, end_sigma, rounded=True) else 0.0
    return tau_func


def _percent_to_sigma(schedule, percent: float) -> float:
    """The sigma a share `percent` of the way into sampling (ComfyUI's model_sampling.percent_to_sigma)."""
    if hasattr(schedule, "percent_to_sigma"):
        return float(schedule.percent_to_sigma(percent))
    return float(schedule.sigma(torch.tensor((1 - percent) * (len(schedule.sigmas) - 1))))


@torch.no_grad()
def sample_sa_solver(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, tau_func=None,
                     s_noise=1.0, noise_sampler=None, seed=None, predictor_order=3, corrector_order=4,
                     use_pece=False, schedule=None, flow=False, simple_order_2=False):
    """SA-Solver (Xue et al. 2023): stochastic Adams predictor (order 3) and corrector (order 4)
    on the SDE with stochasticity tau(sigma); by default tau = 1 between 20% and 80% of the model's
    schedule and 0 (the ODE) outside, as ComfyUI. Orders drop near the end of a schedule that ends
    at 0. use_pece: evaluate the model again at the corrected point (PECE; one more call a step).
    simple_order_2: order-2 steps take simple_order_2_coefficients instead of the exact weights.
    Sigmas that do not end at 0 (leftover noise) return the state at their last but one sigma, as
    ComfyUI v0.3.64 does."""
    if len(sigmas) <= 1:
        return x
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    s_in = x.new_ones([x.shape[0]])
    sigmas = _below_one(sigmas, flow, schedule)
    lambdas = half_log_snr(sigmas.double(), flow)
    if tau_func is None:
        if schedule is None:
            from .model_sampling import DiscreteSchedule
            schedule = DiscreteSchedule.from_betas()
        tau_func = sa_solver_tau(_percent_to_sigma(schedule, 0.2), _percent_to_sigma(schedule, 0.8))

    def combine(preds, b):
        return sum(float(w) * p for w, p in zip(b, preds))

    max_order = max(predictor_order, corrector_order)
    x_pred = x
    h, tau, noise = 0.0, 0.0, 0.0
    preds = []
    lower_order_to_end = float(sigmas[-1]) == 0
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x_pred, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x_pred, sigmas[i], denoised))
        preds = (preds + [denoised])[-max_order:]
        p_order = min(predictor_order, len(preds))
        c_order = 0 if i == 0 or (sigmas[i + 1] == 0 and not use_pece) else min(corrector_order, len(preds))
        if lower_order_to_end:
            p_order = min(p_order, len(sigmas) - 2 - i)
            c_order = min(c_order, len(sigmas) - 1 - i)
        if c_order == 0:
            x = x_pred
        else:
            if simple_order_2 and c_order == 2:
                b = simple_order_2_coefficients(None, lambdas[i - 1], lambdas[i], tau, corrector=True)
            else:
                b = stochastic_adams_coefficients(lambdas[i - c_order + 1:i + 1], lambdas[i - 1], lambdas[i], tau)
            b = b * float(sigmas[i] * lambdas[i].exp())  # alpha at sigma_i
            x = sigmas[i] / sigmas[i - 1] * math.exp(-(tau ** 2) * h) * x + combine(preds[-c_order:], b)
            if tau > 0 and s_noise > 0:
                x = x + noise  # the predictor's noise, reused
            if use_pece:
                denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
                preds[-1] = denoised
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            tau = tau_func(sigmas[i + 1])
            if simple_order_2 and p_order == 2:
                b = simple_order_2_coefficients(lambdas[i - 1], lambdas[i], lambdas[i + 1], tau, corrector=False)
            else:
                b = stochastic_adams_coefficients(lambdas[i - p_order + 1:i + 1], lambdas[i], lambdas[i + 1], tau)
            b = b * float(sigmas[i + 1] * lambdas[i + 1].exp())  # alpha at sigma_{i+1}
            h = float(lambdas[i + 1] - lambdas[i])
            x_pred = sigmas[i + 1] / sigmas[i] * math.exp(-(tau ** 2) * h) * x + combine(preds[-p_order:], b)
            if tau > 0 and s_noise > 0:
                noise = noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * \
                    math.sqrt(-math.expm1(-2 * tau ** 2 * h)) * s_noise
                x_pred = x_pred + noise
    # ComfyUI v0.3.64 returns x, not x_pred: for sigmas that do not end at 0 the last prediction is
    # dropped and the result is the (corrected) state at sigmas[-2] (fixed in ComfyUI in December 2025)
    return x


@torch.no_grad()
def sample_sa_solver_pece(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, tau_func=None,
                          s_noise=1.0, noise_sampler=None, seed=None, predictor_order=3, corrector_order=4,
                          schedule=None, flow=False, simple_order_2=False):
    """SA-Solver in PECE mode (predict, evaluate, correct, evaluate)."""
    return sample_sa_solver(denoiser, x, sigmas, extra_args, callback, disable, tau_func, s_noise, noise_sampler,
                            seed, predictor_order, corrector_order, use_pece=True, schedule=schedule, flow=flow,
                            simple_order_2=simple_order_2)


# In ComfyUI's menu order.
SAMPLERS = {
    "euler": sample_euler,
    "euler_cfg_pp": sample_euler_cfg_pp,
    "euler_ancestral": sample_euler_ancestral,
    "euler_ancestral_cfg_pp": sample_euler_ancestral_cfg_pp,
    "heun": sample_heun,
    "heunpp2": sample_heunpp2,
    "dpm_2": sample_dpm_2,
    "dpm_2_ancestral": sample_dpm_2_ancestral,
    "lms": sample_lms,
    "dpm_fast": sample_dpm_fast,
    "dpm_adaptive": sample_dpm_adaptive,
    "dpmpp_2s_ancestral": sample_dpmpp_2s_ancestral,
    "dpmpp_2s_ancestral_cfg_pp": sample_dpmpp_2s_ancestral_cfg_pp,
    "dpmpp_sde": sample_dpmpp_sde,
    "dpmpp_sde_gpu": sample_dpmpp_sde_gpu,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_2m_cfg_pp": sample_dpmpp_2m_cfg_pp,
    "dpmpp_2m_sde": sample_dpmpp_2m_sde,
    "dpmpp_2m_sde_gpu": sample_dpmpp_2m_sde_gpu,
    "dpmpp_2m_sde_heun": sample_dpmpp_2m_sde_heun,
    "dpmpp_2m_sde_heun_gpu": sample_dpmpp_2m_sde_heun_gpu,
    "dpmpp_3m_sde": sample_dpmpp_3m_sde,
    "dpmpp_3m_sde_gpu": sample_dpmpp_3m_sde_gpu,
    "ddpm": sample_ddpm,
    "lcm": sample_lcm,
    "ipndm": sample_ipndm,
    "ipndm_v": sample_ipndm_v,
    "deis": sample_deis,
    "res_multistep": sample_res_multistep,
    "res_multistep_cfg_pp": sample_res_multistep_cfg_pp,
    "res_multistep_ancestral": sample_res_multistep_ancestral,
    "res_multistep_ancestral_cfg_pp": sample_res_multistep_ancestral_cfg_pp,
    "gradient_estimation": sample_gradient_estimation,
    "gradient_estimation_cfg_pp": sample_gradient_estimation_cfg_pp,
    "er_sde": sample_er_sde,
    "seeds_2": sample_seeds_2,
    "seeds_3": sample_seeds_3,
    "sa_solver": sample_sa_solver,
    "sa_solver_pece": sample_sa_solver_pece,
    "ddim": sample_euler,  # ComfyUI's "ddim" is euler (+ fresh inpainting re-noise, see pipeline)
    "uni_pc": sample_uni_pc,
    "uni_pc_bh2": sample_uni_pc_bh2,
}

# Samplers only the sampler nodes offer (SAMPLER values), not in KSampler's list.
NODE_SAMPLERS = {
    "lcm_upscale": sample_lcm_upscale,  # SamplerLCMUpscale
    "euler_cfg_pp_alternative": sample_euler_cfg_pp_alternative,  # SamplerEulerCFGpp's "alternative"
}
ALL_SAMPLERS = {**SAMPLERS, **NODE_SAMPLERS}

# Samplers that take a seed for noise they may add; the pipeline passes it.
SEEDED_SAMPLERS = frozenset(name for name, fn in ALL_SAMPLERS.items()
                            if "seed" in inspect.signature(fn).parameters)
# Of KSampler's, those that add noise with their default options (dpm_adaptive only with eta > 0).
STOCHASTIC_SAMPLERS = frozenset(name for name in SEEDED_SAMPLERS if name in SAMPLERS and name != "dpm_adaptive")
# Samplers with a `flow` switch (ComfyUI's CONST branches: lambda = log((1 - sigma) / sigma), alpha =
# 1 - sigma) must get flow=True for flow models (SD3, FLUX); the others need no change or have
# none in ComfyUI v0.3.64 either (dpmpp_2m_cfg_pp, dpmpp_2s_ancestral_cfg_pp, res_multistep*,
# gradient_estimation*: sigma space there too).
FLOW_SWITCH_SAMPLERS = frozenset(name for name, fn in ALL_SAMPLERS.items() if "flow" in inspect.signature(fn).parameters)
# Samplers that read the model's schedule (SA-Solver's stochastic interval; the flow models' start
# just below sigma = 1); the pipeline passes it.
SCHEDULE_SAMPLERS = frozenset(name for name, fn in ALL_SAMPLERS.items()
                              if "schedule" in inspect.signature(fn).parameters)
