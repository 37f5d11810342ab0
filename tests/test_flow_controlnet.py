"""SD3 and FLUX ControlNets against diffusers on identical tiny random weights: diffusers'
SD3ControlNetModel / FluxControlNetModel are built with random weights and their state dict is
saved as is (the diffusers layout people download); ours loads that file. The residuals, and the
transformer's output with them (ours against SD3Transformer2DModel / FluxTransformer2DModel
reading our base-model file through from_single_file) must agree in fp32."""

import pytest
import torch
from diffusers import FluxControlNetModel, FluxTransformer2DModel, SD3ControlNetModel, SD3Transformer2DModel
from safetensors.torch import save_file

from graphflow.models.checkpoint import load_diffusion_model
from graphflow.models.controlnet import ControlApplied, load_control_model
from graphflow.models.flux import image_ids, pack
from graphflow.models.weight_files import CheckpointError
from graphflow.testing import flow_model_config, write_flow_checkpoint
from tests.test_flow_models import (diffusers_config_dir, flux_any_width, flux_diffusers_config,  # noqa: F401
                                    sd3_diffusers_config)

TOL = 1e-4


def randomize(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():  # zero-initialised layers too, so that every weight matters
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * (0.5 / max(1, p[0].numel()) ** 0.5) + (0.1 if p.dim() == 1 else 0))
    return model.eval()


def save_diffusers(model, path):
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


class Hint:
    """Stands in for ControlApplied where a test gives the hint latent directly."""

    def __init__(self, latent):
        self.latent = latent

    def latent_hint(self, h, w, batch, device, dtype):
        return self.latent


def sd3_case(tmp_path):
    cfg = flow_model_config("sd35_medium")  # qk-norm and dual-attention blocks, depth 3
    base = write_flow_checkpoint(tmp_path / "sd3.safetensors", "sd35_medium", dtype=torch.float32,
                                 components=("model",), seed=5)
    theirs_net = randomize(SD3ControlNetModel(**{**sd3_diffusers_config(cfg), "num_layers": 2,
                                                 "dual_attention_layers": (0,)}), 6)
    path = save_diffusers(theirs_net, tmp_path / "diffusion_pytorch_model.safetensors")
    return cfg, base, theirs_net, path


def test_sd3_controlnet_matches_diffusers(tmp_path):
    cfg, base, theirs_net, path = sd3_case(tmp_path)
    net = load_control_model(path, dtype=torch.float32)
    assert net.config.depth == 2 and net.config.qk_norm and net.config.x_self_attn_layers == (0,)
    model = load_diffusion_model(base, device="cpu", dtype=torch.float32)
    theirs = SD3Transformer2DModel.from_single_file(
        str(base), config=diffusers_config_dir(tmp_path, SD3Transformer2DModel, **sd3_diffusers_config(cfg)),
        local_files_only=True, torch_dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(0)
    x, hint = torch.randn(2, 16, 8, 6, generator=g), torch.randn(2, 16, 8, 6, generator=g)
    sigma = torch.tensor([0.3, 0.8])
    context = torch.randn(2, 5, cfg.context_dim, generator=g)
    y = torch.randn(2, cfg.adm_in_channels, generator=g)
    with torch.no_grad():
        mine = net(x, hint, sigma, context, y)
        ref = theirs_net(hidden_states=x, controlnet_cond=hint, encoder_hidden_states=context, pooled_projections=y,
                         timestep=sigma * 1000, return_dict=False)[0]
        assert len(mine) == len(ref) == 2
        for a, b in zip(mine, ref):
            assert a.abs().mean() > 0.05 and (a - b).abs().max() <= TOL
        control = net.control(Hint(hint), x, sigma, context, y, model.unet.config)
        assert [r is None for r in control["output"]] == [False, False, True]
        out = model.unet(x, sigma, context, y, control=control)
        expected = theirs(hidden_states=x, encoder_hidden_states=context, pooled_projections=y, timestep=sigma * 1000,
                          block_controlnet_hidden_states=ref).sample
        plain = model.unet(x, sigma, context, y)
    assert (out - expected).abs().max() <= TOL
    assert (out - plain).abs().max() > 1e-2


def flux_controlnet_config(cfg, **changes):
    config = {k: v for k, v in flux_diffusers_config(cfg).items() if k != "out_channels"}
    return {**config, **changes}


def flux_case(tmp_path):
    cfg = flow_model_config("flux_dev")  # 1 double, 2 single blocks
    base = write_flow_checkpoint(tmp_path / "flux.safetensors", "flux_dev", dtype=torch.float32,
                                 components=("model",), seed=7)
    theirs_net = randomize(FluxControlNetModel(**flux_controlnet_config(cfg, num_layers=1, num_single_layers=1)), 8)
    path = save_diffusers(theirs_net, tmp_path / "diffusion_pytorch_model.safetensors")
    return cfg, base, theirs_net, path


def diffusers_flux_kwargs(cfg, packed, context, y, sigma, guidance, h, w):
    return dict(hidden_states=packed, encoder_hidden_states=context, pooled_projections=y, timestep=sigma,
                guidance=guidance, img_ids=image_ids(h, w, 1, "cpu")[0], txt_ids=torch.zeros(context.shape[1], 3))


def test_flux_controlnet_matches_diffusers(tmp_path, flux_any_width):  # noqa: F811
    cfg, base, theirs_net, path = flux_case(tmp_path)
    net = load_control_model(path, dtype=torch.float32)
    assert (net.config.depth, net.config.depth_single_blocks) == (1, 1) and net.config.guidance_embed
    model = load_diffusion_model(base, device="cpu", dtype=torch.float32)
    theirs = FluxTransformer2DModel.from_single_file(
        str(base), config=diffusers_config_dir(tmp_path, FluxTransformer2DModel, **flux_diffusers_config(cfg)),
        local_files_only=True, torch_dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(1)
    x, hint = torch.randn(2, 16, 8, 6, generator=g), torch.randn(2, 16, 8, 6, generator=g)
    sigma, guidance = torch.tensor([0.4, 1.0]), torch.tensor([3.5, 2.0])
    context = torch.randn(2, 6, cfg.context_in_dim, generator=g)
    y = torch.randn(2, cfg.vec_in_dim, generator=g)
    kwargs = diffusers_flux_kwargs(cfg, pack(x), context, y, sigma, guidance, 4, 3)
    with torch.no_grad():
        mine = net(x, hint, sigma, context, y, guidance)
        double, single = theirs_net(controlnet_cond=pack(hint), return_dict=False, **kwargs)
        for a, b in zip(mine["input"] + mine["output"], list(double) + list(single)):
            assert a.abs().mean() > 0.05 and (a - b).abs().max() <= TOL
        control = net.control(Hint(hint), x, sigma, context, y, model.unet.config, guidance=guidance)
        assert len(control["input"]) == 1 and len(control["output"]) == 2  # one single residual for both blocks
        out = model.unet(x, sigma, context, y, guidance=guidance, control=control)
        expected = theirs(controlnet_block_samples=double, controlnet_single_block_samples=single, **kwargs).sample
        plain = model.unet(x, sigma, context, y, guidance=guidance)
    assert (pack(out) - expected).abs().max() <= TOL
    assert (out - plain).abs().max() > 1e-2


def test_refusals_name_the_file(tmp_path):
    cfg = flow_model_config("flux_dev")
    union = FluxControlNetModel(**flux_controlnet_config(cfg, num_layers=1, num_single_layers=0, num_mode=3))
    path = save_diffusers(union, tmp_path / "union.safetensors")
    with pytest.raises(CheckpointError, match="union.safetensors.*Union"):
        load_control_model(path)
    net = SD3ControlNetModel(**{**sd3_diffusers_config(flow_model_config("sd3_medium")), "num_layers": 1})
    state = {k: v for k, v in net.state_dict().items() if "to_k" not in k}
    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(CheckpointError, match="broken.safetensors.*missing"):
        load_control_model(tmp_path / "broken.safetensors")
