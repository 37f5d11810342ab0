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


def _bayer_threshold(n: int, spread: float, dtype) -> np.ndarray:
    """spread * (Bayer level - 0.5) + 0.5 for the classic index matrix, computed in `dtype`."""
    m = np.zeros((1, 1))
    while m.shape[0] < n:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return dtype(spread) * ((m + 0.5) / (n * n) - 0.5).astype(dtype) + dtype(0.5)


def test_quantize_bayer_thresholds_are_float32(builtin_registry):
    # ComfyUI adds the Bayer threshold to the 8-bit levels in float32 and truncates. With 30
    # colours (spread 512 / 30) the bayer-16 threshold at (9, 15) plus level 2 lies a float32
    # step from a whole number, so float64 truncates it to another level and, for this picture,
    # another palette colour.
    levels = (np.random.default_rng(34).random((16, 16, 3), dtype=np.float32) * 255).astype(np.uint8)
    levels[9, 15] = 2
    picture = Image.fromarray(levels, "RGB")
    palette = picture.quantize(colors=30)
    assert len(palette.getpalette()) // 3 == 30

    def dithered(dtype):
        values = levels.astype(dtype) + _bayer_threshold(16, 512 / 30, dtype)[:, :, None]  # one 16x16 tile
        shifted = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "RGB")
        return np.asarray(shifted.quantize(palette=palette, dither=Image.Dither.NONE).convert("RGB"),
                          dtype=np.float32) / 255
    expected, in_float64 = dithered(np.float32), dithered(np.float64)
    assert not np.array_equal(expected, in_float64)
    image = torch.from_numpy((levels.astype(np.float32) + 0.5) / 255)[None]  # truncates back to `levels`
    out = call(builtin_registry, "ImageQuantize", image=image, colors=30, dither="bayer-16")
    assert np.array_equal(out[0].numpy(), expected)


def test_rebatch_latents_resizes_masks_only_to_join_them(builtin_registry):
    from test_node_lists import run_rebatch
    a, b = torch.randn(2, 4, 2, 3), torch.randn(1, 4, 2, 3)
    small = torch.rand(1, 1, 5, 7)  # a mask of its own size, not 8x the latent's 2 x 3
    # Batches of 2: a's two latents make one batch, their mask kept as it came (repeated to 2).
    out = run_rebatch(builtin_registry, "RebatchLatents", [{"samples": a, "noise_mask": small}, {"samples": b}], 2)
    assert torch.equal(out[0]["noise_mask"], small.expand(2, 1, 5, 7)) and "noise_mask" not in out[1]
    # Batches of 3: a's masks join b's default (ones at 16 x 24), so they are resized to it.
    out = run_rebatch(builtin_registry, "RebatchLatents", [{"samples": a, "noise_mask": small}, {"samples": b}], 3)
    resized = torch.nn.functional.interpolate(small, size=(16, 24), mode="bilinear")
    assert torch.equal(out[0]["noise_mask"], torch.cat([resized, resized, torch.ones(1, 1, 16, 24)]))
