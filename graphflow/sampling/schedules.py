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
from collections.abc import Callable

import numpy as np
import torch

from ..context import NodeInputError
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
    uniform between the table's ends. One step is sigma_max then 0 (ComfyUI's 0/0 there gives NaN,
    a black picture: a deliberate difference)."""
    sigma_min, sigma_max = float(schedule.sigma_min), float(schedule.sigma_max)
    ramp = torch.arange(steps, dtype=torch.float32) / (steps - 1) if steps > 1 else torch.zeros(1)
    sigmas = torch.zeros(steps + 1)
    sigmas[:-1] = (ramp * math.atan(sigma_min) + (1 - ramp) * math.atan(sigma_max)).tan()
    return sigmas


def polyexponential_sigmas(steps: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    """log sigma = log sigma_min + r^rho (log sigma_max - log sigma_min), r from 1 down to 0
    (k-diffusion's polyexponential; rho = 1 is exponential_sigmas), then 0."""
    ramp = torch.linspace(1, 0, steps) ** rho
    sigmas = torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min))
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def vp_sigmas(steps: int, beta_d: float = 19.9, beta_min: float = 0.1, eps_s: float = 1e-3) -> torch.Tensor:
    """The continuous variance-preserving SDE's noise levels (Song et al. 2021, "Score-Based
    Generative Modeling through SDEs"; EDM table 1): sigma(t) = sqrt(e^{beta_d t^2 / 2 + beta_min t} - 1)
    at t uniform from 1 down to eps_s, then 0."""
    t = torch.linspace(1, eps_s, steps)
    sigmas = torch.sqrt(torch.special.expm1(beta_d * t ** 2 / 2 + beta_min * t))
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def laplace_sigmas(steps: int, sigma_min: float, sigma_max: float, mu: float = 0.0, beta: float = 0.5) -> torch.Tensor:
    """Hang et al. 2024 ("Improved Noise Schedule for Diffusion Training"): log sigma at the
    quantiles of a Laplace(mu, beta) distribution, log sigma = mu - beta sign(1/2 - x) log(1 - 2|1/2 - x|
    + 1e-5) for x uniform in [0, 1], clamped to [sigma_min, sigma_max]. As ComfyUI's, it does NOT
    end in 0: `steps` sigmas, the last sigma_min."""
    x = torch.linspace(0, 1, steps)
    log_sigmas = mu - beta * torch.sign(0.5 - x) * torch.log(1 - 2 * torch.abs(0.5 - x) + 1e-5)
    return torch.clamp(torch.exp(log_sigmas), min=sigma_min, max=sigma_max)


def loglinear_interp(sigmas, count: int) -> np.ndarray:
    """A decreasing schedule resampled to `count` points by linear interpolation of log sigma
    over evenly spaced positions (how Align Your Steps extends its tables to other step counts)."""
    xs = np.linspace(0, 1, len(sigmas))
    ys = np.log(np.asarray(sigmas, dtype=np.float64)[::-1])
    return np.exp(np.interp(np.linspace(0, 1, count), xs, ys))[::-1].copy()


# Align Your Steps (Sabour et al. 2024), NVIDIA's published 10-step schedules
# (research.nvidia.com/labs/toronto-ai/AlignYourSteps/howto.html).
AYS_SIGMAS = {
    "SD1": [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904,
            0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582],
    "SDXL": [14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141, 0.5550693289,
             0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582],
    "SVD": [700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002],
}

# OptimalSteps (Pei et al. 2025, "Optimal Stepsize for Diffusion Sampling"), the published flow-model
# schedules ComfyUI ships (github.com/bebebe666/OptimalSteps).
OPTIMAL_STEPS_SIGMAS = {
    "FLUX": [0.9968, 0.9886, 0.9819, 0.975, 0.966, 0.9471, 0.9158, 0.8287, 0.5512, 0.2808, 0.001],
    "Wan": [1.0, 0.997, 0.995, 0.993, 0.991, 0.989, 0.987, 0.985, 0.98, 0.975, 0.973, 0.968, 0.96, 0.946, 0.927,
            0.902, 0.864, 0.776, 0.539, 0.208, 0.001],
    "Chroma": [0.992, 0.99, 0.988, 0.985, 0.982, 0.978, 0.973, 0.968, 0.961, 0.953, 0.943, 0.931, 0.917, 0.9, 0.881,
               0.858, 0.832, 0.802, 0.769, 0.731, 0.69, 0.646, 0.599, 0.55, 0.501, 0.451, 0.402, 0.355, 0.311, 0.27,
               0.232, 0.199, 0.169, 0.143, 0.12, 0.101, 0.084, 0.07, 0.058, 0.048, 0.001],
}


def tabulated(table, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """A published schedule for `steps` steps: the table itself when it has steps + 1 entries, else
    loglinear_interp of it; denoise < 1 keeps the last round(steps * denoise) steps; the last sigma
    becomes 0 (ComfyUI's AlignYourSteps / OptimalSteps / GITS schedulers). denoise <= 0: no sigmas."""
    if denoise <= 0.0:
        return torch.zeros(0)
    total = round(steps * denoise) if denoise < 1.0 else steps
    sigmas = np.asarray(table, dtype=np.float64)
    if len(sigmas) != steps + 1:
        sigmas = loglinear_interp(sigmas, steps + 1)
    sigmas = sigmas[-(total + 1):].copy()
    sigmas[-1] = 0
    return torch.tensor(sigmas, dtype=torch.float32)


def align_your_steps(model_type: str, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """Align Your Steps' schedule for SD1 / SDXL / SVD (tabulated)."""
    return tabulated(AYS_SIGMAS[model_type], steps, denoise)


def optimal_steps(model_type: str, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """OptimalSteps' schedule for FLUX / Wan / Chroma (tabulated)."""
    return tabulated(OPTIMAL_STEPS_SIGMAS[model_type], steps, denoise)


def gits(coeff: float, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """GITS' schedule for SD1.5-range models (tabulated: gits_sigmas): the published schedule for
    `steps` (2 to 20) at coefficient round(coeff, 2); above 20 steps the 20-step one log-linearly
    interpolated. Raises KeyError for a coefficient off the published 0.80, 0.85, ..., 1.50 grid."""
    from .gits_sigmas import GITS_SIGMAS
    rows = GITS_SIGMAS[round(coeff, 2)]
    return tabulated(rows[min(steps, 20) - 2], steps, denoise)


def extend_intermediate_sigmas(sigmas: torch.Tensor, steps: int, start_at_sigma: float, end_at_sigma: float,
                               spacing: str = "linear") -> torch.Tensor:
    """Split each step sigma_i -> sigma_{i+1} with end_at_sigma <= sigma_i <= start_at_sigma
    (start_at_sigma < 0: no upper bound) into `steps` steps, the points at sigma_i + f(k / steps)
    (sigma_{i+1} - sigma_i), k = 1..steps-1, with f(u) = u (linear), sin(u pi/2) (cosine: denser
    near sigma_{i+1}) or 1 - cos(u pi/2) (sine: denser near sigma_i) (ComfyUI's ExtendIntermediateSigmas)."""
    if start_at_sigma < 0:
        start_at_sigma = float("inf")
    u = torch.linspace(0, 1, steps + 1)[1:-1]
    fractions = {"linear": lambda v: v, "cosine": lambda v: torch.sin(v * math.pi / 2),
                 "sine": lambda v: 1 - torch.cos(v * math.pi / 2)}[spacing](u)
    sigmas = sigmas.float().cpu()
    out = []
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        out.append(float(sigma))
        # compared as tensors, as ComfyUI does: the bounds are rounded to float32 first, so a bound
        # typed as 0.0291675 still holds the float32 sigma 0.0291675
        if end_at_sigma <= sigma <= start_at_sigma:
            out.extend((fractions * (sigma_next - sigma) + sigma).tolist())
    if len(sigmas) > 0:
        out.append(float(sigmas[-1]))
    return torch.tensor(out, dtype=torch.float32)


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


def ltxv_sigmas(steps: int, mu: float, stretch: bool = True, terminal: float = 0.1) -> torch.Tensor:
    """LTXVScheduler: t = 1 .. 0 in `steps` equal steps, sigma = e^mu / (e^mu + 1/t - 1) (0 stays
    0); stretched, 1 - sigma is scaled so that the last non-zero sigma becomes `terminal`."""
    t = torch.linspace(1.0, 0.0, steps + 1)
    sigmas = torch.where(t != 0, math.exp(mu) / (math.exp(mu) + (1 / t - 1)), 0.0)
    if stretch:
        kept = sigmas != 0
        rest = 1.0 - sigmas[kept]
        scale = rest[-1] / (1.0 - terminal)  # a float32 factor first: ComfyUI's rounding, to the bit
        sigmas[kept] = 1.0 - rest / scale
    return sigmas


# The longest schedule a denoise < 1 may stretch to: int(steps / denoise) is not bounded by the steps
# widget, and a tiny denoise would build (slowly, uninterruptibly) a schedule of millions of steps to
# keep its last few. ComfyUI has no such cap; twice its steps widget's max (10000) lets any steps run
# at denoise 0.5 or more (the slowest scheduler takes a few seconds to build it).
MAX_SCHEDULE_STEPS = 20000


def schedule_length(steps: int, denoise: float | None) -> int:
    """The number of steps of the whole schedule KSampler cuts its last `steps` from: steps at
    full denoise, else int(steps / denoise) (ComfyUI's rule). Refused by name (denoise) past
    MAX_SCHEDULE_STEPS; denoise must be above 0."""
    if denoise is None or denoise > 0.9999:
        return steps
    length = int(steps / denoise)
    if length > MAX_SCHEDULE_STEPS:
        raise NodeInputError("denoise", f"denoise {denoise} stretches {steps} steps to a schedule of {length} steps "
                                        f"(steps / denoise), more than {MAX_SCHEDULE_STEPS}: raise denoise or lower "
                                        f"steps")
    return length


def compute_sigmas(schedule: DiscreteSchedule, scheduler: str | Callable, steps: int, denoise: float = 1.0,
                   discard_penultimate: bool = False) -> torch.Tensor:
    """The sigmas KSampler runs: the named schedule for `steps`, with ComfyUI's two adjustments.

    discard_penultimate (dpm_2, dpm_2_ancestral, uni_pc, uni_pc_bh2): compute steps + 1 sigmas and
    drop the second-to-last, so the last step jumps from a mid sigma straight to 0.
    denoise < 1 (img2img): compute int(steps / denoise) steps and keep the last steps + 1 sigmas
    (refused by name past MAX_SCHEDULE_STEPS: schedule_length); denoise <= 0 gives no sigmas
    (nothing to do).
    `scheduler` may also be a function (schedule, steps) -> sigmas: a schedule of a custom pack's
    (Efficiency Nodes' AYS / GITS), which ComfyUI's calculate_sigmas gets patched with."""
    if not callable(scheduler) and scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r}; expected one of {', '.join(SCHEDULERS)}")
    schedule_of = scheduler if callable(scheduler) else SCHEDULERS[scheduler]
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")

    def full(n: int) -> torch.Tensor:
        if discard_penultimate:
            sigmas = schedule_of(schedule, n + 1)
            return torch.cat([sigmas[:-2], sigmas[-1:]])
        return schedule_of(schedule, n)

    if denoise is None or denoise > 0.9999:
        return full(steps)
    if denoise <= 0.0:
        return torch.zeros(0)
    return full(schedule_length(steps, denoise))[-(steps + 1):]
