"""ComfyUI's core latent, image and mask nodes: what each computes, checked by hand arithmetic."""

import kornia
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from graphflow.context import NodeInputError
from graphflow.images import bislerp
from graphflow.sampling.noise import initial_noise
from test_nodes_image_mask import call


def latent(samples, **extra):
    return {"samples": samples, **extra}


# -- latent --------------------------------------------------------------------------------------

def test_latent_upscale_by_sizes_and_keeps_noise_mask(builtin_registry):
    x = torch.randn(2, 4, 8, 6)
    mask = torch.ones(1, 1, 64, 48)
    out = call(builtin_registry, "LatentUpscaleBy", samples=latent(x, noise_mask=mask),
               upscale_method="nearest-exact", scale_by=1.5)
    assert out["samples"].shape == (2, 4, 12, 9)
    assert out["noise_mask"] is mask
    # nearest-exact x2 repeats each latent pixel 2x2
    out = call(builtin_registry, "LatentUpscaleBy", samples=latent(x), upscale_method="nearest-exact", scale_by=2.0)
    assert torch.equal(out["samples"], x.repeat_interleave(2, 2).repeat_interleave(2, 3))


def test_bislerp_keeps_norms_and_endpoints(builtin_registry):
    x = torch.randn(1, 4, 3, 3)
    # Same size: identity.
    assert torch.allclose(bislerp(x, 3, 3), x, atol=1e-6)
    # Halfway between two orthogonal vectors of equal length: length kept (a lerp would shrink it by sqrt 2).
    a = torch.zeros(1, 4, 1, 2)
    a[0, 0, 0, 0], a[0, 1, 0, 1] = 2.0, 2.0
    up = bislerp(a, 4, 1)  # source positions -0.25, 0.25, 0.75, 1.25 -> clamped 0, 0.25, 0.75, 1
    assert torch.allclose(up.norm(dim=1), torch.full((1, 1, 4), 2.0), atol=1e-5)
    assert torch.allclose(up[0, :, 0, 1], torch.tensor([2 * 0.9238795, 2 * 0.3826834, 0, 0]), atol=1e-5)
    out = call(builtin_registry, "LatentUpscaleBy", samples=latent(x), upscale_method="bislerp",
               scale_by=2.0)
    assert out["samples"].shape == (1, 4, 6, 6)


def test_bislerp_takes_its_positions_from_a_bilinearly_resized_index_ramp():
    # ComfyUI's bislerp finds each output's neighbours and weight by resizing the ramp 0..n-1 with
    # torch's bilinear (float32); exact half-pixel positions differ from those by ~1e-6 at n = 40.
    import math
    n, width = 40, 97
    x = torch.zeros(1, 2, 1, n)
    x[0, 0, 0, 0::2] = 1.0  # e0 at even columns, e1 at odd ones: neighbours are orthogonal unit vectors
    x[0, 1, 0, 1::2] = 1.0
    pos = F.interpolate(torch.arange(n, dtype=torch.float32).reshape(1, 1, 1, -1), size=(1, width),
                        mode="bilinear").reshape(-1)
    r = pos - pos.floor()
    cos, sin = torch.cos(r * math.pi / 2), torch.sin(r * math.pi / 2)  # slerp of orthogonal unit vectors
    even = pos.long() % 2 == 0
    expected = torch.stack([torch.where(even, cos, sin), torch.where(even, sin, cos)])[None, :, None]
    torch.testing.assert_close(bislerp(x, width, 1), expected, rtol=0, atol=3e-7)


def test_latent_composite_paste_and_feather(builtin_registry):
    to, src = torch.zeros(1, 4, 8, 8), torch.ones(1, 4, 4, 4)
    out = call(builtin_registry, "LatentComposite", samples_to=latent(to), samples_from=latent(src), x=16, y=8)
    s = out["samples"]
    assert s[0, :, 1:5, 2:6].eq(1).all() and s.sum() == 4 * 16
    assert to.eq(0).all()  # input untouched
    # Cut off at the destination's edge.
    out = call(builtin_registry, "LatentComposite", samples_to=latent(to), samples_from=latent(src), x=48, y=48)
    assert out["samples"][0, 0, 6:, 6:].eq(1).all() and out["samples"].sum() == 4 * 4
    # feather 16 px = 2 latent px: inner edges ramp 0.5, 1; the corner multiplies both ramps.
    out = call(builtin_registry, "LatentComposite", samples_to=latent(to), samples_from=latent(src),
               x=16, y=16, feather=16)
    # A corner on the bottom edge pastes nothing (ComfyUI's empty slices); further out it is refused.
    edge = call(builtin_registry, "LatentComposite", samples_to=latent(to), samples_from=latent(src), x=0, y=64)
    assert torch.equal(edge["samples"], to)
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "LatentComposite", samples_to=latent(to), samples_from=latent(src), x=0, y=72)
    assert e.value.input == "y"
    row = out["samples"][0, 0, 4, 2:6]
    assert torch.allclose(row, torch.tensor([0.5, 1.0, 1.0, 0.5]))
    assert torch.isclose(out["samples"][0, 0, 2, 2], torch.tensor(0.25))


def test_latent_composite_masked(builtin_registry):
    dest, src = torch.zeros(2, 4, 8, 8), torch.full((1, 4, 4, 4), 2.0)
    mask = torch.zeros(1, 32, 32)
    mask[:, :, 16:] = 1  # right half of the source (in pixels)
    out = call(builtin_registry, "LatentCompositeMasked", destination=latent(dest), source=latent(src),
               x=8, y=8, resize_source=False, mask=mask)
    s = out["samples"]
    assert s.shape == (2, 4, 8, 8)  # source repeated to the batch
    assert s[:, :, 1:5, 3:5].eq(2).all() and s[:, :, 1:5, 1:3].eq(0).all()
    assert s.sum() == 2 * 2 * 4 * 4 * 2
    full = call(builtin_registry, "LatentCompositeMasked", destination=latent(dest), source=latent(src),
                x=0, y=0, resize_source=True)
    assert full["samples"].eq(2).all()


def test_repeat_latent_batch_indices_and_masks(builtin_registry):
    x = torch.randn(2, 4, 3, 3)
    masks = torch.rand(2, 1, 3, 3)
    out = call(builtin_registry, "RepeatLatentBatch", samples=latent(x, batch_index=[3, 4], noise_mask=masks),
               amount=3)
    assert torch.equal(out["samples"], torch.cat([x, x, x]))
    assert torch.equal(out["noise_mask"], torch.cat([masks] * 3))
    assert out["batch_index"] == [3, 4, 5, 6, 7, 8]


def test_latent_from_batch_keeps_the_noise_of_its_position(builtin_registry):
    x = torch.zeros(4, 4, 5, 5)
    out = call(builtin_registry, "LatentFromBatch", samples=latent(x), batch_index=2, length=5)
    assert out["samples"].shape[0] == 2 and out["batch_index"] == [2, 3]
    # The picked latents get the noise of their index, drawn image by image as ComfyUI does
    # (the same as a batch with indices 0..3 gets; a batch without indices draws one tensor).
    full = initial_noise(x, 42, [0, 1, 2, 3])
    assert torch.equal(initial_noise(out["samples"], 42, out["batch_index"]), full[2:4])
    # Index past the end is clamped to the last; existing batch_index is sliced.
    last = call(builtin_registry, "LatentFromBatch", samples=latent(x, batch_index=[7, 8, 9, 10]), batch_index=60,
                length=1)
    assert last["batch_index"] == [10]
    single_mask = torch.ones(1, 1, 5, 5)
    m = call(builtin_registry, "LatentFromBatch", samples=latent(x, noise_mask=single_mask), batch_index=1, length=1)
    assert torch.equal(m["noise_mask"], single_mask)


def test_latent_blend_add_subtract_multiply(builtin_registry):
    a, b = torch.randn(2, 4, 4, 4), torch.randn(1, 4, 4, 4)
    blend = call(builtin_registry, "LatentBlend", samples1=latent(a), samples2=latent(b), blend_factor=0.25)
    assert torch.allclose(blend["samples"], a * 0.25 + b * 0.75)
    add = call(builtin_registry, "LatentAdd", samples1=latent(a), samples2=latent(b))
    assert torch.allclose(add["samples"], a + b)
    sub = call(builtin_registry, "LatentSubtract", samples1=latent(a), samples2=latent(b))
    assert torch.allclose(sub["samples"], a - b)
    mul = call(builtin_registry, "LatentMultiply", samples=latent(a, batch_index=[0, 1]), multiplier=-1.5)
    assert torch.allclose(mul["samples"], a * -1.5) and mul["batch_index"] == [0, 1]
    # A smaller samples2 is resized to samples1's size first.
    small = torch.ones(1, 4, 2, 2)
    add = call(builtin_registry, "LatentAdd", samples1=latent(a), samples2=latent(small))
    assert torch.allclose(add["samples"], a + 1)
    with pytest.raises(NodeInputError, match="channels"):
        call(builtin_registry, "LatentAdd", samples1=latent(a), samples2=latent(torch.ones(1, 16, 4, 4)))


# -- image ---------------------------------------------------------------------------------------

def test_image_scale_by_and_total_pixels(builtin_registry):
    image = torch.rand(1, 10, 20, 3)
    out = call(builtin_registry, "ImageScaleBy", image=image, upscale_method="nearest-exact", scale_by=0.5)
    assert out.shape == (1, 5, 10, 3)
    assert torch.equal(out, image[:, 1::2, 1::2])  # nearest-exact halving: pixel centres 2i + 1
    out = call(builtin_registry, "ImageScaleToTotalPixels", image=image, upscale_method="bilinear", megapixels=0.01)
    # 0.01 * 1024^2 = 10486 px at aspect 2:1 -> 145 x 72
    assert out.shape == (1, 72, 145, 3)


def test_image_composite_masked(builtin_registry):
    dest, src = torch.zeros(1, 6, 6, 3), torch.ones(1, 4, 4, 3)
    mask = torch.zeros(1, 4, 4)
    mask[0, 0, 0] = 1
    mask[0, 1, 1] = 0.25
    out = call(builtin_registry, "ImageCompositeMasked", destination=dest, source=src, x=3, y=1, mask=mask)
    assert out[0, 1, 3].eq(1).all() and out[0, 2, 4].eq(0.25).all()
    assert out.sum() == 3 * 1.25
    out = call(builtin_registry, "ImageCompositeMasked", destination=dest, source=src, x=3, y=1)
    assert out[0, 1:5, 3:6].eq(1).all() and out.sum() == 3 * 12  # cut at the right edge


def test_empty_image_batch_invert_size(builtin_registry):
    image = call(builtin_registry, "EmptyImage", width=3, height=2, batch_size=2, color=0xFF8000)
    assert image.shape == (2, 2, 3, 3)
    assert torch.allclose(image[0, 0, 0], torch.tensor([1.0, 128 / 255, 0.0]))
    other = torch.rand(1, 4, 6, 3)
    batch = call(builtin_registry, "ImageBatch", image1=image, image2=other)
    assert batch.shape == (3, 2, 3, 3) and torch.equal(batch[:2], image)
    assert torch.allclose(call(builtin_registry, "ImageInvert", image=other), 1 - other)
    assert call(builtin_registry, "GetImageSize", image=other) == (6, 4, 1)


def test_image_crop_flip_rotate(builtin_registry):
    image = torch.arange(2 * 3 * 4 * 1, dtype=torch.float32).reshape(2, 3, 4, 1)
    crop = call(builtin_registry, "ImageCrop", image=image, width=2, height=5, x=1, y=1)
    assert torch.equal(crop, image[:, 1:3, 1:3])
    assert call(builtin_registry, "ImageCrop", image=image, width=9, height=9, x=99, y=99).shape == (2, 1, 1, 1)
    vertical = call(builtin_registry, "ImageFlip", image=image, flip_method="x-axis: vertically")
    assert torch.equal(vertical[0, 0], image[0, 2])
    horizontal = call(builtin_registry, "ImageFlip", image=image, flip_method="y-axis: horizontally")
    assert torch.equal(horizontal[0, :, 0], image[0, :, 3])
    rotated = call(builtin_registry, "ImageRotate", image=image, rotation="90 degrees")
    # Clockwise: the top row becomes the right column, read top to bottom.
    assert rotated.shape == (2, 4, 3, 1) and torch.equal(rotated[0, :, -1, 0], image[0, 0, :, 0])
    assert torch.equal(call(builtin_registry, "ImageRotate", image=image, rotation="none"), image)


def test_canny_matches_kornia(builtin_registry):
    g = torch.Generator().manual_seed(0)
    image = F.interpolate(torch.rand(2, 3, 12, 14, generator=g), size=(48, 56), mode="bilinear").movedim(1, -1)
    for low, high in ((0.4, 0.8), (0.05, 0.3)):
        edges = call(builtin_registry, "Canny", image=image, low_threshold=low, high_threshold=high)
        reference = kornia.filters.canny(image.movedim(-1, 1), low, high)[1]
        assert edges.shape == (2, 48, 56, 3)
        assert torch.equal(edges[..., 0], reference[:, 0]) and reference.sum() > 20
    # A white square on black: edges along its border only.
    square = torch.zeros(1, 32, 32, 3)
    square[:, 8:24, 8:24] = 1
    edges = call(builtin_registry, "Canny", image=square, low_threshold=0.4, high_threshold=0.8)[0, ..., 0]
    assert edges[:4].sum() == 0 and edges[12:20, 12:20].sum() == 0 and edges[8:24, 7:9].sum() >= 14
    with pytest.raises(NodeInputError, match="above high_threshold") as error:
        call(builtin_registry, "Canny", image=square, low_threshold=0.9, high_threshold=0.2)
    assert error.value.input == "low_threshold"


# -- mask ----------------------------------------------------------------------------------------

def test_threshold_mask_and_join_alpha(builtin_registry):
    mask = torch.tensor([[[0.2, 0.5, 0.7]]])
    assert torch.equal(call(builtin_registry, "ThresholdMask", mask=mask, value=0.5), torch.tensor([[[0.0, 0.0, 1.0]]]))
    image = torch.rand(2, 4, 4, 3)
    alpha_mask = torch.zeros(1, 2, 2)
    alpha_mask[0, 0, 0] = 1
    rgba = call(builtin_registry, "JoinImageWithAlpha", image=image, alpha=alpha_mask)
    assert rgba.shape == (1, 4, 4, 4) and torch.equal(rgba[..., :3], image[:1])
    assert rgba[0, 0, 0, 3] == 0 and rgba[0, 3, 3, 3] == 1


def test_load_image_mask_channels(builtin_registry, tmp_folders):
    rgba = Image.new("RGBA", (4, 3), (255, 0, 51, 255))
    rgba.putpixel((1, 1), (0, 0, 0, 0))
    rgba.save(tmp_folders.inputs / "m.png")
    Image.new("RGB", (4, 3), (10, 20, 30)).save(tmp_folders.inputs / "rgb.png")
    alpha = call(builtin_registry, "LoadImageMask", image="m.png", channel="alpha")
    assert alpha.shape == (1, 3, 4) and alpha[0, 1, 1] == 1 and alpha.sum() == 1
    blue = call(builtin_registry, "LoadImageMask", image="m.png", channel="blue")
    assert torch.isclose(blue[0, 0, 0], torch.tensor(0.2)) and blue[0, 1, 1] == 0
    assert call(builtin_registry, "LoadImageMask", image="rgb.png", channel="alpha").sum() == 0
    (tmp_folders.inputs / "broken.png").write_bytes(b"not a png")
    with pytest.raises(NodeInputError, match="broken.png"):
        call(builtin_registry, "LoadImageMask", image="broken.png", channel="red")


def test_size_changing_nodes_tell_the_validator_their_sizes(builtin_registry):
    """The resource check follows sizes through the new nodes: an 8x LatentUpscaleBy or a repeated
    batch is refused where it happens, not let through at its input's size."""
    from graphflow.resource_limits import RunLimits, Size, default_estimate

    def estimate(node_type, inputs, **widgets):
        cls = builtin_registry.get(node_type)
        return (cls.estimate(widgets, inputs) or default_estimate(cls, widgets, inputs)).size

    image = Size(2, 100, 200)
    assert estimate("LatentUpscaleBy", {"samples": image}, scale_by=8.0) == Size(2, 800, 1600)
    assert estimate("ImageScaleBy", {"image": image}, scale_by=0.5) == Size(2, 50, 100)
    assert estimate("ImageScaleToTotalPixels", {"image": image}, megapixels=1.0) == Size(2, 724, 1448)
    assert estimate("RepeatLatentBatch", {"samples": image}, amount=3) == Size(6, 100, 200)
    assert estimate("LatentFromBatch", {"samples": image}, batch_index=1, length=5) == Size(1, 100, 200)
    assert estimate("ImageBatch", {"image1": image, "image2": Size(1, 10, 10)}) == Size(3, 100, 200)
    assert estimate("ImageCrop", {"image": image}, width=150, height=50, x=100, y=0) == Size(2, 50, 100)
    assert estimate("ImageRotate", {"image": image}, rotation="90 degrees") == Size(2, 200, 100)
    assert estimate("EmptyImage", {}, width=64, height=32, batch_size=4, color=0) == Size(4, 32, 64)
    # In a workflow: the upscale is refused by the server policy, at the upscale.
    from graphflow.validation import validate
    from graphflow.workflow import parse_workflow

    graph = {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
             "2": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["1", 0], "upscale_method": "bilinear",
                                                               "scale_by": 8.0}},
             "3": {"class_type": "PreviewImage", "inputs": {"images": ["4", 0]}},
             "4": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
             "5": {"class_type": "SaveLatent", "inputs": {"samples": ["2", 0], "filename_prefix": "x"}}}
    found = validate(parse_workflow(graph, builtin_registry), builtin_registry,
                     limits=RunLimits(max_pixels=4096 * 4096))
    assert [p.node_id for p in found] == ["2"], found
