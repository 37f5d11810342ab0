"""How much HyperTile and Token Merging (TomePatchModel) save on one UNet forward at a large
latent, against the unpatched UNet, and how far their output moves from it.

    python bench/attention_patches.py [--size 96] [--repeats 3] [--full] [--device cpu]

A random-weight SD1 UNet (scaled down unless --full: the real SD1 layout), one forward per
repeat for each of plain / HyperTile (tile_size 256) / ToMe (ratio 0.5), interleaved so machine
load hits all alike; prints the best time of each, the speed-up and the relative difference.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from graphflow.models.diffusion_model import DiffusionModel  # noqa: E402
from graphflow.models.hypertile import apply_hypertile  # noqa: E402
from graphflow.models.tome import apply_tome  # noqa: E402
from graphflow.models.unet import UNet  # noqa: E402
from graphflow.testing import unet_config  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=96, help="latent side (pixels / 8)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="the real SD1 layout instead of the scaled-down one")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    model = DiffusionModel(UNet(unet_config("sd1", scaled_down=not args.full)).eval().to(device, dtype), "sd1")
    x = torch.randn(1, 4, args.size, args.size, device=device, dtype=dtype)
    t = torch.tensor([500.0], device=device)
    context = torch.randn(1, 77, model.unet.config.context_dim, device=device, dtype=dtype)
    models = {"plain": model, "HyperTile 256": apply_hypertile(model, 256), "ToMe 0.5": apply_tome(model, 0.5)}
    times, outputs = {name: [] for name in models}, {}
    with torch.no_grad():
        for name, m in models.items():
            outputs[name] = m.unet(x, t, context).float()  # warm-up
        for _ in range(args.repeats):
            for name, m in models.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                m.unet(x, t, context)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - start)
    plain = min(times["plain"])
    print(f"SD1 UNet ({'full' if args.full else 'scaled down'}), {args.size}x{args.size} latent, {device}:")
    for name in models:
        best = min(times[name])
        diff = (outputs[name] - outputs["plain"]).norm() / outputs["plain"].norm()
        print(f"  {name:14s} {best * 1000:8.1f} ms/forward  {plain / best:5.2f}x  relative difference {diff:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
