"""Inpainting ControlNets (alimama's SD3-Controlnet-Inpainting and FLUX.1-dev-Controlnet-Inpainting)
and ComfyUI's ControlNetInpaintingAliMamaApply.

Parity: diffusers' SD3ControlNetModel (extra_conditioning_channels=1) / FluxControlNetModel (a
68-wide controlnet_x_embedder, as alimama's file has) on random weights, fed the hint as the
inpainting pipelines build it: SD3 through diffusers' own
StableDiffusion3ControlNetInpaintingPipeline.prepare_image_with_mask (our VAE as its encoder);
FLUX as alimama's pipeline does (masked pixels -1, (z - shift) * scale, the mask nearest-resized
and inverted, 17 channels packed with diffusers' _pack_latents). Ours gets the same image and
mask through the node."""

from types import SimpleNamespace

import pytest
import torch
from diffusers import FluxControlNetModel, FluxPipeline, SD3ControlNetModel
from diffusers.pipelines import StableDiffusion3ControlNetInpaintingPipeline

from graphflow.models.checkpoint import load_vae
from graphflow.models.controlnet import load_control_model
from graphflow.models.flux import image_ids, pack
from graphflow.models.latent_formats import FLUX, SD3
from graphflow.testing import flow_model_config, write_flow_controlnet, write_flow_vae
from tests.test_flow_controlnet import flow_graph, flow_models, flux_controlnet_config, randomize  # noqa: F401
from tests.test_flow_controlnet import run, save_diffusers
from tests.test_flow_models import sd3_diffusers_config
from tests.test_nodes_image_mask import call

TOL = 1e-4


class DiffusersVAE:
    """Our VAE behind the interface the diffusers pipelines call (encode(x in -1..1).latent_dist.sample())."""

    def __init__(self, vae):
        self.vae = vae
        self.config = SimpleNamespace(shift_factor=vae.latent_format.shift_factor,
                                      scaling_factor=vae.latent_format.scale_factor)

    def encode(self, x):
        mean = self.vae.encode(((x + 1) / 2).movedim(1, -1))
        return SimpleNamespace(latent_dist=SimpleNamespace(sample=lambda: mean))


def image_and_mask(seed=0):
    """A 64x48 image pair and a mask (1 = repaint) whose edges fall on the 8-pixel latent grid, so
    that diffusers' nearest and ComfyUI's nearest-exact resizing pick the same values."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 64, 48, 3, generator=g)
    mask = torch.zeros(2, 64, 48)
    mask[0, 16:40, 8:32] = 1.0
    mask[1, 40:, 24:] = 1.0
    return image, mask


def applied(registry, net, vae, image, mask, strength=1.0):
    cond = [(torch.zeros(1, 4, 8), {})]
    positive, negative = call(registry, "ApplyInpaintingControlNet", positive=cond, negative=cond, control_net=net,
                              vae=vae, image=image, mask=mask, strength=strength, start_percent=0.0, end_percent=1.0)
    assert positive[0][1]["control"] is negative[0][1]["control"]
    return positive[0][1]["control"]


def test_sd3_inpainting_controlnet_matches_diffusers(tmp_path, builtin_registry):
    cfg = flow_model_config("sd35_medium")
    theirs = randomize(SD3ControlNetModel(**{**sd3_diffusers_config(cfg), "num_layers": 2,
                                             "dual_attention_layers": (0,), "extra_conditioning_channels": 1}), 21)
    net = load_control_model(save_diffusers(theirs, tmp_path / "diffusion_pytorch_model.safetensors"),
                             dtype=torch.float32)
    assert net.concat_mask and net.control_config.hint_channels == 17
    vae = load_vae(write_flow_vae(tmp_path / "vae.safetensors", dtype=torch.float32), latent_format=SD3)
    image, mask = image_and_mask()
    pipe = SimpleNamespace(vae=DiffusersVAE(vae), vae_scale_factor=8)
    with torch.no_grad():
        hint = StableDiffusion3ControlNetInpaintingPipeline.prepare_image_with_mask(
            pipe, image.movedim(-1, 1) * 2 - 1, mask[:, None], width=48, height=64, batch_size=2,
            num_images_per_prompt=1, device="cpu", dtype=torch.float32)
    assert hint.shape == (2, 17, 8, 6) and hint[:, 16].min() == 0 and hint[:, 16].max() == 1
    g = torch.Generator().manual_seed(1)
    x, sigma = torch.randn(2, 16, 8, 6, generator=g), torch.tensor([0.3, 0.8])
    context = torch.randn(2, 5, cfg.context_dim, generator=g)
    y = torch.randn(2, cfg.adm_in_channels, generator=g)
    control = applied(builtin_registry, net, vae, image, mask)
    with torch.no_grad():
        ref = theirs(hidden_states=x, controlnet_cond=hint, encoder_hidden_states=context,
                     pooled_projections=torch.zeros_like(y), timestep=sigma * 1000, return_dict=False)[0]
        mine = net.control(control, x, sigma, context, y, cfg)["output"]
        assert [r is None for r in mine] == [False, False, True]
        direct = net(x, hint, sigma, context, torch.zeros_like(y))
        for a, b in zip(direct, ref):
            assert b.abs().mean() > 0.05 and (a - b).abs().max() <= TOL
        assert (mine[0] - ref[0]).abs().max() <= TOL  # through the node's hint (3 model blocks: residual 0, 0)
        # the mask matters: another one gives other residuals
        other = net.control(applied(builtin_registry, net, vae, image, mask.flip(1)), x, sigma, context, y, cfg)
        assert (other["output"][0] - mine[0]).abs().max() > 1e-2


def test_flux_inpainting_controlnet_matches_alimamas_pipeline(tmp_path, builtin_registry):
    cfg = flow_model_config("flux_dev")
    theirs = FluxControlNetModel(**flux_controlnet_config(cfg, num_layers=1, num_single_layers=1))
    theirs.controlnet_x_embedder = torch.nn.Linear(68, cfg.hidden_size)  # alimama's: in_channels + 4
    theirs = randomize(theirs, 22)
    net = load_control_model(save_diffusers(theirs, tmp_path / "diffusion_pytorch_model.safetensors"),
                             dtype=torch.float32)
    assert net.concat_mask and net.needs_vae and net.control_config.hint_channels == 68
    vae = load_vae(write_flow_vae(tmp_path / "vae.safetensors", dtype=torch.float32), latent_format=FLUX)
    image, mask = image_and_mask(3)
    masked = image.movedim(-1, 1) * 2 - 1
    masked[(mask[:, None] > 0.5).repeat(1, 3, 1, 1)] = -1
    with torch.no_grad():
        latent = (vae.encode(((masked + 1) / 2).movedim(1, -1)) - FLUX.shift_factor) * FLUX.scale_factor
    keep = 1 - torch.nn.functional.interpolate(mask[:, None], size=(8, 6))
    hint = FluxPipeline._pack_latents(torch.cat([latent, keep], 1), 2, 17, 8, 6)
    g = torch.Generator().manual_seed(2)
    x, sigma, guidance = torch.randn(2, 16, 8, 6, generator=g), torch.tensor([0.4, 1.0]), torch.tensor([3.5, 2.0])
    context = torch.randn(2, 6, cfg.context_in_dim, generator=g)
    y = torch.randn(2, cfg.vec_in_dim, generator=g)
    control = applied(builtin_registry, net, vae, image, mask)
    with torch.no_grad():
        double, single = theirs(hidden_states=pack(x), controlnet_cond=hint, encoder_hidden_states=context,
                                pooled_projections=y, timestep=sigma, guidance=guidance,
                                img_ids=image_ids(4, 3, 1, "cpu")[0], txt_ids=torch.zeros(6, 3), return_dict=False)
        mine = net.control(control, x, sigma, context, y, cfg, guidance=guidance)
    assert len(mine["input"]) == 1 and len(mine["output"]) == 2
    for a, b in ((mine["input"][0], double[0]), (mine["output"][0], single[0]), (mine["output"][1], single[0])):
        assert b.abs().mean() > 0.05 and (a - b).abs().max() <= TOL


def test_the_node_masks_the_image_as_comfyui(tmp_path, builtin_registry):
    """Masked pixels black, the mask kept (inverted) at its own size for the extra channel; a mask
    of another size is resized to the image (bilinear, centre-cropped, rounded), as ComfyUI does;
    a plain ControlNet gets the whole image and no mask; the inpainting one applied without a
    mask (ControlNetApplySD3) keeps everything."""
    net = load_control_model(write_flow_controlnet(tmp_path / "inpaint.safetensors", "sd3_medium", dtype=torch.float32,
                                                   inpainting=True))
    plain = load_control_model(write_flow_controlnet(tmp_path / "plain.safetensors", "sd3_medium",
                                                     dtype=torch.float32))
    vae = load_vae(write_flow_vae(tmp_path / "vae.safetensors", dtype=torch.float32))
    image, mask = image_and_mask()
    control = applied(builtin_registry, net, vae, image, mask)
    expected = torch.where(mask[..., None] > 0.5, 0.0, image)
    assert torch.equal(control.image, expected) and torch.equal(control.mask, 1 - mask[:, None])
    half = applied(builtin_registry, net, vae, image, mask[:, ::2, ::2])  # a 32x24 mask for a 64x48 image
    assert torch.equal(half.image, expected)
    assert torch.equal(half.mask_hint(8, 6, 2, "cpu", torch.float32), control.mask_hint(8, 6, 2, "cpu", torch.float32))
    one = applied(builtin_registry, net, vae, image, mask[:1])  # one mask for the whole batch
    assert torch.equal(one.image[1], torch.where(mask[0, ..., None] > 0.5, 0.0, image[1]))
    whole = applied(builtin_registry, plain, vae, image, mask)
    assert whole.mask is None and torch.equal(whole.image, image)
    cond = [(torch.zeros(1, 4, 8), {})]
    positive, _ = call(builtin_registry, "ApplyControlNetWithVAE", positive=cond, negative=cond, control_net=net,
                       vae=vae, image=image, strength=1.0, start_percent=0.0, end_percent=1.0)
    assert torch.equal(positive[0][1]["control"].mask_hint(8, 6, 2, "cpu", torch.float32), torch.ones(2, 1, 8, 6))


def test_bad_inputs_are_refused_by_name(tmp_path, builtin_registry):
    from graphflow.context import NodeInputError

    net = load_control_model(write_flow_controlnet(tmp_path / "inpaint.safetensors", "sd3_medium", dtype=torch.float32,
                                                   inpainting=True))
    vae = load_vae(write_flow_vae(tmp_path / "vae.safetensors", dtype=torch.float32))
    image, mask = image_and_mask()
    with pytest.raises(NodeInputError, match="3 masks does not fit a batch of 2") as error:
        applied(builtin_registry, net, vae, image, torch.zeros(3, 64, 48))
    assert error.value.input == "mask"
    with pytest.raises(NodeInputError, match=r"expected a MASK \[B, H, W\]") as error:
        applied(builtin_registry, net, vae, image, torch.zeros(2, 64, 48, 1, 1))
    assert error.value.input == "mask"
    with pytest.raises(NodeInputError, match="connect the model's VAE") as error:
        applied(builtin_registry, net, None, image, mask)
    assert error.value.input == "vae"
    control = applied(builtin_registry, net, vae, image, mask)
    x, sigma = torch.zeros(1, 16, 8, 6), torch.tensor([0.5])
    with pytest.raises(ValueError, match="SD3 ControlNet.*not SD3"):
        net.control(control, x, sigma, torch.zeros(1, 3, 64), torch.zeros(1, 64), flow_model_config("flux_dev"))


@pytest.fixture
def inpainting_models(flow_models, tmp_folders):
    from PIL import Image

    for family, seed in (("sd3_medium", 13), ("flux_dev", 14)):
        write_flow_controlnet(flow_models / "controlnet" / f"{family}_inpaint.safetensors", family, seed=seed,
                              dtype=torch.float32, inpainting=True)
    inputs = tmp_folders.inputs
    rgba = Image.new("RGBA", (96, 64), (200, 40, 40, 255))
    for name, box in (("left.png", (8, 8, 40, 56)), ("right.png", (56, 8, 88, 56))):
        picture = rgba.copy()
        picture.paste((0, 0, 0, 0), box)  # transparent: the part to repaint (LoadImage's mask is 1 - alpha)
        picture.save(inputs / name)
    return flow_models


def inpainting_graph(family, picture, strength):
    graph = flow_graph(family, strength, "ControlNetInpaintingAliMamaApply")
    graph["10"]["inputs"]["control_net_name"] = f"{family}_inpaint.safetensors"
    graph["11"] = {"class_type": "LoadImage", "inputs": {"image": picture}}
    graph["12"]["inputs"]["mask"] = ["11", 1]
    return graph


@pytest.mark.parametrize("family", ["sd3_medium", "flux_dev"])
def test_inpainting_workflow_runs_and_the_mask_matters(inpainting_models, family):
    """A ComfyUI API-format graph: LoadImage (its alpha as the mask) -> ControlNetInpaintingAliMamaApply -> KSampler."""
    plain = run(flow_graph(family))
    left, right = run(inpainting_graph(family, "left.png", 1.0)), run(inpainting_graph(family, "right.png", 1.0))
    assert (left - plain).abs().max() > 1e-3 and (left - right).abs().max() > 1e-3
    assert torch.equal(run(inpainting_graph(family, "left.png", 0.0)), plain)


def test_the_wrong_family_and_a_missing_vae_fail_the_run_by_name(inpainting_models):
    import json

    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.workflow import parse_workflow

    graph = inpainting_graph("flux_dev", "left.png", 1.0)
    graph["10"]["inputs"]["control_net_name"] = "sd3_medium_inpaint.safetensors"
    registry = Registry().load_builtin()
    result = Executor(registry).run(parse_workflow(json.loads(json.dumps(graph)), registry), outputs=["8"])
    assert not result.ok and result.error["node_type"] == "KSampler"
    assert "SD3 ControlNet; the model being sampled is not SD3" in result.error["message"]
    del graph["12"]["inputs"]["vae"]  # the VAE is required, as in ComfyUI
    result = Executor(registry).run(parse_workflow(json.loads(json.dumps(graph)), registry), outputs=["8"])
    assert not result.ok and [(p.node_id, p.input) for p in result.problems] == [("12", "vae")]
    assert "expected a link from a VAE output" in result.problems[0].message


@pytest.mark.parametrize("family", ["sd3_medium", "flux_dev"])
def test_writer_inpainting_layouts_agree_and_are_diffusers_own(tmp_path, family):
    from safetensors.torch import load_file

    a = write_flow_controlnet(tmp_path / "diffusers.safetensors", family, "diffusers", seed=4, dtype=torch.float32,
                              inpainting=True)
    b = write_flow_controlnet(tmp_path / "ours.safetensors", family, "ours", seed=4, dtype=torch.float32,
                              inpainting=True)
    na, nb = load_control_model(a), load_control_model(b)
    assert na.concat_mask and na.control_config == nb.control_config
    assert all(torch.equal(v, nb.state_dict()[k]) for k, v in na.state_dict().items())
    cfg = flow_model_config(family)
    if family.startswith("sd3"):
        theirs = SD3ControlNetModel(**{**sd3_diffusers_config(cfg), "num_layers": 1, "extra_conditioning_channels": 1})
    else:
        theirs = FluxControlNetModel(**flux_controlnet_config(cfg, num_layers=1, num_single_layers=1))
        theirs.controlnet_x_embedder = torch.nn.Linear(68, cfg.hidden_size)
    theirs.load_state_dict(load_file(str(a)), strict=True)  # the file is diffusers' (alimama's) own layout
