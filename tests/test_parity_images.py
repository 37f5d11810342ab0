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
