"""Train the demo LoRA: teaches the demo model to draw its shapes small, in the top-left corner.

    .venv/bin/python tools/train_demo_lora.py [--steps 800] [--rank 8]

The demo checkpoint (tools/train_demo.py) is loaded through graphflow's own loader and frozen.
Low-rank adapters (up @ down, up starting at zero, so training starts from the unchanged model)
are put on the UNet's attention projections and its residual blocks' convolutions, and trained
on drawings of the same shapes with the same captions, always small and in the top-left corner:
the prompt stays "a red circle on a blue background", only the composition changes, so the
LoRA's effect is plain to see and to measure (where the shape's centre is). The result is written as a kohya-style
LoRA file (lora_unet_<diffusers block name>.lora_down/lora_up/alpha), the format users bring,
and is applied by the LoadLoRA node like any other.
"""

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from graphflow.demo import shapes
from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.diffusion_model import BetaSchedule
from graphflow.models.lora import unet_lora_names

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "graphflow" / "bundled"
CHECKPOINT = BUNDLED / "checkpoints" / "graphflow-demo.safetensors"
DEFAULT_OUT = BUNDLED / "loras" / "graphflow-demo-corner.safetensors"
TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k",
           "attn2.to_v", "attn2.to_out.0", "in_layers.2", "out_layers.3", "proj_in", "proj_out")


def log(*parts):
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def corner_spec(rng: np.random.Generator) -> shapes.ShapeSpec:
    """A random caption's shape, drawn small and in the top-left corner. The demo VAE only knows
    filled shapes of the training sizes (outlines or pastel colours reconstruct at 19 dB, against
    33 dB for its own kind of image), so the LoRA changes where and how big, which it can draw."""
    spec = shapes.random_spec(rng)
    side = float(rng.uniform(shapes.MIN_SIDE, shapes.MIN_SIDE + 0.04))
    low = shapes.MARGIN + side / 2
    return replace(spec, side=side, cx=low + float(rng.uniform(0, 0.03)), cy=low + float(rng.uniform(0, 0.03)))


class LowRank(nn.Module):
    """A frozen Linear or Conv2d plus a trainable (alpha / rank) * up(down(x))."""

    def __init__(self, base: nn.Module, rank: int, alpha: float):
        super().__init__()
        self.base, self.scale = base, alpha / rank
        if isinstance(base, nn.Conv2d):
            self.down = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding, bias=False)
            self.up = nn.Conv2d(rank, base.out_channels, 1, bias=False)
        else:
            self.down = nn.Linear(base.in_features, rank, bias=False)
            self.up = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.down.weight, a=5 ** 0.5)
        nn.init.zeros_(self.up.weight)

    def forward(self, x):
        return self.base(x) + self.scale * self.up(self.down(x))


def attach(unet: nn.Module, rank: int, alpha: float) -> dict[str, LowRank]:
    """Wrap every targeted layer of the UNet; returns our module path -> adapter."""
    adapters = {}
    for path, module in list(unet.named_modules()):
        if path.endswith(TARGETS) and isinstance(module, (nn.Linear, nn.Conv2d)):
            parent_path, _, name = path.rpartition(".")
            adapter = LowRank(module, rank, alpha)
            setattr(unet.get_submodule(parent_path), name, adapter)
            adapters[path] = adapter
    return adapters


def kohya_names(unet: nn.Module) -> dict[str, str]:
    """Our module path -> the kohya name trainers write (diffusers block spelling, not LDM's)."""
    ldm = ("input_blocks", "middle_block", "output_blocks", "time_embed_", "label_emb")
    names = {}
    for name, path in unet_lora_names(unet).items():
        if path not in names or not any(part in name for part in ldm):
            names[path] = name
    return names


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--images", type=int, default=3000)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    checkpoint = load_checkpoint(args.checkpoint, device="cpu", dtype=torch.float32)
    model, clip, vae = checkpoint.model, checkpoint.clip, checkpoint.vae
    start = time.time()
    rng = np.random.default_rng(args.seed)
    specs = [corner_spec(rng) for _ in range(args.images)]
    images = torch.from_numpy(np.stack([shapes.render(s, rng=rng) for s in specs])).float() / 255.0
    latents = model.latent_format.process_in(torch.cat([vae.encode(images[i:i + 256])
                                                        for i in range(0, len(images), 256)]))
    captions = sorted({s.caption for s in specs})
    contexts = {c: clip.encode(c)[0][0] for c in captions}
    context = torch.stack([contexts[s.caption] for s in specs])
    log(f"{len(images)} corner images encoded in {time.time() - start:.0f} s")

    unet = model.unet.requires_grad_(False)
    kohya = kohya_names(unet)  # before the adapters rename the module paths
    adapters = attach(unet, args.rank, float(args.rank))
    params = [p for a in adapters.values() for p in (a.down.weight, a.up.weight)]
    log(f"{len(adapters)} adapted layers, {sum(p.numel() for p in params) / 1e3:.0f}k trainable parameters")
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    alphas = BetaSchedule().alphas_cumprod().float()
    gen = torch.Generator().manual_seed(args.seed + 1)
    start, recent = time.time(), []
    for step in range(args.steps):
        idx = torch.randint(len(latents), (args.batch,), generator=gen)
        t = torch.randint(0, 1000, (args.batch,), generator=gen)
        noise = torch.randn(latents[idx].shape, generator=gen)
        a = alphas[t][:, None, None, None]
        pred = unet(a.sqrt() * latents[idx] + (1 - a).sqrt() * noise, t.float(), context[idx])
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        recent.append(loss.item())
        if step % 100 == 0 or step == args.steps - 1:
            log(f"lora step {step:4d}  loss(avg100) {np.mean(recent[-100:]):.4f}  "
                f"{(time.time() - start) / (step + 1):.2f} s/step")

    from safetensors.torch import save_file

    state = {}
    for path, adapter in adapters.items():
        name = kohya[path]
        state[f"{name}.lora_down.weight"] = adapter.down.weight.detach().to(torch.float16).contiguous()
        state[f"{name}.lora_up.weight"] = adapter.up.weight.detach().to(torch.float16).contiguous()
        state[f"{name}.alpha"] = torch.tensor(float(args.rank), dtype=torch.float16)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"graphflow.demo": json.dumps({"about": "demo LoRA: shapes drawn small in the top-left corner", "rank": args.rank,
                                               "steps": args.steps, "base": args.checkpoint.name})}
    save_file(state, str(args.out), metadata=metadata)
    args.out.chmod(0o644)
    log(f"saved {args.out} ({args.out.stat().st_size / 2**10:.0f} KiB, {len(adapters)} layers) "
        f"in {(time.time() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
