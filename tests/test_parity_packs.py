"""Custom packs' nodes checked against the packs' own behaviour where an audit found ours
different: KJNodes' ImageResizeKJ, rgthree's Lora Loader Stack and Power Lora Loader,
ComfyUI_essentials' SimpleMath+."""

import pytest
import torch

from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.registry import Registry
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import CKPT, STACK, lora, lora_folders, weights  # noqa: F401 (a fixture)


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


def test_lora_loader_stack_skips_a_row_of_strength_zero_without_reading_its_file(registry, lora_folders):
    """The pack applies a row only when its LoRA isn't "None" and its strength isn't 0: a
    zero-strength row naming a file that isn't a LoRA at all is never read."""
    (lora_folders.models / "loras" / "broken.safetensors").write_bytes(b"not a safetensors file")
    model, clip = object(), object()
    rows = {"lora_01": "broken.safetensors", "strength_01": 0.0, "lora_02": "None", "strength_02": 1.0,
            "lora_03": "broken.safetensors", "strength_03": -0.0}
    assert call(registry, "LoraLoaderStack", model=model, clip=clip, **rows) == (model, clip)
    with pytest.raises(NodeInputError, match="broken.safetensors") as caught:  # read once it has a strength
        call(registry, "LoraLoaderStack", model=model, clip=clip, **rows, lora_04="broken.safetensors")
    assert caught.value.input == "lora_04"
