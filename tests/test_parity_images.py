"""ComfyUI parity of the image nodes (nodes_images, nodes_post_processing, nodes_rebatch,
ImageUpscaleWithModel): the cases where ours once gave another result than ComfyUI's for a
valid input, each against a hand-worked or independently computed expectation."""

import numpy as np
import torch
from PIL import Image

from test_nodes_image_mask import call


def test_stitch_takes_the_aspect_ratio_before_truncating(builtin_registry):
    # ComfyUI sizes image2 as int(h1 * (w2 / h2)): 7 * (61 / 7) is 60.99999... in floating point,
    # so image2 comes out 60 pixels wide, not 61 (the exact 7 * 61 / 7).
    assert int(7 * (61 / 7)) == 60
    a, b = torch.rand(1, 7, 5, 3), torch.rand(1, 7, 61, 3)
    out = call(builtin_registry, "ImageStitch", image1=a, image2=b, direction="right")
    assert out.shape == (1, 7, 5 + 60, 3)
    # Down: int(w1 / (w2 / h2)); 11 / (30 / 22) = 8.0666.. -> 8 rows.
    out = call(builtin_registry, "ImageStitch", image1=torch.rand(1, 4, 11, 3), image2=torch.rand(1, 22, 30, 3),
               direction="down")
    assert out.shape == (1, 4 + 8, 11, 3)


def test_blend_broadcasts_either_batch_and_keeps_image1s_channels(builtin_registry):
    one, three = torch.full((1, 2, 2, 3), 0.2), torch.rand(3, 2, 2, 3)
    # image1 a batch of one, image2 of three: every image2 blended over the one image1.
    out = call(builtin_registry, "ImageBlend", image1=one, image2=three, blend_factor=0.5, blend_mode="normal")
    assert out.shape == (3, 2, 2, 3) and torch.allclose(out, (0.2 + three) / 2)
    # RGBA over RGBA: alpha is blended by the mode like the colours (0.2 and 0.6 -> 0.4).
    a = torch.cat([torch.full((1, 2, 2, 3), 0.1), torch.full((1, 2, 2, 1), 0.2)], -1)
    b = torch.cat([torch.full((1, 2, 2, 3), 0.9), torch.full((1, 2, 2, 1), 0.6)], -1)
    out = call(builtin_registry, "ImageBlend", image1=a, image2=b, blend_factor=0.5, blend_mode="normal")
    assert torch.allclose(out, torch.tensor([0.5, 0.5, 0.5, 0.4]).expand(1, 2, 2, 4))
    # RGB image1, RGBA image2: image2's alpha is dropped, the result is RGB.
    out = call(builtin_registry, "ImageBlend", image1=a[..., :3], image2=b, blend_factor=1.0, blend_mode="multiply")
    assert out.shape == (1, 2, 2, 3) and torch.allclose(out, torch.full((1, 2, 2, 3), 0.09))
    # RGBA image1, RGB image2: image2 is opaque, so multiply keeps image1's alpha.
    out = call(builtin_registry, "ImageBlend", image1=a, image2=b[..., :3], blend_factor=1.0, blend_mode="multiply")
    assert torch.allclose(out[..., 3], a[..., 3])
