"""Custom packs' nodes checked against the packs' own behaviour where an audit found ours
different: KJNodes' ImageResizeKJ, rgthree's Lora Loader Stack and Power Lora Loader,
ComfyUI_essentials' SimpleMath+."""

import torch

from graphflow.registry import Registry
from tests.test_nodes_image_mask import call

import pytest


@pytest.fixture(scope="module")
def registry():
    return Registry().load_builtin()


def test_image_resize_kj_takes_the_reference_size_without_cutting_it(registry):
    """KJNodes cuts to divisible_by only when get_image_size is not connected: a 30 x 21
    reference gives 30 x 21 whatever divisible_by says."""
    image = torch.rand(1, 50, 100, 3, generator=torch.Generator().manual_seed(0))
    out, width, height = call(registry, "ImageResizeKJ", image=image, divisible_by=8, upscale_method="bilinear",
                              get_image_size=torch.zeros(2, 21, 30, 3))
    assert (width, height) == (30, 21) and out.shape == (1, 21, 30, 3)
    want = torch.nn.functional.interpolate(image.movedim(-1, 1), size=(21, 30), mode="bilinear").movedim(1, -1)
    assert torch.allclose(out, want)
