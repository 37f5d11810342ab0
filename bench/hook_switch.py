"""Per-step time of sampling with a hooked positive and an un-hooked negative, the memory
manager's cache of hook sets' patched weights off and on (graphflow.memory, "Cached patch sets").

    python bench/hook_switch.py [--hook lora|model] [--own-lora] [--steps 6] [--latent 4] [--reps 2] [--threads 2]

A random UNet with SD1's widths (320 channels, 768-wide context) but two levels of one ResBlock
and one transformer each, on CPU in fp32, at a small latent so that patching weights weighs in
the step; the hook is a random LoCon LoRA of rank 16 on every transformer Linear and ResBlock
convolution (--hook lora), or a second random UNet taken as LoRA (--hook model, every weight).
--own-lora gives the sampled model a LoRA of its own (LoraLoader's: another random one, on the
same layers), so that without the cache the un-hooked negative recomputes its weights too.
euler, cfg 5, the hook's strength halved by a keyframe midway. Both variants run in the same
process, interleaved, after a warm-up; the best of --reps per variant is the figure. The
samples are checked bit-identical.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from graphflow import memory  # noqa: E402
from graphflow.models.checkpoint import load_checkpoint  # noqa: E402
from graphflow.models.lora import apply_lora, read_lora  # noqa: E402
from graphflow.models.unet import UNetConfig  # noqa: E402
from graphflow.sampling.hooks import Hooks, Keyframe, Keyframes, WeightHook, model_patches  # noqa: E402
from graphflow.sampling.model_sampling import DiscreteSchedule  # noqa: E402
from graphflow.sampling.pipeline import sample_with_sigmas  # noqa: E402
from graphflow.sampling.schedules import compute_sigmas  # noqa: E402
from graphflow.testing import write_checkpoint, write_lora  # noqa: E402

CONFIG = UNetConfig(model_channels=320, channel_mult=(1, 2), num_res_blocks=1, transformer_depth=(1, 1),
                    transformer_depth_middle=1, context_dim=768, num_heads=8, num_head_channels=-1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hook", choices=("lora", "model"), default="lora")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--own-lora", action="store_true")
    parser.add_argument("--latent", type=int, default=4, help="latent side (pixels / 8)")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="hook_switch_"))
    model = load(write_checkpoint(root / "a.safetensors", "sd1", unet=CONFIG, components=("unet",), seed=0,
                                  dtype=torch.float32))
    if args.own_lora:
        own = write_lora(root / "own.safetensors", "sd1", rank=16, text=False, unet=CONFIG, seed=2)
        model = apply_lora(model, None, own, 1.0, 0.0)[0]
    keyframes = Keyframes().add(Keyframe(1.0, 0.0)).add(Keyframe(0.5, 0.5))
    if args.hook == "lora":
        lora = write_lora(root / "lora.safetensors", "sd1", rank=16, text=False, unet=CONFIG, seed=1)
        hook = WeightHook("lora", 1.0, 0.0, lora=read_lora(lora), keyframes=keyframes)
    else:
        other = load(write_checkpoint(root / "b.safetensors", "sd1", unet=CONFIG, components=("unet",), seed=1,
                                      dtype=torch.float32))
        hook = WeightHook("model", 0.5, 0.0, model=other, keyframes=keyframes)
    generator = torch.Generator().manual_seed(0)
    positive = [(torch.randn(1, 77, 768, generator=generator), {"hooks": Hooks((hook,))})]
    negative = [(torch.randn(1, 77, 768, generator=generator), {})]
    shape = (1, 4, args.latent, args.latent)
    noise = torch.randn(shape, generator=generator)
    sigmas = compute_sigmas(DiscreteSchedule.from_betas(), "normal", args.steps, 1.0)
    manager = memory.manager()
    params = sum(p.numel() for p in model.unet.parameters())
    patched = {p.param for p in model_patches(model, hook, 1.0)}
    own = ", a LoRA of its own" if args.own_lora else ""
    print(f"UNet {params / 1e6:.0f}M parameters{own}, {len(patched)} patched by the {args.hook} hook, latent "
          f"{args.latent}x{args.latent}, {args.steps} euler steps, cfg 5, CPU fp32, {args.threads} threads, "
          f"best of {args.reps}")

    def sample(cache: bool) -> tuple[float, torch.Tensor]:
        manager.cache_patches = cache
        start = time.perf_counter()
        with torch.no_grad():
            out = sample_with_sigmas(model, sigmas, noise, torch.zeros(shape), positive, negative, 5.0, "euler", 0)
        return time.perf_counter() - start, out

    sample(True)  # warm-up: weights placed, kernels chosen
    times, outputs = {False: [], True: []}, {}
    for _ in range(args.reps):  # interleaved, so machine load hits both alike
        for cache in (False, True):
            seconds, outputs[cache] = sample(cache)
            times[cache].append(seconds)
    off, on = min(times[False]) / args.steps, min(times[True]) / args.steps
    print(f"  cache off  {off * 1000:8.1f} ms/step")
    print(f"  cache on   {on * 1000:8.1f} ms/step")
    print(f"  speed-up   {off / on:8.2f}x   samples bit-identical: {torch.equal(outputs[False], outputs[True])}")
    return 0


def load(path):
    return load_checkpoint(path, device="cpu", dtype=torch.float32, text_encoders=False).model


if __name__ == "__main__":
    sys.exit(main())
