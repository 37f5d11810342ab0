"""Latent sensitivity map speed: a full stride-1 map, and batched decoding vs one decode at a time.

    .venv/bin/python bench/sensitivity.py [--threads 2] [--demo-latent 64] [--sd-latent 8]
                                          [--single 24] [--batch 0] [--device cpu|cuda]

Cases:
  demo  the demo checkpoint's VAE (graphflow/bundled/checkpoints/graphflow-demo.safetensors) when it
        exists, else random weights in its shape (tools/train_demo.VAE_CONFIG), on a 64x64 latent
        (512x512 pixels) by default.
  sd    a full-size SD VAE (VAEConfig(): 128 channels, 4 levels) with random weights, on a small
        latent on the CPU (--sd-latent, 8 = 64x64 pixels by default; use 64 on a GPU).
Each case times the full map (patch 3, stride 1, zeroing, MSE; batch size from free memory unless
--batch) once, then the same kind of map one decode at a time (batch 1) on a strided subset of about
--single locations, and prints decodes per second of both and their ratio: the speed-up of
batching. Perturbing, decoding and measuring are all inside the timed region; a warm-up decode of
each batch shape runs first. The one-at-a-time figure for the whole map is extrapolated from its rate.
"""

import argparse
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphflow.device import compute_device, default_dtype  # noqa: E402
from graphflow.diagnostics import image_metrics, sensitivity  # noqa: E402
from graphflow.models import SD1, VAE, AutoencoderKL, VAEConfig  # noqa: E402

DEMO_CHECKPOINT = ROOT / "graphflow" / "bundled" / "checkpoints" / "graphflow-demo.safetensors"


def demo_vae(device, dtype) -> tuple[VAE, str]:
    if DEMO_CHECKPOINT.is_file():
        from graphflow.models.checkpoint import load_vae

        return load_vae(DEMO_CHECKPOINT, device=device, dtype=dtype), "demo (trained)"
    try:
        from tools.train_demo import VAE_CONFIG
    except ImportError:  # the training tool's imports (ftfy, transformers) are missing: its config, copied
        VAE_CONFIG = VAEConfig(ch=16, ch_mult=(1, 2, 4, 8), num_res_blocks=1, norm_groups=8)
    return random_vae(VAE_CONFIG, device, dtype), "demo shape, random weights"


def random_vae(config: VAEConfig, device, dtype) -> VAE:
    torch.manual_seed(0)
    return VAE(AutoencoderKL(config), SD1).to(device, dtype)


def time_map(vae: VAE, z: torch.Tensor, batch: int, stride: int = 1) -> sensitivity.SensitivityMap:
    """One map, after a warm-up decode of its batch shape (its `seconds` are the timing)."""
    jobs = 1 + len(sensitivity.patch_centres(z.shape[2], stride)) * len(sensitivity.patch_centres(z.shape[3], stride))
    vae.decode(z.repeat(math.ceil(jobs / math.ceil(jobs / batch)), 1, 1, 1))
    return sensitivity.sensitivity_map(vae.decode, z, image_metrics.mse, patch=3, stride=stride, batch_size=batch)


def run_case(name: str, vae: VAE, latent: int, args) -> dict:
    z = torch.randn(1, vae.latent_channels, latent, latent, generator=torch.Generator().manual_seed(0))
    batch = args.batch or sensitivity.decode_batch_size(vae, latent, latent)
    if vae.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(vae.device)
    full = time_map(vae, z, batch)
    peak = torch.cuda.max_memory_allocated(vae.device) / 2**30 if vae.device.type == "cuda" else None
    stride = max(1, round(latent / math.sqrt(args.single)))
    single = time_map(vae, z, 1, stride)
    batched_rate, single_rate = full.decodes / full.seconds, single.decodes / single.seconds
    return {"case": name, "latent": f"{latent}x{latent}", "pixels": latent * vae.downscale, "batch": full.batch_size,
            "full_s": full.seconds, "decodes": full.decodes, "batched_rate": batched_rate, "peak_gib": peak,
            "score": full.black_hole_score, "single_decodes": single.decodes, "single_rate": single_rate,
            "single_full_s": (latent * latent + 1) / single_rate, "speedup": batched_rate / single_rate}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--demo-latent", type=int, default=64)
    parser.add_argument("--sd-latent", type=int, default=8)
    parser.add_argument("--single", type=int, default=24, help="locations timed one decode at a time")
    parser.add_argument("--batch", type=int, default=0, help="decodes per batch; 0: by free memory")
    parser.add_argument("--device", default=None)
    parser.add_argument("--cases", default="demo,sd")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else compute_device()
    dtype = default_dtype("vae", device)
    print(f"device {device}, dtype {str(dtype).removeprefix('torch.')}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads")
    rows = []
    with torch.inference_mode():
        for case in args.cases.split(","):
            if case == "demo":
                vae, label = demo_vae(device, dtype)
                rows.append(run_case(label, vae, args.demo_latent, args))
            elif case == "sd":
                rows.append(run_case("SD VAE full size, random", random_vae(VAEConfig(), device, dtype),
                                     args.sd_latent, args))
            else:
                parser.error(f"unknown case {case!r}")
            r = rows[-1]
            print(f"\n{r['case']}: {r['latent']} latent ({r['pixels']}x{r['pixels']} px), stride-1 map of "
                  f"{r['decodes']} decodes in batches of {r['batch']}")
            print(f"  full map, batched:      {r['full_s']:9.1f} s   {r['batched_rate']:8.2f} decodes/s")
            print(f"  one decode at a time:   {r['single_full_s']:9.1f} s*  {r['single_rate']:8.2f} decodes/s "
                  f"(*extrapolated from {r['single_decodes']} decodes)")
            print(f"  speed-up of batching:   x{r['speedup']:.2f}")
            print(f"  black-hole score {r['score']:.2f}" + (f", peak GPU memory {r['peak_gib']:.1f} GiB"
                                                           if r["peak_gib"] is not None else ""))


if __name__ == "__main__":
    main()
