"""A 20-step euler txt2img run on full-size SD1.5 weights: graphflow against diffusers'
StableDiffusionPipeline on the very same (random) weights, in one run.

    .venv/bin/python bench/sampling.py [--size 256] [--steps 20] [--cfg 7.5] [--reps 2] [--threads 2] [--device cpu]

A random full-size SD1.5 checkpoint is written in the LDM layout and loaded with graphflow's
load_checkpoint. diffusers gets the same tensors: the UNet and VAE through diffusers' own
single-file converters (sharing storage), the text encoder is the same transformers module,
the tokenizer reads our shipped CLIP vocabulary, the scheduler is EulerDiscreteScheduler with
SD's scaled-linear betas. Both runs start from the same initial noise and do the whole job:
encode both prompts, 20 euler steps with CFG (one batched UNet forward per step), VAE decode.
Figures are the minimum over alternating repetitions after a warm-up; the ratio is ours /
diffusers. The pictures differ slightly by design (graphflow follows ComfyUI: the `normal`
schedule and whole-number timesteps; diffusers interpolates), so the difference is printed
for information only.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphflow.models.checkpoint import load_checkpoint  # noqa: E402
from graphflow.sampling import sample  # noqa: E402
from graphflow.testing import write_checkpoint  # noqa: E402

PROMPT, NEGATIVE = "a photograph of an astronaut riding a horse", "blurry, low quality"


def diffusers_pipeline(checkpoint, device):
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
                                                     create_unet_diffusers_config_from_ldm,
                                                     create_vae_diffusers_config_from_ldm)
    from transformers import CLIPTokenizer

    from graphflow.models.tokenizer import VOCAB_DIR
    from tests.test_unet import ldm_original_config as unet_original
    from tests.test_vae import ldm_original_config as vae_original

    def twin(cls, module, prefix, make_config, original, convert):
        state = {prefix + k: v for k, v in module.state_dict().items()}
        config = make_config(original(module.config), state)
        converted = convert(state, config)
        with torch.device("meta"):
            model = cls(**config)
        model.load_state_dict(converted, strict=True, assign=True)
        return model.eval()

    unet = twin(UNet2DConditionModel, checkpoint.model.unet, "model.diffusion_model.",
                create_unet_diffusers_config_from_ldm, unet_original, convert_ldm_unet_checkpoint)
    vae = twin(AutoencoderKL, checkpoint.vae.module, "first_stage_model.",
               lambda original, state: create_vae_diffusers_config_from_ldm(original, state,
                                                                            scaling_factor=0.18215),
               vae_original, convert_ldm_vae_checkpoint)
    tokenizer = CLIPTokenizer(str(VOCAB_DIR / "vocab.json"), str(VOCAB_DIR / "merges.txt"), model_max_length=77)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       num_train_timesteps=1000, timestep_spacing="linspace")
    text_encoder = checkpoint.clip.towers[0].model
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (latent = size / 8)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sd15_random.safetensors"
        write_checkpoint(path, "sd1", scaled_down=False, seed=0)
        print(f"random SD1.5 checkpoint: {path.stat().st_size / 2**30:.2f} GiB")
        checkpoint = load_checkpoint(path, device=device, dtype=dtype)
        pipe = diffusers_pipeline(checkpoint, device)

        side = args.size // 8
        latent = {"samples": torch.zeros(1, 4, side, side)}
        noise = torch.randn(1, 4, side, side, generator=torch.Generator().manual_seed(42))

        def ours():
            positive = [(checkpoint.clip.encode(PROMPT)[0], {})]
            negative = [(checkpoint.clip.encode(NEGATIVE)[0], {})]
            out = sample(checkpoint.model, 42, args.steps, args.cfg, "euler", "normal", positive, negative,
                         latent, preview_every=0)
            return checkpoint.vae.decode(out["samples"])

        def theirs():
            # Our sample() scales the seed's noise by sqrt(1 + sigma_max^2); diffusers by its
            # scheduler's init_noise_sigma: hand it the same unit noise.
            image = pipe(PROMPT, negative_prompt=NEGATIVE, height=args.size, width=args.size,
                         num_inference_steps=args.steps, guidance_scale=args.cfg,
                         latents=noise.to(device, dtype), output_type="pt").images
            return image.permute(0, 2, 3, 1).float().cpu()

        def timed(fn):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.inference_mode():
                result = fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - t0, result

        timed(ours), timed(theirs)  # warm-up
        times = {"graphflow": [], "diffusers": []}
        for _ in range(args.reps):
            seconds, ours_image = timed(ours)
            times["graphflow"].append(seconds)
            seconds, their_image = timed(theirs)
            times["diffusers"].append(seconds)

    best = {k: min(v) for k, v in times.items()}
    print(f"txt2img {args.size}x{args.size}, {args.steps} euler steps, cfg {args.cfg}, {device.type} {dtype}, "
          f"{args.threads} threads, min of {args.reps} after a warm-up")
    for name, values in times.items():
        print(f"  {name:10s} {best[name]:7.2f} s   ({args.steps / best[name]:.2f} steps/s; all "
              f"{', '.join(f'{v:.2f}' for v in values)})")
    print(f"  ratio graphflow / diffusers: {best['graphflow'] / best['diffusers']:.3f}")
    print(f"  mean |image difference| (informative: schedules differ by design): "
          f"{(ours_image - their_image).abs().mean():.4f}")


if __name__ == "__main__":
    main()
