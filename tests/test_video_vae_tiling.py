"""Video VAEs decode and encode in 3-D tiles as ComfyUI's VAEDecodeTiled / VAEEncodeTiled do.

The facts (ComfyUI's nodes.py, comfy/sd.py VAE.decode_tiled / encode_tiled and comfy/utils.py
tiled_scale_multidim): decode tiles are max(2, temporal_size // t) latent frames overlapping by
max(1, min(tile // 2, temporal_overlap // t)) (temporal_overlap halved first when more than half
of temporal_size; overlap cut to tile_size // 4), tile_size // s latent rows and columns overlapping
by overlap // s; encode tiles are t(L - 1) + 1 pixel frames for L = max(2, ceil(temporal_size / t)),
pixel tiles of tile_size; tiles start every tile - overlap below length - overlap, one tile when
the dimension fits; each tile's output is feathered linearly, (i + 1) / width, at both ends.
Tiny random LTX-Video and Mochi VAEs as graphflow.testing builds them.
"""

import json

import pytest
import torch

from graphflow.models.ltxv_vae import LTXVVAE, LTXVideoVAE
from graphflow.models.mochi_vae import MochiVAE, MochiVideoVAE
from graphflow.models.tiling import Axis, comfy_tile_starts, feather, tiled_map_nd, video_axes
from graphflow.testing import (ltxv_configs, mochi_vae_config, mochi_vae_encoder_config, mochi_vae_state,
                               random_state)
from tests.test_nodes_image_mask import call


def ltxv_vae(seed: int = 3) -> LTXVVAE:
    cfg = ltxv_configs()[1]  # 8 frames and 32 pixels per latent, 128 channels
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in LTXVideoVAE(cfg).state_dict().items()}
    module = LTXVideoVAE(cfg)
    module.load_state_dict(random_state(shapes, seed, torch.float32))
    return LTXVVAE(module)


def mochi_vae(seed: int = 2) -> MochiVAE:
    module = MochiVideoVAE(mochi_vae_config(), mochi_vae_encoder_config())  # 6 frames and 8 pixels per latent
    module.load_state_dict(mochi_vae_state(seed=seed))
    return MochiVAE(module)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# -- the tiles and weights, by hand ------------------------------------------------------------------

def test_tile_starts_by_hand():
    assert comfy_tile_starts(12, 8, 1) == [0, 7]  # range(0, 11, 7); the last tile [7, 12) cut short
    assert comfy_tile_starts(16, 8, 1) == [0, 7, 14]
    assert comfy_tile_starts(20, 8, 2) == [0, 6, 12]
    assert comfy_tile_starts(8, 8, 1) == [0]  # fits: one tile
    assert comfy_tile_starts(5, 16, 4) == [0]
    assert comfy_tile_starts(10, 4, 0) == [0, 4, 8]


def test_feather_by_hand():
    assert feather(5, 2).tolist() == [0.5, 1, 1, 1, 0.5]
    assert feather(6, 3).tolist() == pytest.approx([1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3])
    assert feather(3, 2).tolist() == [0.5, 1, 0.5]  # the two ends meet: multiplied
    assert feather(2, 2).tolist() == [1, 1]  # no longer than the feather: flat
    assert feather(4, 1).tolist() == [1, 1, 1, 1]  # a width of 1 weighs 1 / 1
    assert feather(4, 0).tolist() == [1, 1, 1, 1]


def test_video_axes_by_hand():
    """LTX-Video's decode axes for 12 latent frames of 20 x 20 at ComfyUI's defaults (latent tiles
    8 frames / 1 overlap, 16 rows / 2 overlap)."""
    t, s = 8, 32
    time, rows, _ = video_axes((12, 20, 20), (8, 16, 16), (1, 2, 2),
                               (lambda n: n * t - 7, lambda n: n * s, lambda n: n * s),
                               (lambda p: p * t, lambda p: p * s, lambda p: p * s))
    assert time.spans == [(0, 8), (7, 5)] and time.out_len == 89 and time.out_pos(7) == 56
    assert time.weights(7, 5, 33).tolist() == [1] * 33  # the feather is 8 * 1 - 7 = 1 frame wide: flat
    assert rows.spans == [(0, 16), (14, 6)] and rows.out_len == 640 and rows.out_pos(14) == 448
    w = rows.weights(0, 16, 512)
    assert w[0] == 1 / 64 and w[31] == 0.5 and w[63] == 1 and w[-1] == 1 / 64 and w[100] == 1
    # the encode direction: pixel frames -> latent frames, positions divided
    enc_t, enc_r = video_axes((97, 64), (57, 512), (1, 64), (lambda n: (n + 7) // 8, lambda n: n / s),
                              (lambda p: p / t, lambda p: p / s))
    assert enc_t.spans == [(0, 57), (56, 41)] and enc_t.out_len == 13 and enc_t.out_pos(56) == 7
    assert enc_r.spans == [(0, 64)] and enc_r.out_len == 2


def causal_expand(z: torch.Tensor, t: int = 8, s: int = 4) -> torch.Tensor:
    """A pointwise stand-in for a causal video decoder: the first latent frame one frame, every
    later one t frames; each latent pixel s x s pixels."""
    x = torch.cat([z[:, :, :1], z[:, :, 1:].repeat_interleave(t, 2)], dim=2)
    return x.repeat_interleave(s, 3).repeat_interleave(s, 4)


def causal_pick(x: torch.Tensor, t: int = 8, s: int = 4) -> torch.Tensor:
    """Its encoder: every t-th frame from the first, each s x s block averaged."""
    picked = x[:, :, ::t]
    return torch.nn.functional.avg_pool3d(picked, (1, s, s))


@pytest.mark.parametrize("tiles, overlaps", [((3, 4, 5), (1, 1, 2)), ((2, 3, 3), (1, 0, 1)), ((4, 20, 20), (2, 2, 2))])
def test_pointwise_map_is_reproduced_exactly_and_every_frame_covered(tiles, overlaps):
    """Tile geometry, output positions and weights are right: a map without context comes out as
    untiled, in both directions (a hole in the cover would be 0 / 0 = NaN)."""
    t, s = 8, 4
    z = randn(2, 3, 7, 9, 11)
    axes = video_axes(z.shape[2:], tiles, overlaps, (lambda n: n * t - 7, lambda n: n * s, lambda n: n * s),
                      (lambda p: p * t, lambda p: p * s, lambda p: p * s))
    out = tiled_map_nd(causal_expand, z, axes, out_channels=3)
    assert out.shape == (2, 3, 49, 36, 44) and bool(out.isfinite().all())
    assert (out - causal_expand(z)).abs().max() < 1e-6
    x = randn(1, 3, 49, 36, 44, seed=1)
    pixel_tiles = (t * tiles[0] - 7, s * tiles[1], s * tiles[2])
    pixel_laps = (t * overlaps[0] - 7 if overlaps[0] else 0, s * overlaps[1], s * overlaps[2])
    axes = video_axes(x.shape[2:], pixel_tiles, pixel_laps, (lambda n: (n + 7) // 8, lambda n: n / s, lambda n: n / s),
                      (lambda p: p / t, lambda p: p / s, lambda p: p / s))
    enc = tiled_map_nd(causal_pick, x, axes, out_channels=3)
    assert enc.shape == (1, 3, 7, 9, 11) and (enc - causal_pick(x)).abs().max() < 1e-6


# -- ComfyUI's node rules through the sockets -----------------------------------------------------------

def recorded_decode_tiles(vae, latent_shape, *args):
    """(first latent frame, frames, rows, columns) of each tile decode_tiled(*args) runs, the
    decoder stood in for by causal_expand (latent frame f carries the value f)."""
    t, s, seen = vae.temporal_compression, vae.downscale, []
    z = torch.zeros(latent_shape)
    z[:, 0] = torch.arange(latent_shape[2], dtype=torch.float32)[:, None, None]

    def fake(tile):
        seen.append((int(tile[0, 0, 0, 0, 0]), *tile.shape[2:]))
        return causal_expand(tile[:, :3], t, s)

    vae._decode = fake
    out = vae.decode_tiled(z, *args)
    assert bool(out.isfinite().all()) and out.shape[0] == latent_shape[0] * vae.pixel_frames(latent_shape[2])
    return seen


def test_decode_tiles_follow_comfyui_rules():
    ltxv = ltxv_vae()
    shape = (1, 128, 12, 20, 1)  # one latent column keeps the 640-row frames small
    # defaults 512 / 64 px, 64 / 8 frames: latent tiles 8 frames overlapping 1, 16 rows overlapping 2
    assert recorded_decode_tiles(ltxv, shape, 512, 64, 64, 8) == [
        (f, n, h, 1) for f, n in ((0, 8), (7, 5)) for h in (16, 6)]
    # temporal_overlap 16 > 24 / 2 is halved to 8: tiles of 3 frames, overlap max(1, min(1, 8 // 8))
    assert [(f, n) for f, n, *_ in recorded_decode_tiles(ltxv, shape, 512, 64, 24, 16)][::2] == [
        (0, 3), (2, 3), (4, 3), (6, 3), (8, 3), (10, 2)]
    # overlap 128 > 256 / 4 is cut to 64: 8-latent tiles overlapping 2; frames 4 overlapping 2
    tiles = recorded_decode_tiles(ltxv, shape, 256, 128, 32, 16)
    assert sorted({(f, n) for f, n, *_ in tiles}) == [(0, 4), (2, 4), (4, 4), (6, 4), (8, 4)]
    assert [h for _, _, h, _ in tiles[:3]] == [8, 8, 8] and len(tiles) == 5 * 3
    # temporal_size at least the video's frames: no tiling in time
    assert {(f, n) for f, n, *_ in recorded_decode_tiles(ltxv, shape, 512, 64, 128, 8)} == {(0, 12)}
    # everything fits one tile: the decoder runs once on the whole latent
    assert recorded_decode_tiles(ltxv, (1, 128, 5, 4, 4), 512, 64, 64, 8) == [(0, 5, 4, 4)]
    # Mochi: 6 frames and 8 pixels per latent: tiles of 64 // 6 = 10 frames overlapping 1, 64 rows
    mochi = mochi_vae()
    assert recorded_decode_tiles(mochi, (1, 12, 12, 20, 20), 512, 64, 64, 8) == [(0, 10, 20, 20), (9, 3, 20, 20)]


def recorded_encode_tiles(vae, frames, *args):
    """(first pixel frame, frames, rows, columns) of each tile encode_tiled(*args) runs (frame n
    carries the value n)."""
    t, s, seen = vae.temporal_compression, vae.downscale, []
    image = torch.zeros(frames, 64, 64, 3)
    image[..., 0] = torch.arange(frames, dtype=torch.float32)[:, None, None] / 1000

    def fake(tile):
        seen.append((round((float(tile[0, 0, 0, 0, 0]) + 1) * 500), *tile.shape[2:]))
        return causal_pick(tile, t, s).repeat(1, vae.latent_channels // 3 + 1, 1, 1, 1)[:, :vae.latent_channels]

    vae._encode = fake
    latent = vae.encode_tiled(image, *args)
    assert bool(latent.isfinite().all())
    return seen, latent


def test_encode_tiles_follow_comfyui_rules():
    ltxv = ltxv_vae()
    # 100 frames: cut to 97 (13 latent frames); tiles of 8 latent frames = 57 pixel frames
    # overlapping by the pixel frames of max(1, min(4, ceil(8 / 8))) = 1 latent frame: 1
    seen, latent = recorded_encode_tiles(ltxv, 100, 512, 64, 64, 8)
    assert seen == [(0, 57, 64, 64), (56, 41, 64, 64)] and latent.shape == (1, 128, 13, 2, 2)
    # temporal 32 / 16: 4 latent frames (25 pixel frames) overlapping 2 (9 pixel frames)
    seen, _ = recorded_encode_tiles(ltxv, 100, 512, 64, 32, 16)
    assert [(f, n) for f, n, *_ in seen] == [(0, 25), (16, 25), (32, 25), (48, 25), (64, 25), (80, 17)]
    # pixel tiles of 32 across 64 x 64 pixels: 4 tiles, each with all 17 frames (64 frames fit one)
    seen, _ = recorded_encode_tiles(ltxv, 17, 32, 0, 64, 8)
    assert seen == [(0, 17, 32, 32), (0, 17, 32, 32), (0, 17, 32, 32), (0, 17, 32, 32)]
    mochi = mochi_vae()
    seen, latent = recorded_encode_tiles(mochi, 40, 512, 64, 64, 8)  # cut to 37 frames: 7 latent frames
    assert seen == [(0, 37, 64, 64)] and latent.shape == (1, 12, 7, 8, 8)
    seen, _ = recorded_encode_tiles(mochi, 40, 512, 64, 18, 8)  # 3 latent frames = 13 pixel frames, overlap 1
    assert [(f, n) for f, n, *_ in seen] == [(0, 13), (12, 13), (24, 13)]


# -- real (tiny random) VAEs -------------------------------------------------------------------------------

def test_one_tile_covering_the_video_is_the_plain_decode_and_encode():
    for vae, latent, frames in ((ltxv_vae(), randn(2, 128, 3, 2, 3), 17), (mochi_vae(), randn(1, 12, 3, 3, 2), 13)):
        assert torch.equal(vae.decode_tiled(latent), vae.decode(latent))
        image = torch.rand(frames, latent.shape[3] * vae.downscale, latent.shape[4] * vae.downscale, 3,
                           generator=torch.Generator().manual_seed(1))
        assert torch.equal(vae.encode_tiled(image), vae.encode(image))


# How far a change reaches in the tiny LTX-Video VAE (measured by changing one latent frame or
# column of a plain decode / one pixel frame or column of a plain encode): its decoder's 3x3x3
# convolutions chain to 7 latent frames and columns either way; its encoder's causal ones 9 latent
# frames forward, 4 columns either way. A tile's output further than that from its edges sees all
# the context the plain decode sees and is equal to float rounding; nearer, it misses context (a
# causal or edge-padded convolution sees copies of the tile's edge instead of the next frames), and
# on random weights that differs by up to a whole pixel range.
DECODE_REACH, ENCODE_REACH_T, ENCODE_REACH_S = 7, 9, 4
EXACT = 1e-5


def test_ltxv_tiled_decode_is_exact_away_from_the_seams():
    vae = ltxv_vae()
    # in time: 40 latent frames, tiles of 192 // 8 = 24 overlapping 1: [0, 24) and [23, 40), the seam at frame 184
    z = randn(1, 128, 40, 1, 1, seed=2)
    plain, tiled = vae.decode(z), vae.decode_tiled(z, 512, 64, 192, 8)
    assert tiled.shape == plain.shape == (313, 32, 32, 3) and bool(tiled.isfinite().all())
    differs = ((tiled - plain).abs().amax(dim=(1, 2, 3)) > EXACT).nonzero().flatten()
    seam_first, seam_last = 8 * (23 - DECODE_REACH) - 7, 8 * (24 + DECODE_REACH)
    assert len(differs) and seam_first <= int(differs.min()) and int(differs.max()) <= seam_last
    assert float((tiled - plain).abs().mean()) < 0.05
    # across: 40 latent columns, tiles of 768 // 32 = 24 overlapping 64 // 32 = 2: [0, 24) and [22, 40)
    z = randn(1, 128, 1, 1, 40, seed=3)
    plain, tiled = vae.decode(z), vae.decode_tiled(z, 768, 64, 64, 8)
    differs = ((tiled - plain).abs().amax(dim=(0, 1, 3)) > EXACT).nonzero().flatten()
    assert len(differs) and 32 * (22 - DECODE_REACH) <= int(differs.min())
    assert int(differs.max()) < 32 * (24 + DECODE_REACH)
    assert float((tiled - plain).abs().mean()) < 0.05


def test_ltxv_tiled_encode_is_exact_away_from_the_seams():
    vae = ltxv_vae()
    gen = torch.Generator().manual_seed(4)
    # 313 frames (40 latent frames), tiles of ceil(185 / 8) = 24 latent frames: pixel frames [0, 185), [184, 313)
    image = torch.rand(313, 32, 32, 3, generator=gen)
    plain, tiled = vae.encode(image), vae.encode_tiled(image, 512, 64, 185, 8)
    spread = float((plain - plain.mean()).abs().mean())
    differs = ((tiled - plain).abs().amax(dim=(0, 1, 3, 4)) > EXACT * 10).nonzero().flatten().tolist()
    # causal: the first tile's latent frames are exact but the shared one (23), which is blended
    # with the second tile's lone-frame encoding; the second's become exact past the reach
    assert differs and differs[0] == 23 and differs[-1] <= 23 + ENCODE_REACH_T
    assert float((tiled - plain).abs().mean()) < 0.25 * spread
    # across: 1280 columns (40 latent), pixel tiles of 768 overlapping 64: [0, 768), [704, 1280)
    image = torch.rand(1, 32, 1280, 3, generator=gen)
    plain, tiled = vae.encode(image), vae.encode_tiled(image, 768, 64, 64, 8)
    differs = ((tiled - plain).abs().amax(dim=(0, 1, 2, 3)) > EXACT * 10).nonzero().flatten().tolist()
    assert differs and 22 - ENCODE_REACH_S <= differs[0] and differs[-1] < 24 + ENCODE_REACH_S


def test_mochi_tiled_decode_and_encode_are_close():
    """Mochi's GroupNorm normalises each frame over all its pixels and its encoder attends over
    all the frames of a tile, so a tile's every pixel sees the tile's statistics: tiles across are
    nowhere exact, only close on average (mean difference below half the spread, as for image
    VAEs in tests/test_vae.py; these random weights saturate many pixels). In time the decoder is
    causal: frames before the second tile starts are exact."""
    vae = mochi_vae()
    z = randn(1, 12, 5, 6, 6, seed=5)
    plain = vae.decode(z)
    spread = float((plain - plain.mean()).abs().mean())
    in_time = vae.decode_tiled(z, 64, 16, 24, 12)  # 4 latent frames overlapping 2: [0, 4), [2, 5); 6 x 6 fits 8
    assert (in_time[:12] - plain[:12]).abs().max() < EXACT  # the second tile starts at frame 6 * 2
    assert float((in_time[12:] - plain[12:]).abs().max()) > 1e-3
    tiled = vae.decode_tiled(z, 40, 16, 24, 12)  # and 5 latent pixels overlapping 40 // 4 // 8 = 1: [0, 5), [4, 6)
    assert tiled.shape == plain.shape == (25, 48, 48, 3) and bool(tiled.isfinite().all())
    assert float((in_time - plain).abs().mean()) < float((tiled - plain).abs().mean()) < 0.5 * spread
    image = torch.rand(25, 48, 48, 3, generator=torch.Generator().manual_seed(6))
    plain = vae.encode(image)
    spread = float((plain - plain.mean()).abs().mean())
    across = vae.encode_tiled(image, 32, 8, 64, 8)  # pixel tiles of 32 overlapping 8, all 25 frames at once
    in_time = vae.encode_tiled(image, 512, 64, 24, 12)  # 4 latent frames (19 pixel frames) overlapping 2 (7)
    assert across.shape == in_time.shape == plain.shape == (1, 12, 5, 6, 6)
    assert float((across - plain).abs().mean()) < 0.5 * spread
    assert float((in_time - plain).abs().mean()) < 0.6 * spread


# -- running out of memory -----------------------------------------------------------------------------

def test_video_decode_and_encode_fall_back_to_tiles_when_memory_runs_out():
    """ComfyUI's fallback first (256-pixel tiles, every frame at once), then shorter and smaller tiles."""
    vae = ltxv_vae()
    seen = []

    def limited(tile):  # a device that cannot hold more than 4 latent frames of 8 x 8
        seen.append(tuple(tile.shape[2:]))
        if tile.shape[2] * tile.shape[3] * tile.shape[4] > 4 * 8 * 8:
            raise torch.OutOfMemoryError("out of memory (simulated)")
        return causal_expand(tile[:, :3], 8, 32)

    vae._decode = limited
    out = vae.decode(randn(1, 128, 12, 10, 10))
    assert out.shape == (89, 320, 320, 3)
    # whole; 256 px (8 latents) with all 12 frames; 256 px with 64 frames (8 latent): too big;
    # 128 px (4 latents) with 32 frames (4 latent frames) fits
    assert seen[:3] == [(12, 10, 10), (12, 8, 8), (8, 8, 8)] and seen[3] == (4, 4, 4) and all(
        f * h * w <= 4 * 8 * 8 for f, h, w in seen[3:])

    seen.clear()

    def limited_encode(tile):
        seen.append(tuple(tile.shape[2:]))
        if tile.shape[2] * tile.shape[3] * tile.shape[4] > 25 * 128 * 128:
            raise torch.OutOfMemoryError("out of memory (simulated)")
        return causal_pick(tile, 8, 32).repeat(1, 43, 1, 1, 1)[:, :128]

    vae._encode = limited_encode
    latent = vae.encode(torch.rand(97, 320, 320, 3))
    assert latent.shape == (1, 128, 13, 10, 10)
    assert seen[:3] == [(97, 320, 320), (97, 256, 256), (57, 256, 256)] and seen[3] == (25, 128, 128)


# -- the nodes and a ComfyUI graph ---------------------------------------------------------------------

def registry():
    from graphflow.registry import Registry

    return Registry().load_builtin()


def test_nodes_pass_the_temporal_inputs_to_video_vaes():
    reg, vae = registry(), ltxv_vae()
    z = randn(1, 128, 6, 2, 3, seed=7)
    images = call(reg, "VAEDecode", samples={"samples": z}, vae=vae, tiled=True, tile_size=64, overlap=32,
                  temporal_size=16, temporal_overlap=8)
    assert torch.equal(images, vae.decode_tiled(z, 64, 32, 16, 8))
    assert not torch.equal(images, vae.decode_tiled(z, 64, 32, 64, 8))  # the temporal inputs matter
    latent = call(reg, "VAEEncode", pixels=images, vae=vae, tiled=True, tile_size=64, overlap=0,
                  temporal_size=16, temporal_overlap=8)["samples"]
    assert torch.equal(latent, vae.encode_tiled(images, 64, 0, 16, 8))
    assert not torch.equal(latent, vae.encode_tiled(images, 64, 0, 64, 8))


def test_comfyui_api_graph_with_temporal_tiling_validates_and_runs(tmp_folders):
    from graphflow.executor import Executor
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.testing import write_ltxv_checkpoint
    from graphflow.validation import validate
    from graphflow.workflow import import_comfy, parse_workflow

    (tmp_folders.models / "checkpoints").mkdir()
    path = write_ltxv_checkpoint(tmp_folders.models / "checkpoints" / "ltxv.safetensors", dtype=torch.float32, seed=3)
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "ltxv.safetensors"}},
        "2": {"class_type": "EmptyLTXVLatentVideo", "inputs": {"width": 96, "height": 64, "length": 25,
                                                               "batch_size": 1}},
        "3": {"class_type": "VAEDecodeTiled", "inputs": {"samples": ["2", 0], "vae": ["1", 2], "tile_size": 64,
                                                         "overlap": 32, "temporal_size": 16, "temporal_overlap": 8}},
        "4": {"class_type": "VAEEncodeTiled", "inputs": {"pixels": ["3", 0], "vae": ["1", 2], "tile_size": 64,
                                                         "overlap": 0, "temporal_size": 16, "temporal_overlap": 8}},
        "5": {"class_type": "VAEDecodeTiled", "inputs": {"samples": ["4", 0], "vae": ["1", 2], "tile_size": 512,
                                                         "overlap": 64, "temporal_size": 64, "temporal_overlap": 8}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
    }
    reg = registry()
    imported = import_comfy(json.loads(json.dumps(graph)), reg)
    assert imported.nodes["3"].inputs["temporal_size"] == 16 and imported.nodes["4"].inputs["temporal_overlap"] == 8
    assert validate(imported, reg) == []
    result = Executor(reg).run(parse_workflow(json.loads(json.dumps(graph)), reg), outputs=["6", "3", "4"])
    assert result.ok, json.dumps(result.error, default=str)[:3000]
    frames, latent = result.values["3"][0], result.values["4"][0]["samples"]
    assert frames.shape == (25, 64, 96, 3) and latent.shape == (1, 128, 4, 2, 3)
    vae = load_checkpoint(path, device="cpu", dtype=torch.float32).vae
    assert torch.allclose(frames, vae.decode_tiled(torch.zeros(1, 128, 4, 2, 3), 64, 32, 16, 8), atol=1e-6)
    assert torch.allclose(latent, vae.encode_tiled(frames, 64, 0, 16, 8), atol=1e-5)
