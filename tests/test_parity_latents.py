"""ComfyUI's latent nodes where their arithmetic or bookkeeping has a quirk an imported graph relies
on: LatentBatch's batch indices, RepeatLatentBatch's masks, LatentComposite's feather slices, the
batch broadcast of LatentBlend, video latents in LatentUpscale(By), the noise mask that the
transform nodes leave alone. Oracles are hand-worked values or plain torch operations."""

import torch
import torch.nn.functional as F

from graphflow.sampling.pipeline import prepare_noise_mask
from test_nodes_image_mask import call


def test_latent_batch_keeps_each_batchs_indices_and_samples1s_mask(builtin_registry):
    a, b = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    mask = torch.rand(2, 1, 64, 64)
    out = call(builtin_registry, "LatentBatch", samples1={"samples": a, "noise_mask": mask}, samples2={"samples": b})
    # ComfyUI concatenates the indices: the second batch is seeded like the first
    assert out["batch_index"] == [0, 1, 0, 1]
    assert torch.equal(out["samples"], torch.cat([a, b])) and out["noise_mask"] is mask
    out = call(builtin_registry, "LatentBatch", samples1={"samples": a, "batch_index": [4, 5]},
               samples2={"samples": b[:1], "batch_index": [9]})
    assert out["batch_index"] == [4, 5, 9]


def test_latent_batch_crops_a_wider_samples2_to_the_aspect_ratio(builtin_registry):
    a, wide = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 16)
    out = call(builtin_registry, "LatentBatch", samples1={"samples": a}, samples2={"samples": wide})
    # 8x16 into 8x8: the middle 8 columns, at their own size (no stretching)
    assert torch.equal(out["samples"][1:], wide[..., 4:12])


def test_repeat_latent_batch_repeats_the_masks_as_they_are(builtin_registry):
    x = torch.randn(3, 4, 2, 2)
    m0, m1 = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    out = call(builtin_registry, "RepeatLatentBatch", samples={"samples": x, "noise_mask": torch.cat([m0, m1])},
               amount=2)
    assert torch.equal(out["noise_mask"], torch.cat([m0, m1, m0, m1]))
    # the sampler cycles them over the 6 latents 0 1 2 0 1 2: masks 0 1 0 1 0 1 (ComfyUI's pairing)
    per_latent = prepare_noise_mask(out["noise_mask"], out["samples"].shape, "cpu")[:, 0, 0, 0]
    assert per_latent.tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]


def test_latent_composite_feather_wider_than_the_paste_follows_comfyuis_slices(builtin_registry):
    to, src = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 2, 2)
    out = call(builtin_registry, "LatentComposite", samples_to={"samples": to}, samples_from={"samples": src},
               x=8, y=8, feather=40)
    # feather 5 latent px, factors 0.2 0.4 0.6 0.8 1.0 on a 2-row paste with both edges inside:
    # top edge rows t:t+1 (t = 0, 1); bottom edge rows 1-t:2-t, which for t = 3 is -2:-1, row 0 again
    # (t = 2 and 4 are empty slices). Row 0: 0.2 * 0.4 * 0.8, row 1: 0.4 * 0.2; columns alike.
    ramp = torch.tensor([0.2 * 0.4 * 0.8, 0.4 * 0.2])
    expected = torch.zeros(4, 4)
    expected[1:3, 1:3] = ramp[:, None] * ramp[None, :]
    torch.testing.assert_close(out["samples"][0, 0], expected)


def test_latent_blend_broadcasts_a_samples1_batch_of_one(builtin_registry):
    a, b = torch.randn(1, 4, 4, 4), torch.randn(3, 4, 4, 4)
    out = call(builtin_registry, "LatentBlend", samples1={"samples": a}, samples2={"samples": b}, blend_factor=0.3)
    assert out["samples"].shape == (3, 4, 4, 4)
    torch.testing.assert_close(out["samples"], a * 0.3 + b * 0.7)


def test_latent_upscale_resizes_a_video_latent_frame_by_frame(builtin_registry):
    video = torch.randn(2, 4, 3, 6, 8)
    frames = video.movedim(2, 1).reshape(6, 4, 6, 8)

    def per_frame(resized, h, w):  # [B*T, C, h, w] -> [B, C, T, h, w]
        return resized.reshape(2, 3, 4, h, w).movedim(1, 2)

    out = call(builtin_registry, "LatentUpscaleBy", samples={"samples": video}, upscale_method="bilinear",
               scale_by=1.5)
    assert torch.equal(out["samples"], per_frame(F.interpolate(frames, size=(9, 12), mode="bilinear"), 9, 12))
    out = call(builtin_registry, "LatentUpscale", samples={"samples": video}, upscale_method="nearest-exact",
               width=64, height=64, crop="center")
    square = F.interpolate(frames[..., 1:7], size=(8, 8), mode="nearest-exact")  # 6x8 cropped to 6x6
    assert torch.equal(out["samples"], per_frame(square, 8, 8))
    bislerp = call(builtin_registry, "LatentUpscaleBy", samples={"samples": video}, upscale_method="bislerp",
                   scale_by=2.0)["samples"]
    assert bislerp.shape == (2, 4, 3, 12, 16)
    one = call(builtin_registry, "LatentUpscaleBy", samples={"samples": video[:, :, 1]}, upscale_method="bislerp",
               scale_by=2.0)["samples"]
    assert torch.equal(bislerp[:, :, 1], one)


def test_latent_crop_of_a_latent_under_64_pixels_starts_from_the_end(builtin_registry):
    x = torch.arange(6.0).reshape(1, 1, 1, 6).expand(1, 1, 6, 6).contiguous()
    out = call(builtin_registry, "LatentCrop", samples={"samples": x}, width=64, height=64, x=0, y=0)
    # ComfyUI moves the corner to 6 - 8 = -2: columns [-2:6], i.e. the last two
    assert out["samples"].shape == (1, 1, 2, 2) and out["samples"][0, 0, 0].tolist() == [4.0, 5.0]


def test_video_latents_go_through_the_batch_and_arithmetic_nodes(builtin_registry):
    video = torch.randn(2, 4, 3, 4, 6)
    small = torch.randn(1, 4, 3, 2, 3)
    add = call(builtin_registry, "LatentAdd", samples1={"samples": video}, samples2={"samples": small})["samples"]
    frames = F.interpolate(small.movedim(2, 1).reshape(3, 4, 2, 3), size=(4, 6), mode="bilinear")
    torch.testing.assert_close(add, video + frames.reshape(1, 3, 4, 4, 6).movedim(1, 2))
    mul = call(builtin_registry, "LatentMultiply", samples={"samples": video}, multiplier=-2.0)["samples"]
    assert torch.equal(mul, video * -2.0)
    both = call(builtin_registry, "LatentBatch", samples1={"samples": video}, samples2={"samples": video[:1]})
    assert torch.equal(both["samples"], torch.cat([video, video[:1]])) and both["batch_index"] == [0, 1, 0]
    repeated = call(builtin_registry, "RepeatLatentBatch", samples={"samples": video}, amount=2)["samples"]
    assert torch.equal(repeated, torch.cat([video, video]))
    one = call(builtin_registry, "LatentFromBatch", samples={"samples": video}, batch_index=1, length=1)
    assert torch.equal(one["samples"], video[1:]) and one["batch_index"] == [1]
    fixed = call(builtin_registry, "LatentBatchSeedBehavior", samples={"samples": video}, seed_behavior="fixed")
    assert fixed["batch_index"] == [0, 0]
    # LatentInterpolate: the same directions, lengths mixed linearly (ratio 0.25 of 1x and 3x: 2.5x)
    mixed = call(builtin_registry, "LatentNormInterpolate", samples1={"samples": video},
                 samples2={"samples": 3 * video}, ratio=0.25)["samples"]
    torch.testing.assert_close(mixed, 2.5 * video)


def test_concat_and_cut_along_t_for_video_latents(builtin_registry):
    a, b = torch.randn(1, 4, 3, 2, 2), torch.randn(1, 4, 2, 2, 2)
    after = call(builtin_registry, "LatentConcat", samples1={"samples": a}, samples2={"samples": b}, dim="t")
    assert torch.equal(after["samples"], torch.cat([a, b], dim=2))
    before = call(builtin_registry, "LatentConcat", samples1={"samples": a}, samples2={"samples": b}, dim="-t")
    assert torch.equal(before["samples"], torch.cat([b, a], dim=2))
    wide = call(builtin_registry, "LatentConcat", samples1={"samples": a}, samples2={"samples": a}, dim="x")
    assert wide["samples"].shape == (1, 4, 3, 2, 4)
    last_two = call(builtin_registry, "LatentCut", samples={"samples": a}, dim="t", index=-2, amount=5)
    assert torch.equal(last_two["samples"], a[:, :, 1:])
    column = call(builtin_registry, "LatentCut", samples={"samples": a}, dim="x", index=1, amount=1)
    assert torch.equal(column["samples"], a[..., 1:])


def test_concat_inputs_spread_over_the_latent_batch_as_comfyui_resizes_them():
    """A model's extra input channels follow the latent's batch by ComfyUI's resize_to_batch_size:
    two masked images for four latents go 0, 0, 1, 1 (not cycled 0, 1, 0, 1); more are thinned."""
    from graphflow.models.latent_formats import FLUX, SD1, WAN21
    from graphflow.sampling.pipeline import fill_concat, inpaint_concat, wan_concat

    image = torch.stack([torch.full((4, 2, 3), float(i)) for i in range(2)])  # item i holds i
    mask = torch.stack([torch.full((1, 2, 3), float(i)) for i in range(2)])
    out = inpaint_concat({"concat_latent_image": image, "concat_mask": mask}, image, None, SD1, (4, 4, 2, 3), "cpu")
    assert out[:, 0, 0, 0].tolist() == [0, 0, 1, 1]
    assert torch.allclose(SD1.process_out(out[:, 1:])[:, 0, 0, 0], torch.tensor([0.0, 0.0, 1.0, 1.0]))

    fill = fill_concat({"concat_latent_image": torch.stack([torch.full((16, 2, 3), float(i)) for i in range(3)])},
                       None, FLUX, (2, 16, 2, 3), "cpu")
    assert torch.allclose(FLUX.process_out(fill[:, :16])[:, 0, 0, 0], torch.tensor([0.0, 2.0]))  # first and last

    video = torch.stack([torch.full((16, 2, 2, 3), float(i)) for i in range(2)])
    known = torch.stack([torch.full((1, 2, 2, 3), float(i)) for i in range(2)])
    wan = wan_concat({"concat_latent_image": video, "concat_mask": known}, None, WAN21, (4, 16, 2, 2, 3), 20, "cpu")
    assert wan[:, 0, 0, 0, 0].tolist() == [1, 1, 0, 0]  # 1 - mask
    assert torch.allclose(WAN21.process_out(wan[:, 4:])[:, 0, 0, 0, 0], torch.tensor([0.0, 0.0, 1.0, 1.0]), atol=1e-5)
