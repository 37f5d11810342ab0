"""Seeded noise: the sampler's starting noise and the fresh noise ancestral / SDE samplers add.

Starting noise (`initial_noise`) is ComfyUI's, bit for bit and on every device: a CPU generator
seeded with `seed`, ONE randn of the whole batch's shape in float32, then moved to the device.
With a LATENT's "batch_index" (images picked out of a larger batch) each image i gets the noise
it would have had at position i of the full batch: the generator is advanced one image at a
time up to the largest index.

Noise added during sampling (`gaussian_noise_sampler`, `brownian_noise_sampler`) comes in two
modes, chosen by the type of `seed`:
  int        ComfyUI's: one generator seeded with the KSampler seed, drawing the whole batch at
             once; gaussian noise is drawn ON x's DEVICE (as ComfyUI does, so a GPU run matches
             ComfyUI's GPU run and a CPU run its CPU run, but the two differ); the Brownian tree
             of the SDE samplers lives on the CPU (the "_gpu" sampler variants: on the device).
  list[int]  per image: image i has its own CPU generator (or Brownian tree) seeded with seed[i],
             so its noise depends neither on the batch it was sampled in nor on the device.
A noise sampler is called as noise_sampler(sigma, sigma_next) -> tensor shaped like x.
"""

import warnings
from dataclasses import dataclass
from typing import Callable

import torch

NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MAX_BATCH_INDEX = 4096 * 64  # RepeatLatentBatch's most repeats of the largest batch


def initial_noise(samples: torch.Tensor, seed: int, batch_index: list[int] | None = None,
                  device="cpu") -> torch.Tensor:
    """Standard normal noise shaped like `samples` [B, C, h, w], float32 on the CPU, drawn by a
    generator on `device` (ComfyUI's: the CPU; Inspire's GPU noise mode draws on the GPU)."""
    generator = torch.Generator(device).manual_seed(seed)
    shape = list(samples.shape)
    if batch_index is None:
        return torch.randn(shape, dtype=torch.float32, generator=generator, device=device).cpu()
    batch_index = [int(i) for i in batch_index]
    if len(batch_index) != shape[0] or min(batch_index) < 0:
        raise ValueError(f"batch_index {batch_index} must hold one non-negative index per latent image "
                         f"({shape[0]})")
    if max(batch_index) >= MAX_BATCH_INDEX:  # the generator is advanced image by image up to it
        raise ValueError(f"batch_index {max(batch_index)} is past the largest a latent batch can have "
                         f"({MAX_BATCH_INDEX - 1}: 64 repeats of 4096 images)")
    wanted = set(batch_index)
    per_index = {}
    for i in range(max(wanted) + 1):  # advance the generator image by image
        noise = torch.randn([1] + shape[1:], dtype=torch.float32, generator=generator, device=device)
        if i in wanted:
            per_index[i] = noise
    return torch.cat([per_index[i] for i in batch_index]).cpu()


@dataclass(frozen=True)
class NoiseSource:
    """A NOISE value (RandomNoise / DisableNoise): the starting noise of a custom sampler, and the
    seed its ancestral / SDE sampler draws with (0 when disabled, as ComfyUI)."""

    seed: int = 0
    enabled: bool = True

    def generate(self, samples: torch.Tensor, batch_index: list[int] | None = None) -> torch.Tensor:
        if not self.enabled:
            return torch.zeros(samples.shape, dtype=torch.float32)
        return initial_noise(samples, self.seed, batch_index)


def inpaint_noise(shape, seed: int) -> torch.Tensor:
    """ComfyUI's "ddim" sampler re-noises an inpainting mask's known region with this fresh noise
    (CPU generator seeded with seed + 1) rather than with the starting noise."""
    return torch.randn(list(shape), dtype=torch.float32, generator=torch.Generator("cpu").manual_seed(seed + 1))


def gaussian_noise_sampler(x: torch.Tensor, seed: int | list[int] | None = None) -> NoiseSampler:
    """Independent N(0, I) noise at each call (ancestral samplers, DDPM, LCM), shaped like x, or
    like `shape` where the call passes one (SamplerLCMUpscale's growing latent: the same stream
    drawn at each step's size, as ComfyUI's randn_like on its seeded global generator)."""
    if seed is None:
        return lambda sigma, sigma_next, shape=None: torch.randn(shape or x.shape, dtype=x.dtype, device=x.device)
    if isinstance(seed, int):
        generator = torch.Generator(x.device).manual_seed(seed)
        return lambda sigma, sigma_next, shape=None: torch.randn(shape or x.shape, dtype=x.dtype, device=x.device,
                                                                 generator=generator)
    generators = _per_image_generators(x, seed)
    return lambda sigma, sigma_next, shape=None: host_to_device(torch.cat(
        [torch.randn([1] + list((shape or x.shape)[1:]), dtype=torch.float32, generator=g) for g in generators]
    ), x.device).to(x.dtype)


def host_to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor made inside the sampling loop, on `device` without waiting for it: a copy from
    pinned memory is queued (the pinned block is kept until the copy is done), one from pageable
    memory would sync the stream."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def _per_image_generators(x: torch.Tensor, seeds: list[int]) -> list[torch.Generator]:
    if len(seeds) != x.shape[0]:
        raise ValueError(f"per-image noise needs one seed per image: got {len(seeds)} seeds for a batch of {x.shape[0]}")
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


class BrownianTreeNoiseSampler:
    """Noise from a Brownian motion W(sigma) sampled through torchsde's BrownianTree: the call for
    (sigma, sigma_next) returns (W(sigma_next) - W(sigma)) / sqrt|sigma_next - sigma|, which is
    N(0, I) and consistent across step counts (a finer schedule refines the same path). Used by
    the DPM-Solver++ SDE samplers as in k-diffusion and ComfyUI (seeded with the KSampler seed)."""

    def __init__(self, x: torch.Tensor, sigma_min: torch.Tensor, sigma_max: torch.Tensor,
                 seed: int | list[int] | None = None, cpu: bool = True):
        import torchsde  # only these samplers need it

        self.cpu = cpu
        t0, t1 = torch.as_tensor(sigma_min), torch.as_tensor(sigma_max)
        self.sign = 1
        if t0 > t1:
            t0, t1, self.sign = t1, t0, -1
        if seed is None:
            seed = int(torch.randint(0, 2 ** 63 - 1, []).item())
        self.batched = not isinstance(seed, int)
        seeds = list(seed) if self.batched else [seed]
        if self.batched and len(seeds) != x.shape[0]:
            raise ValueError(f"per-image noise needs one seed per image: got {len(seeds)} seeds for a batch of {x.shape[0]}")
        self.device = x.device
        w0 = torch.zeros(x.shape[1:] if self.batched else x.shape, dtype=x.dtype, device="cpu" if cpu else x.device)
        if cpu:
            t0, t1 = t0.cpu(), t1.cpu()
        self.trees = [torchsde.BrownianTree(t0, w0, t1, entropy=int(s)) for s in seeds]

    def __call__(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        t0, t1 = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
        sign = 1
        if t0 > t1:
            t0, t1, sign = t1, t0, -1
        with warnings.catch_warnings():
            # exp(-(-log sigma)) can land an ulp outside the tree's span; torchsde warns, harmlessly
            warnings.filterwarnings("ignore", message="Should have t", category=UserWarning)
            if self.cpu:
                w = torch.stack([tree(t0.cpu().float(), t1.cpu().float()).to(t0.dtype) for tree in self.trees])
            else:
                w = torch.stack([tree(t0, t1) for tree in self.trees])
        w = w * (self.sign * sign)
        if not self.batched:
            w = w[0]
        return host_to_device(w / (t1 - t0).abs().sqrt(), self.device) if self.cpu else w / (t1 - t0).abs().sqrt()


def brownian_noise_sampler(x: torch.Tensor, sigmas: torch.Tensor, seed: int | list[int] | None = None,
                           cpu: bool = True) -> BrownianTreeNoiseSampler:
    """A Brownian tree spanning the schedule's nonzero sigmas."""
    return BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=seed, cpu=cpu)
