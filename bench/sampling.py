"""Sampling speed: graphflow against diffusers on the very same (random, full-size) weights, in one run.

    .venv/bin/python bench/sampling.py                       # the sections for this machine (below)
    .venv/bin/python bench/sampling.py --section step        # CPU: one SD1.5 UNet step at 256^2
    .venv/bin/python bench/sampling.py --section gpu         # CUDA: SD1.5 512^2, SDXL 1024^2 loops
    .venv/bin/python bench/sampling.py --section pipeline    # whole txt2img against StableDiffusionPipeline
    options: [--reps 3] [--threads 2] [--steps 20] [--cfg 7.5] [--size 256] [--device cpu]
             [--scaled-down]  (step, gpu: small models, to check the script itself anywhere; figures mean nothing)

By default a machine with CUDA runs `gpu`, any other `step`. Figures are the minimum over
alternating repetitions after a warm-up (the least disturbed by other work on the machine).

step (the issue's CPU goal: graphflow's fast mode <= 0.6x diffusers' fp32 time). A full-size
SD1.5 UNet (random weights at the real config, built in memory) does one denoising step at
256^2 (latent 32x32), batch 2 (cond + uncond), as graphflow's sampler calls it (ModelDenoiser:
input scaled and cast to the model's dtype, output back to fp32) in the dtype graphflow picks
by itself (GRAPHFLOW_DTYPE, default auto: bf16 where the CPU has native bf16), against diffusers'
UNet2DConditionModel in fp32 doing what StableDiffusionPipeline does per step (scale the input,
UNet, eps -> x0), and graphflow in fp32 for reference. diffusers' model holds the very same
tensors as graphflow's fp32 one (converted by diffusers' own single-file code, sharing storage);
the fast model is a cast of them. The printed differences are of the denoised x0 (|x0| ~ 1).

gpu (the issue's GPU goal: >= 1.5x diffusers' it/s). SD1.5 at 512^2 and SDXL at 1024^2, batch 1
with CFG (cond + uncond batched in one UNet call, as both do), 20 euler steps: graphflow's
`sample()` (KSampler's path, the model in graphflow's own dtype and settings) against the
denoising loop of diffusers' StableDiffusion(XL)Pipeline written out (EulerDiscreteScheduler,
fp16 UNet, prompt embeddings given: what the pipeline's __call__ runs per step). The two use
the same weights (shared tensors when graphflow also runs fp16); schedules differ slightly by
design (graphflow follows ComfyUI), so speed is the figure; one denoising step on identical
inputs is compared to show the networks agree.

pipeline: a 20-step euler txt2img run (prompt encoding, sampling with CFG, VAE decode) against
StableDiffusionPipeline on a random full-size SD1.5 checkpoint written in the LDM layout and
loaded by graphflow's load_checkpoint; diffusers gets the same tensors (UNet and VAE through its
single-file converters, the same transformers text encoder, our shipped CLIP vocabulary).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphflow.device import compute_device, cpu_has_native_bf16, default_dtype, dtype_override  # noqa: E402
from graphflow.models import DiffusionModel, UNet  # noqa: E402
from graphflow.sampling.model_sampling import DiscreteSchedule, ModelDenoiser  # noqa: E402
from graphflow.testing import unet_config  # noqa: E402

PROMPT, NEGATIVE = "a photograph of an astronaut riding a horse", "blurry, low quality"
SIZE_IDS = 6  # SDXL's size conditioning: original h, w, crop top, left, target h, w (256 channels each)


# -- the same weights in diffusers ------------------------------------------------------------

def diffusers_twin(cls, module, prefix, make_config, original, convert):
    """A diffusers model holding `module`'s very tensors, converted by diffusers' single-file code."""
    state = {prefix + k: v for k, v in module.state_dict().items()}
    config = make_config(original(module.config), state)
    converted = convert(state, config)
    with torch.device("meta"):
        model = cls(**config)
    model.load_state_dict(converted, strict=True, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    assert not left, left
    return model.eval().requires_grad_(False)


def diffusers_unet(unet: UNet):
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, create_unet_diffusers_config_from_ldm

    from tests.test_unet import ldm_original_config

    return diffusers_twin(UNet2DConditionModel, unet, "model.diffusion_model.", create_unet_diffusers_config_from_ldm,
                          ldm_original_config, convert_ldm_unet_checkpoint)


def unet_for(arch: str, scaled_down: bool):
    if not scaled_down:
        return unet_config(arch, scaled_down=False)
    from tests.test_unet import TINY  # diffusers reads SDXL from a 2048-wide context: the tests' tiny SDXL has one

    return TINY[arch]


def cast_copy(unet: UNet, dtype: torch.dtype) -> UNet:
    """`unet` in another dtype, as graphflow's loader would build it (the original kept)."""
    if unet.out[2].weight.dtype == dtype:
        return unet
    with torch.device("meta"):
        copy = UNet(unet.config)
    copy.load_state_dict({k: v.to(dtype) for k, v in unet.state_dict().items()}, assign=True)
    return copy.eval().requires_grad_(False)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_alternating(fns: dict, reps: int, device: torch.device) -> dict:
    with torch.inference_mode():
        for fn in fns.values():  # warm-up
            fn()
        sync(device)
        times = {name: [] for name in fns}
        for _ in range(reps):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                sync(device)
                times[name].append(time.perf_counter() - t0)
    return times


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# -- step: one SD1.5 UNet step on the CPU -----------------------------------------------------

def step_section(args, device: torch.device) -> None:
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with device:
        reference = UNet(unet_for("sd1", args.scaled_down)).eval().requires_grad_(False)  # fp32, PyTorch's init
    theirs = diffusers_unet(reference)
    auto = default_dtype("unet", device)
    fast = DiffusionModel(cast_copy(reference, auto), "sd1")
    slow = DiffusionModel(reference, "sd1")
    n_params = sum(p.numel() for p in reference.parameters())
    print(f"SD1.5 UNet{' (scaled down)' if args.scaled_down else ''}: {n_params / 1e6:.1f} M parameters, "
          f"built in {time.perf_counter() - t0:.1f} s")
    why = "GRAPHFLOW_DTYPE" if dtype_override() is not None else (
        "auto: native bf16 (avx512_bf16/amx_bf16)" if cpu_has_native_bf16() else "auto: no native bf16")
    print(f"graphflow's dtype: {dtype_name(auto)} ({why})")

    side, batch = args.size // 8, 2
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 4, side, side, generator=g).to(device)
    context = torch.randn(batch, 77, reference.config.context_dim, generator=g).to(device)
    schedule = DiscreteSchedule.for_model(slow)
    sigma = schedule.sigmas[500].expand(batch).to(device)  # mid-schedule, timestep 500
    t = schedule.timestep(sigma).float()

    def graphflow_step(model):
        denoiser = ModelDenoiser(model, schedule)
        return lambda: denoiser(x, sigma, context)

    def diffusers_step():
        # StableDiffusionPipeline's step with an euler scheduler: scale_model_input, UNet, x0 = x - sigma eps
        s = sigma[:, None, None, None]
        eps = theirs(x / (s ** 2 + 1) ** 0.5, t, encoder_hidden_states=context).sample
        return x - eps * s

    fns = {"diffusers fp32": diffusers_step, "graphflow fp32": graphflow_step(slow)}
    fast_name = f"graphflow {dtype_name(auto)} (auto)" if dtype_override() is None else f"graphflow {dtype_name(auto)}"
    if fast.unet is not reference:
        fns[fast_name] = graphflow_step(fast)
    times = time_alternating(fns, args.reps, device)
    with torch.inference_mode():
        outputs = {name: fn() for name, fn in fns.items()}

    best = {k: min(v) for k, v in times.items()}
    base = best["diffusers fp32"]
    print(f"one denoising step: SD1.5 UNet, {args.size}x{args.size} (latent {side}x{side}), batch {batch} "
          f"(cond + uncond), {device.type}, {args.threads} threads, min of {args.reps} after a warm-up; "
          f"max |x0| {outputs['diffusers fp32'].abs().max().item():.2f}")
    for name, seconds in best.items():
        diff = (outputs[name] - outputs["diffusers fp32"]).abs().max().item()
        print(f"  {name:26s} {seconds:7.3f} s   {seconds / base:5.2f}x diffusers fp32   max |x0 - diffusers'| "
              f"{diff:.1e}   (all {', '.join(f'{v:.3f}' for v in times[name])})")
    fastest = best.get(fast_name, best["graphflow fp32"])
    print(f"  goal: graphflow's own mode <= 0.60x diffusers fp32: {fastest / base:.2f}x, "
          f"{'met' if fastest / base <= 0.6 else 'NOT met'}")


# -- gpu: SD1.5 512^2 and SDXL 1024^2 sampling loops --------------------------------------------

def gpu_section(args, device: torch.device) -> None:
    from diffusers import EulerDiscreteScheduler

    from graphflow.sampling import sample

    ours_dtype = default_dtype("unet", device)
    theirs_dtype = torch.float16 if device.type == "cuda" else torch.float32  # diffusers' usual torch_dtype
    runs = [("sd1", "SD1.5", 512), ("sdxl", "SDXL", 1024)]
    print(f"sampling loops: batch 1, cfg {args.cfg} (cond + uncond in one UNet call), {args.steps} euler steps, "
          f"{device}; graphflow {dtype_name(ours_dtype)}, diffusers {dtype_name(theirs_dtype)}; "
          f"min of {args.reps} after a warm-up")
    from graphflow.models.speed import channels_last, compile_mode, compile_requested

    print(f"graphflow's settings: attention {os.environ.get('GRAPHFLOW_ATTENTION', 'auto')}, channels-last "
          f"{'on' if channels_last(device) else 'off'}, compile "
          f"{compile_mode() if compile_requested() else 'off'}")
    for arch, name, size in runs:
        if args.scaled_down:
            size = 64
        torch.manual_seed(0)
        with device:
            unet = UNet(unet_for(arch, args.scaled_down)).eval().requires_grad_(False)
        unet = cast_copy(unet, theirs_dtype)
        theirs = diffusers_unet(unet)  # the same tensors
        model = DiffusionModel(cast_copy(unet, ours_dtype), arch)
        cfg_ = unet.config
        pooled_dim = cfg_.adm_in_channels - SIZE_IDS * 256 if cfg_.adm_in_channels else 0

        g = torch.Generator().manual_seed(1)
        cond, uncond = (torch.randn(1, 77, cfg_.context_dim, generator=g) for _ in range(2))
        pooled, pooled_uncond = (torch.randn(1, pooled_dim, generator=g) for _ in range(2))
        side = size // 8
        noise = torch.randn(1, 4, side, side, generator=torch.Generator().manual_seed(42))
        extra = {"pooled_output": pooled} if pooled_dim else {}
        extra_uncond = {"pooled_output": pooled_uncond} if pooled_dim else {}
        latent = {"samples": torch.zeros(1, 4, side, side)}

        def ours():
            return sample(model, 42, args.steps, args.cfg, "euler", "normal", [(cond, extra)],
                          [(uncond, extra_uncond)], latent, preview_every=0)["samples"]

        scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                           num_train_timesteps=1000, timestep_spacing="linspace")
        # the pipelines' prompt embeddings: [negative, positive] batched
        embeds = torch.cat([uncond, cond]).to(device, theirs_dtype)
        added = None
        if pooled_dim:
            time_ids = torch.tensor([[size, size, 0, 0, size, size]] * 2, dtype=theirs_dtype, device=device)
            added = {"text_embeds": torch.cat([pooled_uncond, pooled]).to(device, theirs_dtype), "time_ids": time_ids}

        def diffusers_loop():
            scheduler.set_timesteps(args.steps, device=device)
            latents = noise.to(device, theirs_dtype) * scheduler.init_noise_sigma
            for t in scheduler.timesteps:
                latent_in = scheduler.scale_model_input(torch.cat([latents] * 2), t)
                eps = theirs(latent_in, t, encoder_hidden_states=embeds, added_cond_kwargs=added,
                             return_dict=False)[0]
                eps_uncond, eps_cond = eps.chunk(2)
                eps = eps_uncond + args.cfg * (eps_cond - eps_uncond)
                latents = scheduler.step(eps, t, latents, return_dict=False)[0]
            return latents

        times = time_alternating({"graphflow": ours, "diffusers": diffusers_loop}, args.reps, device)
        best = {k: min(v) for k, v in times.items()}
        agreement = one_step_agreement(model, theirs, cond, uncond, pooled, pooled_uncond, added, size, device)
        rate = {k: args.steps / v for k, v in best.items()}
        print(f"  {name} {size}x{size}: graphflow {rate['graphflow']:6.2f} it/s, diffusers {rate['diffusers']:6.2f} it/s"
              f" -> {rate['graphflow'] / rate['diffusers']:.2f}x (goal >= 1.5x)   one-step max |x0 diff| "
              f"{agreement:.1e}   (s: graphflow {', '.join(f'{v:.3f}' for v in times['graphflow'])}; diffusers "
              f"{', '.join(f'{v:.3f}' for v in times['diffusers'])})")
        del model, theirs, unet
        if device.type == "cuda":
            torch.cuda.empty_cache()


def one_step_agreement(model, theirs, cond, uncond, pooled, pooled_uncond, added, size, device) -> float:
    """Max |x0 difference| of one denoising step (sigma at timestep 500) on identical inputs."""
    schedule = DiscreteSchedule.for_model(model)
    side = size // 8
    x = torch.randn(2, 4, side, side, generator=torch.Generator().manual_seed(3)).to(device)
    sigma = schedule.sigmas[500].expand(2).to(device)
    context = torch.cat([uncond, cond]).to(device)
    y = None
    if added is not None:
        y = torch.cat([model.encode_adm({"pooled_output": p}, size, size) for p in (pooled_uncond, pooled)]).to(device)
    with torch.inference_mode():
        ours = ModelDenoiser(model, schedule)(x, sigma, context, y)
        dtype = theirs.dtype
        s = sigma[:, None, None, None]
        eps = theirs((x / (s ** 2 + 1) ** 0.5).to(dtype), schedule.timestep(sigma).float(),
                     encoder_hidden_states=context.to(dtype), added_cond_kwargs=added).sample.float()
        return (ours - (x - eps * s)).abs().max().item()


# -- pipeline: whole txt2img against StableDiffusionPipeline ----------------------------------

def diffusers_pipeline(checkpoint, device):
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint, create_vae_diffusers_config_from_ldm
    from transformers import CLIPTokenizer

    from graphflow.models.tokenizer import VOCAB_DIR
    from tests.test_vae import ldm_original_config as vae_original

    unet = diffusers_unet(checkpoint.model.unet)
    vae = diffusers_twin(AutoencoderKL, checkpoint.vae.module, "first_stage_model.",
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


def pipeline_section(args, device: torch.device) -> None:
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.sampling import sample
    from graphflow.testing import write_checkpoint

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sd15_random.safetensors"
        write_checkpoint(path, "sd1", scaled_down=False, seed=0)  # diffusers reads SD1 with 8 heads only
        print(f"random SD1.5 checkpoint: {path.stat().st_size / 2**30:.2f} GiB")
        checkpoint = load_checkpoint(path, device=device, dtype=dtype)
        pipe = diffusers_pipeline(checkpoint, device)

        side = args.size // 8
        latent = {"samples": torch.zeros(1, 4, side, side)}
        noise = torch.randn(1, 4, side, side, generator=torch.Generator().manual_seed(42))
        images = {}

        def ours():
            positive = [(checkpoint.clip.encode(PROMPT)[0], {})]
            negative = [(checkpoint.clip.encode(NEGATIVE)[0], {})]
            out = sample(checkpoint.model, 42, args.steps, args.cfg, "euler", "normal", positive, negative,
                         latent, preview_every=0)
            images["graphflow"] = checkpoint.vae.decode(out["samples"])

        def theirs():
            # Our sample() scales the seed's noise by sqrt(1 + sigma_max^2); diffusers by its
            # scheduler's init_noise_sigma: hand it the same unit noise.
            image = pipe(PROMPT, negative_prompt=NEGATIVE, height=args.size, width=args.size,
                         num_inference_steps=args.steps, guidance_scale=args.cfg,
                         latents=noise.to(device, dtype), output_type="pt").images
            images["diffusers"] = image.permute(0, 2, 3, 1).float().cpu()

        times = time_alternating({"graphflow": ours, "diffusers": theirs}, args.reps, device)

    best = {k: min(v) for k, v in times.items()}
    print(f"txt2img {args.size}x{args.size}, {args.steps} euler steps, cfg {args.cfg}, {device.type} {dtype}, "
          f"{args.threads} threads, min of {args.reps} after a warm-up")
    for name, values in times.items():
        print(f"  {name:10s} {best[name]:7.2f} s   ({args.steps / best[name]:.2f} steps/s; all "
              f"{', '.join(f'{v:.2f}' for v in values)})")
    print(f"  ratio graphflow / diffusers: {best['graphflow'] / best['diffusers']:.3f}")
    print(f"  mean |image difference| (informative: schedules differ by design): "
          f"{(images['graphflow'] - images['diffusers']).abs().mean():.4f}")


SECTIONS = {"step": step_section, "gpu": gpu_section, "pipeline": pipeline_section}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", action="append", choices=list(SECTIONS),
                        help="what to run (repeatable); default: gpu with CUDA, else step")
    parser.add_argument("--size", type=int, default=256, help="step and pipeline: image side in pixels")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=7.5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--scaled-down", action="store_true", help="small models: checks the script, not the speed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    os.environ["GRAPHFLOW_DEVICE"] = str(device)  # graphflow's sampler and memory manager run there too
    compute_device.cache_clear()
    for section in args.section or (["gpu"] if device.type == "cuda" else ["step"]):
        SECTIONS[section](args, device)


if __name__ == "__main__":
    main()
