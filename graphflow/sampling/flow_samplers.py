"""The samplers whose noise must change for flow models, and `sampler_for(name, schedule)`.

Deterministic samplers (euler, heun, dpm_2, lms, dpmpp_2m, ipndm, uni_pc, ...) work unchanged on
flow models: in sigma space D(x; sigma) = x - sigma v and their steps are the flow's own (a
first-order DPM-Solver++ step (sigma'/sigma) x + (1 - sigma'/sigma) D is also the exact
exponential-integrator step in flow space, since alpha = 1 - sigma). Samplers that inject noise
assume x = x0 + sigma eps; on x = (1 - sigma) x0 + sigma eps they must scale the signal too.
These follow ComfyUI's CONST branches operation for operation (its *_RF samplers, and its SDE
samplers with lambda = log((1 - sigma) / sigma) and alpha = 1 - sigma), so results agree with
ComfyUI's. The others with noise ComfyUI runs on flow models unchanged, and so does graphflow:
ddpm (its variance-preserving posterior step) and lcm_upscale (re-noise x0 + sigma * eps).
"""

import functools
import inspect

import torch

from .flow_sampling import is_flow
from .noise import brownian_noise_sampler, gaussian_noise_sampler
from .samplers import (NODE_SAMPLERS, SAMPLERS, _on_device_brownian, _step_info, dpm_2_step, get_ancestral_step,
                       to_d)


def _lambda(sigma):
    return sigma.logit().neg()  # log(alpha / sigma), alpha = 1 - sigma


def _sigma(lam):
    return lam.neg().sigmoid()


def _offset_first_sigma(sigmas, sigma_start=None):
    """lambda(1) is -inf: the SDE samplers start just below sigma = 1, at sigma_start (ComfyUI:
    the model's sigma 1e-4 of the way through sampling; sampler_for binds it; without it the
    unshifted 1 - 1e-4)."""
    if len(sigmas) > 1 and sigmas[0] >= 1:
        sigmas = sigmas.clone()
        sigmas[0] = 1.0 - 1e-4 if sigma_start is None else sigma_start
    return sigmas


def _rf_ancestral_step(sigma, sigma_next, eta):
    """The flow analogue of get_ancestral_step: step down to sigma_down, then scale the signal by
    alpha_next / alpha_down and add noise of std renoise so that x is again (1 - s') x0 + s' eps."""
    sigma_down = sigma_next * (1 + (sigma_next / sigma - 1) * eta)
    alpha_next, alpha_down = 1 - sigma_next, 1 - sigma_down
    renoise = (sigma_next ** 2 - sigma_down ** 2 * alpha_next ** 2 / alpha_down ** 2) ** 0.5
    return sigma_down, alpha_next / alpha_down, renoise


@torch.no_grad()
def sample_euler_ancestral_rf(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                              eta=1.0, s_noise=1.0, noise_sampler=None, seed=None):
    """Euler down to sigma_down, then re-noise to sigma_{i+1} the flow way (ComfyUI's
    sample_euler_ancestral_RF)."""
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            sigma_down, signal, renoise = _rf_ancestral_step(sigmas[i], sigmas[i + 1], eta)
            ratio = sigma_down / sigmas[i]
            x = ratio * x + (1 - ratio) * denoised
            if eta > 0:
                x = signal * x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * renoise
    return x


@torch.no_grad()
def sample_dpm_2_ancestral_rf(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                              eta=1.0, s_noise=1.0, noise_sampler=None, seed=None):
    """DPM-Solver-2 (its log-midpoint in sigma) down to the flow's sigma_down, then the flow re-noise
    (ComfyUI's sample_dpm_2_ancestral_RF); the step to sigma_down = 0 is Euler."""
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        sigma_down, signal, renoise = _rf_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        x = dpm_2_step(denoiser, x, sigmas[i], sigma_down, to_d(x, sigmas[i], denoised), s_in, extra_args)
        if sigma_down != 0:
            x = signal * x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * renoise
    return x


@torch.no_grad()
def sample_dpmpp_2s_ancestral_rf(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                                 eta=1.0, s_noise=1.0, noise_sampler=None, seed=None):
    """DPM-Solver++(2S) down to sigma_down with the midpoint in flow lambda, then flow re-noise
    (ComfyUI's sample_dpmpp_2s_ancestral_RF)."""
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        sigma_down, signal, renoise = _rf_ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            if sigmas[i] == 1.0:
                sigma_s = sigmas.new_tensor(0.9999)
            else:
                lam, lam_down = _lambda(sigmas[i]), _lambda(sigma_down)
                sigma_s = _sigma(lam + (lam_down - lam) / 2)
            ratio = sigma_s / sigmas[i]
            u = ratio * x + (1 - ratio) * denoised
            denoised_2 = denoiser(u, sigma_s * s_in, **extra_args)
            ratio = sigma_down / sigmas[i]
            x = ratio * x + (1 - ratio) * denoised_2
        if sigmas[i + 1] > 0 and eta > 0:
            x = signal * x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * renoise
    return x


@torch.no_grad()
def sample_dpmpp_sde_rf(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                        eta=1.0, s_noise=1.0, noise_sampler=None, seed=None, r=1 / 2, brownian_on_cpu=True, sigma_start=None):
    """DPM-Solver++ SDE (samplers.sample_dpmpp_sde) in flow lambda, with alpha = 1 - sigma."""
    if len(sigmas) <= 1:
        return x
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or brownian_noise_sampler(x, sigmas, seed, cpu=brownian_on_cpu)
    sigmas = _offset_first_sigma(sigmas, sigma_start)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lam_s, lam_t = _lambda(sigmas[i]), _lambda(sigmas[i + 1])
        h = lam_t - lam_s
        lam_s1 = lam_s + r * h
        fac = 1 / (2 * r)
        sigma_s1 = _sigma(lam_s1)
        alpha_s, alpha_s1, alpha_t = sigmas[i] * lam_s.exp(), sigma_s1 * lam_s1.exp(), sigmas[i + 1] * lam_t.exp()
        # step 1: to the intermediate point
        sd, su = get_ancestral_step(lam_s.neg().exp(), lam_s1.neg().exp(), eta)
        h_ = sd.log().neg() - lam_s
        x_2 = (alpha_s1 / alpha_s) * (-h_).exp() * x - alpha_s1 * (-h_).expm1() * denoised
        if eta > 0 and s_noise > 0:
            x_2 = x_2 + alpha_s1 * noise_sampler(sigmas[i], sigma_s1) * s_noise * su
        denoised_2 = denoiser(x_2, sigma_s1 * s_in, **extra_args)
        # step 2: the full step with the blended denoised estimate
        sd, su = get_ancestral_step(lam_s.neg().exp(), lam_t.neg().exp(), eta)
        h_ = sd.log().neg() - lam_s
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (alpha_t / alpha_s) * (-h_).exp() * x - alpha_t * (-h_).expm1() * denoised_d
        if eta > 0 and s_noise > 0:
            x = x + alpha_t * noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * su
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde_rf(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                           eta=1.0, s_noise=1.0, noise_sampler=None, seed=None, solver_type="midpoint",
                           brownian_on_cpu=True, sigma_start=None):
    """DPM-Solver++(2M) SDE (samplers.sample_dpmpp_2m_sde) in flow lambda, alpha = 1 - sigma."""
    if len(sigmas) <= 1:
        return x
    if solver_type not in ("heun", "midpoint"):
        raise ValueError("solver_type must be 'heun' or 'midpoint'")
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or brownian_noise_sampler(x, sigmas, seed, cpu=brownian_on_cpu)
    sigmas = _offset_first_sigma(sigmas, sigma_start)
    s_in = x.new_ones([x.shape[0]])
    old_denoised, h, h_last = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lam_s, lam_t = _lambda(sigmas[i]), _lambda(sigmas[i + 1])
            h = lam_t - lam_s
            h_eta = h * (eta + 1)
            alpha_t = sigmas[i + 1] * lam_t.exp()
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x + alpha_t * (-h_eta).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + alpha_t * ((-h_eta).expm1().neg() / (-h_eta) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * alpha_t * (-h_eta).expm1().neg() * (1 / r) * (denoised - old_denoised)
            if eta > 0 and s_noise > 0:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        old_denoised = denoised
        h_last = h
    return x


@torch.no_grad()
def sample_dpmpp_3m_sde_rf(denoiser, x, sigmas, extra_args=None, callback=None, disable=None,
                           eta=1.0, s_noise=1.0, noise_sampler=None, seed=None, brownian_on_cpu=True, sigma_start=None):
    """DPM-Solver++(3M) SDE (samplers.sample_dpmpp_3m_sde) in flow lambda, alpha = 1 - sigma."""
    if len(sigmas) <= 1:
        return x
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or brownian_noise_sampler(x, sigmas, seed, cpu=brownian_on_cpu)
    sigmas = _offset_first_sigma(sigmas, sigma_start)
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
            lam_s, lam_t = _lambda(sigmas[i]), _lambda(sigmas[i + 1])
            h = lam_t - lam_s
            h_eta = h * (eta + 1)
            alpha_t = sigmas[i + 1] * lam_t.exp()
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x + alpha_t * (-h_eta).expm1().neg() * denoised
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                phi_3 = phi_2 / h_eta - 0.5
                x = x + (alpha_t * phi_2) * d1 - (alpha_t * phi_3) * d2
            elif h_1 is not None:
                r = h_1 / h
                d = (denoised - denoised_1) / r
                phi_2 = h_eta.neg().expm1() / h_eta + 1
                x = x + (alpha_t * phi_2) * d
            if eta > 0 and s_noise > 0:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


@torch.no_grad()
def sample_lcm_rf(denoiser, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None, seed=None):
    """LCM with the flow re-noise: x = sigma' eps + (1 - sigma') D."""
    extra_args = extra_args or {}
    noise_sampler = noise_sampler or gaussian_noise_sampler(x, seed)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = denoiser(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback(_step_info(i, x, sigmas[i], denoised))
        x = denoised
        if sigmas[i + 1] > 0:
            x = sigmas[i + 1] * noise_sampler(sigmas[i], sigmas[i + 1]) + (1 - sigmas[i + 1]) * x
    return x


def sample_dpmpp_2m_sde_heun_rf(denoiser, x, sigmas, **kwargs):
    """dpmpp_2m_sde_rf with the Heun-type second-order term (ComfyUI's dpmpp_2m_sde_heun)."""
    return sample_dpmpp_2m_sde_rf(denoiser, x, sigmas, solver_type="heun", **kwargs)


FLOW_SAMPLERS = {
    "euler_ancestral": sample_euler_ancestral_rf,
    "dpm_2_ancestral": sample_dpm_2_ancestral_rf,
    "dpmpp_2s_ancestral": sample_dpmpp_2s_ancestral_rf,
    "dpmpp_sde": sample_dpmpp_sde_rf,
    "dpmpp_sde_gpu": _on_device_brownian(sample_dpmpp_sde_rf),
    "dpmpp_2m_sde": sample_dpmpp_2m_sde_rf,
    "dpmpp_2m_sde_gpu": _on_device_brownian(sample_dpmpp_2m_sde_rf),
    "dpmpp_2m_sde_heun": sample_dpmpp_2m_sde_heun_rf,
    "dpmpp_2m_sde_heun_gpu": _on_device_brownian(sample_dpmpp_2m_sde_heun_rf),
    "dpmpp_3m_sde": sample_dpmpp_3m_sde_rf,
    "dpmpp_3m_sde_gpu": _on_device_brownian(sample_dpmpp_3m_sde_rf),
    "lcm": sample_lcm_rf,
}


def sampler_for(name: str, schedule=None):
    """The sampler function for a sampler name and a model's sampling (DiscreteSchedule or
    FlowSchedule): the flow variant where one exists. Raises KeyError for unknown names."""
    base = SAMPLERS.get(name, NODE_SAMPLERS.get(name))
    if base is None:
        raise KeyError(name)
    if not is_flow(schedule):
        return base
    fn = FLOW_SAMPLERS.get(name, base)
    if "sigma_start" in inspect.signature(fn).parameters and hasattr(schedule, "percent_to_sigma"):
        fn = functools.partial(fn, sigma_start=schedule.percent_to_sigma(1e-4))
    return fn
