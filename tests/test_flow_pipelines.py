"""End to end against diffusers' pipelines: our ComfyUI-named graph (loaders, model-sampling
shift, KSampler / SamplerCustomAdvanced with euler) against StableDiffusion3Pipeline and
FluxPipeline on the same tiny random files, the same initial noise (passed as `latents`, packed
for FLUX) and the same prompt embeddings (made by our text encoders: ComfyUI and diffusers pad T5
differently and diffusers projects SD3's CLIP-L pooled vector; the text side is compared in
test_flow_text.py). Equal final latents prove the shift, sigmas, packing, guidance and the latent
scale/shift together."""

import json

import numpy as np
import pytest
import torch
from diffusers import (AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel,
                       SD3Transformer2DModel, StableDiffusion3Pipeline)
from test_flow_models import (diffusers_config_dir, flux_any_width, flux_diffusers_config,  # noqa: F401
                              sd3_diffusers_config)

from graphflow.executor import Executor
from graphflow.models import FLUX, SD3
from graphflow.models.flux import pack
from graphflow.sampling.noise import initial_noise
from graphflow.testing import flow_model_config, flow_vae_config, write_flow_checkpoint, write_flow_vae, write_text_encoder
from graphflow.workflow import parse_workflow

TOL = 1e-3
STEPS, SEED = 4, 7


def diffusers_vae(tmp_path, path, fmt):
    cfg = flow_vae_config()
    config = dict(in_channels=3, out_channels=3, latent_channels=16, layers_per_block=cfg.num_res_blocks,
                  block_out_channels=[cfg.ch * m for m in cfg.ch_mult], norm_num_groups=cfg.norm_groups,
                  down_block_types=["DownEncoderBlock2D"] * len(cfg.ch_mult),
                  up_block_types=["UpDecoderBlock2D"] * len(cfg.ch_mult), use_quant_conv=False,
                  use_post_quant_conv=False, scaling_factor=fmt.scale_factor, shift_factor=fmt.shift_factor)
    return AutoencoderKL.from_single_file(str(path), config=diffusers_config_dir(tmp_path, AutoencoderKL, **config),
                                          local_files_only=True, torch_dtype=torch.float32).eval()


@pytest.fixture
def models(tmp_folders):
    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    write_flow_checkpoint(m / "diffusion_models" / "sd35_medium.safetensors", "sd35_medium", dtype=torch.float32,
                          components=("model",), prefixed=False, seed=3)
    write_flow_checkpoint(m / "diffusion_models" / "flux_dev.safetensors", "flux_dev", dtype=torch.float32,
                          components=("model",), prefixed=False, seed=4)
    write_flow_checkpoint(m / "diffusion_models" / "flux_schnell.safetensors", "flux_schnell", dtype=torch.float32,
                          components=("model",), prefixed=False, seed=5)
    write_flow_vae(m / "vae" / "vae16.safetensors", dtype=torch.float32)
    write_text_encoder(m / "text_encoders" / "t5xxl.safetensors", "t5xxl", seed=1, dtype=torch.float32)
    write_text_encoder(m / "text_encoders" / "clip_l.safetensors", "clip_l", seed=2, dtype=torch.float32)
    write_text_encoder(m / "text_encoders" / "clip_g.safetensors", "clip_g", seed=6, dtype=torch.float32)
    return m


def run_graph(graph, outputs):
    from graphflow.registry import Registry

    registry = Registry().load_builtin()
    result = Executor(registry).run(parse_workflow(json.loads(json.dumps(graph)), registry), outputs=outputs)
    assert result.ok, result.error or result.problems
    return result


def embeddings(conditioning):
    [(cond, extra)] = conditioning
    return cond, extra["pooled_output"]


def decoded_pipeline_images(pipe, latents_out):
    """diffusers' decode (latents / scale + shift) of the pipeline's final latents, in [0, 1] NHWC."""
    with torch.no_grad():
        z = latents_out / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
        return (pipe.vae.decode(z).sample / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


def test_sd35_graph_equals_stable_diffusion_3_pipeline(models, tmp_path):
    width, height, cfg_scale = 96, 64, 4.5
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "sd35_medium.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "TripleCLIPLoader", "inputs": {"clip_name1": "clip_g.safetensors",
                                                           "clip_name2": "clip_l.safetensors",
                                                           "clip_name3": "t5xxl.safetensors"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse on a cliff at dusk", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["2", 0]}},
        "5": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 3.0}},
        "6": {"class_type": "EmptySD3LatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        # SD3's pipeline spaces timesteps linearly in t before shifting: our "normal"
        "7": {"class_type": "KSampler", "inputs": {"model": ["5", 0], "seed": SEED, "steps": STEPS, "cfg": cfg_scale,
                                                   "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
                                                   "positive": ["3", 0], "negative": ["4", 0],
                                                   "latent_image": ["6", 0]}},
        "8": {"class_type": "VAELoader", "inputs": {"vae_name": "vae16.safetensors"}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["8", 0]}},
    }
    result = run_graph(graph, ["9", "3", "4"])
    ours = SD3.process_in(result.values["7"][0]["samples"])
    cond, pooled = embeddings(result.values["3"][0])
    uncond, uncond_pooled = embeddings(result.values["4"][0])

    cfg = flow_model_config("sd35_medium")
    transformer = SD3Transformer2DModel.from_single_file(
        str(models / "diffusion_models" / "sd35_medium.safetensors"),
        config=diffusers_config_dir(tmp_path, SD3Transformer2DModel, **sd3_diffusers_config(cfg)),
        local_files_only=True, torch_dtype=torch.float32).eval()
    # stabilityai/stable-diffusion-3.5-medium's scheduler_config.json
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    vae = diffusers_vae(tmp_path, models / "vae" / "vae16.safetensors", SD3)
    pipe = StableDiffusion3Pipeline(transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=None,
                                    tokenizer=None, text_encoder_2=None, tokenizer_2=None, text_encoder_3=None,
                                    tokenizer_3=None)
    noise = initial_noise(torch.zeros(1, 16, height // 8, width // 8), SEED)
    theirs = pipe(prompt_embeds=cond, pooled_prompt_embeds=pooled, negative_prompt_embeds=uncond,
                  negative_pooled_prompt_embeds=uncond_pooled, latents=noise.clone(), height=height, width=width,
                  num_inference_steps=STEPS, guidance_scale=cfg_scale, output_type="latent").images
    assert ours.shape == theirs.shape == (1, 16, 8, 12)
    assert float((theirs - noise).abs().mean()) > 0.1  # the model moved the latents
    assert float((ours - theirs).abs().max()) <= TOL
    images = decoded_pipeline_images(pipe, theirs)
    assert float((result.values["9"][0] - images).abs().max()) <= TOL


@pytest.mark.parametrize("family", ["flux_dev", "flux_schnell"])
def test_flux_graph_equals_flux_pipeline(models, tmp_path, flux_any_width, family):  # noqa: F811
    width, height, guidance = 128, 64, 3.5
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": f"{family}.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl.safetensors",
                                                         "clip_name2": "clip_l.safetensors", "type": "flux"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox in the snow", "clip": ["2", 0]}},
        "4": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["3", 0], "guidance": guidance}},
        # FluxPipeline shifts by mu from the image's token count: ModelSamplingFlux at its size
        "5": {"class_type": "ModelSamplingFlux", "inputs": {"model": ["1", 0], "max_shift": 1.15, "base_shift": 0.5,
                                                            "width": width, "height": height}},
        "6": {"class_type": "EmptySD3LatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "7": {"class_type": "BasicGuider", "inputs": {"model": ["5", 0], "conditioning": ["4", 0]}},
        "8": {"class_type": "RandomNoise", "inputs": {"noise_seed": SEED}},
        "9": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        # FluxPipeline's sigmas are linspace(1, 1/n, n) shifted: our "simple"
        "10": {"class_type": "BasicScheduler", "inputs": {"model": ["5", 0], "scheduler": "simple", "steps": STEPS,
                                                          "denoise": 1.0}},
        "11": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["8", 0], "guider": ["7", 0],
                                                                 "sampler": ["9", 0], "sigmas": ["10", 0],
                                                                 "latent_image": ["6", 0]}},
        "12": {"class_type": "VAELoader", "inputs": {"vae_name": "vae16.safetensors"}},
        "13": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["12", 0]}},
    }
    result = run_graph(graph, ["13", "3"])
    ours = FLUX.process_in(result.values["11"][0]["samples"])
    cond, pooled = embeddings(result.values["3"][0])

    cfg = flow_model_config(family)
    transformer = FluxTransformer2DModel.from_single_file(
        str(models / "diffusion_models" / f"{family}.safetensors"),
        config=diffusers_config_dir(tmp_path, FluxTransformer2DModel, **flux_diffusers_config(cfg)),
        local_files_only=True, torch_dtype=torch.float32).eval()
    # black-forest-labs/FLUX.1-dev's scheduler_config.json (schnell's differs in its shift, which
    # ComfyUI applies by ModelSamplingFlux just the same)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                                base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                max_image_seq_len=4096)
    vae = diffusers_vae(tmp_path, models / "vae" / "vae16.safetensors", FLUX)
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=None, text_encoder_2=None,
                        tokenizer_2=None, transformer=transformer)
    noise = initial_noise(torch.zeros(1, 16, height // 8, width // 8), SEED)
    packed = pipe(prompt_embeds=cond, pooled_prompt_embeds=pooled, latents=pack(noise), height=height, width=width,
                  num_inference_steps=STEPS, guidance_scale=guidance, output_type="latent").images
    assert packed.shape == pack(ours).shape == (1, 32, 64)
    assert float((packed - pack(noise)).abs().mean()) > 0.1
    assert float((pack(ours) - packed).abs().max()) <= TOL
    theirs = pipe._unpack_latents(packed, height, width, pipe.vae_scale_factor)
    images = decoded_pipeline_images(pipe, theirs)
    assert float((result.values["13"][0] - images).abs().max()) <= TOL
