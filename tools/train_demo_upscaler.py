"""Train the tiny bundled 2x upscaler used by workflows/hires_fix_upscale.json.

    .venv/bin/python tools/train_demo_upscaler.py [--minutes 3]

The network is Real-ESRGAN's SRVGGNetCompact ("Compact", taken from spandrel, not written here:
a few 3x3 convolutions, a pixel shuffle, and the nearest-neighbour upscale of the input added
back) at 24 features and 6 convolutions: 35k parameters, about 70 KB in fp16. It learns 2x
super-resolution of drawings from graphflow.demo.shapes: random crops of 128x128 renders are the
targets, their 2x area downscale the inputs. The result is written in the layout Real-ESRGAN's
Compact files use (body.N.weight), so spandrel recognises it like a downloaded one, to
graphflow/bundled/upscale_models/graphflow-demo-2x.safetensors.
"""

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from spandrel.architectures.Compact.__arch.SRVGG import SRVGGNetCompact

from graphflow.demo import shapes

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "graphflow" / "bundled" / "upscale_models" / "graphflow-demo-2x.safetensors"


def log(*parts):
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=64, help="target crop size (input: half of it)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    images, _ = shapes.dataset(args.images, seed=4321, size=128)
    high = torch.from_numpy(images).float().permute(0, 3, 1, 2) / 255
    net = SRVGGNetCompact(num_feat=24, num_conv=6, upscale=2)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.0)
    start, step = time.time(), 0
    while time.time() - start < args.minutes * 60:
        idx = torch.randint(0, len(high), (args.batch,))
        y0, x0 = (int(v) for v in torch.randint(0, 128 - args.crop + 1, (2,)) // 2 * 2)
        target = high[idx, :, y0:y0 + args.crop, x0:x0 + args.crop]
        low = F.avg_pool2d(target, 2)
        # MSE, not L1: most pixels are flat and need no correction, and L1's median pull keeps the
        # residual at zero there and everywhere (measured: L1 training stayed at nearest's PSNR)
        loss = F.mse_loss(net(low), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            log(f"step {step} MSE {loss.item():.5f}")

    with torch.no_grad():  # held out: PSNR against the nearest and bicubic upscales of the same inputs
        test, _ = shapes.dataset(64, seed=77, size=128)
        target = torch.from_numpy(test).float().permute(0, 3, 1, 2) / 255
        low = F.avg_pool2d(target, 2)
        psnr = lambda x: (-10 * torch.log10(F.mse_loss(x.clamp(0, 1), target))).item()
        log(f"{step} steps; held-out PSNR: ours {psnr(net(low)):.2f} dB, bicubic "
            f"{psnr(F.interpolate(low, scale_factor=2, mode='bicubic')):.2f} dB, nearest "
            f"{psnr(F.interpolate(low, scale_factor=2)):.2f} dB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in net.state_dict().items()}, str(args.out))
    log(f"written {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
