"""Behaviour parity with ComfyUI of the model patches (nodes/unet_patches.py, nodes/model_patches.py,
nodes/model_sampling.py, nodes/attention_patches.py) where an audit found a difference. Oracles
are small hand computations and torch operations written here."""

import copy
import dataclasses

import torch
from test_hypertile_tome import attn1_token_counts, inputs
from test_nodes_image_mask import call
from torch import nn

from graphflow.models import DiffusionModel, UNet
from graphflow.models.svd import SVDConfig, SVDUNet, VideoTransformerBlock
from graphflow.sampling.perturbed_attention import identity_self_attention
from graphflow.testing import unet_config

TINY_SVD = SVDConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(True, True),
                     context_dim=24, num_head_channels=16)


class ValueOnly(nn.Module):
    def __init__(self, attention):
        super().__init__()
        self.attention = attention

    def forward(self, x, context=None):
        return self.attention.to_out(self.attention.to_v(x))


def test_pag_on_a_video_unet_blinds_only_the_spatial_middle_attention():
    """ComfyUI's ("middle", 0) attn1 patch reaches the spatial transformer blocks; SVD's temporal
    blocks (time_stack) are called without the patches and keep their attention."""
    torch.manual_seed(0)
    unet = SVDUNet(TINY_SVD).eval()
    frames = 2
    x = torch.randn(frames, TINY_SVD.in_channels, 8, 8)
    t = torch.full((frames,), 0.3)
    context = torch.randn(frames, 3, TINY_SVD.context_dim)
    y = torch.randn(frames, TINY_SVD.adm_in_channels)

    want_unet = copy.deepcopy(unet)
    spatial = [m for name, m in want_unet.middle_block.named_modules()
               if hasattr(m, "attn1") and ".time_stack." not in f".{name}."]
    assert spatial and all(not isinstance(m, VideoTransformerBlock) for m in spatial)
    for block in spatial:
        block.attn1 = ValueOnly(block.attn1)
    with torch.no_grad():
        want = want_unet(x, t, context, y, frames)
        plain = unet(x, t, context, y, frames)
        with identity_self_attention(unet):
            got = unet(x, t, context, y, frames)
    assert (want - plain).abs().max() > 1e-4
    torch.testing.assert_close(got, want)


def test_sag_reads_the_attention_mask_in_comfyuis_grid_on_elongated_odd_latents():
    """A 45 x 25 latent (360 x 200 pixels) on SD1: the middle block's grid is 6 x 4 (45 -> 23 -> 12
    -> 6, 25 -> 13 -> 7 -> 4), 24 keys, but ComfyUI reads them as 8 x 3 rows (the divisor of 24
    nearest round(sqrt(24 * 45 / 25)) = 7 is 8); the blur mask follows that reading. It used to
    give up (no guidance at all)."""
    from graphflow.sampling.self_attention_guidance import blur_map, gaussian_blur_2d

    lh, lw, n = 45, 25, 24
    x0 = torch.randn(1, 2, lh, lw, generator=torch.Generator().manual_seed(3))
    probs = torch.full((1, 2, n, n), 1.0 / n)
    probs[..., 4] += 0.5  # every query attends extra to key 4
    probs = probs / probs.sum(-1, keepdim=True)
    got = blur_map(x0, probs, 2.0)
    assert got is not None

    # key 4 of an 8 x 3 reading is row 1, column 1; nearest upsampling to 45 x 25 takes source
    # row floor(r 8 / 45) and column floor(c 3 / 25)
    mask = torch.zeros(lh, lw, dtype=torch.bool)
    for r in range(lh):
        for c in range(lw):
            mask[r, c] = (r * 8) // 45 == 1 and (c * 3) // 25 == 1
    assert mask.sum() == 6 * 8  # rows 6..11, columns 9..16
    blurred = gaussian_blur_2d(x0, 9, 2.0)
    torch.testing.assert_close(got[..., mask], blurred[..., mask])
    torch.testing.assert_close(got[..., ~mask], x0[..., ~mask])


def test_tome_under_deep_shrink_merges_the_blocks_at_the_latents_size(builtin_registry):
    """ComfyUI's ToMe merges a block's tokens when HW // N <= 1 (N = H x W, the latent's size),
    whatever its level: with Deep Shrink after input block 1 the second level-0 block runs on a
    quarter of the tokens and is left whole, the decoder's level-0 blocks (grown back) merge."""
    torch.manual_seed(0)
    config = dataclasses.replace(unet_config("sd1"), num_res_blocks=(2, 1))  # two level-0 input blocks
    model = DiffusionModel(UNet(config).eval(), "sd1")
    shrunk = call(builtin_registry, "PatchModelAddDownscale", model=model, block_number=1, downscale_factor=2.0,
                  start_percent=0.0, end_percent=1.0)
    merged = call(builtin_registry, "TomePatchModel", model=shrunk, ratio=0.3)
    x, t, context = inputs(model)  # a 16 x 16 latent: 256 tokens
    _, plain = attn1_token_counts(shrunk.unet, x, t, context)
    _, calls = attn1_token_counts(merged.unet, x, t, context)
    assert (0, 64, 1) in plain and (0, 256, 1) in plain  # a shrunk level-0 block, full-size ones
    assert calls == [(level, n - int(0.3 * n) if n == 256 else n, b) for level, n, b in plain]


# --- Skip Layer Guidance on Wan, LTX-Video and Mochi ------------------------------------------------
# ComfyUI's Wan, LTX-Video and Mochi transformers check a ("double_block", i) replacement for each
# of their blocks, so SkipLayerGuidanceDiT's double_layers skip them (a skipped block passes its
# tokens on unchanged); graphflow refused these models.

def _slg_networks():
    from graphflow.models.configs import LTXVConfig
    from graphflow.models.ltxv import LTXV
    from graphflow.models.mochi import Mochi
    from graphflow.models.wan import Wan
    from graphflow.testing import mochi_config, wan_config

    torch.manual_seed(0)
    wan, ltxv = Wan(wan_config(depth=3)).eval(), LTXV(LTXVConfig(
        in_channels=8, hidden_size=32, num_heads=4, depth=3, cross_attention_dim=32, caption_channels=16,
        mlp_hidden=64)).eval()
    mochi = Mochi(mochi_config(depth=3)).eval()
    g = torch.Generator().manual_seed(1)
    return {  # network, its inputs, a block's forward that passes its tokens on
        "wan": (wan, (torch.randn(1, 16, 2, 4, 4, generator=g), torch.tensor([0.5]),
                      torch.randn(1, 5, wan.config.text_dim, generator=g)), lambda x, *rest: x),
        "ltxv": (ltxv, (torch.randn(1, 8, 2, 4, 4, generator=g), torch.tensor([0.5]), torch.randn(1, 5, 16, generator=g)),
                 lambda x, *rest: x),
        "mochi": (mochi, (torch.randn(1, 12, 2, 4, 4, generator=g), torch.tensor([0.5]),
                          torch.randn(1, 5, mochi.config.text_dim, generator=g)), lambda x, y, *rest: (x, y)),
    }


def test_skip_layer_guidance_skips_wan_ltxv_and_mochi_blocks():
    from graphflow.sampling.skip_layer_guidance import block_lists, check_layers, skipped_blocks

    for name, (net, args, passthrough) in _slg_networks().items():
        doubles, singles = block_lists(net)
        assert len(doubles) == 3 and singles == [], name
        assert check_layers(net, [1, 2], [7, 8, 9]) is None  # single layers ignored, as ComfyUI finds none
        want_net = copy.deepcopy(net)
        for i in (0, 2):
            blocks = want_net.blocks if hasattr(want_net, "blocks") else want_net.transformer_blocks
            blocks[i].forward = passthrough
        with torch.no_grad():
            plain = net(*args)
            want = want_net(*args)
            with skipped_blocks(net, [0, 2], []):
                got = net(*args)
            assert torch.equal(net(*args), plain), name  # restored
        assert (want - plain).abs().max() > 1e-4, name
        torch.testing.assert_close(got, want, msg=name)


def test_skip_layer_guidance_node_on_wan(builtin_registry):
    """SkipLayerGuidanceDiT on a Wan model: D = D_cfg + scale (D_cond - D_cond with block 1 skipped)."""
    from graphflow.sampling import prepare_conds
    from graphflow.sampling.flow_sampling import FlowDenoiser, model_sampling_for
    from graphflow.sampling.guidance import CFGGuider

    net, (x, _, context), passthrough = _slg_networks()["wan"]
    model = DiffusionModel(net, "wan", "flow")
    patched = call(builtin_registry, "SkipLayerGuidanceDiT", model=model, double_layers="1", single_layers="7, 8, 9",
                   scale=2.0, start_percent=0.0, end_percent=1.0, rescaling_scale=0.0)

    def denoise(m, positive, negative, cfg):
        def prepare(c, negative=False):
            return prepare_conds(c, m, tuple(x.shape), x.device, negative=negative)
        return CFGGuider(m, positive, negative, cfg).denoiser(FlowDenoiser(m, model_sampling_for(m)), prepare)(
            x, torch.tensor([0.6]))

    pos, neg = [(context, {})], [(context * 0.5, {})]
    skipped_net = copy.deepcopy(net)
    skipped_net.blocks[1].forward = passthrough
    with torch.no_grad():
        got = denoise(patched, pos, neg, 4.0)
        plain = denoise(model, pos, neg, 4.0)
        cond = denoise(model, pos, [], 1.0)
        skipped = denoise(model.with_unet(skipped_net), pos, [], 1.0)
    assert (cond - skipped).abs().max() > 1e-4
    torch.testing.assert_close(got, plain + (cond - skipped) * 2.0, rtol=1e-4, atol=1e-5)


# --- UNet block patches on SVD --------------------------------------------------------------------
# ComfyUI's SVD UNet is its image UNet's code: FreeU's output-block patch and Deep Shrink's
# input-block patch act on it. graphflow's SVD UNet ignored them (the nodes changed nothing).

def _svd_model():
    from graphflow.models.latent_formats import SD1

    torch.manual_seed(0)
    net = SVDUNet(TINY_SVD).eval()
    model = DiffusionModel(net, "svd", "v", SD1).with_continuous_sampling("v", 0.002, 700.0)
    g = torch.Generator().manual_seed(2)
    frames = 2
    args = (torch.randn(frames, TINY_SVD.in_channels, 8, 8, generator=g), torch.full((frames,), 0.25),
            torch.randn(frames, 3, TINY_SVD.context_dim, generator=g),
            torch.randn(frames, TINY_SVD.adm_in_channels, generator=g), frames)
    return model, args


def test_freeu_acts_on_the_svd_unets_decoder(builtin_registry):
    from graphflow.models.freeu import fourier_filter

    model, args = _svd_model()
    with torch.no_grad():
        plain = model.unet(*args)
        freeu = call(builtin_registry, "FreeU", model=model, b1=1.1, b2=1.6, s1=0.9, s2=0.3)
        got = freeu.unet(*args)
        same = call(builtin_registry, "FreeU", model=model, b1=1.0, b2=1.0, s1=1.0, s2=1.0).unet(*args)
        # what each decoder block meets before and after FreeU's patch
        seen = []
        recorder = copy.copy(freeu.unet)
        record = lambda h, skip: (seen.append((h.clone(), skip.clone())), (h, skip))[1]  # noqa: E731
        recorder.output_block_patches = (record, *freeu.unet.output_block_patches, record)
        torch.testing.assert_close(recorder(*args), got)
    assert len(seen) == 2 * len(model.unet.output_blocks)
    for (h, skip), (h_out, skip_out) in zip(seen[::2], seen[1::2]):
        if h.shape[1] == 2 * TINY_SVD.model_channels:  # FreeU's b2 / s2 blocks (the first ones here)
            torch.testing.assert_close(h_out[:, :32], h[:, :32] * 1.6)
            torch.testing.assert_close(h_out[:, 32:], h[:, 32:])
            torch.testing.assert_close(skip_out, fourier_filter(skip, 1, 0.3))
        else:
            assert torch.equal(h_out, h) and torch.equal(skip_out, skip)
    assert seen[0][0].shape[1] == 64
    torch.testing.assert_close(same, plain, rtol=1e-5, atol=1e-5)  # b = s = 1: nothing changes
    assert (got - plain).abs().max() > 1e-3


def test_deep_shrink_acts_on_the_svd_unets_encoder(builtin_registry):
    model, args = _svd_model()
    shrunk = call(builtin_registry, "PatchModelAddDownscale", model=model, block_number=1, downscale_factor=2.0,
                  start_percent=0.0, end_percent=1.0)
    seen = []
    recorder = copy.copy(shrunk.unet)
    recorder.output_block_patches = (*shrunk.unet.output_block_patches,
                                     lambda h, skip: (seen.append(tuple(h.shape[2:])), (h, skip))[1])
    with torch.no_grad():
        plain = model.unet(*args)
        got = recorder(*args)
    # after input block 1 the features are halved (8 -> 4), so the deeper level runs at 2 x 2 and
    # every decoder block meets features already grown back to its skip's size
    assert got.shape == plain.shape and (got - plain).abs().max() > 1e-3
    assert seen[0] == (2, 2) and all(size in ((2, 2), (4, 4), (8, 8)) for size in seen)


# --- PAG and SAG on one model -----------------------------------------------------------------------
# ComfyUI's SAG replaces attn1 of ("middle", 0, 0) for good; PAG's ("middle", 0) replacement is
# looked up after the block-specific key, so with both on the model the first middle transformer
# block keeps its attention in PAG's perturbed prediction.

def _denoise(model, positive, negative, cfg, x, sigma):
    from graphflow.sampling import ModelDenoiser, prepare_conds
    from graphflow.sampling.guidance import CFGGuider

    def prepare(conditioning, negative=False):
        return prepare_conds(conditioning, model, tuple(x.shape), x.device, negative=negative)
    return CFGGuider(model, positive, negative, cfg).denoiser(ModelDenoiser(model), prepare)(x, sigma)


def test_pag_with_sag_on_sd1_adds_nothing(builtin_registry):
    torch.manual_seed(0)
    model = DiffusionModel(UNet(unet_config("sd1")), "sd1")  # one transformer block in the middle
    dim = model.unet.config.context_dim
    x, sigma = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1)) * 3, torch.tensor([2.0])
    positive, negative = [(torch.full((1, 77, dim), 0.5), {})], [(torch.full((1, 77, dim), -0.5), {})]
    sag = call(builtin_registry, "SelfAttentionGuidance", model=model, scale=0.5, blur_sigma=2.0)
    pag = call(builtin_registry, "PerturbedAttentionGuidance", model=model, scale=3.0)
    both = call(builtin_registry, "PerturbedAttentionGuidance", model=sag, scale=3.0)
    both_other_way = call(builtin_registry, "SelfAttentionGuidance", model=pag, scale=0.5, blur_sigma=2.0)
    with torch.no_grad():
        plain = _denoise(model, positive, negative, 5.0, x, sigma)
        sag_only = _denoise(sag, positive, negative, 5.0, x, sigma)
        assert (_denoise(pag, positive, negative, 5.0, x, sigma) - plain).abs().max() > 1e-3
        torch.testing.assert_close(_denoise(both, positive, negative, 5.0, x, sigma), sag_only)
        torch.testing.assert_close(_denoise(both_other_way, positive, negative, 5.0, x, sigma), sag_only)


def test_pag_with_sag_blinds_the_middle_blocks_after_the_first():
    from graphflow.sampling.perturbed_attention import perturbed_attention_guidance
    from graphflow.sampling.self_attention_guidance import self_attention_guidance

    torch.manual_seed(0)
    config = dataclasses.replace(unet_config("sd1"), transformer_depth_middle=2)  # SDXL-like: several
    model = DiffusionModel(UNet(config), "sd1")
    dim = config.context_dim
    x, sigma = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1)) * 3, torch.tensor([2.0])
    positive, negative = [(torch.full((1, 77, dim), 0.5), {})], [(torch.full((1, 77, dim), -0.5), {})]
    sag = self_attention_guidance(model, 0.5, 2.0)
    both = perturbed_attention_guidance(sag, 3.0)
    blinded = copy.deepcopy(model.unet)
    middle = [m for m in blinded.middle_block.modules() if hasattr(m, "attn1")]
    assert len(middle) == 2
    middle[1].attn1 = ValueOnly(middle[1].attn1)
    with torch.no_grad():
        sag_only = _denoise(sag, positive, negative, 5.0, x, sigma)
        cond = _denoise(model, positive, [], 1.0, x, sigma)
        perturbed = _denoise(model.with_unet(blinded), positive, [], 1.0, x, sigma)
        got = _denoise(both, positive, negative, 5.0, x, sigma)
    assert (cond - perturbed).abs().max() > 1e-3
    torch.testing.assert_close(got, sag_only + (cond - perturbed) * 3.0, rtol=1e-4, atol=1e-4)
