"""Sigma schedules by ComfyUI name: `SCHEDULERS[name](schedule, steps) -> sigmas`.

Each returns float32 [steps + 1] (ddim_uniform can give more, see there), decreasing, ending in
0, computed from the model's discrete sigma table (model_sampling.DiscreteSchedule) in float32
the way ComfyUI does, so the numbers match its to the last bit where the arithmetic is the same.

How they relate to diffusers' schedulers (EulerDiscreteScheduler settings; tested where exact):
    normal         timestep_spacing="linspace": same timesteps t = linspace(999, 0, n), but diffusers
                   interpolates sigma linearly in t, ComfyUI in log sigma -> equal only when every t
                   is an integer (n - 1 divides 999: n = 4, 10, 28, 38, 112, ...)
    karras         use_karras_sigmas=True            (identical formula, Karras et al. 2022 eq. 5)
    exponential    use_exponential_sigmas=True       (log-uniform sigmas)
    simple         timestep_spacing="trailing"       (equal when n divides 1000)
    ddim_uniform   timestep_spacing="leading", steps_offset=1 (SD's DDIM config; n divides 1000)
    sgm_uniform    no diffusers equivalent: normal's spacing on n + 1 points without t = 0
    beta           no equivalent (diffusers' use_beta_sigmas spaces sigma, this spaces timesteps)
    linear_quadratic, kl_optimal: none
"""

import math

import numpy as np
import torch

from .model_sampling import DiscreteSchedule


def normal(schedule: DiscreteSchedule, steps: int, sgm: bool = False) -> torch.Tensor:
    """Timesteps uniform from the top of the table to the bottom, sigma by log interpolation.
    sgm (Stability's sgm code): steps + 1 uniform timesteps with the last (t = 0) dropped."""
    start = schedule.timestep(schedule.sigma_max)
    end = schedule.timestep(schedule.sigma_min)
    append_zero = True
    if sgm:
        timesteps = torch.linspace(float(start), float(end), steps + 1)[:-1]
    else:
        if math.isclose(float(schedule.sigma(end)), 0, abs_tol=1e-5):  # zero-terminal-SNR tables
            steps += 1
            append_zero = False
        timesteps = torch.linspace(float(start), float(end), steps)
    sigmas = [float(schedule.sigma(t)) for t in timesteps]
    if append_zero:
        sigmas.append(0.0)
    return torch.tensor(sigmas, dtype=torch.float32)


def sgm_uniform(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    return normal(schedule, steps, sgm=True)


def simple(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    """Every (len/steps)-th table entry from the top, truncated to whole indices."""
    stride = len(schedule.sigmas) / steps
    sigmas = [float(schedule.sigmas[-(1 + int(i * stride))]) for i in range(steps)]
    return torch.tensor(sigmas + [0.0], dtype=torch.float32)


def ddim_uniform(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    """DDIM's uniform spacing (Song et al. 2021): table indices 1, 1 + k, 1 + 2k, ... with
    k = len // steps, reversed, then 0. When steps does not divide the table length this yields
    more than steps + 1 sigmas (30 steps -> 32), exactly as ComfyUI does."""
    sigmas = schedule.sigmas
    first = 1
    if math.isclose(float(sigmas[first]), 0, abs_tol=1e-5):
        steps += 1
        out = []
    else:
        out = [0.0]
    stride = max(len(sigmas) // steps, 1)
    out += [float(sigmas[i]) for i in range(first, len(sigmas), stride)]
    return torch.tensor(out[::-1], dtype=torch.float32)


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022 eq. 5: sigma_i = (s_max^(1/rho) + i/(n-1) (s_min^(1/rho) - s_max^(1/rho)))^rho, then 0."""
    ramp = torch.linspace(0, 1, steps)
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def exponential_sigmas(steps: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Sigmas uniform in log sigma from sigma_max to sigma_min, then 0."""
    sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), steps).exp()
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def karras(schedule: DiscreteSchedule, steps: int, rho: float = 7.0) -> torch.Tensor:
    """karras_sigmas between the table's ends."""
    return karras_sigmas(steps, float(schedule.sigma_min), float(schedule.sigma_max), rho)


def exponential(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    """exponential_sigmas between the table's ends."""
    return exponential_sigmas(steps, float(schedule.sigma_min), float(schedule.sigma_max))


def sd_turbo(schedule: DiscreteSchedule, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """SD-Turbo / SDXL-Turbo's schedule (ComfyUI's SDTurboScheduler): the timesteps 999, 899, ...,
    99 it was distilled on, starting 10 - int(10 * denoise) of them in, `steps` of them, then 0."""
    start = 10 - int(10 * denoise)
    timesteps = torch.flip(torch.arange(1, 11) * 100 - 1, (0,))[start:start + steps]
    sigmas = schedule.sigma(timesteps)
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def beta(schedule: DiscreteSchedule, steps: int, alpha: float = 0.6, beta: float = 0.6) -> torch.Tensor:
    """Timesteps at quantiles of a Beta(alpha, beta) distribution (Lee et al. 2024, "Beta Sampling
    is All You Need"): more steps at both ends of the trajectory. Repeated timesteps are dropped,
    so short schedules can come out shorter than steps + 1."""
    import scipy.stats  # imported here: it costs ~1 s of start-up and only this schedule needs it

    total = len(schedule.sigmas) - 1
    quantiles = 1 - np.linspace(0, 1, steps, endpoint=False)
    timesteps = np.rint(scipy.stats.beta.ppf(quantiles, alpha, beta) * total)
    sigmas, last = [], -1
    for t in timesteps:
        if t != last:
            sigmas.append(float(schedule.sigmas[int(t)]))
        last = t
    return torch.tensor(sigmas + [0.0], dtype=torch.float32)


def linear_quadratic(schedule: DiscreteSchedule, steps: int, threshold_noise: float = 0.025,
                     linear_steps: int | None = None) -> torch.Tensor:
    """Movie Gen's schedule (Polyak et al. 2024): the noise fraction 1 - sigma/sigma_max rises
    linearly to threshold_noise over the first half, then quadratically to 1."""
    if steps == 1:
        fractions = [1.0, 0.0]
    else:
        linear_steps = steps // 2 if linear_steps is None else linear_steps
        linear = [i * threshold_noise / linear_steps for i in range(linear_steps)]
        step_diff = linear_steps - threshold_noise * steps
        quadratic_steps = steps - linear_steps
        quadratic_coef = step_diff / (linear_steps * quadratic_steps ** 2)
        linear_coef = threshold_noise / linear_steps - 2 * step_diff / (quadratic_steps ** 2)
        const = quadratic_coef * linear_steps ** 2
        quadratic = [quadratic_coef * i ** 2 + linear_coef * i + const for i in range(linear_steps, steps)]
        fractions = [1.0 - f for f in linear + quadratic + [1.0]]
    return torch.tensor(fractions, dtype=torch.float32) * schedule.sigma_max


def kl_optimal(schedule: DiscreteSchedule, steps: int) -> torch.Tensor:
    """Sabour et al. 2024, "Align Your Steps", eq. for the KL-optimal schedule: arctan(sigma)
    uniform between the table's ends."""
    sigma_min, sigma_max = float(schedule.sigma_min), float(schedule.sigma_max)
    ramp = torch.arange(steps, dtype=torch.float32) / (steps - 1) if steps > 1 else torch.zeros(1)
    sigmas = torch.zeros(steps + 1)
    sigmas[:-1] = (ramp * math.atan(sigma_min) + (1 - ramp) * math.atan(sigma_max)).tan()
    return sigmas


# In ComfyUI's menu order.
SCHEDULERS = {
    "simple": simple,
    "sgm_uniform": sgm_uniform,
    "karras": karras,
    "exponential": exponential,
    "ddim_uniform": ddim_uniform,
    "beta": beta,
    "normal": normal,
    "linear_quadratic": linear_quadratic,
    "kl_optimal": kl_optimal,
}


def compute_sigmas(schedule: DiscreteSchedule, scheduler: str, steps: int, denoise: float = 1.0,
                   discard_penultimate: bool = False) -> torch.Tensor:
    """The sigmas KSampler runs: the named schedule for `steps`, with ComfyUI's two adjustments.

    discard_penultimate (dpm_2, dpm_2_ancestral, uni_pc, uni_pc_bh2): compute steps + 1 sigmas and
    drop the second-to-last, so the last step jumps from a mid sigma straight to 0.
    denoise < 1 (img2img): compute int(steps / denoise) steps and keep the last steps + 1 sigmas;
    denoise <= 0 gives no sigmas (nothing to do)."""
    if scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r}; expected one of {', '.join(SCHEDULERS)}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")

    def full(n: int) -> torch.Tensor:
        if discard_penultimate:
            sigmas = SCHEDULERS[scheduler](schedule, n + 1)
            return torch.cat([sigmas[:-2], sigmas[-1:]])
        return SCHEDULERS[scheduler](schedule, n)

    if denoise is None or denoise > 0.9999:
        return full(steps)
    if denoise <= 0.0:
        return torch.zeros(0)
    return full(int(steps / denoise))[-(steps + 1):]
