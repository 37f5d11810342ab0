"""LatentOperationSharpen / TonemapReinhard against closed forms and ComfyUI's construction,
LatentApplyOperation, and LatentApplyOperationCFG's guidance D = D_uncond + cfg op(D_cond - D_uncond)."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from sampling_fakes import FakeModel  # noqa: E402
from test_custom_sampling import run_node  # noqa: E402
from test_custom_sampling_more import guided_once, structured_eps  # noqa: E402

from graphflow.context import NodeInputError  # noqa: E402
from nodes.latent_operations import (  # noqa: E402
    LatentApplyOperation, LatentApplyOperationCFG, LatentOperationSharpen, LatentOperationTonemapReinhard)


def latent(seed=0, shape=(2, 4, 12, 10)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def comfy_sharpen(x, radius, sigma, alpha):
    """ComfyUI's construction: a 2-D kernel from a meshgrid over -1..1, -10 alpha times the Gaussian
    with its centre raised to sum 1, convolved after mirroring the borders."""
    length = torch.linalg.vector_norm(x, dim=1)[:, None] + 1e-6
    n = x / length
    size = 2 * radius + 1
    gx, gy = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    g = torch.exp(-(gx * gx + gy * gy) / (2 * sigma * sigma))
    kernel = g / g.sum() * (alpha * -10)
    kernel[radius, radius] += 1.0 - kernel.sum()
    c = x.shape[1]
    padded = F.pad(n, (radius,) * 4, mode="reflect")
    out = F.conv2d(padded, kernel.repeat(c, 1, 1).unsqueeze(1), padding=radius, groups=c)
    return length * out[:, :, radius:-radius, radius:-radius]


@pytest.mark.parametrize("radius, sigma, alpha", [(3, 1.0, 0.1), (1, 0.5, 2.0), (4, 2.5, 0.7)])
def test_sharpen_matches_comfyuis_kernel(radius, sigma, alpha):
    op = run_node(LatentOperationSharpen, sharpen_radius=radius, sigma=sigma, alpha=alpha)
    x = latent()
    torch.testing.assert_close(op(x), comfy_sharpen(x, radius, sigma, alpha), rtol=1e-4, atol=1e-5)


def test_sharpen_leaves_a_uniform_direction_and_alpha_zero_alone():
    direction = torch.tensor([0.6, -0.8, 0.0, 0.0]).reshape(1, 4, 1, 1)
    lengths = torch.rand(1, 1, 9, 9, generator=torch.Generator().manual_seed(2)) + 0.5
    x = direction * lengths  # every pixel points the same way: nothing to sharpen
    torch.testing.assert_close(run_node(LatentOperationSharpen, sharpen_radius=2, sigma=1.0, alpha=1.5)(x), x,
                               rtol=1e-5, atol=1e-5)
    y = latent(3)
    torch.testing.assert_close(run_node(LatentOperationSharpen, sharpen_radius=2, sigma=1.0, alpha=0.0)(y), y,
                               rtol=1e-5, atol=1e-5)


def test_tonemap_closed_forms():
    # equal lengths L everywhere: std 0, top = L * m, so L' = L m / (1 + m)
    direction = F.normalize(latent(4, (1, 4, 6, 6)), dim=1)
    x = 3.0 * direction
    for m in (1.0, 0.25, 4.0):
        out = run_node(LatentOperationTonemapReinhard, multiplier=m)(x)
        torch.testing.assert_close(out, x * m / (1 + m), rtol=1e-5, atol=1e-6)
    # random lengths: the direction kept, L' = top (L / top) / (L / top + 1) with top = (mean + 5 std) m
    y = latent(5)
    out = run_node(LatentOperationTonemapReinhard, multiplier=0.5)(y)
    length = y.norm(dim=1, keepdim=True)
    flat = length.flatten(1)
    top = ((flat.mean(1) + 5 * flat.std(1)) * 0.5).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(out.norm(dim=1, keepdim=True), top * length / (length + top), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(F.normalize(out, dim=1), F.normalize(y, dim=1), rtol=1e-5, atol=1e-5)
    # to the bit in ComfyUI's order of evaluation: (x / L) * ((L * (1 / top)) / (L * (1 / top) + 1) * top),
    # L with its 1e-10, top from the std and mean of L
    L = y.norm(dim=1, keepdim=True) + 1e-10
    top = (torch.std(L, dim=(1, 2, 3), keepdim=True) * 5 + L.mean(dim=(1, 2, 3), keepdim=True)) * 0.5
    scaled = L * (1.0 / top)
    assert torch.equal(out, (y / L) * (scaled / (scaled + 1.0) * top))


def test_tonemap_spread_sets_the_top_in_standard_deviations():
    """spread: top = (mean + spread std) m; ComfyUI_experiments' tonemap takes 3 where ComfyUI takes 5."""
    from nodes.latent_operations import tonemap_reinhard
    y = latent(6)
    length = y.norm(dim=1, keepdim=True)
    flat = length.flatten(1)
    for spread in (3.0, 5.0):
        top = ((flat.mean(1) + spread * flat.std(1)) * 0.8).reshape(-1, 1, 1, 1)
        out = tonemap_reinhard(y, 0.8, spread=spread)
        torch.testing.assert_close(out.norm(dim=1, keepdim=True), top * length / (length + top), rtol=1e-5, atol=1e-6)
    assert torch.equal(tonemap_reinhard(y, 0.8), tonemap_reinhard(y, 0.8, spread=5.0))


def test_apply_operation_keeps_the_latents_other_entries():
    mask = torch.rand(1, 1, 12, 10)
    samples = {"samples": latent(6), "noise_mask": mask, "batch_index": [3, 4]}
    op = run_node(LatentOperationTonemapReinhard, multiplier=2.0)
    out = run_node(LatentApplyOperation, samples=samples, operation=op)
    torch.testing.assert_close(out["samples"], op(samples["samples"]))
    assert out["noise_mask"] is mask and out["batch_index"] == [3, 4]
    assert samples["samples"] is not out["samples"]
    too_wide = run_node(LatentOperationSharpen, sharpen_radius=10, sigma=1.0, alpha=0.1)
    with pytest.raises(NodeInputError) as e:
        run_node(LatentApplyOperation, samples=samples, operation=too_wide)
    assert e.value.input == "operation" and "sharpen_radius 10" in str(e.value)
    sharpen = run_node(LatentOperationSharpen, sharpen_radius=1, sigma=1.0, alpha=0.1)
    with pytest.raises(NodeInputError, match="image latents"):  # a video latent: refused clearly
        run_node(LatentApplyOperation, samples={"samples": torch.zeros(1, 4, 3, 8, 8)}, operation=sharpen)
    video = torch.randn(1, 4, 3, 8, 8)  # the tonemap takes one (ComfyUI's statistics over dims 1..3)
    assert run_node(LatentApplyOperation, samples={"samples": video}, operation=op)["samples"].shape == video.shape


@pytest.mark.parametrize("cfg", [4.0, 1.0])
def test_apply_operation_cfg_runs_the_guidance_through_the_operation(cfg):
    model = FakeModel(structured_eps)

    def op(g):
        return 0.5 * g + g * g  # any latent -> latent function

    patched = run_node(LatentApplyOperationCFG, model=model, operation=op)
    assert getattr(model, "pre_cfg_functions", ()) == ()  # the input is not patched
    _, cond, uncond, _ = guided_once(model, cfg=cfg)  # the raw predictions, unpatched
    out, cond_seen, uncond_seen, _ = guided_once(patched, cfg=cfg)
    torch.testing.assert_close(out, uncond + cfg * op(cond - uncond), rtol=1e-5, atol=1e-5)
    # later hooks see the modified positive, as in ComfyUI (the operation acts before the combination)
    torch.testing.assert_close(cond_seen, uncond + op(cond - uncond), rtol=1e-5, atol=1e-5)
    assert torch.equal(uncond_seen, uncond)
    tonemapped = run_node(LatentApplyOperationCFG, model=model,
                          operation=run_node(LatentOperationTonemapReinhard, multiplier=1.0))
    out, _, _, _ = guided_once(tonemapped, cfg=cfg)
    from nodes.latent_operations import tonemap_reinhard
    torch.testing.assert_close(out, uncond + cfg * tonemap_reinhard(cond - uncond, 1.0), rtol=1e-5, atol=1e-5)


def test_apply_operation_cfg_without_a_negative_prediction_applies_it_to_the_positive():
    patched = run_node(LatentApplyOperationCFG, model=FakeModel(structured_eps), operation=lambda g: 3 * g)
    [fn] = patched.pre_cfg_functions
    cond = latent(7)
    out, uncond = fn({"cond_denoised": cond, "uncond_denoised": None, "cond_scale": 1.0,
                      "x": torch.zeros_like(cond), "sigma": torch.ones(2)})
    torch.testing.assert_close(out, 3 * cond)
    assert uncond is None
