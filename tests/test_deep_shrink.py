"""PatchModelAddDownscale (Kohya's Deep Shrink) on a tiny random-weight SD1 UNet: inside its sigma
range the features after the chosen input block are shrunk (the blocks after it see the smaller
size) and grown back, outside it the UNet is exactly the unpatched one."""

import pytest
import torch

from graphflow.context import NodeInputError
from graphflow.models.diffusion_model import DiffusionModel
from graphflow.models.unet import UNet
from graphflow.sampling import DiscreteSchedule
from graphflow.testing import unet_config
from nodes.unet_patches import PatchModelAddDownscale

SD = DiscreteSchedule.from_betas()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DiffusionModel(UNet(unet_config("sd1")).eval(), "sd1")


def patch(model, **inputs):
    node = PatchModelAddDownscale.__new__(PatchModelAddDownscale)
    node.__dict__.update(dict(model=model, block_number=1, downscale_factor=2.0, start_percent=0.0,
                              end_percent=0.35, downscale_after_skip=True, downscale_method="bicubic",
                              upscale_method="bicubic"), **inputs)
    return node.run()


def call(model, t, x):
    context = torch.randn(1, 77, model.unet.config.context_dim, generator=torch.Generator().manual_seed(1))
    sizes = []
    hook = model.unet.input_blocks[2].register_forward_pre_hook(lambda m, args: sizes.append(tuple(args[0].shape[-2:])))
    try:
        with torch.no_grad():
            out = model.unet(x, torch.tensor([float(t)]), context)
    finally:
        hook.remove()
    return out, sizes


def test_inside_the_range_the_next_blocks_see_shrunk_features(model):
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    patched = patch(model)
    plain, plain_sizes = call(model, 999, x)
    shrunk, shrunk_sizes = call(patched, 999, x)  # sigma_max: the first 35% of sampling
    assert plain_sizes == [(16, 16)] and shrunk_sizes == [(8, 8)]
    assert shrunk.shape == plain.shape and (shrunk - plain).abs().max() > 1e-3
    # late in sampling (t = 100: sigma below the 35% mark) it is exactly the plain UNet
    late, late_sizes = call(patched, 100, x)
    assert late_sizes == [(16, 16)] and torch.equal(late, call(model, 100, x)[0])
    assert getattr(model.unet, "input_block_patches_after_skip", ()) == ()  # the input model is unchanged


def test_range_ends_follow_the_models_percentages(model):
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    patched = patch(model, start_percent=0.5, end_percent=1.0)
    t_mid = float(SD.timestep(torch.tensor(SD.percent_to_sigma(0.5))))
    assert call(patched, 999, x)[1] == [(16, 16)]  # before 50%: untouched
    assert call(patched, t_mid - 5, x)[1] == [(8, 8)]
    assert call(patched, 0, x)[1] == [(8, 8)]


def test_the_range_is_judged_on_the_samplers_sigma(model):
    # ComfyUI compares the sampler's sigma, not the table sigma of the quantized timestep: a sigma
    # just above the 35% mark shrinks though its nearest table entry lies below the mark
    from graphflow.sampling.guidance import UNetRows, unet_rows
    end = SD.percent_to_sigma(0.35)
    t = SD.timestep(torch.tensor([end * 1.0005]))
    assert float(SD.sigma(t)) < end  # the quantized timestep's sigma is out of range
    patched = patch(model)
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    token = unet_rows.set(UNetRows(torch.tensor([end * 1.0005]), (False,)))
    try:
        _, sizes = call(patched, float(t), x)
    finally:
        unet_rows.reset(token)
    assert sizes == [(8, 8)]  # shrunk
    _, sizes = call(patched, float(t), x)  # a direct UNet call: the timestep's table sigma
    assert sizes == [(16, 16)]


@pytest.mark.parametrize("after_skip", [True, False])
@pytest.mark.parametrize("method", ["bicubic", "bislerp", "nearest-exact", "area", "bilinear"])
def test_both_placements_and_every_method_give_the_full_size_back(model, after_skip, method):
    x = torch.randn(1, 4, 24, 24, generator=torch.Generator().manual_seed(3))
    out, sizes = call(patch(model, downscale_after_skip=after_skip, downscale_method=method, upscale_method=method,
                            downscale_factor=1.5), 999, x)
    assert sizes == [(16, 16)] and out.shape == (1, 4, 24, 24) and torch.isfinite(out).all()


def test_a_block_number_past_the_unet_passes_the_model_unchanged(model, caplog):
    # ComfyUI's patch never meets that block: the model samples as without the node
    with caplog.at_level("WARNING"):
        assert patch(model, block_number=len(model.unet.input_blocks)) is model
    assert "passed on unchanged" in caplog.text
    with pytest.raises(NodeInputError) as e:
        patch(object())
    assert e.value.input == "model"
