"""What EasyCache, LazyCache, First Block Cache and TeaCache save, and how far the image moves.

    python bench/step_cache.py [--steps 20] [--size 256] [--threshold 0.2] [--fbcache 0.3] [--teacache 0.4]
                               [--reps 2] [--device cpu]

txt2img with the demo checkpoint (graphflow-demo.safetensors), euler / normal, cfg 5, the
ComfyUI defaults of EasyCache / LazyCache (start 0.15, end 0.95) at the given reuse_threshold and
First Block Cache (ApplyFBCacheOnModel) at --fbcache; for each of plain / EasyCache / LazyCache /
FBCache (over the whole range, not the window): steps skipped (FBCache: network calls), best wall
time of --reps runs (interleaved) after a warm-up, and the PSNR of the decoded image against the
plain one. Then TeaCache, which is for FLUX, on graphflow.testing's tiny random FLUX (flux_dev, same
steps, cfg 1, 256 pixels): calls skipped and the time ratio, a check that the mechanism saves time,
not a measure of what it saves on a trained model (random weights decide differently).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from graphflow.models.checkpoint import load_checkpoint  # noqa: E402
from graphflow.sampling import sample  # noqa: E402
from graphflow.sampling.block_cache import with_first_block_cache, with_teacache  # noqa: E402
from graphflow.sampling.step_cache import with_easycache, with_lazycache  # noqa: E402

CHECKPOINT = Path(__file__).resolve().parents[1] / "graphflow" / "bundled" / "checkpoints" / "graphflow-demo.safetensors"
PROMPT = "a red circle on a white background"


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    mse = ((image.float() - reference.float()) ** 2).mean()
    return float("inf") if mse == 0 else float(10 * torch.log10(1.0 / mse))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--threshold", type=float, default=0.2)
    parser.add_argument("--fbcache", type=float, default=0.3, help="ApplyFBCacheOnModel's residual_diff_threshold")
    parser.add_argument("--teacache", type=float, default=0.4, help="TeaCache's rel_l1_thresh (tiny FLUX)")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = torch.device(args.device) if args.device else None
    checkpoint = load_checkpoint(CHECKPOINT, device=device)
    model = checkpoint.model
    positive = [(checkpoint.clip.encode(PROMPT)[0], {})]
    negative = [(checkpoint.clip.encode("")[0], {})]
    side = args.size // 8
    latent = {"samples": torch.zeros(1, model.latent_format.channels, side, side)}
    variants = {"plain": model,
                "EasyCache": with_easycache(model, args.threshold),
                "LazyCache": with_lazycache(model, args.threshold),
                "FBCache": with_first_block_cache(model, args.fbcache)}
    print(f"demo model, {args.size}x{args.size}, {args.steps} euler steps, cfg 5, {model.device}, best of {args.reps}; "
          f"EasyCache / LazyCache threshold {args.threshold}, window 0.15-0.95; FBCache residual_diff_threshold "
          f"{args.fbcache}, the whole range")
    with torch.no_grad():  # warm-up: weights onto the device, kernels chosen
        sample(model, 1, 2, 5.0, "euler", "normal", positive, negative, latent, preview_every=0)
    times = {name: [] for name in variants}
    outputs = {}
    for _ in range(args.reps):  # interleaved, so machine load hits all alike
        for name, m in variants.items():
            start = time.perf_counter()
            with torch.no_grad():
                outputs[name] = sample(m, 1, args.steps, 5.0, "euler", "normal", positive, negative, latent,
                                       preview_every=0)["samples"]
            times[name].append(time.perf_counter() - start)
            caches = getattr(m, "network_wrappers", ()) + getattr(m, "prediction_wrappers", ())
            # EasyCache / LazyCache count steps; a block cache counts network calls (cond and uncond split: 2 a step)
            last = caches[0].last if caches else None
            times[name + " skipped"] = last.skipped if last else 0
            times[name + " of"] = (f"{last.computed + last.skipped} calls" if hasattr(last, "computed")
                                   else f"{args.steps} steps")
    images = {name: checkpoint.vae.decode(out).clamp(0, 1) for name, out in outputs.items()}
    for name in variants:
        quality = psnr(images[name], images["plain"])
        skipped = f"{times[name + ' skipped']:2d}/{times[name + ' of']:9s}"
        print(f"  {name:10s} skipped {skipped}  {min(times[name]):7.2f} s  "
              f"({min(times['plain']) / min(times[name]):4.2f}x)  PSNR {quality:6.2f} dB")
    tiny_flux_teacache(args, device)
    return 0


def tiny_flux_teacache(args, device):
    from graphflow.models.diffusion_model import DiffusionModel
    from graphflow.models.flux import Flux
    from graphflow.testing import flow_model_config

    torch.manual_seed(0)
    net = Flux(flow_model_config("flux_dev")).eval().to(device or "cpu")
    model = DiffusionModel(net, "flux", prediction="flow")
    cfg = net.config
    g = torch.Generator().manual_seed(1)
    cond = [(torch.randn(1, 16, cfg.context_in_dim, generator=g), {"pooled_output": torch.randn(1, cfg.vec_in_dim,
                                                                                                   generator=g)})]
    latent = {"samples": torch.zeros(1, 16, 32, 32)}
    variants = {"plain": model, "TeaCache": with_teacache(model, "flux", args.teacache)}
    times = {name: [] for name in variants}
    with torch.no_grad():
        sample(model, 1, 2, 1.0, "euler", "simple", cond, cond, latent, preview_every=0)
        for _ in range(args.reps):
            for name, m in variants.items():
                start = time.perf_counter()
                sample(m, 1, args.steps, 1.0, "euler", "simple", cond, cond, latent, preview_every=0)
                times[name].append(time.perf_counter() - start)
    last = variants["TeaCache"].network_wrappers[-1].last
    print(f"tiny random FLUX, 256x256, {args.steps} euler steps, cfg 1, TeaCache rel_l1_thresh {args.teacache}: "
          f"skipped {last.skipped}/{last.computed + last.skipped} calls, plain {min(times['plain']):.3f} s, TeaCache "
          f"{min(times['TeaCache']):.3f} s ({min(times['plain']) / min(times['TeaCache']):4.2f}x; a mechanism check "
          f"only: random weights, so the skips and the ratio say nothing of a trained FLUX)")


if __name__ == "__main__":
    sys.exit(main())
