"""Skip Layer Guidance (SkipLayerGuidanceSD3 / DiT / DiTSimple) on tiny random SD3.5 and FLUX
transformers: the skipped prediction against a network copy whose listed blocks are removed, the
guidance formula and window rule (ComfyUI's: sigma within the percents' sigmas), and a whole SD3.5
run against diffusers' StableDiffusion3Pipeline with skip_guidance_layers on the same weights
(its window is a fraction of the step count: the test picks settings where both select the same
steps)."""

import copy

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
from test_flow_models import diffusers_config_dir, sd3_diffusers_config

from graphflow.context import NodeInputError
from graphflow.models import SD3
from graphflow.models.checkpoint import load_diffusion_model
from graphflow.sampling import FlowDenoiser, prepare_conds, sample
from graphflow.sampling.flow_sampling import model_sampling_for
from graphflow.sampling.guidance import CFGGuider
from graphflow.sampling.noise import initial_noise
from graphflow.sampling.schedules import compute_sigmas
from graphflow.sampling.skip_layer_guidance import parse_layers
from graphflow.testing import flow_model_config, write_flow_checkpoint
from nodes.guidance_patches import SkipLayerGuidanceDiT, SkipLayerGuidanceDiTSimple, SkipLayerGuidanceSD3


def node(cls, **inputs):
    n = cls.__new__(cls)
    n.__dict__.update(inputs)
    return n.run()


@pytest.fixture(scope="module")
def sd35(tmp_path_factory):
    path = tmp_path_factory.mktemp("slg") / "sd35_medium.safetensors"
    write_flow_checkpoint(path, "sd35_medium", dtype=torch.float32, components=("model",), prefixed=False, seed=3)
    return path, load_diffusion_model(path, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    path = tmp_path_factory.mktemp("slg") / "flux_schnell.safetensors"
    write_flow_checkpoint(path, "flux_schnell", dtype=torch.float32, components=("model",), prefixed=False, seed=5)
    return load_diffusion_model(path, device="cpu", dtype=torch.float32)


def conditioning(model, value, seed, tokens=6):
    g = torch.Generator().manual_seed(seed)
    context = torch.randn(1, tokens, model.unet.config.context_dim if model.arch == "sd3"
                          else model.unet.config.context_in_dim, generator=g) * value
    pooled = torch.randn(1, model.adm_channels, generator=g)
    return [(context, {"pooled_output": pooled})]


def denoise(model, positive, negative, cfg, x, sigma):
    def prepare(c, negative=False):
        return prepare_conds(c, model, tuple(x.shape), x.device, negative=negative)
    return CFGGuider(model, positive, negative, cfg).denoiser(FlowDenoiser(model, model_sampling_for(model)), prepare)(
        x, sigma)


def without_blocks(model, double=(), single=()):
    unet = copy.deepcopy(model.unet)
    if hasattr(unet, "joint_blocks"):
        for i in double:
            unet.joint_blocks[i].forward = lambda context, x, c: (context, x)
    else:
        for i in double:
            unet.double_blocks[i].forward = lambda img, txt, vec, pe, mask=None: (img, txt)
        for i in single:
            unet.single_blocks[i].forward = lambda x, vec, pe, mask=None: x
    return model.with_unet(unet)


def test_parse_layers_reads_every_run_of_digits():
    assert parse_layers("7, 8, 9") == [7, 8, 9]
    assert parse_layers(" 1;2 x10") == [1, 2, 10]
    assert parse_layers("") == []


@pytest.mark.parametrize("rescaling", [0.0, 0.7])
def test_sd3_slg_adds_scale_times_cond_minus_the_skipped_prediction(sd35, rescaling):
    _, model = sd35
    x = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(1))
    sigma = torch.tensor([0.6])
    pos, neg = conditioning(model, 1.0, 1), conditioning(model, 0.5, 2)
    patched = node(SkipLayerGuidanceDiT, model=model, double_layers="1", single_layers="7, 8, 9", scale=2.5,
                   start_percent=0.0, end_percent=1.0, rescaling_scale=rescaling)
    got = denoise(patched, pos, neg, 4.0, x, sigma)
    plain = denoise(model, pos, neg, 4.0, x, sigma)
    cond = denoise(model, pos, [], 1.0, x, sigma)
    skipped = denoise(without_blocks(model, double=[1]), pos, [], 1.0, x, sigma)
    assert (cond - skipped).abs().max() > 1e-3  # skipping the block changes the prediction
    want = plain + (cond - skipped) * 2.5
    if rescaling:
        want = want * (rescaling * cond.std() / want.std() + 1 - rescaling)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # the shared network is left as it was
    assert all("forward" not in block.__dict__ for block in model.unet.joint_blocks)
    torch.testing.assert_close(denoise(model, pos, neg, 4.0, x, sigma), plain)


def test_flux_slg_skips_double_and_single_blocks(flux):
    model = flux
    x = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(2))
    sigma = torch.tensor([0.7])
    pos, neg = conditioning(model, 1.0, 3), conditioning(model, 0.3, 4)
    patched = node(SkipLayerGuidanceDiT, model=model, double_layers="0", single_layers="1", scale=1.5,
                   start_percent=0.0, end_percent=1.0, rescaling_scale=0.0)
    cond = denoise(model, pos, [], 1.0, x, sigma)
    skipped = denoise(without_blocks(model, double=[0], single=[1]), pos, [], 1.0, x, sigma)
    only_double = denoise(without_blocks(model, double=[0]), pos, [], 1.0, x, sigma)
    assert (skipped - only_double).abs().max() > 1e-4  # the single block counts too
    want = denoise(model, pos, neg, 3.0, x, sigma) + (cond - skipped) * 1.5
    torch.testing.assert_close(denoise(patched, pos, neg, 3.0, x, sigma), want, rtol=1e-4, atol=1e-5)


def test_slg_applies_only_within_the_percent_window(sd35):
    _, model = sd35
    schedule = model_sampling_for(model)
    start, end = 0.2, 0.6
    sigma_start, sigma_end = schedule.percent_to_sigma(start), schedule.percent_to_sigma(end)
    patched = node(SkipLayerGuidanceSD3, model=model, layers="0, 1", scale=3.0, start_percent=start, end_percent=end)
    x = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(3))
    pos, neg = conditioning(model, 1.0, 1), conditioning(model, 0.5, 2)
    for s, inside in ((sigma_start + 0.01, False), (sigma_start - 0.01, True), (sigma_end + 0.01, True),
                      (sigma_end - 0.01, False)):
        sigma = torch.tensor([s])
        changed = (denoise(patched, pos, neg, 4.0, x, sigma) - denoise(model, pos, neg, 4.0, x, sigma)).abs().max()
        assert (changed > 1e-4) == inside, s


def test_simple_variant_predicts_the_negative_with_blocks_skipped(flux):
    model = flux
    x = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(4))
    sigma = torch.tensor([0.5])
    pos, neg = conditioning(model, 1.0, 5), conditioning(model, 0.4, 6)
    patched = node(SkipLayerGuidanceDiTSimple, model=model, double_layers="0", single_layers="0",
                   start_percent=0.0, end_percent=1.0)
    cond = denoise(model, pos, [], 1.0, x, sigma)
    skipped_uncond = denoise(without_blocks(model, double=[0], single=[0]), neg, [], 1.0, x, sigma)
    want = skipped_uncond + (cond - skipped_uncond) * 3.5
    torch.testing.assert_close(denoise(patched, pos, neg, 3.5, x, sigma), want, rtol=1e-4, atol=1e-5)
    # at cfg 1 there is no negative to change
    torch.testing.assert_close(denoise(patched, pos, neg, 1.0, x, sigma), cond)


def test_simple_variant_costs_no_extra_evaluation(sd35):
    _, model = sd35
    pos, neg = conditioning(model, 1.0, 1), conditioning(model, 0.5, 2)
    schedule = model_sampling_for(model)
    patched = node(SkipLayerGuidanceDiTSimple, model=model, double_layers="1", single_layers="7, 8, 9",
                   start_percent=0.3, end_percent=1.0)
    batches = []
    hook = model.unet.register_forward_hook(lambda module, args, output: batches.append(args[0].shape[0]))
    try:
        x = torch.randn(1, 16, 8, 8)
        denoise(patched, pos, neg, 4.0, x, torch.tensor([schedule.percent_to_sigma(0.2)]))  # before the window
        denoise(patched, pos, neg, 4.0, x, torch.tensor([schedule.percent_to_sigma(0.5)]))  # inside it
    finally:
        hook.remove()
    assert batches == [2, 1, 1]  # batched as usual; then positive and the skipped negative apart


def test_blocks_a_model_lacks_skip_nothing_with_a_warning(sd35, flux, caplog):
    """As ComfyUI's block replacements reach no block past the model's or on a model without such
    blocks (a UNet): those layers skip nothing (the guidance term is zero there), with a warning."""
    from graphflow.sampling.skip_layer_guidance import skipped_blocks
    from test_guidance_patches import tiny_model

    _, model = sd35
    patched = node(SkipLayerGuidanceSD3, model=model, layers="1, 30", scale=3.0, start_percent=0.0, end_percent=1.0)
    assert len(patched.post_cfg_functions) == len(getattr(model, "post_cfg_functions", ())) + 1
    assert "layers: double block 30 does not exist" in caplog.text
    with skipped_blocks(model.unet, [1, 30], []) as swapped:
        assert swapped == [model.unet.joint_blocks[1]]  # block 30 is none of them
    node(SkipLayerGuidanceDiT, model=flux, double_layers="0", single_layers="5", scale=3.0, start_percent=0.0,
         end_percent=1.0, rescaling_scale=0.0)
    assert "single_layers: single block 5 does not exist" in caplog.text
    unet = tiny_model()
    node(SkipLayerGuidanceSD3, model=unet, layers="1", scale=3.0, start_percent=0.0, end_percent=1.0)
    assert "diffusion transformer" in caplog.text
    with skipped_blocks(unet.unet, [1], []) as swapped:
        assert swapped == []  # its prediction with the blocks "skipped" is the plain one
    # nothing to skip or scale 0: the model comes back unchanged
    assert node(SkipLayerGuidanceSD3, model=model, layers="", scale=3.0, start_percent=0.0, end_percent=1.0) is model
    assert node(SkipLayerGuidanceSD3, model=model, layers="1", scale=0.0, start_percent=0.0, end_percent=1.0) is model


def test_sd35_slg_run_equals_stable_diffusion_3_pipeline(sd35, tmp_path):
    path, model = sd35
    steps, cfg, scale, layers = 4, 4.5, 2.8, [1]
    pos, neg = conditioning(model, 1.0, 11, tokens=8), conditioning(model, 0.7, 12, tokens=8)
    # diffusers' window: steps i with start * 4 < i < stop * 4, here i = 1, 2, 3 ...
    start_frac, stop_frac = 0.2, 0.8
    # ... ComfyUI's: sigma_end <= sigma_i <= sigma_start; pick percents that select the same steps
    sigmas = compute_sigmas(model_sampling_for(model), "normal", steps)
    schedule = model_sampling_for(model)
    start_percent, end_percent = 0.05, 1.0
    assert sigmas[1] <= schedule.percent_to_sigma(start_percent) < sigmas[0]
    latent = {"samples": torch.zeros(1, 16, 8, 8)}
    patched = node(SkipLayerGuidanceSD3, model=model, layers="1", scale=scale, start_percent=start_percent,
                   end_percent=end_percent)
    ours = sample(patched, 7, steps, cfg, "euler", "normal", pos, neg, latent)["samples"]
    plain = sample(model, 7, steps, cfg, "euler", "normal", pos, neg, latent)["samples"]
    assert (ours - plain).abs().max() > 1e-3  # the guidance changed the result

    cfgm = flow_model_config("sd35_medium")
    transformer = SD3Transformer2DModel.from_single_file(
        str(path), config=diffusers_config_dir(tmp_path, SD3Transformer2DModel, **sd3_diffusers_config(cfgm)),
        local_files_only=True, torch_dtype=torch.float32).eval()
    pipe = StableDiffusion3Pipeline(transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
                                    vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None,
                                    tokenizer_2=None, text_encoder_3=None, tokenizer_3=None)
    noise = initial_noise(latent["samples"], 7)

    def run_pipe(**slg):
        return pipe(prompt_embeds=pos[0][0], pooled_prompt_embeds=pos[0][1]["pooled_output"],
                    negative_prompt_embeds=neg[0][0], negative_pooled_prompt_embeds=neg[0][1]["pooled_output"],
                    latents=noise.clone(), height=64, width=64, num_inference_steps=steps, guidance_scale=cfg,
                    output_type="latent", **slg).images

    theirs = run_pipe(skip_guidance_layers=layers, skip_layer_guidance_scale=scale,
                      skip_layer_guidance_start=start_frac, skip_layer_guidance_stop=stop_frac)
    assert float((SD3.process_in(ours) - theirs).abs().max()) <= 1e-3
    assert float((SD3.process_in(plain) - run_pipe()).abs().max()) <= 1e-3
    # the window matters: ComfyUI's percents that also take in step 0 no longer match
    wider = node(SkipLayerGuidanceSD3, model=model, layers="1", scale=scale, start_percent=0.0, end_percent=1.0)
    wider_run = sample(wider, 7, steps, cfg, "euler", "normal", pos, neg, latent)["samples"]
    assert float((SD3.process_in(wider_run) - theirs).abs().max()) > 1e-2
