"""Sampling overhead: graphflow's `sample()` (CFG batching, eps->x0 wrapper, timestep lookup,
per-step preview) against a hand-written diffusers loop (EulerDiscreteScheduler + manual CFG)
around the same UNet, and against the bare UNet forwards alone.

    .venv/bin/python bench/sampling_overhead.py [--arch sd1] [--latent 16] [--steps 20] [--reps 3] [--threads 1]

The UNet is the scaled-down random-weight one from graphflow.testing (small, so that the
per-step overhead is visible rather than hidden behind a 1-second forward). Each side runs
`steps` steps with cfg 7 (one batched forward of 2 per step). Figures are the minimum of
alternating repetitions; the ratios are against the bare forwards measured in the same run.
"""

import argparse
import time

import torch

from graphflow.models import DiffusionModel, UNet
from graphflow.sampling import sample
from graphflow.testing import unet_config


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="sd1")
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = unet_config(args.arch)
    unet = UNet(config).eval()
    model = DiffusionModel(unet, args.arch)
    h = w = args.latent
    cond = torch.randn(1, 77, config.context_dim)
    uncond = torch.randn(1, 77, config.context_dim)
    latent = {"samples": torch.zeros(1, 4, h, w)}

    def ours():
        sample(model, 0, args.steps, 7.0, "euler", "karras", [(cond, {})], [(uncond, {})], latent,
               callback=lambda payload: None, preview_every=1)

    from diffusers import EulerDiscreteScheduler
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       use_karras_sigmas=True)
    context = torch.cat([uncond, cond])

    @torch.no_grad()
    def diffusers_loop():
        scheduler.set_timesteps(args.steps)
        x = torch.randn(1, 4, h, w, generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            x_in = scheduler.scale_model_input(torch.cat([x, x]), t)
            eps_uncond, eps_cond = unet(x_in, t.expand(2), context).chunk(2)
            x = scheduler.step(eps_uncond + 7.0 * (eps_cond - eps_uncond), t, x).prev_sample

    @torch.no_grad()
    def bare():
        x = torch.randn(2, 4, h, w)
        t = torch.full((2,), 500.0)
        for _ in range(args.steps):
            unet(x, t, context)

    timings = {"graphflow sample()": [], "diffusers loop": [], "bare UNet forwards": []}
    for fn in (ours, diffusers_loop, bare):  # warm-up
        fn()
    for _ in range(args.reps):
        for name, fn in zip(timings, (ours, diffusers_loop, bare)):
            start = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - start)
    base = min(timings["bare UNet forwards"])
    print(f"{args.arch} tiny UNet, latent {h}x{w}, {args.steps} steps, cfg batch 2, {args.threads} threads")
    for name, values in timings.items():
        best = min(values)
        print(f"  {name:22s} {best / args.steps * 1000:8.2f} ms/step   x{best / base:.3f} of bare forwards")


if __name__ == "__main__":
    main()
