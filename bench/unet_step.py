"""One UNet step of a full-size SD1.5 UNet, ours vs diffusers on the same (random) weights,
plus checkpoint load time and peak memory.

    .venv/bin/python bench/unet_step.py [--latent 64] [--batch 2] [--reps 3] [--threads 2]

Weights: our UNet with PyTorch's default random init, converted to diffusers' layout by
diffusers' own single-file converter; both models share the same weight tensors (no copy).
Timing: fp32 CPU, one warm-up each, then alternating reps (ours, diffusers, ours, ...); the
minimum of each side is the figure (the least disturbed by other work on the machine).
Loading: the weights are saved as a safetensors checkpoint ('model.diffusion_model.' keys) and
loaded in a fresh process with graphflow's `load_checkpoint` (or, when that is missing, a
safetensors safe_open + load_state_dict(assign=True) path); peak RSS above the process's
baseline is reported relative to the file size.
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphflow.models import UNet, UNetConfig  # noqa: E402
from sampling import diffusers_unet  # noqa: E402  (bench/sampling.py, beside this script)


def time_steps(fns: dict, reps: int) -> dict:
    for fn in fns.values():  # warm-up
        fn()
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


LOADER = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[2]))
def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
try:
    from graphflow.models.checkpoint import load_checkpoint
    how = "graphflow.models.checkpoint.load_checkpoint"
except ImportError:
    load_checkpoint = None
    how = "safetensors safe_open + load_state_dict(assign=True) (load_checkpoint missing)"
    from safetensors import safe_open
    from graphflow.models import UNet, unet_config_from_state_dict
base = rss_mb()
t0 = time.perf_counter()
if load_checkpoint is not None:
    ckpt = load_checkpoint(sys.argv[1], device="cpu", dtype=torch.float32)
    n = sum(p.numel() for p in ckpt.model.unet.parameters())
else:
    prefix = "model.diffusion_model."
    with safe_open(sys.argv[1], "pt") as f:
        keys = [k for k in f.keys() if k.startswith(prefix)]
        shapes = {k[len(prefix):]: tuple(f.get_slice(k).get_shape()) for k in keys}
        with torch.device("meta"):
            unet = UNet(unet_config_from_state_dict(shapes))
        unet.load_state_dict({k[len(prefix):]: f.get_tensor(k) for k in keys}, assign=True)
    n = sum(p.numel() for p in unet.parameters())
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"how": how, "seconds": seconds, "baseline_mb": base, "peak_mb": peak, "params": n}))
"""


def measure_load(path: str, threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", LOADER, path, str(threads)], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latent", type=int, default=64, help="latent side (64 = 512 px)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    t0 = time.perf_counter()
    ours = UNet(UNetConfig()).eval().requires_grad_(False)  # SD1.5
    theirs = diffusers_unet(ours)  # the same tensors, in diffusers' UNet2DConditionModel
    n_params = sum(p.numel() for p in ours.parameters())
    print(f"SD1.5 UNet: {n_params / 1e6:.1f} M parameters, built in {time.perf_counter() - t0:.1f} s")

    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 4, args.latent, args.latent, generator=g)
    t = torch.full((args.batch,), 500.0)
    ctx = torch.randn(args.batch, 77, 768, generator=g)
    with torch.inference_mode():
        diff = (ours(x, t, ctx) - theirs(x, t, encoder_hidden_states=ctx).sample).abs().max().item()
        times = time_steps({"ours": lambda: ours(x, t, ctx),
                            "diffusers": lambda: theirs(x, t, encoder_hidden_states=ctx).sample}, args.reps)
    best = {k: min(v) for k, v in times.items()}
    print(f"step: batch {args.batch}, latent {args.latent}x{args.latent}, fp32, {args.threads} threads, "
          f"{args.reps} reps after warm-up")
    for k, v in times.items():
        print(f"  {k:10s} min {best[k]:.3f} s   all {', '.join(f'{s:.3f}' for s in v)}")
    print(f"  ratio ours/diffusers (min): {best['ours'] / best['diffusers']:.3f}   max |diff| {diff:.2e}")

    if args.skip_load:
        return
    with tempfile.TemporaryDirectory() as tmp:
        from safetensors.torch import save_file
        path = os.path.join(tmp, "sd15_unet_random.safetensors")
        save_file({"model.diffusion_model." + k: v.contiguous() for k, v in ours.state_dict().items()}, path)
        del ours, theirs
        gc.collect()
        size_mb = os.path.getsize(path) / 2**20
        result = measure_load(path, args.threads)
        extra = result["peak_mb"] - result["baseline_mb"]
        print(f"checkpoint load ({result['how']}): file {size_mb:.0f} MiB, {result['seconds']:.2f} s, "
              f"peak RSS {result['peak_mb']:.0f} MiB = baseline {result['baseline_mb']:.0f} + {extra:.0f} MiB "
              f"({extra / size_mb:.2f}x file size)")


if __name__ == "__main__":
    main()
