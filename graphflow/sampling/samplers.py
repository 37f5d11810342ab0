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
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.polynomial import Polynomial

from .model_sampling import append_dims
from .noise import brownian_noise_sampler, gaussian_noise_sampler

# ComfyUI runs these on steps + 1 sigmas with the second-to-last dropped.
DISCARD_PENULTIMATE_SIGMA = frozenset({"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"})
# ComfyUI's "ddim" is "euler" whose inpainting re-noise uses fresh noise (seed + 1).
RANDOM_INPAINT_NOISE = frozenset({"ddim"})


@dataclass(frozen=True)
class SamplerChoice:
    """A SAMPLER value (KSamplerSelect): a sampler of SAMPLERS by name, with options for it."""

    name: str
    options: dict = field(default_factory=dict)


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
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigmas[i])
        else:
            sigma_mid = sigmas[i].log().lerp(sigmas[i + 1].log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            denoised_2 = denoiser(x_2, sigma_mid * s_in, **extra_args)
            d_2 = to_d(x_2, sigma_mid, denoised_2)
            x = x + d_2 * (sigmas[i + 1] - sigmas[i])
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
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
        else:
            sigma_mid = sigmas[i].log().lerp(sigma_down.log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            denoised_2 = denoiser(x_2, sigma_mid * s_in, **extra_args)
            d_2 = to_d(x_2, sigma_mid, denoised_2)
            x = x + d_2 * (sigma_down - sigmas[i])
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
            x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
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
        sigmas = torch.cat([sigmas[:-1], sigmas.new_tensor([0.001])])
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


# In ComfyUI's menu order (the subset implemented here).
SAMPLERS = {
    "euler": sample_euler,
    "euler_ancestral": sample_euler_ancestral,
    "heun": sample_heun,
    "dpm_2": sample_dpm_2,
    "dpm_2_ancestral": sample_dpm_2_ancestral,
    "lms": sample_lms,
    "dpmpp_2s_ancestral": sample_dpmpp_2s_ancestral,
    "dpmpp_sde": sample_dpmpp_sde,
    "dpmpp_sde_gpu": sample_dpmpp_sde_gpu,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_2m_sde": sample_dpmpp_2m_sde,
    "dpmpp_2m_sde_gpu": sample_dpmpp_2m_sde_gpu,
    "dpmpp_3m_sde": sample_dpmpp_3m_sde,
    "dpmpp_3m_sde_gpu": sample_dpmpp_3m_sde_gpu,
    "ddpm": sample_ddpm,
    "lcm": sample_lcm,
    "ipndm": sample_ipndm,
    "ddim": sample_euler,  # ComfyUI's "ddim" is euler (+ fresh inpainting re-noise, see pipeline)
    "uni_pc": sample_uni_pc,
    "uni_pc_bh2": sample_uni_pc_bh2,
}

# Samplers that add noise while sampling; the pipeline passes them `seed`.
STOCHASTIC_SAMPLERS = frozenset(name for name, fn in SAMPLERS.items()
                                if "seed" in inspect.signature(fn).parameters)
