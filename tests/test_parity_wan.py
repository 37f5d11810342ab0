"""ComfyUI parity of the Wan video nodes (nodes/wan.py) on edge cases: batches, empty inputs, masks of
other sizes, zero focal lengths. Oracles: the nodes run on one item at a time, torch ops, masks by hand."""

import json

import pytest
import torch

from tests.test_nodes_image_mask import call
from tests.test_wan import registry, wan_vae

COND = [(torch.zeros(1, 4, 8), {})]


def _track(x0, y0, x1, y1):
    return [{"x": x0, "y": y0}] + [{"x": x1, "y": y1}] * 120


def _track_video(start, tracks, batch_size):
    return call(registry(), "WanTrackToVideo", positive=COND, negative=COND, vae=wan_vae(), tracks=json.dumps(tracks),
                width=32, height=32, length=5, batch_size=batch_size, temperature=3.0, topk=2, start_image=start)


@pytest.mark.parametrize("images, sets, batch, picks", [
    (2, 1, 4, ((0, 0), (0, 0), (1, 0), (1, 0))),  # fewer start images than the batch: runs of each
    (3, 3, 2, ((0, 0), (1, 2))),  # start images cut to the batch, track sets thinned (first and last)
    (1, 2, 3, ((0, 0), (0, 1), (0, 1))),  # fewer track sets than the batch: floor((i + 0.5) * 2 / 3)
])
def test_track_to_video_spreads_start_images_and_track_sets_over_the_batch(images, sets, batch, picks):
    """ComfyUI's WanTrackToVideo takes start_image[:batch_size] and spreads it and the track sets over
    the batch (resize_to_batch_size): each batch item is the node's output for its own start image
    and track set alone."""
    start = torch.rand(images, 40, 40, 3, generator=torch.Generator().manual_seed(3))
    track_sets = [[_track(12 + 4 * k, 20, 28 - 4 * k, 4 + 6 * k)] for k in range(sets)]
    pos, neg, latent = _track_video(start, track_sets, batch)
    assert latent["samples"].shape == (batch, 16, 2, 4, 4)
    for b, (i, t) in enumerate(picks):
        alone = _track_video(start[i:i + 1], track_sets[t], 1)[0][0][1]
        for side in (pos, neg):
            options = side[0][1]
            assert torch.allclose(options["concat_latent_image"][b], alone["concat_latent_image"][0], atol=1e-5)
            assert torch.allclose(options["concat_mask"][b], alone["concat_mask"][0], atol=1e-6)
    # the picks are not all the same item: the test tells the spreads apart
    items = pos[0][1]["concat_latent_image"]
    assert len({round(float(items[b].sum()), 3) for b in range(batch)}) == len(set(picks))


def test_first_last_frame_empty_start_image_still_fixes_the_first_latent_frame():
    """ComfyUI's WanFirstLastFrameToVideo masks the start frames and the 3 after them whenever a start
    image is given, so an empty one (0 frames) still zeroes the first latent frame's first 3 mask
    channels; the pictures stay grey. An empty end image is refused (ComfyUI fails on it too)."""
    from graphflow.api import NodeInputError

    grey = call(registry(), "WanFirstLastFrameToVideo", positive=COND, negative=COND, vae=wan_vae(), width=32,
                height=32, length=9, batch_size=1)[0][0][1]
    empty = call(registry(), "WanFirstLastFrameToVideo", positive=COND, negative=COND, vae=wan_vae(), width=32,
                 height=32, length=9, batch_size=1, start_image=torch.zeros(0, 40, 40, 3))[0][0][1]
    want = torch.ones(1, 4, 3, 4, 4)
    want[:, :3, 0] = 0.0  # pixel frames 0..2 of the 12 (3 latent frames x 4)
    assert torch.equal(empty["concat_mask"], want)
    assert torch.equal(grey["concat_mask"], torch.ones(1, 4, 3, 4, 4))
    assert torch.equal(empty["concat_latent_image"], grey["concat_latent_image"])
    with pytest.raises(NodeInputError, match="at least one end frame"):
        call(registry(), "WanFirstLastFrameToVideo", positive=COND, negative=COND, vae=wan_vae(), width=32,
             height=32, length=9, batch_size=1, end_image=torch.zeros(0, 40, 40, 3))


@pytest.mark.parametrize("name", ["fx", "fy"])
def test_camera_embedding_refuses_a_zero_focal_length(name):
    """ComfyUI's widgets allow fx, fy = 0, where its rays divide by zero (NaN embeddings, a NaN video):
    ours refuses them by name, as its docstring says; a small focal length still gives finite rays."""
    from graphflow.api import NodeInputError

    widgets = dict(camera_pose="Pan Left", width=32, height=16, length=5, speed=1.0, fx=0.5, fy=0.5, cx=0.5, cy=0.5)
    with pytest.raises(NodeInputError, match="focal length above 0") as error:
        call(registry(), "WanCameraEmbedding", **{**widgets, name: 0.0})
    assert error.value.input == name
    rays, *_ = call(registry(), "WanCameraEmbedding", **{**widgets, name: 1e-3})
    assert torch.isfinite(rays).all()


def test_vace_control_masks_of_another_size_are_cropped_stretched_and_padded_with_ones():
    """ComfyUI's WanVaceToVideo scales control_masks as pictures (bilinear, centre crop to the aspect:
    a 20 x 40 mask loses 10 columns each side) and pads missing frames with 1 (all to generate); the
    64 mask channels are each latent pixel's 8 x 8 block, frames picked nearest-exact."""
    import torch.nn.functional as F

    masks = torch.rand(2, 20, 40, generator=torch.Generator().manual_seed(5))
    out = call(registry(), "WanVaceToVideo", positive=COND, negative=COND, vae=wan_vae(), width=16, height=16,
               length=9, batch_size=1, strength=1.0, control_masks=masks)[0][0][1]
    [mask] = out["vace_mask"]
    scaled = F.interpolate(masks[:, None, :, 10:30], size=(16, 16), mode="bilinear")[:, 0]
    full = torch.cat([scaled, torch.ones(7, 16, 16)])  # 9 frames
    # latent frames 0, 1, 2 <- pixel frames floor((t + 0.5) * 9 / 3) = 1, 4, 7
    for t, frame in enumerate((1, 4, 7)):
        for i in range(8):
            for j in range(8):
                block = full[frame, i::8, j::8]  # pixel (8 y + i, 8 x + j) of each latent pixel (y, x)
                assert torch.allclose(mask[0, 8 * i + j, t], block, atol=1e-6), (t, i, j)
