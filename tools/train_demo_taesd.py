"""Train a TAESD (tiny autoencoder) for the demo model, for fast previews and fast decodes.

    .venv/bin/python tools/train_demo_taesd.py [--minutes 3] [--channels 32]

Distillation, as TAESD itself was made: drawings from graphflow.demo.shapes are encoded with the
demo checkpoint's own VAE (posterior mean, times its scaling factor: the diffusion model's latent
space). The decoder learns to reproduce the demo VAE's decode of those latents; the encoder
learns the demo VAE's latents from the images. On this shared 2-core CPU one thread is fastest
(about 0.6 s a step at batch 16 and 16 channels). The architecture is graphflow.models.taesd's (the original
TAESD layout) with fewer channels, so the files load like downloaded TAESD files. They are
written to graphflow/bundled/demo_taesd/taesd_{encoder,decoder}.safetensors; copy them into
models/vae_approx/ to get TAESD previews (`--previews taesd`) and the "taesd" VAE with the demo model.
They are not in a searched folder on purpose: they only fit the demo model's latents, and an
SD1.5 user must not get them instead of the latent2rgb fallback.
"""

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from graphflow.demo import shapes
from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.taesd import Decoder, Encoder, TAESDConfig
from graphflow.models.weight_files import config_metadata

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "graphflow" / "bundled" / "checkpoints" / "graphflow-demo.safetensors"
OUT = ROOT / "graphflow" / "bundled" / "demo_taesd"


def log(*parts):
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=6.0,
                        help="training time: two thirds for the decoder, one third for the encoder")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    vae = load_checkpoint(CHECKPOINT, device="cpu", dtype=torch.float32).vae
    scale = vae.latent_format
    images, _ = shapes.dataset(args.images, seed=1234)
    pixels = torch.from_numpy(images).float() / 255  # [N, 64, 64, 3]
    with torch.no_grad():
        latents = torch.cat([vae.encode(pixels[i:i + 256]) for i in range(0, len(pixels), 256)])
        model_space = scale.process_in(latents)
        # the decoder's targets: the demo VAE's decode of the same latents (its reconstruction)
        targets = torch.cat([vae.decode(latents[i:i + 128]) for i in range(0, len(latents), 128)]).permute(0, 3, 1, 2)
    log(f"{len(pixels)} drawings encoded; model-space latent std {model_space.std():.3f}")

    cfg = TAESDConfig(latent_channels=4, channels=args.channels)
    decoder, encoder = Decoder(cfg), Encoder(cfg)
    for name, net, share in (("decoder", decoder, 2 / 3), ("encoder", encoder, 1 / 3)):
        seconds = args.minutes * 60 * share
        opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.0)
        start, step = time.time(), 0
        while time.time() - start < seconds:
            idx = torch.randint(0, len(pixels), (args.batch,))
            if name == "decoder":
                out = net(model_space[idx])
                loss = F.mse_loss(out, targets[idx]) + 0.5 * F.l1_loss(out, targets[idx])
            else:
                loss = F.mse_loss(net(pixels[idx].permute(0, 3, 1, 2)), model_space[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % 50 == 0:
                log(f"{name} step {step} loss {loss.item():.5f}")
        log(f"{name}: {step} steps in {time.time() - start:.0f}s, last loss {loss.item():.5f}")

    with torch.no_grad():  # held-out check: decoded drawings against the demo VAE's decode
        test, _ = shapes.dataset(64, seed=99)
        x = torch.from_numpy(test).float() / 255
        ref = vae.decode(vae.encode(x))
        ours = decoder(scale.process_in(vae.encode(x))).clamp(0, 1).permute(0, 2, 3, 1)
        psnr = -10 * torch.log10(F.mse_loss(ours, ref))
        lat_err = (encoder(x.permute(0, 3, 1, 2)) - scale.process_in(vae.encode(x))).pow(2).mean().sqrt()
    log(f"held out: decoder PSNR {psnr:.1f} dB against the demo VAE; encoder latent RMSE {lat_err:.3f} "
        f"(latent std {model_space.std():.3f})")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, net in (("encoder", encoder), ("decoder", decoder)):
        state = {k: v.half().contiguous() for k, v in net.state_dict().items()}
        # the demo's latent scale, so LoadVAE's "taesd" maps the demo's raw latents correctly
        meta = config_metadata(latent_format={"scale_factor": scale.scale_factor, "shift_factor": scale.shift_factor})
        save_file(state, str(args.out / f"taesd_{name}.safetensors"), metadata=meta)
    log(f"written to {args.out}")


if __name__ == "__main__":
    main()
