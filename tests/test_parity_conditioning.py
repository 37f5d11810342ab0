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
