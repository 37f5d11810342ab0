"""ComfyUI's latent transform and editing nodes (nodes/latent_ops.py)."""

import torch

from graphflow.sampling.noise import initial_noise
from test_image_ops import refused
from test_nodes_image_mask import call


def test_crop_in_latent_pixels_with_comfyuis_corner_clamp(builtin_registry):
    x = torch.randn(2, 4, 12, 16)
    mask = torch.rand(2, 1, 96, 128)
    out = call(builtin_registry, "LatentCrop", samples={"samples": x, "noise_mask": mask, "batch_index": [3, 4]},
               width=64, height=72, x=16, y=8)
    assert torch.equal(out["samples"], x[:, :, 1:10, 2:10]) and out["batch_index"] == [3, 4]
    assert out["noise_mask"] is mask  # left whole, as ComfyUI: the sampler stretches it over the crop
    # A corner past the edge moves in to leave 8 latent pixels (64 image pixels).
    out = call(builtin_registry, "LatentCrop", samples={"samples": x}, width=512, height=512, x=800, y=800)
    assert torch.equal(out["samples"], x[:, :, 4:, 8:])


def test_flip_and_rotate_turn_the_latent_as_the_image_nodes_do_and_leave_the_mask(builtin_registry):
    grid = torch.tensor([[1.0, 2.0], [3.0, 4.0]])[None, None]
    turned = call(builtin_registry, "LatentRotate", samples={"samples": grid}, rotation="90 degrees")["samples"]
    assert turned[0, 0].tolist() == [[3.0, 1.0], [4.0, 2.0]]  # clockwise
    x = torch.randn(2, 4, 5, 7)
    mask = torch.rand(1, 1, 40, 56)
    for rotation in ("none", "90 degrees", "180 degrees", "270 degrees"):
        out = call(builtin_registry, "LatentRotate", samples={"samples": x, "noise_mask": mask}, rotation=rotation)
        image = call(builtin_registry, "ImageRotate", image=x.movedim(1, -1), rotation=rotation)
        assert torch.equal(out["samples"], image.movedim(-1, 1)), rotation
        assert out["noise_mask"] is mask, rotation  # ComfyUI turns only the samples
    for method in ("x-axis: vertically", "y-axis: horizontally"):
        out = call(builtin_registry, "LatentFlip", samples={"samples": x, "noise_mask": mask}, flip_method=method)
        image = call(builtin_registry, "ImageFlip", image=x.movedim(1, -1), flip_method=method)
        assert torch.equal(out["samples"], image.movedim(-1, 1)), method
    assert torch.equal(out["samples"][..., 0], x[..., -1]) and out["noise_mask"] is mask


def test_batch_seed_behavior_fixed_gives_every_image_the_first_noise(builtin_registry):
    x = torch.zeros(3, 4, 6, 6)
    fixed = call(builtin_registry, "LatentBatchSeedBehavior", samples={"samples": x, "batch_index": [5, 6, 7]},
                 seed_behavior="fixed")
    assert fixed["batch_index"] == [5, 5, 5]
    noise = initial_noise(x, 11, fixed["batch_index"])
    assert torch.equal(noise[0], noise[1]) and torch.equal(noise[0], noise[2])
    assert torch.equal(noise[0], initial_noise(torch.zeros(6, 4, 6, 6), 11)[5])
    assert call(builtin_registry, "LatentBatchSeedBehavior", samples={"samples": x},
                seed_behavior="fixed")["batch_index"] == [0, 0, 0]
    random = call(builtin_registry, "LatentBatchSeedBehavior", samples={"samples": x, "batch_index": [5, 6, 7]},
                  seed_behavior="random")
    assert "batch_index" not in random
    noise = initial_noise(x, 11, random.get("batch_index"))
    assert not torch.equal(noise[0], noise[1])


def test_concat_and_cut_along_x_and_y(builtin_registry):
    a, b = torch.randn(2, 4, 5, 6), torch.randn(1, 4, 5, 3)
    out = call(builtin_registry, "LatentConcat", samples1={"samples": a, "batch_index": [0, 1]},
               samples2={"samples": b}, dim="x")
    assert out["samples"].shape == (2, 4, 5, 9) and out["batch_index"] == [0, 1]
    assert torch.equal(out["samples"][:, :, :, :6], a) and torch.equal(out["samples"][1, :, :, 6:], b[0])
    out = call(builtin_registry, "LatentConcat", samples1={"samples": a}, samples2={"samples": b}, dim="-x")
    assert torch.equal(out["samples"][:, :, :, 3:], a)
    below = torch.randn(2, 4, 2, 6)
    out = call(builtin_registry, "LatentConcat", samples1={"samples": a}, samples2={"samples": below}, dim="-y")
    assert out["samples"].shape == (2, 4, 7, 6) and torch.equal(out["samples"][:, :, :2], below)
    assert "width" in refused(builtin_registry, "LatentConcat", "samples2", samples1={"samples": a},
                               samples2={"samples": b}, dim="y")
    assert "video" in refused(builtin_registry, "LatentConcat", "dim", samples1={"samples": a},
                              samples2={"samples": a}, dim="t")

    x = torch.randn(1, 4, 8, 10)
    mask = torch.rand(1, 1, 64, 80)
    out = call(builtin_registry, "LatentCut", samples={"samples": x, "noise_mask": mask}, dim="x", index=2, amount=3)
    assert torch.equal(out["samples"], x[..., 2:5]) and out["noise_mask"] is mask
    out = call(builtin_registry, "LatentCut", samples={"samples": x}, dim="y", index=-3, amount=5)
    assert torch.equal(out["samples"], x[:, :, 5:])  # from the end, the amount cut to what is there
    out = call(builtin_registry, "LatentCut", samples={"samples": x}, dim="x", index=50, amount=4)
    assert torch.equal(out["samples"], x[..., 9:])  # past the end: the last column
    assert "video" in refused(builtin_registry, "LatentCut", "dim", samples={"samples": x}, dim="t")


def test_norm_interpolate_mixes_directions_and_lengths(builtin_registry):
    a, b = torch.zeros(2, 2, 1, 1), torch.zeros(1, 2, 1, 1)
    a[:, 0] = 3.0  # length 3 along the first channel
    b[:, 1] = 1.0  # length 1 along the second
    out = call(builtin_registry, "LatentNormInterpolate", samples1={"samples": a, "batch_index": [4, 5]},
               samples2={"samples": b}, ratio=0.5)
    # Direction: the normalised mean of (1, 0) and (0, 1); length: (3 + 1) / 2.
    expected = torch.tensor([2 / 2 ** 0.5, 2 / 2 ** 0.5])
    assert torch.allclose(out["samples"][:, :, 0, 0], expected.expand(2, 2)) and out["batch_index"] == [4, 5]
    x, y = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 6, 6)
    for ratio, expected in ((1.0, x), (0.0, y)):
        out = call(builtin_registry, "LatentNormInterpolate", samples1={"samples": x}, samples2={"samples": y},
                   ratio=ratio)
        assert torch.allclose(out["samples"], expected, atol=1e-6)
    # samples2 is resized to samples1 (a constant stays constant); a zero vector gives zero, not NaN.
    out = call(builtin_registry, "LatentNormInterpolate", samples1={"samples": torch.zeros(1, 4, 6, 6)},
               samples2={"samples": torch.ones(1, 4, 3, 3)}, ratio=0.25)
    assert torch.allclose(out["samples"], torch.full((1, 4, 6, 6), 0.75))
    assert "channels" in refused(builtin_registry, "LatentNormInterpolate", "samples2", samples1={"samples": x},
                                 samples2={"samples": torch.randn(1, 16, 6, 6)})


def test_latent_input_that_is_not_a_latent_is_refused(builtin_registry):
    assert "LATENT" in refused(builtin_registry, "LatentFlip", "samples", samples={"samples": torch.zeros(4, 4)})


def test_size_estimates_follow_the_crop_cut_and_turn(builtin_registry):
    from graphflow.resource_limits import Size
    latent = Size(2, 96, 128)  # a 12 x 16 latent

    def estimate(node_type, **widgets):
        return builtin_registry.get(node_type).estimate(widgets, {"samples": latent}).size

    # The sizes the nodes really give, in decoded pixels.
    x = {"samples": torch.zeros(2, 4, 12, 16)}
    for node_type, widgets in (("LatentCut", {"dim": "x", "index": -3, "amount": 5}),
                               ("LatentCut", {"dim": "y", "index": 50, "amount": 4}),
                               ("LatentCrop", {"width": 512, "height": 64, "x": 800, "y": 16}),
                               ("LatentRotate", {"rotation": "270 degrees"})):
        shape = call(builtin_registry, node_type, samples=x, **widgets)["samples"].shape
        assert estimate(node_type, **widgets) == Size(2, 8 * shape[2], 8 * shape[3]), (node_type, widgets)
