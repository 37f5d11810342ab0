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
