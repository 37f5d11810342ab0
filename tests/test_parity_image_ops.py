"""ComfyUI parity (v0.3.64) of the image-op, latent-transform and LoadImage nodes in the cases the
other parity tests leave out: video latents through the latent transforms, and the pictures
LoadImage meets in the wild (EXIF-turned alpha, grey+alpha, palette transparency, pages of other
sizes). Expectations are hand-worked values or index lists written out."""

import numpy as np
import torch
from PIL import Image

from test_nodes_image_mask import call


def _video(b, c, t, h, w):
    return torch.arange(b * c * t * h * w, dtype=torch.float32).reshape(b, c, t, h, w)


def test_latent_flip_of_a_video_latent_uses_comfyuis_axes_2_and_3(builtin_registry):
    # ComfyUI flips dims 2 / 3 whatever the rank: on [B, C, frames, h, w] "x-axis" reverses the
    # frames and "y-axis" turns each frame upside down.
    x = _video(1, 2, 3, 4, 5)
    mask = torch.rand(1, 1, 32, 40)
    out = call(builtin_registry, "LatentFlip", samples={"samples": x, "noise_mask": mask},
               flip_method="x-axis: vertically")
    assert torch.equal(out["samples"], x[:, :, [2, 1, 0]]) and out["noise_mask"] is mask
    out = call(builtin_registry, "LatentFlip", samples={"samples": x}, flip_method="y-axis: horizontally")
    assert torch.equal(out["samples"], x[:, :, :, [3, 2, 1, 0]])


def test_latent_rotate_of_a_video_latent_turns_frames_and_rows(builtin_registry):
    # ComfyUI's rot90 over dims [3, 2]: a 2-frame, 3-row latent comes out 3 frames of 2 rows.
    x = torch.arange(6.0).reshape(1, 1, 2, 3, 1).expand(1, 1, 2, 3, 4).contiguous()  # value 3t + h
    out = call(builtin_registry, "LatentRotate", samples={"samples": x}, rotation="90 degrees")["samples"]
    assert out.shape == (1, 1, 3, 2, 4)
    # clockwise in the (frames, rows) plane: [[0 1 2] [3 4 5]] -> [[3 0] [4 1] [5 2]]
    assert out[0, 0, :, :, 0].tolist() == [[3.0, 0.0], [4.0, 1.0], [5.0, 2.0]]
    assert (out == out[..., :1]).all()  # the columns are untouched


def test_latent_crop_of_a_video_latent_cuts_frames_and_rows_as_comfyui(builtin_registry):
    # ComfyUI slices [:, :, y:y+height, x:x+width] whatever the rank: y picks frames, x rows,
    # each corner clamped to leave 8 on its own axis (24 frames, 20 rows here).
    x = _video(1, 2, 24, 20, 3)
    out = call(builtin_registry, "LatentCrop", samples={"samples": x}, width=64, height=72, x=16, y=8)["samples"]
    assert torch.equal(out, x[:, :, 1:10, 2:10])
    out = call(builtin_registry, "LatentCrop", samples={"samples": x}, width=512, height=512, x=800,
               y=800)["samples"]
    assert torch.equal(out, x[:, :, 16:24, 12:20])


def _save(picture, folder, name, **options):
    picture.save(folder / name, **options)
    return name


def test_load_image_turns_the_alpha_mask_with_the_exif_orientation(builtin_registry, tmp_folders):
    # ComfyUI applies exif_transpose before taking colours and alpha: orientation 6 (turn 90
    # degrees clockwise) moves the transparent top-left pixel of a 4 x 2 picture to the top right.
    rgba = Image.new("RGBA", (4, 2), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    name = _save(rgba, tmp_folders.inputs, "turned.png", exif=exif.tobytes())
    image, mask = call(builtin_registry, "LoadImage", image=name)
    assert image.shape == (1, 4, 2, 3) and mask.shape == (1, 4, 2)
    expected = torch.zeros(4, 2)
    expected[0, 1] = 1
    assert torch.equal(mask[0], expected) and torch.equal(image[0, :, :, 1], expected)


def test_load_image_masks_grey_alpha_and_palette_transparency(builtin_registry, tmp_folders):
    la = Image.new("LA", (3, 2), (100, 255))
    la.putpixel((1, 1), (50, 0))
    image, mask = call(builtin_registry, "LoadImage", image=_save(la, tmp_folders.inputs, "la.png"))
    assert torch.equal(image[0, 1, 1], torch.full((3,), 50 / 255)) and mask.tolist() == [[[0, 0, 0], [0, 1, 0]]]
    # A palette PNG with a transparent index: its pixels are 1 in the mask (ComfyUI's LoadImage
    # reads the palette's transparency), the colours are the palette's.
    p = Image.new("P", (3, 2), 0)
    p.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    p.putpixel((2, 0), 1)
    image, mask = call(builtin_registry, "LoadImage", image=_save(p, tmp_folders.inputs, "p.png", transparency=1))
    assert mask.tolist() == [[[0, 0, 1], [0, 0, 0]]]
    assert torch.equal(image[0, 0, 2], torch.tensor([200, 100, 50]) / 255.0)
    assert torch.equal(image[0, 1, 0], torch.tensor([10, 20, 30]) / 255.0)


def test_load_image_leaves_out_pages_of_another_size(builtin_registry, tmp_folders):
    # A multi-page TIFF: ComfyUI keeps the pages of the first page's size, in order.
    pages = [Image.new("RGB", (4, 3), (1, 2, 3)), Image.new("RGB", (5, 3), (4, 5, 6)),
             Image.new("RGB", (4, 3), (7, 8, 9))]
    pages[0].save(tmp_folders.inputs / "pages.tif", save_all=True, append_images=pages[1:])
    from test_custom_sampling import run_node
    image, mask = run_node(builtin_registry.get("LoadImage"), image="pages.tif")
    assert image.shape == (2, 3, 4, 3) and mask.shape == (2, 64, 64) and not mask.any()
    assert (image[:, 0, 0] * 255).round().tolist() == [[1, 2, 3], [7, 8, 9]]


def test_empty_image_levels_are_the_colour_bytes_over_255(builtin_registry):
    out = call(builtin_registry, "EmptyImage", width=2, height=1, batch_size=1, color=0x01FE80)
    assert out.dtype == torch.float32
    assert torch.equal(out[0, 0, 0], torch.tensor(np.array([1, 254, 128]) / 255, dtype=torch.float32))


def test_lanczos_resizes_two_channels_as_one_grey_alpha_picture(builtin_registry):
    # ComfyUI hands Pillow the [H, W, 2] bytes, which make an "LA" picture: Pillow resizes it with
    # the grey premultiplied by the alpha, so grey under a transparent alpha does not bleed out.
    rng = np.random.default_rng(5)
    levels = rng.integers(0, 256, (7, 9, 2), dtype=np.uint8)
    levels[:, :4, 1] = 0  # the left part fully transparent
    image = torch.from_numpy((levels.astype(np.float32) + 0.5) / 255)[None]  # truncates back to `levels`
    out = call(builtin_registry, "ImageScale", image=image, upscale_method="lanczos", width=13, height=5,
               crop="disabled")
    expected = np.asarray(Image.fromarray(levels, "LA").resize((13, 5), Image.Resampling.LANCZOS), dtype=np.float32)
    assert torch.equal(out[0], torch.from_numpy(expected / 255))
    one_by_one = [np.asarray(Image.fromarray(levels[..., c], "L").resize((13, 5), Image.Resampling.LANCZOS))
                  for c in range(2)]
    assert not np.array_equal(np.stack(one_by_one, -1), expected.astype(np.uint8))  # the old way differs
