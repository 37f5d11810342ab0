"""Parity of the mask / compositing nodes with ComfyUI's (v0.3.64) arithmetic: edge cases the
node tests don't reach (feather sizes, far edges, video latents, ...). Expected values are hand
computed or closed forms."""

import torch

from test_nodes_image_mask import call


def test_pad_for_outpaint_feather_counts_far_edges_from_one_past_them(builtin_registry):
    # 10 x 12 images padded on all sides, feathering 3 (2 * 3 < 10 and < 12: it fades).
    image = torch.rand(2, 10, 12, 3)
    padded, mask = call(builtin_registry, "PadImageForOutpaint", image=image, left=8, top=8, right=8,
                        bottom=8, feathering=3)
    assert padded.shape == (2, 26, 28, 3) and mask.shape == (1, 26, 28)  # one mask for the batch
    inner = mask[0, 8:18, 8:20]
    row = inner[5]  # middle row: only left/right distances matter; left counts 0.., right 12 - j
    expected = [1, 4 / 9, 1 / 9] + [0] * 7 + [1 / 9, 4 / 9]  # j = 11 is 1 from the far edge
    assert torch.allclose(row, torch.tensor(expected), atol=1e-7)
    # The bottom row is 1 from the far edge: (2/3)^2, not 1; the top row is 0 from its edge: 1.
    assert torch.allclose(inner[-1, 5], torch.tensor((2 / 3) ** 2)) and inner[0, 5] == 1


def test_pad_for_outpaint_no_fade_when_feathering_is_half_the_image_or_more(builtin_registry):
    image = torch.rand(1, 10, 30, 3)
    _, mask = call(builtin_registry, "PadImageForOutpaint", image=image, left=8, feathering=5)
    assert (mask[0, :, 8:] == 0).all() and (mask[0, :, :8] == 1).all()
    _, mask = call(builtin_registry, "PadImageForOutpaint", image=image, left=8, feathering=4)
    assert mask[0, 0, 8] == 1 and mask[0, 0, 11] == (1 / 4) ** 2


def test_feather_wider_than_the_mask_is_cut_to_its_size(builtin_registry):
    # ComfyUI clamps left to the width (4) before dividing: 1/4, 2/4, 3/4, 4/4 (not i/10).
    out = call(builtin_registry, "FeatherMask", mask=torch.ones(2, 3, 4), left=10, top=0, right=0, bottom=0)
    assert torch.allclose(out[:, 1], torch.tensor([0.25, 0.5, 0.75, 1.0]).expand(2, 4))
    out = call(builtin_registry, "FeatherMask", mask=torch.ones(1, 3, 4), left=0, top=0, right=0, bottom=7)
    assert torch.allclose(out[0, :, 0], torch.tensor([1.0, 2 / 3, 1 / 3]))


def test_latent_composite_masked_takes_video_latents(builtin_registry):
    # ComfyUI's composite works on [B, C, T, h, w]: mask i covers all frames of batch item i.
    dest = torch.zeros(2, 3, 4, 6, 6)
    src = torch.arange(2 * 3 * 4 * 2 * 2, dtype=torch.float32).reshape(2, 3, 4, 2, 2) + 1
    mask = torch.stack([torch.ones(16, 16), torch.zeros(16, 16)])
    mask[0, :, 8:] = 0  # item 0: the left half of the source; item 1: nothing
    out = call(builtin_registry, "LatentCompositeMasked", destination={"samples": dest},
               source={"samples": src}, x=16, y=40, resize_source=False, mask=mask)["samples"]
    assert out.shape == dest.shape
    # y = 40 -> row 5: only the first source row lands; x = 16 -> column 2; item 0, left column only.
    expected = dest.clone()
    expected[0, :, :, 5, 2] = src[0, :, :, 0, 0]
    assert torch.equal(out, expected)
    # No mask, a one-frame source: pasted into every frame.
    one = src[:, :, :1]
    out = call(builtin_registry, "LatentCompositeMasked", destination={"samples": dest},
               source={"samples": one}, x=0, y=0, resize_source=False)["samples"]
    assert torch.equal(out[:, :, :, :2, :2], one.expand(-1, -1, 4, -1, -1)) and out[:, :, :, 2:].eq(0).all()


def test_grow_mask_shrinks_grey_values_exactly(builtin_registry):
    import torch.nn.functional as F
    torch.manual_seed(0)
    mask = torch.rand(2, 7, 9) ** 3  # small values with low bits that 1 - (1 - v) would round off
    # Grey erosion with the full 3x3 square: the minimum over the in-bounds neighbours.
    windows = F.unfold(F.pad(mask[:, None], (1, 1, 1, 1), value=2.0), 3).reshape(2, 9, 7, 9)
    expected = windows.amin(1)
    out = call(builtin_registry, "GrowMask", mask=mask, expand=-1, tapered_corners=False)
    assert torch.equal(out, expected)
    # Tapered: the cross (centre and the 4 side neighbours; window positions 1, 3, 4, 5, 7).
    out = call(builtin_registry, "GrowMask", mask=mask, expand=-1, tapered_corners=True)
    assert torch.equal(out, windows[:, [1, 3, 4, 5, 7]].amin(1))


def test_vae_encode_for_inpaint_grows_the_noise_mask_over_a_box_and_greys_the_ungrown_area(builtin_registry):
    class Identity:  # a "VAE" that returns the pixels it is given
        downscale = 8

        def encode(self, pixels):
            return pixels

    pixels = torch.rand(1, 16, 16, 3)
    mask = torch.zeros(1, 16, 16)
    mask[0, 8, 8] = 0.6  # rounds to 1
    mask[0, 2, 2] = 0.4  # rounds to 0
    out = call(builtin_registry, "VAEEncodeForInpaint", pixels=pixels, vae=Identity(), mask=mask, grow_mask_by=6)
    noise = out["noise_mask"]
    # A 6 x 6 box with padding 3: row/column 8 reaches 6..11 (2 before, 3 after); 0/1 values.
    expected = torch.zeros(1, 1, 16, 16)
    expected[0, 0, 6:12, 6:12] = 1
    assert torch.equal(noise, expected)
    # Only the pixel under the rounded mask itself is greyed, not the grown area.
    greyed = torch.zeros(16, 16, dtype=torch.bool)
    greyed[8, 8] = True
    assert (out["samples"][0][greyed] == 0.5).all() and torch.equal(out["samples"][0][~greyed], pixels[0][~greyed])
    # No growth: the mask only rounded.
    out = call(builtin_registry, "VAEEncodeForInpaint", pixels=pixels, vae=Identity(), mask=mask, grow_mask_by=0)
    assert torch.equal(out["noise_mask"], (mask.round())[:, None])
