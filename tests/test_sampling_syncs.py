"""No host-device syncs inside the sampling loop.

The model runs on PyTorch's "meta" device: its tensors have shapes but no data, so anything that
would make a CUDA run wait for the GPU (`.item()`, `float(t)`, `bool(t)`, `if t > 0`, `.cpu()`,
`.tolist()`) raises there, and so does mixing a non-scalar CPU tensor into device math (a
per-step CPU tensor that would need a copy). Every sampler runs the full KSampler loop
(guidance with cond and uncond, inpainting mask, progress callback) this way.
"""

import pytest
import torch

from graphflow.models.diffusion_model import DiffusionModel
from graphflow.models.unet import UNet
from graphflow.sampling import flow_samplers, pipeline, samplers
from graphflow.sampling.flow_sampling import model_sampling_for
from graphflow.sampling.preview import preview_method, set_preview_method
from graphflow.sampling.samplers import SAMPLERS
from graphflow.sampling.schedules import compute_sigmas
from graphflow.testing import flow_model_config, unet_config

META = torch.device("meta")


class MetaModel(DiffusionModel):
    @property
    def device(self):
        return META


class ScaleNet(torch.nn.Module):
    """A stand-in UNet for the per-sampler runs (the real one is slow on meta): output depends on
    x, the timestep and the context, as a UNet's does."""

    def __init__(self):
        super().__init__()
        self.config = unet_config("sd1")
        self.scale = torch.nn.Parameter(torch.ones(1, device=META))

    def forward(self, x, t, context, y=None, **extra):
        return x * self.scale + t[:, None, None, None] * 1e-4 + context.mean()


def meta_module(cls, config):
    with META:  # no weights to initialise
        return cls(config)


def meta_noise_sampler(x, seed=None):
    # a seeded torch.Generator does not exist on meta; on CUDA it draws on the device, no sync
    return lambda sigma, sigma_next, shape=None: torch.randn(shape or x.shape, dtype=x.dtype, device=x.device)


class LoopDone(Exception):
    """Raised as the sampler returns: the result's one copy to the CPU comes after the loop."""


@pytest.fixture
def on_meta(monkeypatch):
    monkeypatch.setattr(samplers, "gaussian_noise_sampler", meta_noise_sampler)
    monkeypatch.setattr(flow_samplers, "gaussian_noise_sampler", meta_noise_sampler)
    sampler_for = pipeline.sampler_for

    def stopping_sampler_for(name, schedule):
        def sampler(*args, **kwargs):
            x = sampler_for(name, schedule)(*args, **kwargs)
            raise LoopDone(x)
        return sampler

    monkeypatch.setattr(pipeline, "sampler_for", stopping_sampler_for)
    before = preview_method()
    set_preview_method("latent2rgb")
    yield
    set_preview_method(before)


def run(model, name, steps=3, preview_every=0, **kwargs):
    schedule = model_sampling_for(model)
    sigmas = compute_sigmas(schedule, "karras" if not model.is_flow else "simple", steps, 1.0,
                            discard_penultimate=name in samplers.DISCARD_PENULTIMATE_SIGMA)
    context = torch.zeros(1, 7, model.unet.config.context_dim)
    options = {"pooled_output": torch.zeros(1, model.adm_channels)} if model.is_flow else {}
    positive, negative = [[context, options]], [[context + 1, options]]
    seen = []
    with pytest.raises(LoopDone) as done:
        pipeline._sample_with_sigmas(model, sigmas, torch.zeros(1, model.latent_format.channels, 8, 8),
                                     torch.zeros(1, model.latent_format.channels, 8, 8), positive, negative,
                                     7.0, name, 0, callback=seen.append, preview_every=preview_every, **kwargs)
    x = done.value.args[0]
    size = 8 * kwargs.get("sampler_options", {}).get("total_upscale", 1)  # lcm_upscale grows the latent
    assert x.device == META and x.shape == (1, model.latent_format.channels, size, size)
    return seen


# Left out: dpm_adaptive, whose step-size control must read each step's error on the host (a
# sync per step by design), and the *_gpu SDE samplers, whose torchsde Brownian tree lives on the
# device and cannot be built on meta (it reads its times as host floats, which the sigmas are).
LOOP_SAMPLERS = [n for n in SAMPLERS if n != "dpm_adaptive" and not n.endswith("_gpu")]


@pytest.mark.parametrize("name", LOOP_SAMPLERS)
def test_sampling_loop_has_no_sync(on_meta, name):
    assert run(MetaModel(ScaleNet(), "sd1"), name)


# The sampler nodes' options (nodes/custom_sampling.py) that take other paths through the loop.
NODE_OPTIONS = [
    ("euler_ancestral", {"eta": 0.5, "s_noise": 0.8}),
    ("sa_solver", {"simple_order_2": True, "predictor_order": 2, "corrector_order": 2}),
    ("er_sde", "Reverse-time SDE"),
    ("lcm_upscale", {"total_upscale": 1.5, "upscale_method": "bislerp"}),
    ("lcm_upscale", {"total_upscale": 1.5, "upscale_method": "bicubic", "upscale_steps": 1}),
]


@pytest.mark.parametrize("name, options", NODE_OPTIONS)
def test_sampler_node_options_have_no_sync(on_meta, name, options):
    if options == "Reverse-time SDE":
        options = samplers.er_sde_options("Reverse-time SDE", 0.5)
    assert run(MetaModel(ScaleNet(), "sd1"), name, sampler_options=options)


def test_guidance_patches_have_no_sync(on_meta):
    from graphflow.sampling.cfg_patches import adaptive_projected_guidance, epsilon_scaling
    model = epsilon_scaling(adaptive_projected_guidance(MetaModel(ScaleNet(), "sd1"), 0.5, 5.0, 0.0), 1.01)
    assert run(model, "euler")


def test_cfg_reshaping_patches_have_no_sync(on_meta):
    from graphflow.sampling.cfg_patches import cfg_norm, cfg_zero_star, fresca, mahiro, renorm_cfg, tcfg
    model = MetaModel(ScaleNet(), "sd1")
    for patch in (cfg_zero_star, cfg_norm, tcfg, mahiro, fresca, lambda m: renorm_cfg(m, 5.0, 1.0)):
        model = patch(model)
    assert run(model, "euler")
    assert run(MetaModel(ScaleNet(), "sd1"), "euler_cfg_pp_alternative")


def test_skip_layer_guidance_over_the_whole_run_has_no_sync(on_meta):
    """Within a partial window SLG reads sigma back once a step (ComfyUI's rule needs it); over
    0% to 100% it never does."""
    from graphflow.models.mmdit import MMDiT
    from graphflow.sampling.skip_layer_guidance import skip_layer_guidance, skip_layer_uncond

    model = MetaModel(meta_module(MMDiT, flow_model_config("sd3_medium")), "sd3", prediction="flow")
    model = skip_layer_uncond(skip_layer_guidance(model, [1], [], 3.0, 0.0, 1.0), [0], [], 0.0, 1.0)
    assert run(model, "euler")


def test_previews_turned_off_cost_no_sync(on_meta):
    set_preview_method("none")
    seen = run(MetaModel(ScaleNet(), "sd1"), "euler", preview_every=1)
    assert len(seen) == 3 and all(step["preview"] is None for step in seen)


def test_unet_sampling_loop_has_no_sync(on_meta):
    assert run(MetaModel(meta_module(UNet, unet_config("sd1")), "sd1"), "dpmpp_2m")


@pytest.mark.parametrize("name", ["euler", "dpmpp_2m_sde", "uni_pc"])
def test_inpainting_and_differential_diffusion_have_no_sync(on_meta, name):
    model = MetaModel(ScaleNet(), "sd1").with_options(differential_diffusion=1.0)
    mask = torch.linspace(0, 1, 64).reshape(1, 8, 8)
    assert run(model, name, noise_mask=mask)


@pytest.mark.parametrize("name", ["euler", "euler_ancestral", "dpmpp_2m_sde", "uni_pc"])
def test_flow_sampling_loop_has_no_sync(on_meta, name):
    from graphflow.models.mmdit import MMDiT

    model = MetaModel(meta_module(MMDiT, flow_model_config("sd3_medium")), "sd3", prediction="flow")
    assert run(model, name)


def test_meta_device_catches_a_sync():
    """The premise: what would sync on a GPU raises on meta."""
    x = torch.ones(2, device=META)
    for sync in (lambda: float(x.sum()), lambda: bool(x.sum() > 0), lambda: x.sum().item(), lambda: x.cpu()):
        with pytest.raises((RuntimeError, NotImplementedError)):
            sync()
    with pytest.raises(RuntimeError):
        x + torch.ones(2)  # a CPU tensor made in the loop
    assert (x * torch.tensor(2.0)).device == META  # a 0-dim host scalar is a kernel argument: fine


def test_cfg_runs_cond_and_uncond_in_one_model_call_per_step():
    from sampling_fakes import FakeModel, context_eps, prompt

    from graphflow.sampling.pipeline import sample

    model = FakeModel(context_eps)
    latent = {"samples": torch.zeros(2, 4, 8, 8)}
    sample(model, 0, 5, 7.0, "euler", "karras", prompt(0.3), prompt(-0.2), latent)
    assert len(model.unet.calls) == 5
    for call in model.unet.calls:  # the batch of 2 twice: positive and negative together
        assert call["x"].shape[0] == 4
        assert sorted({round(float(v), 3) for v in call["context"].flatten()}) == [-0.2, 0.3]
