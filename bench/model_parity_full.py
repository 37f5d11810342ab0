"""Parity with diffusers at full size: SD1.5 and SDXL UNet and VAE on identical random weights.

    .venv/bin/python bench/model_parity_full.py [--only sd15-unet,sdxl-vae,...] [--threads 2]

Same oracle path as tests/test_unet.py and tests/test_vae.py (our LDM-layout weights ->
diffusers' own single-file converter -> diffusers model), at the real sizes. The diffusers model
is built on the meta device and takes our very tensors (load_state_dict(assign=True)), so each
check needs the memory of one model only (SDXL UNet fp32: ~10 GB). Prints, per check, the max
absolute difference, the output's mean magnitude, and PASS when the difference is <= 1e-4.
Each check is a function in CHECKS returning (max |diff|, mean |reference|); text encoders
are to be added there.
"""

import argparse
import gc
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphflow.models import AutoencoderKL, DiffusionModel, UNet, VAEConfig  # noqa: E402
from tests.test_unet import FULL as UNET_CONFIGS  # noqa: E402
from tests.test_unet import PREFIX as UNET_PREFIX  # noqa: E402
from tests.test_unet import ldm_original_config as unet_ldm_config  # noqa: E402
from tests.test_vae import PREFIX as VAE_PREFIX  # noqa: E402
from tests.test_vae import ldm_original_config as vae_ldm_config  # noqa: E402

TOLERANCE = 1e-4


def assign_into_meta(cls, config: dict, state: dict):
    with torch.device("meta"):
        model = cls(**config)
    model.load_state_dict(state, strict=True, assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"diffusers {cls.__name__} kept meta tensors: {left[:5]}")
    return model.eval().requires_grad_(False)


def diffusers_unet(unet: UNet):
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, create_unet_diffusers_config_from_ldm

    checkpoint = {UNET_PREFIX + k: v for k, v in unet.state_dict().items()}
    config = create_unet_diffusers_config_from_ldm(unet_ldm_config(unet.config), checkpoint)
    return assign_into_meta(UNet2DConditionModel, config, convert_ldm_unet_checkpoint(checkpoint, config))


def diffusers_vae(vae: AutoencoderKL):
    from diffusers import AutoencoderKL as DiffusersAutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint, create_vae_diffusers_config_from_ldm

    checkpoint = {VAE_PREFIX + k: v for k, v in vae.state_dict().items()}
    config = create_vae_diffusers_config_from_ldm(vae_ldm_config(vae.config), checkpoint)
    config.update(norm_num_groups=vae.config.norm_groups, use_quant_conv=vae.config.use_quant_conv,
                  use_post_quant_conv=vae.config.use_quant_conv)
    return assign_into_meta(DiffusersAutoencoderKL, config, convert_ldm_vae_checkpoint(checkpoint, config))


def unet_check(arch: str, latent: int, batch: int):
    def check():
        ours = UNet(UNET_CONFIGS[arch]).eval().requires_grad_(False)
        theirs = diffusers_unet(ours)
        cfg = ours.config
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, cfg.in_channels, latent, latent, generator=g)
        t = torch.tensor([999.0, 37.5][:batch])
        ctx = torch.randn(batch, 77, cfg.context_dim, generator=g)
        y = added = None
        if cfg.adm_in_channels:
            pooled = torch.randn(batch, 1280, generator=g)
            opts = {"pooled_output": pooled, "width": 1024, "height": 832, "crop_w": 64, "crop_h": 32,
                    "target_width": 768, "target_height": 896, "aesthetic_score": 6.5}
            y = DiffusionModel(ours, arch).encode_adm(opts, 8 * latent, 8 * latent)
            # diffusers' pipelines: original (h, w) + crop (top, left) + target (h, w) or aesthetic score
            tail = [6.5] if arch == "sdxl_refiner" else [896.0, 768.0]
            added = {"text_embeds": pooled, "time_ids": torch.tensor([[832.0, 1024.0, 32.0, 64.0, *tail]] * batch)}
        with torch.inference_mode():
            out = ours(x, t, ctx, y)
            ref = theirs(x, t, encoder_hidden_states=ctx, added_cond_kwargs=added).sample
        return (out - ref).abs().max().item(), ref.abs().mean().item()
    return check


def vae_check(config: VAEConfig, latent: int):
    def check():
        ours = AutoencoderKL(config).eval().requires_grad_(False)
        theirs = diffusers_vae(ours)
        g = torch.Generator().manual_seed(0)
        x = torch.rand(1, 3, 8 * latent, 8 * latent, generator=g) * 2 - 1
        with torch.inference_mode():
            mean, logvar = ours.encode(x)
            posterior = theirs.encode(x).latent_dist
            z = torch.randn(mean.shape, generator=g)
            decoded, ref = ours.decode(z), theirs.decode(z).sample
        diff = max((mean - posterior.mean).abs().max().item(), (logvar - posterior.logvar).abs().max().item(),
                   (decoded - ref).abs().max().item())
        return diff, ref.abs().mean().item()
    return check


CHECKS = {
    "sd15-unet": unet_check("sd1", latent=32, batch=2),
    # SD1.x/SD2/SDXL VAEs share this architecture; only their trained weights differ
    "sd-vae": vae_check(VAEConfig(), latent=32),
    "sdxl-unet": unet_check("sdxl", latent=32, batch=1),
    "sdxl-refiner-unet": unet_check("sdxl_refiner", latent=32, batch=1),
    "flux-vae-16ch": vae_check(VAEConfig(z_channels=16, embed_dim=16, use_quant_conv=False), latent=32),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated subset of " + ", ".join(CHECKS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [n for n in args.only.split(",") if n] or list(CHECKS)
    failed = 0
    for name in names:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        diff, scale = CHECKS[name]()
        ok = diff <= TOLERANCE
        failed += not ok
        print(f"{name:18s} max |diff| {diff:.2e}   mean |ref| {scale:.3e}   {time.perf_counter() - t0:6.1f} s   "
              f"{'PASS' if ok else 'FAIL'}", flush=True)
        gc.collect()
    print(f"{len(names) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
