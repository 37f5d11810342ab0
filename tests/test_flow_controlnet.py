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
        self.latent, self.shifted = latent, None

    def latent_hint(self, h, w, batch, device, dtype, shift=True):
        self.shifted = shift
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
        # as diffusers' pipeline runs these (force_zeros_for_pooled_projection): a zero pooled vector
        # for the ControlNet, and the hint latent not shifted
        ref = theirs_net(hidden_states=x, controlnet_cond=hint, encoder_hidden_states=context,
                         pooled_projections=torch.zeros_like(y), timestep=sigma * 1000, return_dict=False)[0]
        given = Hint(hint)
        control = net.control(given, x, sigma, context, y, model.unet.config)
        assert given.shifted is False
        assert [r is None for r in control["output"]] == [False, False, True]
        assert (control["output"][1] - ref[0]).abs().max() <= TOL
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
    net = SD3ControlNetModel(**{**sd3_diffusers_config(flow_model_config("sd3_medium")), "num_layers": 1})
    state = {k: v for k, v in net.state_dict().items() if "to_k" not in k}
    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(CheckpointError, match="broken.safetensors.*missing"):
        load_control_model(tmp_path / "broken.safetensors")


@pytest.mark.parametrize("family", ["sd35_medium", "flux_dev"])
def test_writer_layouts_agree_and_diffusers_reads_its_layout(tmp_path, family):
    from safetensors.torch import load_file

    from graphflow.testing import write_flow_controlnet

    a = write_flow_controlnet(tmp_path / "diffusers.safetensors", family, "diffusers", seed=2, dtype=torch.float32)
    b = write_flow_controlnet(tmp_path / "ours.safetensors", family, "ours", seed=2, dtype=torch.float32)
    na, nb = load_control_model(a), load_control_model(b)
    assert na.control_config == nb.control_config
    assert all(torch.equal(v, nb.state_dict()[k]) for k, v in na.state_dict().items())
    cfg = flow_model_config(family)
    if family.startswith("sd3"):
        theirs = SD3ControlNetModel(**{**sd3_diffusers_config(cfg), "num_layers": 1, "dual_attention_layers": (0,)})
    else:
        theirs = FluxControlNetModel(**flux_controlnet_config(cfg, num_layers=1, num_single_layers=1))
    theirs.load_state_dict(load_file(str(a)), strict=True)  # the file is diffusers' own layout


@pytest.fixture
def flow_models(tmp_folders):
    from graphflow.testing import write_flow_controlnet, write_flow_vae, write_text_encoder

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae", "controlnet"):
        (m / sub).mkdir()
    for family, seed in (("sd3_medium", 3), ("flux_dev", 4), ("sd35_large", 5)):
        write_flow_checkpoint(m / "diffusion_models" / f"{family}.safetensors", family, dtype=torch.float32,
                              components=("model",), prefixed=False, seed=seed)
        write_flow_controlnet(m / "controlnet" / f"{family}_cn.safetensors", family, seed=seed + 10,
                              dtype=torch.float32, joint=family != "sd35_large")
    write_flow_vae(m / "vae" / "vae16.safetensors", dtype=torch.float32)
    for name, seed in (("t5xxl", 1), ("clip_l", 2), ("clip_g", 6)):
        write_text_encoder(m / "text_encoders" / f"{name}.safetensors", name, seed=seed, dtype=torch.float32)
    return m


def flow_graph(family, strength=None, node="ControlNetApplySD3"):
    """A ComfyUI-named text-to-image graph of the tiny family; with a ControlNet unless strength is None."""
    if family.startswith("sd3"):
        clip = {"class_type": "TripleCLIPLoader", "inputs": {"clip_name1": "clip_g.safetensors",
                                                             "clip_name2": "t5xxl.safetensors",
                                                             "clip_name3": "clip_l.safetensors"}}
    else:
        clip = {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl.safetensors",
                                                           "clip_name2": "clip_l.safetensors", "type": "flux"}}
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": f"{family}.safetensors", "weight_dtype": "default"}},
        "2": clip,
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red square", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 0]}},
        "5": {"class_type": "VAELoader", "inputs": {"vae_name": "vae16.safetensors"}},
        "6": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
        "7": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 5, "steps": 3, "cfg": 2.0,
                                                   "sampler_name": "euler", "scheduler": "simple",
                                                   "positive": ["3", 0], "negative": ["4", 0],
                                                   "latent_image": ["6", 0], "denoise": 1.0}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["5", 0]}},
    }
    if strength is not None:
        inputs = {"positive": ["3", 0], "negative": ["4", 0], "control_net": ["10", 0], "vae": ["5", 0],
                  "image": ["11", 0], "strength": strength, "start_percent": 0.0, "end_percent": 1.0}
        graph.update({
            "10": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": f"{family}_cn.safetensors"}},
            "11": {"class_type": "EmptyImage", "inputs": {"width": 96, "height": 64, "batch_size": 1,
                                                          "color": 0xFF0000}},
            "12": {"class_type": node, "inputs": inputs},
        })
        graph["7"]["inputs"].update(positive=["12", 0], negative=["12", 1])
    return graph


def run(graph):
    import json

    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.workflow import parse_workflow

    registry = Registry().load_builtin()
    result = Executor(registry).run(parse_workflow(json.loads(json.dumps(graph)), registry), outputs=["8"])
    assert result.ok, result.error or result.problems
    return result.values["8"][0]


@pytest.mark.parametrize("family,node", [("sd3_medium", "ControlNetApplySD3"), ("flux_dev", "ControlNetApplyAdvanced"),
                                         ("sd35_large", "ControlNetApplySD3")])
def test_flow_graph_with_a_controlnet(flow_models, family, node):
    plain = run(flow_graph(family))
    guided = run(flow_graph(family, 1.0, node))
    assert plain.shape == guided.shape == (1, 48, 64, 3)
    assert (guided - plain).abs().max() > 1e-3
    assert torch.equal(run(flow_graph(family, 0.0, node)), plain)  # strength 0: exactly the plain image


def test_apply_nodes_ask_for_the_vae(flow_models, builtin_registry):
    from graphflow.context import NodeInputError
    from tests.test_nodes_image_mask import call

    net = call(builtin_registry, "LoadControlNet", control_net_name="sd3_medium_cn.safetensors")
    cond = [(torch.zeros(1, 4, 8), {})]
    image = torch.rand(1, 32, 32, 3)
    with pytest.raises(NodeInputError, match="connect the model's VAE") as error:
        call(builtin_registry, "ApplyControlNetAdvanced", positive=cond, negative=cond, control_net=net, image=image,
             strength=1.0, start_percent=0.0, end_percent=1.0)
    assert error.value.input == "vae"
    with pytest.raises(NodeInputError, match="through a VAE") as error:
        call(builtin_registry, "ApplyControlNet", conditioning=cond, control_net=net, image=image, strength=1.0)
    assert error.value.input == "control_net"
    vae = call(builtin_registry, "LoadVAE", vae_name="vae16.safetensors")
    positive, _ = call(builtin_registry, "ApplyControlNetWithVAE", positive=cond, negative=cond, control_net=net,
                       vae=vae, image=image, strength=0.5, start_percent=0.0, end_percent=1.0)
    applied = positive[0][1]["control"]
    assert applied.vae is vae and applied.strength == 0.5
    latent = applied.latent_hint(4, 4, 2, "cpu", torch.float32)  # the hint image encoded at 32x32 pixels
    expected = vae.latent_format.process_in(vae.encode(torch.nn.functional.interpolate(
        image.movedim(-1, 1), size=(32, 32), mode="nearest-exact").movedim(1, -1)))
    assert latent.shape == (2, 16, 4, 4) and torch.equal(latent[1:], expected)
    unshifted = applied.latent_hint(4, 4, 1, "cpu", torch.float32, shift=False)
    fmt = vae.latent_format  # (raw - shift) * scale without the shift: raw * scale
    torch.testing.assert_close(unshifted, expected + fmt.shift_factor * fmt.scale_factor)
    assert vae.latent_format.shift_factor != 0


@pytest.mark.parametrize("layout", ["diffusers", "xlabs"])
def test_flux_controlnet_with_its_own_hint_encoder_matches_diffusers(tmp_path, flux_any_width, layout):  # noqa: F811
    """XLabs-style: the hint as pixels in -1..1 through input_hint_block, residuals repeated
    (diffusers' controlnet_blocks_repeat). The diffusers-layout file is diffusers' state dict; the
    XLabs one is graphflow.testing's of the same seed, which must load to the same weights."""
    from safetensors.torch import load_file

    from graphflow.testing import write_flow_controlnet

    cfg = flow_model_config("flux_dev")
    base = write_flow_checkpoint(tmp_path / "flux.safetensors", "flux_dev", dtype=torch.float32,
                                 components=("model",), seed=7)
    if layout == "diffusers":  # two blocks for a one-block model: the repeat order shows below
        theirs_net = randomize(FluxControlNetModel(**flux_controlnet_config(
            cfg, num_layers=2, num_single_layers=0, patch_size=2, conditioning_embedding_channels=16)), 9)
        path = save_diffusers(theirs_net, tmp_path / "diffusion_pytorch_model.safetensors")
    else:
        diffusers_file = write_flow_controlnet(tmp_path / "cn.safetensors", "flux_dev", "diffusers", seed=9,
                                              dtype=torch.float32, hint_block=True)
        theirs_net = FluxControlNetModel(**flux_controlnet_config(cfg, num_layers=1, num_single_layers=0, patch_size=2,
                                                                  conditioning_embedding_channels=16))
        theirs_net.load_state_dict(load_file(str(diffusers_file)), strict=True)
        theirs_net.eval()
        path = write_flow_controlnet(tmp_path / "xlabs.safetensors", "flux_dev", "ours", seed=9, dtype=torch.float32,
                                     hint_block=True)
        assert any(k.startswith("input_hint_block.14.") for k in load_file(str(path)))
    net = load_control_model(path, dtype=torch.float32)
    assert not net.needs_vae and net.control_config.hint_block == (16, 16, 16, 16)
    model = load_diffusion_model(base, device="cpu", dtype=torch.float32)
    theirs = FluxTransformer2DModel.from_single_file(
        str(base), config=diffusers_config_dir(tmp_path, FluxTransformer2DModel, **flux_diffusers_config(cfg)),
        local_files_only=True, torch_dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 16, 8, 6, generator=g)
    pixels = torch.rand(2, 64, 48, 3, generator=g)
    sigma, guidance = torch.tensor([0.4, 1.0]), torch.tensor([3.5, 2.0])
    context = torch.randn(2, 6, cfg.context_in_dim, generator=g)
    y = torch.randn(2, cfg.vec_in_dim, generator=g)
    kwargs = diffusers_flux_kwargs(cfg, pack(x), context, y, sigma, guidance, 4, 3)
    applied = ControlApplied(net, pixels, 1.0)
    with torch.no_grad():
        double, single = theirs_net(controlnet_cond=pixels.movedim(-1, 1) * 2 - 1, return_dict=False, **kwargs)
        assert single is None and len(double) == (2 if layout == "diffusers" else 1)
        mine = net(x, pixels.movedim(-1, 1) * 2 - 1, sigma, context, y, guidance)["input"]
        for a, b in zip(mine, double):
            assert (a - b).abs().max() <= TOL and b.abs().mean() > 0.05
        if layout == "diffusers":  # repeated, not stretched: a 3-block model gets residuals 0, 1, 0
            from dataclasses import replace

            deeper = net.control(applied, x, sigma, context, y, replace(model.unet.config, depth=3), guidance=guidance)
            assert [min(range(2), key=lambda j: (r - mine[j]).abs().max()) for r in deeper["input"]] == [0, 1, 0]
        control = net.control(applied, x, sigma, context, y, model.unet.config, guidance=guidance)
        out = model.unet(x, sigma, context, y, guidance=guidance, control=control)
        expected = theirs(controlnet_block_samples=double, controlnet_blocks_repeat=True, **kwargs).sample
    assert (pack(out) - expected).abs().max() <= TOL


@pytest.mark.parametrize("layout", ["diffusers", "ours"])
def test_sd35_large_controlnet_matches_diffusers(tmp_path, layout):
    """Stability's SD3.5 large ControlNets in diffusers' layout: image-only blocks on the sampled
    model's own patch embedding and position table (the pipeline's _get_pos_embed_from_transformer),
    the real pooled vector and the shifted hint latent."""
    from safetensors.torch import load_file

    from graphflow.testing import write_flow_controlnet

    cfg = flow_model_config("sd35_large")
    base = write_flow_checkpoint(tmp_path / "sd35.safetensors", "sd35_large", dtype=torch.float32,
                                 components=("model",), seed=11)
    model = load_diffusion_model(base, device="cpu", dtype=torch.float32)
    theirs = SD3Transformer2DModel.from_single_file(
        str(base), config=diffusers_config_dir(tmp_path, SD3Transformer2DModel, **sd3_diffusers_config(cfg)),
        local_files_only=True, torch_dtype=torch.float32).eval()
    single = dict(joint_attention_dim=None, pos_embed_type=None, use_pos_embed=False, qk_norm=None,
                  force_zeros_for_pooled_projection=False)
    if layout == "diffusers":
        theirs_net = randomize(SD3ControlNetModel(**{**sd3_diffusers_config(cfg), "num_layers": 2, **single}), 12)
        path = save_diffusers(theirs_net, tmp_path / "diffusion_pytorch_model.safetensors")
    else:  # graphflow.testing's file of our layout, against its diffusers-layout twin
        twin = write_flow_controlnet(tmp_path / "twin.safetensors", "sd35_large", "diffusers", seed=12,
                                     dtype=torch.float32, joint=False)
        theirs_net = SD3ControlNetModel(**{**sd3_diffusers_config(cfg), "num_layers": 1, **single})
        theirs_net.load_state_dict(load_file(str(twin)), strict=True)
        path = write_flow_controlnet(tmp_path / "ours.safetensors", "sd35_large", "ours", seed=12,
                                     dtype=torch.float32, joint=False)
    theirs_net.pos_embed = theirs_net._get_pos_embed_from_transformer(theirs)
    theirs_net.eval()
    net = load_control_model(path, dtype=torch.float32)
    assert not net.control_config.joint
    g = torch.Generator().manual_seed(4)
    x, hint = torch.randn(2, 16, 8, 6, generator=g), torch.randn(2, 16, 8, 6, generator=g)
    sigma = torch.tensor([0.3, 0.8])
    context = torch.randn(2, 5, cfg.context_dim, generator=g)
    y = torch.randn(2, cfg.adm_in_channels, generator=g)
    given = Hint(hint)
    with torch.no_grad():
        ref = theirs_net(hidden_states=x, controlnet_cond=hint, encoder_hidden_states=None, pooled_projections=y,
                         timestep=sigma * 1000, return_dict=False)[0]
        control = net.control(given, x, sigma, context, y, model.unet.config, base=model.unet)
        assert given.shifted is True
        assert (control["output"][0] - ref[0]).abs().max() <= TOL and ref[0].abs().mean() > 0.05
        out = model.unet(x, sigma, context, y, control=control)
        expected = theirs(hidden_states=x, encoder_hidden_states=context, pooled_projections=y, timestep=sigma * 1000,
                          block_controlnet_hidden_states=ref).sample
    assert (out - expected).abs().max() <= TOL
    with pytest.raises(ValueError, match="same width"):
        net.control(given, x, sigma, context, y, model.unet.config)  # no base model to embed with


def test_a_controlnet_for_another_family_is_refused_by_name(tmp_path):
    from graphflow.models.t2i_adapter import feature_places
    from graphflow.models.unet import UNetConfig
    from graphflow.testing import write_flow_controlnet

    sd3 = load_control_model(write_flow_controlnet(tmp_path / "sd3.safetensors", "sd3_medium", dtype=torch.float32))
    flux = load_control_model(write_flow_controlnet(tmp_path / "flux.safetensors", "flux_dev", dtype=torch.float32))
    x, sigma = torch.zeros(1, 16, 4, 4), torch.tensor([0.5])
    context, y = torch.zeros(1, 3, flow_model_config("sd3_medium").context_dim), torch.zeros(1, 192)
    with pytest.raises(ValueError, match="SD3 ControlNet.*not SD3 .FluxConfig"):
        sd3.control(Hint(x), x, sigma, context, y, flow_model_config("flux_dev"))
    with pytest.raises(ValueError, match="FLUX ControlNet.*not FLUX .MMDiTConfig"):
        flux.control(Hint(x), x, sigma, context, y, flow_model_config("sd3_medium"))
    with pytest.raises(ValueError, match="T2I-Adapters guide UNet models"):
        feature_places([torch.zeros(1, 32, 4, 4)], flow_model_config("sd3_medium"))
    sd1 = UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=2, transformer_depth=(1, 1),
                     context_dim=768, num_heads=8, num_head_channels=-1)
    with pytest.raises(ValueError, match="64 channels wide, the UNet's is 32"):  # an SDXL-width adapter
        feature_places([torch.zeros(1, 64, 4, 4), torch.zeros(1, 64, 2, 2)], sd1)


@pytest.mark.parametrize("family", ["sd3_medium", "flux_dev"])
def test_clip_text_encode_controlnet_on_flow_controlnets(flow_models, family):
    def with_text(text):
        graph = flow_graph(family, 1.0)
        graph["13"] = {"class_type": "CLIPTextEncodeControlnet",
                       "inputs": {"clip": ["2", 0], "conditioning": ["12", 0], "text": text}}
        graph["7"]["inputs"]["positive"] = ["13", 0]
        return graph

    guided = run(flow_graph(family, 1.0))
    # the prompt's own text: the same picture (the positive is now run apart from the negative)
    torch.testing.assert_close(run(with_text("a red square")), guided, atol=1e-4, rtol=0)
    assert (run(with_text("a blue circle")) - guided).abs().max() > 1e-3


def test_stability_original_sd35_controlnet_layout_is_refused_clearly(tmp_path):
    """ComfyUI reads Stability's own SD3.5 ControlNet files; here they are refused by name (not an
    unpacking error on the 'control_type' key)."""
    path = tmp_path / "sd3.5_large_controlnet_canny.safetensors"
    save_file({"control_type": torch.tensor([1.0]), "pos_embed_input.proj.weight": torch.zeros(8, 16, 2, 2),
               "time_text_embed.timestep_embedder.linear_1.weight": torch.zeros(8, 256),
               "transformer_blocks.0.adaLN_modulation.1.bias": torch.zeros(48)}, str(path))
    with pytest.raises(CheckpointError, match="sd3.5_large_controlnet_canny.safetensors: this is Stability's original"):
        load_control_model(path)
