"""Train graphflow's demo checkpoint: a tiny SD1-layout latent-diffusion model of coloured shapes.

    .venv/bin/python tools/train_demo.py                 # everything, then save the checkpoint
    .venv/bin/python tools/train_demo.py --stage vae     # one stage; later stages reuse saved stages
    .venv/bin/python tools/train_demo.py --stage unet --unet-steps 6000

Measured on the 2-core development machine (1 torch thread, the machine shared): VAE 3000 steps at
0.70 s/step = 35 min; encoding the 10000 training images 1 min; UNet + text encoder 3500 steps at
0.85 s/step = 50 min; save and eval under a minute: about 87 minutes in all. The shipped file is the
3500-step EMA snapshot (held-out VAE PSNR 31.9 dB; 100% colour / shape / background accuracy on the
54-image eval grid at cfg 5).
With --device cuda on an H100 (torch 2.11): VAE 1.9 min, UNet 3.4 min, 5.5 minutes in all; that
file (not bit-identical: other kernels) scored held-out PSNR 32.2 dB and 100% / 98% / 100% on the grid.

Stages (each saves its result under --work, so a stage can be re-run alone):
  vae   a KL autoencoder (8x down, 4 latent channels, like SD's) on freshly generated images,
        loss MSE + 0.5 L1 + kl_weight * KL; prints held-out PSNR.
  unet  encodes a fixed set of generated images ONCE, sets the scaling factor to 1 / std of those
        latents (how SD's 0.18215 was found), then trains a small CLIPTextModel and a conditional
        UNet together on the scaled latents: eps prediction, SD's scaled-linear betas (0.00085 ..
        0.012, 1000 steps), 10% empty captions for classifier-free guidance, min-SNR loss weights,
        constant learning rate after warm-up and an EMA of the weights (the EMA is what is saved,
        every --checkpoint-every steps, so a run with fewer steps is a prefix of a longer one).
  save  writes the checkpoint in the LDM single-file layout (model.diffusion_model.*,
        first_stage_model.*, cond_stage_model.transformer.text_model.*) with a graphflow.config
        metadata entry for what shapes do not show (norm groups, heads, the scaling factor, a
        latent -> RGB preview fit); stored as fp16. The VAE's raw latents are put in larger units
        first (LATENT_UNITS, below), which divides the scaling factor by the same number.
  eval  samples the prompt grid from the saved file through graphflow's sampler and prints
        colour / shape / background accuracy (graphflow.demo.evaluate), at the default cfg and 1.0.

Everything is seeded: the same flags give the same file on the same torch build.
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import CLIPTextConfig, CLIPTextModel

from graphflow.demo import shapes
from graphflow.models.architecture import UNET_PREFIX, VAE_PREFIX
from graphflow.models.weight_files import config_metadata
from graphflow.models.diffusion_model import BetaSchedule
from graphflow.models.text_encoders import text_transformer
from graphflow.models.tokenizer import BOS, EOS, tokenize_prompt
from graphflow.models.unet import UNet, UNetConfig
from graphflow.models.vae import AutoencoderKL, VAEConfig

ROOT = Path(__file__).resolve().parent.parent
CLIP_PREFIX = "cond_stage_model.transformer.text_model."
DEFAULT_OUT = ROOT / "graphflow" / "bundled" / "checkpoints" / "graphflow-demo.safetensors"  # on LoadCheckpoint's search path

# Narrow at full resolution (where nearly all the compute is), wide at 8x8 (where the latent is made).
# One norm group: GroupNorm with few channels per group normalises each colour channel of each image
# on its own and erases the image's colour (measured here, 400 steps: 1 group 19.7 dB, 8 groups 17.8 dB;
# after 3000 steps with 8 groups reconstructions still had the wrong colours).
VAE_CONFIG = VAEConfig(ch=16, ch_mult=(1, 2, 4, 8), num_res_blocks=1, z_channels=4, embed_dim=4, norm_groups=1)
# Latents are 8x8: attention at 8x8 and 4x4 (and the 2x2 middle); 64-channel heads as SD2/SDXL;
# 8 norm groups (SD's 32 groups over 320 channels is 10 per group; 32 over 64 would be 2).
UNET_CONFIG = UNetConfig(in_channels=4, out_channels=4, model_channels=64, channel_mult=(1, 2, 2),
                         num_res_blocks=1, transformer_depth=(1, 1, 0), transformer_depth_middle=1,
                         context_dim=64, num_heads=-1, num_head_channels=64, norm_groups=8)
# The raw latent space of a KL-VAE with a negligible KL weight has no natural unit (ours come out with
# std ~1.5, scaling factor ~0.65). The saved VAE's latents are made LATENT_UNITS times larger (an exact
# reparametrisation, see in_latent_units), so its scaling factor is far from 1 AND from SD's 0.18215,
# as SD's own is: a pipeline that forgets the factor, or uses SD1's, makes visibly wrong images.
LATENT_UNITS = 8.0
CLIP_CONFIG = dict(vocab_size=EOS + 1, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                   num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
                   layer_norm_eps=1e-5, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=1)


def log(*parts):
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in -1..1 (the VAE's input range)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def on_cpu(state: dict) -> dict:
    return {k: v.detach().cpu() for k, v in state.items()}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two batches of images in -1..1, over the 0..1 range."""
    mse = (((a.clamp(-1, 1) - b) / 2) ** 2).mean().item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


@torch.no_grad()
def encode_means(vae: AutoencoderKL, pixels: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([vae.encode(pixels[i:i + batch])[0] for i in range(0, len(pixels), batch)])


@torch.no_grad()
def reconstruct(vae: AutoencoderKL, pixels: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([vae.decode(vae.encode(pixels[i:i + batch])[0]) for i in range(0, len(pixels), batch)])


# -- stage 1: the autoencoder ------------------------------------------------------------------

def train_vae(args) -> None:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    vae = AutoencoderKL(VAE_CONFIG).to(args.device)
    log(f"VAE: {sum(p.numel() for p in vae.parameters()) / 1e6:.2f}M params, {VAE_CONFIG}")
    held_out = to_pixels(shapes.dataset(args.eval_images, seed=args.seed + 1000)[0]).to(args.device)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    start = time.time()
    for step in range(args.vae_steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, args.vae_steps, args.vae_lr, warmup=100)
        specs = [shapes.random_spec(rng) for _ in range(args.vae_batch)]
        x = to_pixels(np.stack([shapes.render(s, rng=rng) for s in specs])).to(args.device)
        mean, logvar = vae.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        kl = 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)).mean()
        rec = vae.decode(z)
        mse, l1 = F.mse_loss(rec, x), F.l1_loss(rec, x)
        loss = mse + 0.5 * l1 + args.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.vae_steps - 1:
            rate = (time.time() - start) / (step + 1)
            log(f"vae step {step:5d}  loss {loss.item():.4f}  mse {mse.item():.5f}  l1 {l1.item():.4f}  "
                f"kl {kl.item():.1f}  {rate:.2f} s/step")
        if (step + 1) % 1000 == 0 or step == args.vae_steps - 1:
            vae.eval()
            log(f"vae step {step + 1}: held-out PSNR {psnr(reconstruct(vae, held_out), held_out):.2f} dB")
            vae.train()
    minutes = (time.time() - start) / 60
    log(f"VAE trained in {minutes:.1f} min")
    torch.save({"state": on_cpu(vae.state_dict()), "minutes": minutes}, args.work / "vae.pt")


# -- stage 2: text encoder + UNet --------------------------------------------------------------

class EMA:
    """Exponential moving average of parameters, warmed up so early averages are not all init."""

    def __init__(self, params, decay: float):
        self.params = list(params)
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self):
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - d)

    @torch.no_grad()
    def copy_to(self, params):
        for p, s in zip(params, self.shadow):
            p.copy_(s)


def caption_tokens(captions: list[str]) -> torch.Tensor:
    """The 77 token ids per caption exactly as graphflow's CLIP socket builds them for SD1."""
    return torch.tensor([tokenize_prompt(c, EOS).ids[0] for c in captions], dtype=torch.long)


def train_unet(args) -> None:
    torch.manual_seed(args.seed + 1)
    vae = AutoencoderKL(VAE_CONFIG)
    vae.load_state_dict(torch.load(args.work / "vae.pt", map_location="cpu")["state"])
    vae.eval().requires_grad_(False).to(args.device)

    start = time.time()
    images, specs = shapes.dataset(args.unet_images, seed=args.seed + 2000)
    latents = encode_means(vae, to_pixels(images).to(args.device))
    scale = 1.0 / latents.std().item()
    log(f"encoded {len(latents)} images in {time.time() - start:.0f} s; latent mean {latents.mean():.3f} "
        f"std {latents.std():.3f} -> scaling factor {scale:.5f}")
    latents = latents * scale

    captions = sorted({s.caption for s in specs}) + [""]  # the last one is the empty (unconditional) prompt
    caption_index = torch.tensor([captions.index(s.caption) for s in specs])
    tokens = caption_tokens(captions).to(args.device)
    empty = len(captions) - 1

    clip = CLIPTextModel(CLIPTextConfig(**CLIP_CONFIG)).to(args.device)
    unet = UNet(UNET_CONFIG).to(args.device)
    params = list(unet.parameters()) + list(clip.parameters())
    log(f"UNet {sum(p.numel() for p in unet.parameters()) / 1e6:.2f}M params, text encoder "
        f"{sum(p.numel() for p in clip.parameters()) / 1e6:.2f}M params")
    opt = torch.optim.AdamW(params, lr=args.unet_lr, weight_decay=0.0)
    ema = EMA(params, args.ema)
    alphas = BetaSchedule().alphas_cumprod().float().to(args.device)
    snr = alphas / (1 - alphas)
    weight = snr.clamp(max=args.min_snr) / snr  # min-SNR-gamma weighting for eps prediction

    gen = torch.Generator().manual_seed(args.seed + 3)
    train_start, recent = time.time(), []
    for step in range(args.unet_steps):
        for group in opt.param_groups:  # constant after warm-up: the EMA does the averaging, and a
            group["lr"] = args.unet_lr * min(1.0, (step + 1) / 200)  # shorter run = this run's first steps
        idx = torch.randint(len(latents), (args.unet_batch,), generator=gen)
        x0 = latents[idx.to(args.device)]
        cap = caption_index[idx]
        cap = torch.where(torch.rand(len(cap), generator=gen) < args.uncond_prob, empty, cap)
        # run the text encoder once per distinct caption in the batch, not once per sample
        used, inverse = torch.unique(cap, return_inverse=True)
        context = text_transformer(clip)(input_ids=tokens[used.to(args.device)]).last_hidden_state[inverse.to(args.device)]
        t = torch.randint(0, 1000, (len(x0),), generator=gen).to(args.device)
        noise = torch.randn(x0.shape, generator=gen).to(args.device)
        a = alphas[t][:, None, None, None]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred = unet(xt, t.float(), context)
        loss = (weight[t] * ((pred - noise) ** 2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update()
        recent.append(((pred - noise) ** 2).mean().item())
        if step % 100 == 0 or step == args.unet_steps - 1:
            rate = (time.time() - train_start) / (step + 1)
            log(f"unet step {step:5d}  loss {loss.item():.4f}  eps-mse(avg100) {np.mean(recent[-100:]):.4f}  "
                f"lr {opt.param_groups[0]['lr']:.2e}  {rate:.2f} s/step")
        if args.checkpoint_every and (step + 1) % args.checkpoint_every == 0:
            _save_unet(args, unet, clip, ema, params, scale, step + 1, train_start, recent)
    if not args.checkpoint_every or args.unet_steps % args.checkpoint_every:
        _save_unet(args, unet, clip, ema, params, scale, args.unet_steps, train_start, recent)
    log(f"UNet + text encoder trained in {(time.time() - train_start) / 60:.1f} min")


def _save_unet(args, unet, clip, ema, params, scale, steps, train_start, recent):
    live = [p.detach().clone() for p in params]
    ema.copy_to(params)
    torch.save({"unet": on_cpu(unet.state_dict()), "clip": on_cpu(text_transformer(clip).state_dict()), "scale": scale,
                "steps": steps, "minutes": (time.time() - train_start) / 60,
                "final_eps_mse": float(np.mean(recent[-200:]))}, args.work / "unet.pt")
    with torch.no_grad():
        for p, v in zip(params, live):
            p.copy_(v)
    log(f"saved EMA weights after {steps} steps")


# -- stage 3: the single-file checkpoint -------------------------------------------------------

def in_latent_units(vae_state: dict, units: float) -> dict:
    """The same autoencoder with raw latents `units` times larger: quant_conv's mean outputs are
    multiplied (its log-variance outputs shifted by 2 ln units, the same posterior), post_quant_conv's
    inputs divided. Encode -> decode is unchanged; the scaling factor divides by `units`."""
    state = {k: v.clone() for k, v in vae_state.items()}
    c = VAE_CONFIG.embed_dim
    state["quant_conv.weight"][:c] *= units
    state["quant_conv.bias"][:c] *= units
    state["quant_conv.bias"][c:] += 2 * math.log(units)
    state["post_quant_conv.weight"] /= units
    return state


@torch.no_grad()
def preview_factors(vae_state: dict, scale: float) -> tuple[list, list]:
    """Least-squares latent -> RGB map for live previews (graphflow.models.latent_formats)."""
    from graphflow.models.latent_formats import fit_rgb_factors

    vae = AutoencoderKL(VAE_CONFIG)
    vae.load_state_dict(vae_state)
    vae.eval()
    pixels = to_pixels(shapes.dataset(512, seed=5000)[0])
    factors, bias = fit_rgb_factors(encode_means(vae, pixels) * scale, pixels)
    return [[round(v, 4) for v in row] for row in factors.tolist()], [round(v, 4) for v in bias.tolist()]


def save_checkpoint(args) -> None:
    from safetensors.torch import save_file

    vae = torch.load(args.work / "vae.pt", map_location="cpu")
    trained = torch.load(args.work / "unet.pt", map_location="cpu")
    vae_state = in_latent_units(vae["state"], LATENT_UNITS)
    scale = trained["scale"] / LATENT_UNITS  # the UNet sees the same scaled latents as in training
    rgb_factors, rgb_bias = preview_factors(vae_state, scale)
    state = {}
    state.update({UNET_PREFIX + k: v for k, v in trained["unet"].items()})
    state.update({VAE_PREFIX + k: v for k, v in vae_state.items()})
    state.update({CLIP_PREFIX + k: v for k, v in trained["clip"].items() if not k.endswith("position_ids")})
    dtype = {"fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    metadata = config_metadata(
        prediction="eps",
        vae={"norm_groups": VAE_CONFIG.norm_groups},
        unet={"norm_groups": UNET_CONFIG.norm_groups},
        text_encoders={"clip_l": {"num_attention_heads": CLIP_CONFIG["num_attention_heads"],
                                  "hidden_act": CLIP_CONFIG["hidden_act"]}},
        latent_format={"scale_factor": round(scale, 6), "shift_factor": 0.0,
                       "rgb_factors": rgb_factors, "rgb_bias": rgb_bias},
    )
    metadata["graphflow.demo"] = json.dumps({
        "about": "graphflow demo model: coloured shapes, trained by tools/train_demo.py",
        "caption": "a {colour} {shape} on a {background} background",
        "colours": list(shapes.COLOURS), "shapes": list(shapes.SHAPES), "backgrounds": list(shapes.BACKGROUNDS),
        "image_size": shapes.IMAGE_SIZE, "seed": args.seed, "unet_steps": trained["steps"],
        "vae_minutes": round(vae["minutes"], 1), "unet_minutes": round(trained["minutes"], 1),
    })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata=metadata)
    args.out.chmod(0o644)  # safetensors writes 0600; the file ships with the package
    log(f"saved {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB, {len(state)} tensors, "
        f"scaling factor {scale:.6f})")


# -- stage 4: judge the saved file through the engine --------------------------------------------

def evaluate_checkpoint(args) -> None:
    from graphflow.demo import evaluate
    from graphflow.models.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(args.out, device="cpu", dtype=torch.float32)
    for cfg in (evaluate.DEFAULTS["cfg"], 1.0):
        start = time.time()
        report = evaluate.evaluate(checkpoint, repeats=args.eval_repeats, cfg=cfg)
        log(f"cfg {cfg}: {report.summary()} ({time.time() - start:.0f} s)")
        grid = args.work / f"grid_cfg{cfg:g}.png"
        evaluate.save_grid(report.images, grid, columns=len(shapes.SHAPES) * 3)
        log(f"wrote {grid}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stage", choices=("all", "vae", "unet", "save", "eval"), default="all")
    p.add_argument("--work", type=Path, default=ROOT / "tools" / "train_logs", help="where stage results go")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda: where the two training stages run")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads; on the 2-core dev machine, shared, 1 thread ran 2-5x faster than 2")
    p.add_argument("--vae-steps", type=int, default=3000)
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--vae-lr", type=float, default=1e-3)
    p.add_argument("--kl-weight", type=float, default=1e-6)
    p.add_argument("--eval-images", type=int, default=256)
    p.add_argument("--unet-images", type=int, default=10000)
    p.add_argument("--unet-steps", type=int, default=3500)
    p.add_argument("--unet-batch", type=int, default=64)
    p.add_argument("--unet-lr", type=float, default=1e-3)
    p.add_argument("--uncond-prob", type=float, default=0.1)
    p.add_argument("--min-snr", type=float, default=5.0)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--dtype", choices=("fp16", "fp32"), default="fp16")
    p.add_argument("--eval-repeats", type=int, default=3, help="images per colour x shape in the eval grid")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.stage in ("all", "vae"):
        train_vae(args)
    if args.stage in ("all", "unet"):
        train_unet(args)
    if args.stage in ("all", "save"):
        save_checkpoint(args)
    if args.stage in ("all", "eval"):
        evaluate_checkpoint(args)


if __name__ == "__main__":
    main()
