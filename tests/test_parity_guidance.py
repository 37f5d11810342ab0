"""Behaviour parity with ComfyUI of the guidance-changing MODEL patches and guiders (nodes/guidance_patches.py,
graphflow.sampling.cfg_patches / skip_layer_guidance): what tests/test_cfg_guidance_nodes.py,
test_skip_layer_guidance.py and test_parity_model_patches.py do not already assert. Oracles are small
hand computations and networks changed by hand here."""

import copy

import torch
from test_nodes_image_mask import call

from graphflow.models import DiffusionModel

# --- Skip Layer Guidance on Qwen-Image -------------------------------------------------------------
# ComfyUI's Qwen-Image transformer checks a ("double_block", i) replacement for each of its
# transformer blocks (the skip passes image and text tokens on unchanged), so SkipLayerGuidanceDiT
# acts on it; graphflow refused the model ("needs a diffusion transformer").


def _tiny_qwen():
    from graphflow.models.qwen_image import QwenImage
    from graphflow.testing import qwen_image_config

    torch.manual_seed(0)
    net = QwenImage(qwen_image_config()).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16, 4, 4, generator=g)
    context = torch.randn(1, 3, net.config.joint_attention_dim, generator=g)
    return net, x, context


def test_skip_layer_guidance_skips_qwen_image_blocks():
    from graphflow.sampling.skip_layer_guidance import block_lists, check_layers, skipped_blocks

    net, x, context = _tiny_qwen()
    doubles, singles = block_lists(net)
    assert len(doubles) == 2 and singles == []
    assert check_layers(net, [1], [7, 8, 9]) is None  # the DiT node's default single layers: none to skip
    # the oracle: the same network with block 1 taken out
    shorter = copy.deepcopy(net)
    del shorter.transformer_blocks[1]
    with torch.no_grad():
        plain = net(x, torch.tensor([0.5]), context)
        want = shorter(x, torch.tensor([0.5]), context)
        with skipped_blocks(net, [1], []):
            got = net(x, torch.tensor([0.5]), context)
        assert torch.equal(net(x, torch.tensor([0.5]), context), plain)  # restored
    assert (want - plain).abs().max() > 1e-4
    torch.testing.assert_close(got, want)


def test_skip_layer_guidance_node_on_qwen_image(builtin_registry):
    """SkipLayerGuidanceDiT on Qwen-Image: D = D_cfg + scale (D_cond - D_cond without block 0)."""
    from graphflow.sampling import prepare_conds
    from graphflow.sampling.flow_sampling import FlowDenoiser, model_sampling_for
    from graphflow.sampling.guidance import CFGGuider

    net, x, context = _tiny_qwen()
    model = DiffusionModel(net, "qwen_image", "flow")
    patched = call(builtin_registry, "SkipLayerGuidanceDiT", model=model, double_layers="0",
                   single_layers="7, 8, 9", scale=1.5, start_percent=0.0, end_percent=1.0, rescaling_scale=0.0)

    def denoise(m, positive, negative, cfg):
        def prepare(c, negative=False):
            return prepare_conds(c, m, tuple(x.shape), x.device, negative=negative)
        return CFGGuider(m, positive, negative, cfg).denoiser(FlowDenoiser(m, model_sampling_for(m)), prepare)(
            x, torch.tensor([0.6]))

    pos, neg = [(context, {})], [(context * 0.5, {})]
    shorter = copy.deepcopy(net)
    del shorter.transformer_blocks[0]
    with torch.no_grad():
        got = denoise(patched, pos, neg, 3.0)
        plain = denoise(model, pos, neg, 3.0)
        cond = denoise(model, pos, [], 1.0)
        skipped = denoise(model.with_unet(shorter), pos, [], 1.0)
    assert (cond - skipped).abs().max() > 1e-4
    torch.testing.assert_close(got, plain + (cond - skipped) * 1.5, rtol=1e-4, atol=1e-5)



def test_skip_layer_guidance_skips_hunyuan_videos_double_and_single_blocks():
    """ComfyUI's HunyuanVideo checks ("double_block", i) and ("single_block", i) replacements: the
    skipped prediction equals the network with those blocks taken out."""
    from graphflow.models.hunyuan_video import HunyuanVideo
    from graphflow.sampling.skip_layer_guidance import block_lists, check_layers, skipped_blocks
    from graphflow.testing import hunyuan_video_config

    torch.manual_seed(0)
    net = HunyuanVideo(hunyuan_video_config()).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16, 2, 4, 4, generator=g)
    context = torch.randn(1, 3, net.config.context_in_dim, generator=g)
    doubles, singles = block_lists(net)
    assert (len(doubles), len(singles)) == (2, 2) and check_layers(net, [1], [0]) is None
    shorter = copy.deepcopy(net)
    del shorter.double_blocks[1], shorter.single_blocks[0]
    with torch.no_grad():
        plain = net(x, torch.tensor([0.5]), context)
        want = shorter(x, torch.tensor([0.5]), context)
        with skipped_blocks(net, [1], [0]):
            got = net(x, torch.tensor([0.5]), context)
    assert (want - plain).abs().max() > 1e-4
    torch.testing.assert_close(got, want)

# --- APG: a negative momentum ---------------------------------------------------------------------
# The catalogue's APG takes momentum from -5 to 1 and ComfyUI's keeps a running sum whenever it is not
# 0 (its older node, momentum 0 to 1, tested > 0): a negative momentum subtracts the past guidance.

def test_apg_negative_momentum_subtracts_the_last_steps_guidance():
    from sampling_fakes import FakeModel
    from test_custom_sampling import run_node
    from test_custom_sampling_more import guided_once, structured_eps

    from nodes.guidance_patches import AdaptiveProjectedGuidance

    model = FakeModel(structured_eps)
    patched = run_node(AdaptiveProjectedGuidance, model=model, eta=1.0, norm_threshold=0.0, momentum=-0.5)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    _, cond1, uncond1, _ = guided_once(model, x=x, sigma=3.0)
    _, cond2, uncond2, _ = guided_once(model, x=x * 0.5, sigma=2.0)
    guided_once(patched, x=x, sigma=3.0)
    second = guided_once(patched, x=x * 0.5, sigma=2.0)[0]
    # D = D_cond + cfg g', g' = g_2 - 0.5 g_1 (eta 1, no threshold: nothing projected away)
    torch.testing.assert_close(second, cond2 + 4.0 * ((cond2 - uncond2) - 0.5 * (cond1 - uncond1)),
                               rtol=1e-5, atol=1e-5)
