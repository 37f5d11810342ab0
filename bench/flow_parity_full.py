"""SD3.5 medium and FLUX.1 dev against diffusers on identical random weights, plus load time and
peak memory against the file size.

    .venv/bin/python bench/flow_parity_full.py                       # GPU: full size, bf16
    .venv/bin/python bench/flow_parity_full.py --size mid            # CPU default: a mid-size config, fp32
    .venv/bin/python bench/flow_parity_full.py --only flux_dev --size full --device cuda

Per family: a random diffusion-model-only bf16 file in the original bare layout is written (full
size: SD3.5 medium 5 GB, FLUX.1 dev 24 GB), then
  ours      load_diffusion_model (time; host and GPU peak while loading over the bytes of the
            weights kept: bf16 on the GPU, fp32 on the CPU, i.e. 2x the file), forward
  diffusers from_single_file on the same file with a local config (no hub), forward
and the outputs are compared: max |diff|, mean |reference|, relative L2 error. Then end to end:
4 Euler steps of our KSampler path (SD3: ModelSamplingSD3 shift 3, "normal", cfg 4.5 against a
negative; FLUX: ModelSamplingFlux at the image size, "simple", FluxGuidance 3.5) against
diffusers' StableDiffusion3Pipeline / FluxPipeline on the same model file, the same initial
noise (packed for FLUX) and the same embeddings; final model-space latents compared
(e2e_max_abs_diff; fp32 must be within 1e-3, bf16 is reported by its relative error). fp32 (CPU) must
be within 1e-4; bf16 (GPU) is reported with the relative error of our bf16 run against
diffusers' (both round differently; a layout or formula error shows as O(1)). Inputs: a
1024x1024 image's latent (128x128, 4096 FLUX tokens / 4096 SD3 patches) at full size, text
tokens as real prompts give (SD3: 77 CLIP + 77 T5 = 154; FLUX: 512 T5).
"""

import argparse
import gc
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphflow.models.checkpoint import load_diffusion_model  # noqa: E402
from graphflow.models.flux import FluxConfig, image_ids, pack  # noqa: E402
from graphflow.models.mmdit import MMDiTConfig  # noqa: E402
from graphflow.testing import flow_model_config  # noqa: E402

FAMILIES = ("sd35_medium", "flux_dev")
MID = {"sd35_medium": MMDiTConfig(hidden_size=512, depth=8, num_heads=8, pos_embed_max_size=64, qk_norm=True,
                                  x_self_attn_layers=(0, 1, 2, 3)),
       "flux_dev": FluxConfig(hidden_size=512, num_heads=4, depth=3, depth_single_blocks=6)}


def rss(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def reset_peak():
    """Give freed heap pages back (else later allocations reuse them unseen), reset VmHWM to VmRSS."""
    import ctypes

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def config_for(family: str, size: str):
    return {"full": lambda: flow_model_config(family, scaled_down=False), "mid": lambda: MID[family],
            "tiny": lambda: flow_model_config(family)}[size]()


def net_shapes(family: str, config) -> dict:
    from graphflow.models.flux import Flux
    from graphflow.models.mmdit import MMDiT

    with torch.device("meta"):
        net = MMDiT(config) if family.startswith("sd3") else Flux(config)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def write_random_file(path: Path, shapes: dict, dtype, device) -> int:
    """Random weights scaled as graphflow.testing's (1/sqrt(fan_in), norms near 1), drawn on
    `device` one tensor at a time and written with safetensors."""
    from safetensors.torch import save_file

    g = torch.Generator(device).manual_seed(0)
    tensors = {}
    for key, shape in shapes.items():
        x = torch.randn(shape, generator=g, device=device)
        if key.endswith("bias"):
            x *= 0.02
        elif len(shape) == 1:
            x = 1 + 0.1 * x
        else:
            x /= math.prod(shape[1:]) ** 0.5
        tensors[key] = x.to(dtype).cpu()
    save_file(tensors, str(path))
    del tensors
    gc.collect()
    return path.stat().st_size


def diffusers_model(family: str, path: Path, config, dtype, device, folder: Path):
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    from tests.test_flow_models import flux_conversion_any_width, flux_diffusers_config, sd3_diffusers_config

    cls = SD3Transformer2DModel if family.startswith("sd3") else FluxTransformer2DModel
    values = sd3_diffusers_config(config) if family.startswith("sd3") else flux_diffusers_config(config)
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"_class_name": cls.__name__, **values}))
    if cls is FluxTransformer2DModel and config.hidden_size != 3072:  # diffusers hard-codes FLUX's width
        import diffusers.loaders.single_file_model as sfm

        sfm.SINGLE_FILE_LOADABLE_CLASSES["FluxTransformer2DModel"]["checkpoint_mapping_fn"] = flux_conversion_any_width()
    model = cls.from_single_file(str(path), config=str(folder), local_files_only=True, torch_dtype=dtype)
    return model.to(device).eval()


def inputs(family: str, config, size: str, dtype, device):
    g = torch.Generator().manual_seed(1)
    latent = 128 if size == "full" else 32 if size == "mid" else 8
    x = torch.randn(1, 16, latent, latent, generator=g)
    sigma = torch.tensor([0.7])
    if family.startswith("sd3"):
        context = torch.randn(1, 154 if size == "full" else 16, config.context_dim, generator=g)
        y = torch.randn(1, config.adm_in_channels, generator=g)
        extra = {}
    else:
        context = torch.randn(1, 512 if size == "full" else 16, config.context_in_dim, generator=g)
        y = torch.randn(1, config.vec_in_dim, generator=g)
        extra = {"guidance": torch.tensor([3.5])} if config.guidance_embed else {}
    move = lambda t: t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)  # noqa: E731
    return move(x), sigma.to(device), move(context), move(y), {k: v.to(device) for k, v in extra.items()}


E2E_STEPS, E2E_SEED = 4, 5


def e2e_inputs(family: str, x, context, y, sigma_free_extra):
    """Positive / negative conditionings (ours) and the latent's pixel size for the e2e run."""
    g = torch.Generator().manual_seed(2)
    negative = (torch.randn(context.shape, generator=g).to(context), torch.randn(y.shape, generator=g).to(y))
    options = {"guidance": 3.5} if "guidance" in sigma_free_extra else {}
    positive = [(context, {"pooled_output": y, **options})]
    return positive, [(negative[0], {"pooled_output": negative[1]})], x.shape[-1] * 8, x.shape[-2] * 8


def e2e_ours(family: str, model, x, context, y, extra):
    from graphflow.sampling import FlowSchedule, flux_mu
    from graphflow.sampling.pipeline import sample

    positive, negative, width, height = e2e_inputs(family, x, context, y, extra)
    model.model_sampling = FlowSchedule.sd3(3.0) if family.startswith("sd3") else FlowSchedule.flux(flux_mu(width, height))
    sd3 = family.startswith("sd3")
    out = sample(model, E2E_SEED, E2E_STEPS, 4.5 if sd3 else 1.0, "euler", "normal" if sd3 else "simple",
                 positive, negative, {"samples": torch.zeros(x.shape[0], 16, *x.shape[-2:])})
    return model.latent_format.process_in(out["samples"]).float().cpu()


def e2e_theirs(family: str, transformer, x, context, y, extra):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, StableDiffusion3Pipeline

    from graphflow.sampling.noise import initial_noise

    positive, negative, width, height = e2e_inputs(family, x, context, y, extra)
    noise = initial_noise(torch.zeros(x.shape[0], 16, *x.shape[-2:]), E2E_SEED).to(x)
    none = dict.fromkeys(("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"))
    if family.startswith("sd3"):
        pipe = StableDiffusion3Pipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
                                        vae=None, text_encoder_3=None, tokenizer_3=None, **none)
        return pipe(prompt_embeds=context, pooled_prompt_embeds=y, negative_prompt_embeds=negative[0][0],
                    negative_pooled_prompt_embeds=negative[0][1]["pooled_output"], latents=noise, height=height,
                    width=width, num_inference_steps=E2E_STEPS, guidance_scale=4.5,
                    output_type="latent").images.float().cpu()
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                base_image_seq_len=256, max_image_seq_len=4096)
    pipe = FluxPipeline(scheduler=scheduler, vae=None, transformer=transformer, **none)
    packed = pipe(prompt_embeds=context, pooled_prompt_embeds=y, latents=pack(noise), height=height, width=width,
                  num_inference_steps=E2E_STEPS, guidance_scale=3.5, output_type="latent").images
    return packed.float().cpu()


def check(family: str, size: str, device: torch.device, dtype, folder: Path) -> dict:
    config = config_for(family, size)
    path = folder / f"{family}_{size}.safetensors"
    start = time.perf_counter()
    file_size = write_random_file(path, net_shapes(family, config), torch.bfloat16, device)  # as released
    write_s = time.perf_counter() - start

    gc.collect()
    reset_peak()
    base = rss("VmRSS")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    ours = load_diffusion_model(path, device=device, dtype=dtype)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    load_s = time.perf_counter() - start
    host_peak = rss("VmHWM") - base
    gpu_peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    kept = sum(t.numel() * t.element_size() for t in [*ours.unet.parameters(), *ours.unet.buffers()])
    assert ours.unet.config == config, (ours.unet.config, config)

    x, sigma, context, y, extra = inputs(family, config, size, dtype, device)
    with torch.no_grad():
        start = time.perf_counter()
        a = ours(x, sigma, context, y, **extra)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        ours_s = time.perf_counter() - start
    a = a.float().cpu()
    start = time.perf_counter()
    ours_e2e = e2e_ours(family, ours, x, context, y, extra)
    e2e_s = time.perf_counter() - start
    del ours
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()

    start = time.perf_counter()
    theirs = diffusers_model(family, path, config, dtype, device, folder / f"{family}_config")
    theirs_load_s = time.perf_counter() - start
    with torch.no_grad():
        if family.startswith("sd3"):
            b = theirs(hidden_states=x, encoder_hidden_states=context, pooled_projections=y, timestep=sigma * 1000).sample
            b = b.float().cpu()
        else:
            h, w = x.shape[-2] // 2, x.shape[-1] // 2
            b = theirs(hidden_states=pack(x), encoder_hidden_states=context, pooled_projections=y, timestep=sigma,
                       img_ids=image_ids(h, w, 1, device)[0], txt_ids=torch.zeros(context.shape[1], 3, device=device),
                       **extra).sample.float().cpu()
            a = pack(a)
        theirs_e2e = e2e_theirs(family, theirs, x, context, y, extra)
    if not family.startswith("sd3"):
        ours_e2e = pack(ours_e2e)
    del theirs
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    path.unlink()
    diff = (a - b).abs().max().item()
    e2e_diff = (ours_e2e - theirs_e2e).abs().max().item()
    e2e_rel = ((ours_e2e - theirs_e2e).norm() / theirs_e2e.norm()).item()
    return {"family": family, "size": size, "dtype": str(dtype).removeprefix("torch."), "device": str(device),
            "params_M": round(sum(math.prod(s) for s in net_shapes(family, config).values()) / 1e6, 1),
            "file_GB": round(file_size / 1e9, 3), "write_s": round(write_s, 1), "load_s": round(load_s, 2),
            "diffusers_load_s": round(theirs_load_s, 2), "weights_kept_GB": round(kept / 1e9, 3),
            "host_load_peak_over_kept": round(host_peak / kept, 3),
            "gpu_load_peak_over_kept": round(gpu_peak / kept, 3) if gpu_peak else None,
            "forward_s": round(ours_s, 2), "max_abs_diff": diff, "mean_abs_ref": b.abs().mean().item(),
            "rel_l2": ((a - b).norm() / b.norm()).item(),
            "e2e_steps": E2E_STEPS, "e2e_s": round(e2e_s, 2), "e2e_max_abs_diff": e2e_diff, "e2e_rel_l2": e2e_rel,
            "pass": (diff <= 1e-4 and e2e_diff <= 1e-3) if dtype == torch.float32
            else (((a - b).norm() / b.norm()).item() < 2e-2 and e2e_rel < 5e-2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", choices=("full", "mid", "tiny"), default=None,
                        help="default: full on a GPU, mid on the CPU")
    parser.add_argument("--only", default=",".join(FAMILIES))
    parser.add_argument("--dir", default=None, help="where the random files go (default: a temp dir)")
    args = parser.parse_args()
    device = torch.device(args.device)
    size = args.size or ("full" if device.type == "cuda" else "mid")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for family in args.only.split(","):
            result = check(family, size, device, dtype, Path(tmp))
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
