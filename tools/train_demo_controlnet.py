"""Train the demo ControlNet: the hint image (a white silhouette on black) says where the shape goes.

    .venv/bin/python tools/train_demo_controlnet.py [--minutes 12] [--batch 16]

The demo checkpoint (tools/train_demo.py) is loaded through graphflow's own loader and frozen. The
ControlNet starts as a copy of its UNet's encoder with zero-initialised output convs (and hint
block output), as in Zhang et al. 2023, so training starts from the unchanged model; it is trained
on the demo's own images (random shape, colour, size and place, the usual captions) with the
silhouette of each image's shape as hint. The caption says what to draw, the hint where and how
big. Written in the original LDM layout (control_model.*, fp16), loaded by ControlNetLoader like
any downloaded ControlNet.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from graphflow.demo import shapes
from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.controlnet import ControlNet, ControlNetConfig
from graphflow.models.diffusion_model import BetaSchedule

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "graphflow" / "bundled"
CHECKPOINT = BUNDLED / "checkpoints" / "graphflow-demo.safetensors"
DEFAULT_OUT = BUNDLED / "controlnet" / "graphflow-demo-silhouette.safetensors"
HINT_BLOCK = (16, 32, 32, 64)  # narrower than SD's (16, 32, 96, 256): the demo's hints are plain masks


def log(*parts):
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def controlnet_from_unet(unet) -> ControlNet:
    net = ControlNet(ControlNetConfig(unet=unet.config, hint_channels=3, hint_block=HINT_BLOCK))
    missing = net.load_state_dict(unet.state_dict(), strict=False).missing_keys
    assert all(k.startswith(("zero_convs", "middle_block_out", "input_hint_block")) for k in missing), missing
    for module in (*net.zero_convs, net.middle_block_out, net.input_hint_block[-1]):
        for p in module.parameters():
            torch.nn.init.zeros_(p)
    return net


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--minutes", type=float, default=12.0, help="training time budget (stops earlier at --steps)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    checkpoint = load_checkpoint(args.checkpoint, device="cpu", dtype=torch.float32)
    model, clip, vae = checkpoint.model, checkpoint.clip, checkpoint.vae
    start = time.time()
    rng = np.random.default_rng(args.seed)
    specs = [shapes.random_spec(rng) for _ in range(args.images)]
    images = torch.from_numpy(np.stack([shapes.render(s, rng=rng) for s in specs])).float() / 255.0
    hints = torch.from_numpy(np.stack([shapes.render_mask(s) for s in specs])).float().div(255.0).movedim(-1, 1)
    with torch.no_grad():
        latents = model.latent_format.process_in(torch.cat([vae.encode(images[i:i + 256])
                                                            for i in range(0, len(images), 256)]))
        captions = sorted({s.caption for s in specs})
        contexts = {c: clip.encode(c)[0][0] for c in captions}
    context = torch.stack([contexts[s.caption] for s in specs])
    log(f"{len(images)} images encoded in {time.time() - start:.0f} s")

    unet = model.unet.requires_grad_(False)
    net = controlnet_from_unet(unet).train()
    params = list(net.parameters())
    log(f"ControlNet: {sum(p.numel() for p in params) / 1e6:.2f}M parameters")
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    alphas = BetaSchedule().alphas_cumprod().float()
    gen = torch.Generator().manual_seed(args.seed + 1)
    start, recent, step = time.time(), [], 0
    while step < args.steps and time.time() - start < args.minutes * 60:
        idx = torch.randint(len(latents), (args.batch,), generator=gen)
        t = torch.randint(0, 1000, (args.batch,), generator=gen)
        noise = torch.randn(latents[idx].shape, generator=gen)
        a = alphas[t][:, None, None, None]
        x = a.sqrt() * latents[idx] + (1 - a).sqrt() * noise
        control = net(x, hints[idx], t.float(), context[idx])
        loss = F.mse_loss(unet(x, t.float(), context[idx], control=control), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        recent.append(loss.item())
        if step % 50 == 0:
            log(f"controlnet step {step:4d}  loss(avg50) {np.mean(recent[-50:]):.4f}  "
                f"{(time.time() - start) / (step + 1):.2f} s/step")
        step += 1

    from safetensors.torch import save_file

    state = {f"control_model.{k}": v.detach().to(torch.float16).contiguous() for k, v in net.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"graphflow.config": json.dumps({"unet": {"norm_groups": unet.config.norm_groups}}),
                "graphflow.demo": json.dumps({"about": "demo ControlNet: a white-on-black silhouette says where the shape goes",
                                              "steps": step, "batch": args.batch, "base": args.checkpoint.name})}
    save_file(state, str(args.out), metadata=metadata)
    args.out.chmod(0o644)
    log(f"saved {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB) after {step} steps, "
        f"{(time.time() - start) / 60:.1f} min, final loss(avg50) {np.mean(recent[-50:]):.4f}")


if __name__ == "__main__":
    main()
