"""ComfyUI parity of the conditioning nodes' edge cases (the behaviour audit of nodes.py's and
comfy_extras' conditioning / ControlNet nodes): what each gives where ComfyUI gives a result."""

from types import SimpleNamespace

import torch

from graphflow.testing import write_controlnet
from tests.test_nodes_image_mask import call


def _conditioning(text_len=3):
    return [(torch.randn(1, text_len, 8), {"pooled_output": torch.randn(1, 4)})]


def test_controlnet_apply_at_strength_zero_passes_through_unchecked(builtin_registry):
    """ComfyUI returns the inputs at strength 0 before looking at the net, the image or the VAE:
    an SD3 / FLUX ControlNet (which reads its hint through a VAE) with no VAE is no error there."""
    latent_net = SimpleNamespace(needs_vae=True, concat_mask=False)
    positive, negative = _conditioning(), _conditioning(5)
    image = torch.rand(1, 16, 16, 3)
    for node in ("ApplyControlNetAdvanced", "ApplyControlNetWithVAE"):
        out = call(builtin_registry, node, positive=positive, negative=negative, control_net=latent_net,
                   image=image, strength=0.0, start_percent=0.0, end_percent=1.0, vae=None)
        assert out[0] is positive and out[1] is negative
    out = call(builtin_registry, "ApplyControlNet", conditioning=positive, control_net=latent_net, image=image,
               strength=0.0)
    assert out is positive


def test_set_union_type_on_a_plain_controlnet_passes_it_through(builtin_registry, tmp_folders):
    """ComfyUI hands the type to the net as an extra argument, which a plain ControlNet's forward
    drops: the graph runs as without the node (any type, "auto" too)."""
    folder = tmp_folders.models / "controlnet"
    folder.mkdir(parents=True)
    write_controlnet(folder / "plain.safetensors", "sd1")
    plain = call(builtin_registry, "LoadControlNet", control_net_name="plain.safetensors")
    for kind in ("auto", "depth", "repaint"):
        assert call(builtin_registry, "SetUnionControlNetType", control_net=plain, type=kind) is plain


def test_average_concat_and_area_options_match_closed_forms(builtin_registry):
    """ConditioningAverage: to * w + from * (1 - w) token by token, from cut or zero-padded to to's
    length; the pooled vectors blended likewise, from's taken where to has none, to's kept where
    from has none. Concat: from's tokens appended, to's options kept. SetArea: pixels // 8, and an
    earlier mask-bounds flag cleared."""
    a, b = torch.randn(1, 4, 3), torch.randn(1, 6, 3)
    pa, pb = torch.randn(1, 2), torch.randn(1, 2)
    [(cond, opts)] = call(builtin_registry, "ConditioningAverage", conditioning_to=[(a, {"pooled_output": pa})],
                          conditioning_from=[(b, {"pooled_output": pb})], conditioning_to_strength=0.3)
    assert torch.allclose(cond, a * 0.3 + b[:, :4] * 0.7) and torch.allclose(opts["pooled_output"], pa * 0.3 + pb * 0.7)
    [(cond, opts)] = call(builtin_registry, "ConditioningAverage", conditioning_to=[(b, {})],
                          conditioning_from=[(a, {"pooled_output": pb})], conditioning_to_strength=0.3)
    assert torch.allclose(cond, b * 0.3 + torch.cat([a, torch.zeros(1, 2, 3)], 1) * 0.7) and opts["pooled_output"] is pb
    [(_, opts)] = call(builtin_registry, "ConditioningAverage", conditioning_to=[(b, {"pooled_output": pa})],
                       conditioning_from=[(a, {})], conditioning_to_strength=0.3)
    assert opts["pooled_output"] is pa
    [(cond, opts)] = call(builtin_registry, "ConditioningConcat", conditioning_to=[(a, {"x": 1})],
                          conditioning_from=[(b, {"pooled_output": pb}), (a, {})])
    assert torch.equal(cond, torch.cat([a, b], 1)) and opts == {"x": 1}
    [(_, opts)] = call(builtin_registry, "ConditioningSetArea", conditioning=[(a, {"set_area_to_bounds": True})],
                       width=100, height=72, x=12, y=20, strength=0.5)
    assert opts == {"area": (9, 12, 2, 1), "strength": 0.5, "set_area_to_bounds": False}
