"""Parity of the video-model nodes with ComfyUI's behaviour (the audit of nodes/ltxv.py,
video_models.py, cosmos.py, mochi.py, lumina2.py, pixart.py): LTXVPreprocess on odd sizes,
TrimVideoLatent's noise mask, LTXVCropGuides' count of appended guides, the token count of
ModelSamplingLTXV / LTXVScheduler.

Oracles: PyAV encoding the even part of a frame directly, hand-built latents and masks, the
closed forms of the shift and the schedule."""

import functools
import io
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from tests.test_nodes_image_mask import call


@functools.lru_cache(maxsize=1)
def registry():
    from graphflow.registry import Registry

    return Registry().load_builtin()


# -- LTXVPreprocess -------------------------------------------------------------------------------

def _av_frame(pixels: np.ndarray, crf: int) -> np.ndarray:
    """One uint8 [H, W, 3] frame converted to yuv420p, encoded alone by libx264 (veryfast, `crf`)
    and decoded back to RGB, with PyAV alone."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(1), options={"crf": str(crf), "preset": "veryfast"})
        stream.height, stream.width = pixels.shape[:2]
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with av.open(io.BytesIO(buffer.getvalue())) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def test_preprocess_odd_size_loses_the_last_row_and_column():
    """ComfyUI encodes the even part of an odd-sized picture and returns that (one row / column
    fewer), each frame alone, 255 x value truncated to 8 bits."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 33), torch.linspace(0, 1, 47), indexing="ij")
    image = torch.stack([x, y, 0.5 + 0.4 * torch.sin(10 * x) * torch.cos(7 * y)], dim=-1)[None]
    image = torch.cat([image, image.flip(1)])
    out = call(registry(), "LTXVPreprocess", image=image, img_compression=30)
    assert out.shape == (2, 32, 46, 3) and out.dtype == image.dtype
    for got, frame in zip(out, image):
        want = _av_frame((frame[:32, :46] * 255).byte().numpy(), 30)
        assert torch.equal(got, torch.from_numpy(want).float() / 255)
    # crf 0: untouched, odd size and all
    assert torch.equal(call(registry(), "LTXVPreprocess", image=image, img_compression=0), image)


def test_preprocess_refuses_a_picture_without_an_even_part():
    from graphflow.context import NodeInputError

    with pytest.raises(NodeInputError, match="at least 2x2") as e:
        call(registry(), "LTXVPreprocess", image=torch.rand(1, 1, 9, 3), img_compression=30)
    assert e.value.input == "image"


# -- TrimVideoLatent ------------------------------------------------------------------------------

def test_trim_keeps_the_noise_mask_for_the_sampler_to_stretch():
    """ComfyUI trims the samples only: a per-frame noise mask [1, 1, 5, 1, 1] stays 5 frames long
    and the sampler resizes it trilinearly over the 3 frames left: it reads the mask at frames
    (i + 1/2) * 5/3 - 1/2 = 1/3, 2 and 11/3."""
    from graphflow.sampling.pipeline import prepare_noise_mask

    mask = torch.tensor([0.0, 0.3, 0.6, 0.9, 1.0]).reshape(1, 1, 5, 1, 1)
    out = call(registry(), "TrimVideoLatent", samples={"samples": torch.randn(1, 128, 5, 2, 3), "noise_mask": mask},
               trim_amount=2)
    assert out["samples"].shape == (1, 128, 3, 2, 3) and torch.equal(out["noise_mask"], mask)
    seen = prepare_noise_mask(out["noise_mask"], out["samples"].shape, "cpu")
    want = torch.tensor([0.0 + 0.3 / 3, 0.6, 0.9 + 0.1 * 2 / 3])  # linear between the mask's frames
    assert seen.shape == (1, 128, 3, 2, 3)
    torch.testing.assert_close(seen[0, 0, :, 0, 0], want)


# -- LTXVCropGuides -------------------------------------------------------------------------------

def _guided(frames: int, guide_frames: list[int], h: int = 2, w: int = 3):
    """Conditioning and latent as after LTXVAddGuide with one-frame guides at these pixel frames:
    the video's `frames` latent frames, one appended frame per guide, the guides' positions."""
    from graphflow.models.ltxv import pixel_positions

    positions = []
    for frame in guide_frames:
        one = pixel_positions(1, h, w, causal=True, device="cpu")
        one[:, 0] += frame
        positions.append(one)
    options = {"keyframe_idxs": torch.cat(positions), "frame_rate": 25.0}
    samples = torch.randn(1, 128, frames + len(guide_frames), h, w)
    mask = torch.rand(1, 1, frames + len(guide_frames), 1, 1)
    return [(torch.randn(1, 4, 8), options)], [(torch.randn(1, 4, 8), dict(options))], samples, mask


@pytest.mark.parametrize("guide_frames, cut", [([0, 16], 2), ([8, 8], 1), ([0, 0, 24], 2)])
def test_crop_guides_counts_the_distinct_guided_frames(guide_frames, cut):
    """ComfyUI counts appended guides by the distinct frames in their positions: two guides at
    the same frame remove one latent frame, not two."""
    positive, negative, samples, mask = _guided(4, guide_frames)
    pos, neg, latent = call(registry(), "LTXVCropGuides", positive=positive, negative=negative,
                            latent={"samples": samples, "noise_mask": mask})
    assert torch.equal(latent["samples"], samples[:, :, :samples.shape[2] - cut])
    assert torch.equal(latent["noise_mask"], mask[:, :, :samples.shape[2] - cut])
    for side in (pos, neg):
        assert "keyframe_idxs" not in side[0][1] and side[0][1]["frame_rate"] == 25.0


# -- ModelSamplingLTXV / LTXVScheduler --------------------------------------------------------------

def test_ltxv_shift_counts_an_image_latents_tokens():
    """ComfyUI counts the tokens as the product of the sizes after batch and channels, for any
    latent: an image latent [1, 16, 32, 48] is 1536 tokens, mu = 0.95 + 512 x 1.1 / 3072."""
    from graphflow.models.diffusion_model import DiffusionModel
    from graphflow.models.ltxv import LTXV
    from graphflow.sampling.flow_sampling import model_sampling_for
    from graphflow.testing import ltxv_configs

    latent = {"samples": torch.zeros(1, 16, 32, 48)}
    mu = 0.95 + (1536 - 1024) * (2.05 - 0.95) / 3072
    with torch.device("meta"):
        model = DiffusionModel(LTXV(ltxv_configs()[0]), "ltxv", "flow")
    patched = call(registry(), "ModelSamplingLTXV", model=model, max_shift=2.05, base_shift=0.95, latent=latent)
    assert model_sampling_for(patched).shift == pytest.approx(mu)
    sigmas = call(registry(), "LTXVScheduler", steps=4, max_shift=2.05, base_shift=0.95, stretch=False,
                  terminal=0.1, latent=latent)
    t = torch.tensor([1.0, 0.75, 0.5, 0.25], dtype=torch.float64)
    want = torch.cat([math.exp(mu) / (math.exp(mu) + 1 / t - 1), torch.zeros(1, dtype=torch.float64)])
    torch.testing.assert_close(sigmas.double(), want, atol=1e-6, rtol=0)


# -- LTXVImgToVideo -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ltxv_vae(tmp_path_factory):
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.testing import write_ltxv_checkpoint

    path = write_ltxv_checkpoint(tmp_path_factory.mktemp("ltxv") / "ltxv.safetensors", dtype=torch.float32, seed=3)
    return load_checkpoint(path, device="cpu", dtype=torch.float32).vae


def test_img_to_video_crops_the_centre_and_masks_the_first_frame(ltxv_vae):
    """ComfyUI: the picture cropped around its centre to width:height, scaled bilinearly, encoded
    as the first latent frame of every batch entry; the noise mask [B, 1, frames, 1, 1] is
    1 - strength there and 1 elsewhere."""
    from graphflow.context import NodeInputError

    image = torch.rand(1, 40, 60, 3, generator=torch.Generator().manual_seed(2))
    pos, neg = [(torch.zeros(1, 3, 8), {})], [(torch.ones(1, 3, 8), {})]
    p, n, latent = call(registry(), "LTXVImgToVideo", positive=pos, negative=neg, vae=ltxv_vae, image=image,
                        width=96, height=128, length=17, batch_size=2, strength=0.75)
    assert p is pos and n is neg
    # 60x40 to the aspect 96:128 = 3:4: 30 columns kept, 15 off each side
    cropped = image[:, :, 15:45].movedim(-1, 1)
    fitted = torch.nn.functional.interpolate(cropped, size=(128, 96), mode="bilinear").movedim(1, -1)
    first = ltxv_vae.encode(fitted)
    assert latent["samples"].shape == (2, 128, 3, 4, 3)
    torch.testing.assert_close(latent["samples"][:, :, :1], first.expand(2, -1, -1, -1, -1))
    assert not latent["samples"][:, :, 1:].any()
    assert latent["noise_mask"].shape == (2, 1, 3, 1, 1) and latent["noise_mask"].dtype == torch.float32
    assert latent["noise_mask"][0, 0, :, 0, 0].tolist() == [0.25, 1.0, 1.0]
    with pytest.raises(NodeInputError, match="more than the video's 2") as e:  # ComfyUI fails too
        call(registry(), "LTXVImgToVideo", positive=pos, negative=neg, vae=ltxv_vae,
             image=torch.rand(17, 64, 64, 3), width=64, height=64, length=9, batch_size=1, strength=1.0)
    assert e.value.input == "image"
