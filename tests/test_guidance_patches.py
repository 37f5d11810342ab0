"""PerturbedAttentionGuidance and SelfAttentionGuidance on a real (tiny, random) UNet. PAG:
D = D_cfg + scale (D_cond - D_perturbed),
the perturbed prediction checked against a UNet copy whose middle self-attentions are replaced by
value-only modules."""

import copy

import pytest
import torch
from torch import nn

from graphflow.models import DiffusionModel, UNet
from graphflow.sampling import ModelDenoiser, prepare_conds, sample
from graphflow.sampling.guidance import CFGGuider
from graphflow.sampling.perturbed_attention import middle_self_attentions
from graphflow.testing import unet_config
from nodes.model_patches import PerturbedAttentionGuidance
from sampling_fakes import FakeModel, context_eps


def tiny_model():
    torch.manual_seed(0)
    return DiffusionModel(UNet(unet_config("sd1")), "sd1")


def pag(model, scale):
    node = PerturbedAttentionGuidance.__new__(PerturbedAttentionGuidance)
    node.__dict__.update(model=model, scale=scale)
    return node.run()


def cond(value, dim):
    return [(torch.full((1, 77, dim), value), {})]


class ValueOnly(nn.Module):
    def __init__(self, attention):
        super().__init__()
        self.attention = attention

    def forward(self, x, context=None):
        return self.attention.to_out(self.attention.to_v(x))


def denoise(model, positive, negative, cfg, x, sigma):
    def prepare(conditioning, negative=False):
        return prepare_conds(conditioning, model, tuple(x.shape), x.device, negative=negative)
    guider = CFGGuider(model, positive, negative, cfg)
    return guider.denoiser(ModelDenoiser(model), prepare)(x, sigma)


@pytest.mark.parametrize("cfg", [5.0, 1.0])
def test_pag_adds_scale_times_cond_minus_the_value_only_prediction(cfg):
    model = tiny_model()
    dim = model.unet.config.context_dim
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1)) * 3
    sigma = torch.tensor([2.5])
    positive, negative = cond(0.5, dim), cond(-0.5, dim)
    plain = denoise(model, positive, negative, cfg, x, sigma)
    got = denoise(pag(model, 3.0), positive, negative, cfg, x, sigma)

    perturbed_unet = copy.deepcopy(model.unet)
    for block in perturbed_unet.middle_block.modules():
        if hasattr(block, "attn1"):
            block.attn1 = ValueOnly(block.attn1)
    cond_pred = denoise(model, positive, [], 1.0, x, sigma)
    perturbed = denoise(model.with_unet(perturbed_unet), positive, [], 1.0, x, sigma)
    assert (cond_pred - perturbed).abs().max() > 1e-3  # the perturbation changes the prediction
    torch.testing.assert_close(got, plain + (cond_pred - perturbed) * 3.0, rtol=1e-4, atol=1e-4)


def test_pag_leaves_the_input_model_and_its_unet_as_they_were():
    model = tiny_model()
    dim = model.unet.config.context_dim
    x, sigma = torch.randn(1, 4, 8, 8), torch.tensor([1.0])
    before = denoise(model, cond(0.2, dim), cond(0.0, dim), 4.0, x, sigma)
    patched = pag(model, 2.0)
    denoise(patched, cond(0.2, dim), cond(0.0, dim), 4.0, x, sigma)
    assert not getattr(model, "post_cfg_functions", ())
    assert all("forward" not in attention.__dict__ for attention in middle_self_attentions(model.unet))
    torch.testing.assert_close(denoise(model, cond(0.2, dim), cond(0.0, dim), 4.0, x, sigma), before)
    # scale 0 is no change; a LoRA-style UNet swap keeps the patch
    torch.testing.assert_close(denoise(pag(model, 0.0), cond(0.2, dim), cond(0.0, dim), 4.0, x, sigma), before)
    assert patched.with_unet(copy.deepcopy(model.unet)).post_cfg_functions == patched.post_cfg_functions


def test_pag_in_sampling_costs_one_more_forward_per_step():
    model = tiny_model()
    dim = model.unet.config.context_dim
    forwards = []
    model.unet.register_forward_hook(lambda module, args, output: forwards.append(args[0].shape[0]))
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    plain = sample(model, 1, 3, 5.0, "euler", "karras", cond(0.5, dim), cond(-0.5, dim), latent)["samples"]
    forwards.clear()
    guided = sample(pag(model, 3.0), 1, 3, 5.0, "euler", "karras", cond(0.5, dim), cond(-0.5, dim), latent)["samples"]
    assert forwards == [2, 1] * 3  # cond + uncond batched, then the perturbed cond
    assert (guided - plain).abs().max() > 1e-3


def test_pag_passes_a_model_without_a_unet_middle_attention_on_unchanged(caplog):
    # ComfyUI's patch finds no middle-block self-attention there: the perturbed prediction is the
    # positive one and the guidance adds 0, so the picture is the plain one
    model = FakeModel(context_eps)
    with caplog.at_level("WARNING"):
        assert pag(model, 3.0) is model
    assert "middle block" in caplog.text


# ---- Self-Attention Guidance -----------------------------------------------------------------

def sag(model, scale, blur_sigma=2.0):
    from nodes.model_patches import SelfAttentionGuidance

    node = SelfAttentionGuidance.__new__(SelfAttentionGuidance)
    node.__dict__.update(model=model, scale=scale, blur_sigma=blur_sigma)
    return node.run()


def test_gaussian_blur_equals_scipy():
    import scipy.ndimage

    from graphflow.sampling.self_attention_guidance import gaussian_blur_2d

    img = torch.randn(2, 3, 12, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    want = scipy.ndimage.gaussian_filter(img.numpy(), sigma=(0, 0, 1.7, 1.7), mode="mirror", radius=(0, 0, 4, 4))
    torch.testing.assert_close(gaussian_blur_2d(img, 9, 1.7), torch.from_numpy(want))


def test_blur_map_blurs_only_where_attention_concentrates():
    from graphflow.sampling.self_attention_guidance import blur_map, gaussian_blur_2d

    x0 = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    n = 16  # a 4 x 4 middle-block grid
    probs = torch.full((1, 2, n, n), 1.0 / n)
    probs[..., 5] += 0.5  # every query attends extra to key 5: (row 1, col 1) of the grid
    probs = probs / probs.sum(-1, keepdim=True)
    got = blur_map(x0, probs, 2.0)
    blurred = gaussian_blur_2d(x0, 9, 2.0)
    region = (slice(None), slice(None), slice(4, 8), slice(4, 8))
    torch.testing.assert_close(got[region], blurred[region])
    outside = torch.ones_like(x0, dtype=torch.bool)
    outside[region] = False
    torch.testing.assert_close(got[outside], x0[outside])


def test_sag_formula_against_an_independent_recomputation():
    from graphflow.sampling.self_attention_guidance import first_middle_self_attention, gaussian_blur_2d

    model = tiny_model()
    dim = model.unet.config.context_dim
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2)) * 3
    sigma = torch.tensor([2.0])
    positive, negative = cond(0.5, dim), cond(-0.5, dim)
    plain = denoise(model, positive, negative, 5.0, x, sigma)
    got = denoise(sag(model, 0.8, 1.5), positive, negative, 5.0, x, sigma)

    # the attention map from the projections' outputs, recorded by hooks on to_q / to_k
    attention = first_middle_self_attention(model.unet)
    seen = {}
    hooks = [attention.to_q.register_forward_hook(lambda m, a, out: seen.setdefault("q", out)),
             attention.to_k.register_forward_hook(lambda m, a, out: seen.setdefault("k", out))]
    uncond_pred = denoise(model, negative, [], 1.0, x, sigma)
    for hook in hooks:
        hook.remove()
    heads = attention.heads
    q = seen["q"].reshape(1, -1, heads, seen["q"].shape[-1] // heads).transpose(1, 2)
    k = seen["k"].reshape(1, -1, heads, seen["k"].shape[-1] // heads).transpose(1, 2)
    probs = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
    side = int(probs.shape[-1] ** 0.5)
    mask = (probs.mean(1).sum(1) > 1.0).reshape(1, 1, side, side).float()
    mask = mask.repeat_interleave(16 // side, 2).repeat_interleave(16 // side, 3)
    assert 0 < mask.mean() < 1  # some, not all, of the latent gets blurred
    degraded = gaussian_blur_2d(uncond_pred, 9, 1.5) * mask + uncond_pred * (1 - mask)
    again = denoise(model, negative, [], 1.0, degraded + x - uncond_pred, sigma)
    torch.testing.assert_close(got, plain + (degraded - again) * 0.8, rtol=1e-4, atol=1e-4)
    assert "forward" not in attention.__dict__


def test_sag_runs_the_negative_even_at_cfg_one_and_scale_zero_changes_nothing():
    model = tiny_model()
    dim = model.unet.config.context_dim
    forwards = []
    model.unet.register_forward_hook(lambda module, args, output: forwards.append(args[0].shape[0]))
    latent = {"samples": torch.zeros(1, 4, 16, 16)}
    args = (1, 2, 1.0, "euler", "karras", cond(0.5, dim), cond(-0.5, dim), latent)
    plain = sample(model, *args)["samples"]
    forwards.clear()
    guided = sample(sag(model, 0.5), *args)["samples"]
    assert forwards == [2, 1, 1] * 2  # cond + uncond, uncond again (attention map), degraded uncond
    assert (guided - plain).abs().max() > 1e-4
    zero = sample(sag(model, 0.0), 1, 2, 4.0, "euler", "karras", cond(0.5, dim), cond(-0.5, dim), latent)["samples"]
    torch.testing.assert_close(zero, sample(model, 1, 2, 4.0, "euler", "karras", cond(0.5, dim), cond(-0.5, dim),
                                            latent)["samples"], rtol=1e-5, atol=1e-5)
