"""Playground v2.5 single-file checkpoints: an SDXL file with ComfyUI's edm_mean / edm_std marker keys
is detected, loaded and sampled as ComfyUI's SDXL.model_type says (EDM, sigma_data 0.5, sigmas
0.002 .. 80, the SDXL_Playground_2_5 latent format), checked against diffusers' EDMEulerScheduler
and EDMDPMSolverMultistepScheduler (preconditioning, Euler and DPM-Solver++(2M) steps on the same
tiny UNet) and StableDiffusionXLPipeline's latent formula with Playground's latents_mean /
latents_std; diffusers folders with EDM schedulers (Playground's, CosXL's) and their refusals."""

import numpy as np
import pytest
import torch
from test_nodes_image_mask import call

from graphflow.executor import Executor
from graphflow.models.architecture import detect_architecture
from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.checkpoint_report import inspect_report
from graphflow.models.latent_formats import PLAYGROUND_2_5
from graphflow.models.weight_files import WeightFile
from graphflow.sampling import DiscreteSchedule, ModelDenoiser, compute_sigmas, sample
from graphflow.testing import write_checkpoint
from graphflow.workflow import parse_workflow

# playgroundai/playground-v2.5-1024px-aesthetic's vae/config.json latents_mean / latents_std, which
# diffusers' single-file converter takes from the file's edm_mean / edm_std
MEAN = torch.tensor([-1.6574, 1.886, -1.383, 2.5155]).view(1, 4, 1, 1)
STD = torch.tensor([8.4927, 5.9022, 6.5498, 5.2299]).view(1, 4, 1, 1)
VAE_SCALING = 0.5  # its vae/config.json scaling_factor
MARKERS = {"edm_mean": MEAN, "edm_std": STD}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    (root / "checkpoints").mkdir()
    write_checkpoint(root / "checkpoints" / "playground.safetensors", "sdxl", extra=MARKERS)
    return root


@pytest.fixture(scope="module")
def ckpt(models):
    return load_checkpoint(models / "checkpoints" / "playground.safetensors", device="cpu", dtype=torch.float32)


def diffusers_sample(scheduler, unet, noise, context, y, steps):
    """Playground's sampling as diffusers steps it with `scheduler` (Playground's sigma range and
    sigma_data, Karras schedule), the network called on precondition_inputs / precondition_noise,
    then the pipeline's decode-side formula back to the raw VAE latent."""
    scheduler.set_timesteps(steps)
    x = noise.to(context.device) * scheduler.init_noise_sigma
    with torch.no_grad():
        for t in scheduler.timesteps:
            out = unet(scheduler.scale_model_input(x, t), t.reshape(1).to(x.device), context, y)
            x = scheduler.step(out, t, x).prev_sample
    return x.cpu() * STD / VAE_SCALING + MEAN


def test_detection_marks_sdxl_as_playground(models):
    with WeightFile(models / "checkpoints" / "playground.safetensors") as f:
        info = detect_architecture(f.shapes, f.metadata)
        one_marker = detect_architecture({k: v for k, v in f.shapes.items() if k != "edm_std"}, f.metadata)
    assert (info.arch, info.prediction, info.sigma_range) == ("sdxl", "edm", (0.002, 80.0))
    assert info.latent_format is PLAYGROUND_2_5 and "Playground v2.5" in info.name
    # ComfyUI asks for both markers; one alone is plain SDXL
    assert (one_marker.prediction, one_marker.sigma_range, one_marker.latent_format.name) == ("eps", None, "sdxl")
    assert "only one of edm_mean/edm_std: read as plain SDXL (ComfyUI needs both)" in one_marker.notes
    report = inspect_report(models / "checkpoints" / "playground.safetensors")
    assert "prediction: edm" in report and "sigmas 0.002 .. 80.0, sigma_data 0.5" in report
    assert "scaling factor 0.5, each channel standardised" in report


def test_loaded_model_samples_continuous_edm(ckpt, builtin_registry):
    model = ckpt.model
    assert (model.prediction, model.edm, model.model_type) == ("edm", (0.002, 80.0), "edm")
    assert model.latent_format is PLAYGROUND_2_5 and ckpt.vae.latent_format is PLAYGROUND_2_5
    schedule = DiscreteSchedule.for_model(model)
    assert schedule.sigma_data == 0.5
    # ComfyUI's schedulers on ModelSamplingContinuousEDM: karras between its sigma_min and sigma_max;
    # normal linear in its timestep 0.25 ln sigma
    karras = compute_sigmas(schedule, "karras", 4)
    ramp = torch.linspace(0, 1, 4, dtype=torch.float64)
    expected = (80.0 ** (1 / 7) + ramp * (0.002 ** (1 / 7) - 80.0 ** (1 / 7))) ** 7
    torch.testing.assert_close(karras[:-1].double(), expected, rtol=1e-5, atol=0)
    normal = compute_sigmas(schedule, "normal", 3)
    expected = torch.exp(torch.linspace(0.25 * torch.log(torch.tensor(80.0)), 0.25 * torch.log(torch.tensor(0.002)),
                                        3) / 0.25)
    torch.testing.assert_close(normal[:-1], expected, rtol=1e-5, atol=0)
    # a sampling node on top still decides: v_prediction keeps Playground's latent space (ComfyUI
    # patches the latent format only for edm_playground_v2.5), discrete eps leaves continuous time
    v = call(builtin_registry, "ModelSamplingContinuousEDM", model=model, sampling="v_prediction", sigma_max=120.0,
             sigma_min=0.01)
    assert (v.prediction, v.edm, v.latent_format) == ("v", (0.01, 120.0), PLAYGROUND_2_5)
    assert DiscreteSchedule.for_model(v).sigma_data == 1.0
    eps = call(builtin_registry, "ModelSamplingDiscrete", model=model, sampling="eps", zsnr=False)
    assert (eps.prediction, eps.edm) == ("eps", None) and model.edm == (0.002, 80.0)


def test_denoiser_is_diffusers_edm_preconditioning(ckpt):
    from diffusers import EDMDPMSolverMultistepScheduler, EDMEulerScheduler

    unet, config = ckpt.model.unet, ckpt.model.unet.config
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 8, 8, generator=g) * 10
    context = torch.randn(2, 7, config.context_dim, generator=g)
    y = torch.randn(2, config.adm_in_channels, generator=g)
    sigma = torch.tensor([80.0, 0.05])
    with torch.no_grad():
        ours = ModelDenoiser(ckpt.model)(x, sigma, context=context, y=y)
        for scheduler in (EDMEulerScheduler(sigma_data=0.5), EDMDPMSolverMultistepScheduler(sigma_data=0.5)):
            s = sigma.reshape(-1, 1, 1, 1)
            out = unet(scheduler.precondition_inputs(x, s), scheduler.precondition_noise(sigma), context, y)
            torch.testing.assert_close(ours, scheduler.precondition_outputs(x, out, s), rtol=1e-4, atol=1e-4)


def test_latent_format_is_the_playground_pipeline_formula(ckpt):
    fmt = ckpt.model.latent_format  # what the sampler maps the LATENT in and out with
    z = torch.randn(2, 4, 5, 6) * 6 + 1
    model_space = torch.randn(2, 4, 5, 6)
    # StableDiffusionXLPipeline (decode) and its img2img prepare_latents (encode) with latents_mean/std
    torch.testing.assert_close(fmt.process_out(model_space), model_space * STD / VAE_SCALING + MEAN)
    torch.testing.assert_close(fmt.process_in(z), (z - MEAN) * VAE_SCALING / STD)
    torch.testing.assert_close(fmt.process_out(fmt.process_in(z)), z)


def test_txt2img_workflow_is_diffusers_edm_euler(builtin_registry, tmp_folders, models):
    from diffusers import EDMDPMSolverMultistepScheduler, EDMEulerScheduler

    tmp_folders.models = models
    steps, seed = 4, 11
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "playground.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"seed": seed, "steps": steps, "cfg": 1.0, "sampler_name": "euler",
                                                   "scheduler": "karras", "denoise": 1.0, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}},
    }
    result = Executor(builtin_registry).run(parse_workflow(graph, builtin_registry))
    assert result.status == "success", (result.problems, result.error)
    latent, image = result.values["3"][0]["samples"], result.values["8"][0]
    assert image.shape == (1, 64, 64, 3) and torch.isfinite(image).all()

    # the network's conditioning as graphflow builds it (context, SDXL's y), caught on a rerun
    model, calls = result.values["4"][0], []
    hook = model.unet.register_forward_pre_hook(lambda module, args: calls.append(args[2:4]))
    try:
        again = sample(model, seed, steps, 1.0, "euler", "karras", result.values["6"][0], result.values["7"][0],
                       {"samples": torch.zeros(1, 4, 8, 8)})["samples"]
    finally:
        hook.remove()
    torch.testing.assert_close(again, latent, rtol=0, atol=0)
    context, y = calls[0]
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(seed))  # ComfyUI's seeded CPU noise
    euler = EDMEulerScheduler(sigma_min=0.002, sigma_max=80.0, sigma_data=0.5, sigma_schedule="karras",
                              prediction_type="epsilon", final_sigmas_type="zero")
    torch.testing.assert_close(latent, diffusers_sample(euler, model.unet, noise, context, y, steps),
                               rtol=1e-4, atol=2e-3)
    # the scheduler Playground ships: DPM-Solver++(2M), midpoint, first order at the start and to sigma 0
    dpm = EDMDPMSolverMultistepScheduler(sigma_min=0.002, sigma_max=80.0, sigma_data=0.5, sigma_schedule="karras",
                                         prediction_type="epsilon", final_sigmas_type="zero")
    ours = sample(model, seed, steps, 1.0, "dpmpp_2m", "karras", result.values["6"][0], result.values["7"][0],
                  {"samples": torch.zeros(1, 4, 8, 8)})["samples"]
    torch.testing.assert_close(ours, diffusers_sample(dpm, model.unet, noise, context, y, steps), rtol=1e-4, atol=2e-3)


def test_save_keeps_the_markers_and_a_bare_unet_reads_them(ckpt, tmp_path):
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.checkpoint_save import save_checkpoint

    saved = load_checkpoint(save_checkpoint(tmp_path / "saved.safetensors", ckpt.model, ckpt.clip, ckpt.vae),
                            device="cpu", dtype=torch.float32)
    assert (saved.model.prediction, saved.model.edm) == ("edm", (0.002, 80.0))
    assert saved.model.latent_format.channel_mean == PLAYGROUND_2_5.channel_mean
    from graphflow.models.weight_files import config_metadata

    bare = write_checkpoint(tmp_path / "unet.safetensors", "sdxl", components=("unet",), extra=MARKERS,
                            metadata=config_metadata(arch="sdxl"))  # a scaled-down UNet alone says its family
    model = load_diffusion_model(bare, device="cpu", dtype=torch.float32)
    assert (model.prediction, model.edm, model.latent_format) == ("edm", (0.002, 80.0), PLAYGROUND_2_5)


def test_taesd_preview_decodes_playground_latents_in_sdxls_space(tmp_folders):
    from safetensors.torch import save_file

    from dataclasses import replace

    from graphflow.models.latent_formats import SDXL
    from graphflow.models.taesd import Decoder, TAESDConfig, load_half
    from graphflow.sampling import preview

    torch.manual_seed(0)
    decoder = Decoder(TAESDConfig(latent_channels=4))
    for p in decoder.parameters():
        p.data = torch.randn_like(p) * (1.0 / p[0].numel()) ** 0.5
    approx = tmp_folders.models / "vae_approx"
    approx.mkdir(parents=True, exist_ok=True)
    save_file(decoder.state_dict(), str(approx / "taesdxl_decoder.safetensors"))
    x = torch.randn(1, 4, 6, 6)
    sdxl_space = (x * STD / VAE_SCALING + MEAN) * 0.13025  # the raw VAE latent, scaled as SDXL samples it
    # a diffusers SDXL folder's latents_mean / latents_std give the same space under SDXL's name
    folder_format = replace(SDXL.with_scale(VAE_SCALING), channel_mean=PLAYGROUND_2_5.channel_mean,
                            channel_std=PLAYGROUND_2_5.channel_std)
    was = preview.preview_method()
    preview.set_preview_method("taesd")
    try:
        got = [preview.make_preview(x, fmt) for fmt in (PLAYGROUND_2_5, folder_format)]
    finally:
        preview.set_preview_method(was)
    with torch.no_grad():
        expected = load_half(approx / "taesdxl_decoder.safetensors", "decoder")(sdxl_space)
    assert got[0].shape == (1, 48, 48, 3)
    for image in got:
        torch.testing.assert_close(image, expected.float().clamp(0, 1).permute(0, 2, 3, 1), rtol=1e-3, atol=1e-3)


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory):
    from test_diffusers_folder import write_folder

    root = tmp_path_factory.mktemp("folders") / "sdxl"
    write_folder(root, "sdxl")
    return root


def folder_with(base, dest, vae=None, scheduler=None):
    """A copy of the folder `base` with keys of vae/config.json and scheduler_config.json set
    (None removes one); `scheduler` given replaces the scheduler's config."""
    import json
    import shutil

    shutil.copytree(base, dest)
    for path, changes, keep in ((dest / "vae" / "config.json", vae, True),
                                (dest / "scheduler" / "scheduler_config.json", scheduler, False)):
        if changes is not None:
            config = {**json.loads(path.read_text()), **changes} if keep else changes
            path.write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    return dest


PLAYGROUND_VAE = {"scaling_factor": VAE_SCALING, "latents_mean": MEAN.flatten().tolist(),
                  "latents_std": STD.flatten().tolist()}
PLAYGROUND_SCHEDULER = {"_class_name": "EDMDPMSolverMultistepScheduler", "sigma_min": 0.002, "sigma_max": 80.0,
                        "sigma_data": 0.5, "prediction_type": "epsilon"}


def test_diffusers_folder_with_an_edm_scheduler_is_playground(sdxl_folder, tmp_path):
    from graphflow.models.diffusers_folder import load_diffusers

    root = folder_with(sdxl_folder, tmp_path / "playground", PLAYGROUND_VAE, PLAYGROUND_SCHEDULER)
    model = load_diffusers(root, device="cpu", dtype=torch.float32).model
    assert (model.prediction, model.edm) == ("edm", (0.002, 80.0))
    assert DiscreteSchedule.for_model(model).sigma_data == 0.5
    z = torch.randn(1, 4, 3, 3)
    torch.testing.assert_close(model.latent_format.process_out(z), z * STD / VAE_SCALING + MEAN)


def test_diffusers_folder_latent_statistics_apply_with_any_scheduler(sdxl_folder, tmp_path):
    # StableDiffusionXLPipeline decodes latents * latents_std / scaling_factor + latents_mean whenever
    # the VAE config has both, whatever the scheduler; nested lists are the numbers flattened
    from graphflow.models.diffusers_folder import load_diffusers

    vae = {**PLAYGROUND_VAE, "latents_mean": MEAN.tolist()}  # [[[m0]], [[m1]], ...] as a saved tensor
    model = load_diffusers(folder_with(sdxl_folder, tmp_path / "euler", vae), device="cpu", dtype=torch.float32).model
    assert (model.prediction, model.edm) == ("eps", None)
    z = torch.randn(1, 4, 3, 3)
    torch.testing.assert_close(model.latent_format.process_out(z), z * STD / VAE_SCALING + MEAN)
    torch.testing.assert_close(model.latent_format.process_in(z), (z - MEAN) * VAE_SCALING / STD)


def test_cosxl_style_diffusers_folder_is_continuous_v(sdxl_folder, tmp_path):
    from diffusers import EDMEulerScheduler

    from graphflow.models.diffusers_folder import load_diffusers

    scheduler = {"_class_name": "EDMEulerScheduler", "sigma_min": 0.002, "sigma_max": 120.0, "sigma_data": 1.0,
                 "prediction_type": "v_prediction"}
    model = load_diffusers(folder_with(sdxl_folder, tmp_path / "cosxl", scheduler=scheduler), device="cpu",
                           dtype=torch.float32).model
    assert (model.prediction, model.edm, model.model_type, model.edm_v_file) == ("v", (0.002, 120.0), "v_edm", True)
    assert model.latent_format.scale_factor == 0.13025 and model.latent_format.channel_mean is None
    reference = EDMEulerScheduler(sigma_min=0.002, sigma_max=120.0, sigma_data=1.0, prediction_type="v_prediction")
    config = model.unet.config
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 8, 8, generator=g) * 10
    context = torch.randn(2, 7, config.context_dim, generator=g)
    y = torch.randn(2, config.adm_in_channels, generator=g)
    sigma = torch.tensor([120.0, 0.05])
    s = sigma.reshape(-1, 1, 1, 1)
    with torch.no_grad():
        ours = ModelDenoiser(model)(x, sigma, context=context, y=y)
        out = model.unet(reference.precondition_inputs(x, s), reference.precondition_noise(sigma), context, y)
    torch.testing.assert_close(ours, reference.precondition_outputs(x, out, s), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("vae, scheduler, family, message", [
    ({"latents_mean": None}, PLAYGROUND_SCHEDULER, "sdxl", "vae/config.json latents_mean: None, expected 4 numbers"),
    ({}, {**PLAYGROUND_SCHEDULER, "prediction_type": "sample"}, "sdxl",
     "scheduler prediction_type 'sample', expected epsilon or v_prediction"),
    ({}, {**PLAYGROUND_SCHEDULER, "sigma_data": 1.0}, "sdxl",
     "scheduler sigma_data 1.0, expected 0.5 with prediction_type epsilon"),
    ({}, PLAYGROUND_SCHEDULER, "sd1", "the folder is sd1, expected sdxl"),
    ({"latents_mean": ["-1.6", "1.9", "-1.4", "2.5"]}, None, "sdxl",
     "vae/config.json latents_mean: ['-1.6', '1.9', '-1.4', '2.5'], expected 4 numbers"),
    ({"latents_mean": [1.0, 2.0, 3.0]}, None, "sdxl", "vae/config.json latents_mean: [1.0, 2.0, 3.0], expected 4"),
    ({"latents_std": [8.5, 0.0, 6.5, 5.2]}, None, "sdxl", "vae/config.json latents_std: [8.5, 0.0, 6.5, 5.2], "
                                                          "expected 4 numbers above 0"),
])
def test_diffusers_folder_refusals_name_what_failed(sdxl_folder, tmp_path, vae, scheduler, family, message):
    from test_diffusers_folder import write_folder

    from graphflow.models.checkpoint import CheckpointError
    from graphflow.models.diffusers_folder import load_diffusers

    base = sdxl_folder
    if family != "sdxl":
        base = tmp_path / "base"
        write_folder(base, family)
    root = folder_with(base, tmp_path / "folder", {**PLAYGROUND_VAE, **vae}, scheduler)
    with pytest.raises(CheckpointError) as error:
        load_diffusers(root, device="cpu", dtype=torch.float32)
    assert message in str(error.value)


def test_save_after_the_playground_sampling_node_keeps_plain_sdxl(builtin_registry, tmp_path):
    from graphflow.models.checkpoint_save import save_checkpoint

    plain = load_checkpoint(write_checkpoint(tmp_path / "sdxl.safetensors", "sdxl"), device="cpu",
                            dtype=torch.float32)
    model = call(builtin_registry, "ModelSamplingContinuousEDM", model=plain.model, sampling="edm_playground_v2.5",
                 sigma_max=80.0, sigma_min=0.002)
    assert model.latent_format is PLAYGROUND_2_5
    # ComfyUI stores no sampling node's choice: the file reloads as the SDXL it was read as
    saved = load_checkpoint(save_checkpoint(tmp_path / "saved.safetensors", model, plain.clip, plain.vae),
                            device="cpu", dtype=torch.float32)
    fmt = saved.model.latent_format
    assert (saved.model.prediction, saved.model.edm, fmt.scale_factor, fmt.channel_mean) == ("eps", None, 0.13025, None)


def test_playground_markers_win_over_edm_vpred_keys(tmp_path):
    # ComfyUI's SDXL.model_type checks both Playground markers before edm_vpred.sigma_max; graphflow's
    # own save of Playground sampled with ModelSamplingContinuousEDM v_prediction writes both
    from graphflow.models.base_model_info import inspect_file

    path = write_checkpoint(tmp_path / "both.safetensors", "sdxl",
                            extra={**MARKERS, "edm_vpred.sigma_max": torch.tensor(120.0),
                                   "edm_vpred.sigma_min": torch.tensor(0.01)})
    model = load_checkpoint(path, device="cpu", dtype=torch.float32).model
    assert (model.prediction, model.edm, model.model_type, model.edm_v_file) == ("edm", (0.002, 80.0), "edm", False)
    assert model.latent_format is PLAYGROUND_2_5
    assert inspect_file(path)["type"] == "edm"


# ComfyUI's latent_rgb_factors (comfy/latent_formats.py): SDXL_Playground_2_5's, no bias; SDXL's, with bias
PLAYGROUND_RGB = np.array([[0.3920, 0.4054, 0.4549], [-0.2634, -0.0196, 0.0653],
                           [0.0568, 0.1687, -0.0755], [-0.3112, -0.2359, -0.2076]])
SDXL_RGB = np.array([[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068],
                     [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]])
SDXL_RGB_BIAS = np.array([0.1084, -0.0175, -0.0011])


def rgb_preview(latent: np.ndarray, factors: np.ndarray, bias=0.0) -> np.ndarray:
    """latent2rgb written out: each pixel's channels times the factors, plus the bias, -1..1 -> 0..1."""
    return np.clip((np.einsum("chw,cr->hwr", latent, factors) + bias + 1) / 2, 0, 1)


def test_latent2rgb_previews_playground_and_sdxl_folders_in_their_fits_space():
    from dataclasses import replace

    from graphflow.models.latent_formats import SDXL
    from graphflow.sampling.preview import latent_preview

    x = torch.randn(1, 4, 5, 6, generator=torch.Generator().manual_seed(3)) * 0.8
    playground_folder = replace(SDXL.with_scale(VAE_SCALING), channel_mean=tuple(MEAN.flatten().tolist()),
                                channel_std=tuple(STD.flatten().tolist()))
    mean, std = np.array([0.3, -0.2, 0.1, 0.05]), np.array([1.5, 0.9, 1.2, 0.7])
    other_folder = replace(SDXL, channel_mean=tuple(mean), channel_std=tuple(std))  # scale 0.13025
    raw = x[0].numpy() / SDXL.scale_factor * std[:, None, None] + mean[:, None, None]  # the folder's raw VAE latent
    for fmt, expected in ((PLAYGROUND_2_5, rgb_preview(x[0].numpy(), PLAYGROUND_RGB)),
                          (playground_folder, rgb_preview(x[0].numpy(), PLAYGROUND_RGB)),
                          (other_folder, rgb_preview(raw * 0.13025, SDXL_RGB, SDXL_RGB_BIAS)),
                          (SDXL, rgb_preview(x[0].numpy(), SDXL_RGB, SDXL_RGB_BIAS))):
        np.testing.assert_allclose(latent_preview(x, fmt)[0].numpy(), expected, rtol=1e-5, atol=1e-5)
