"""shiimizu's ComfyUI-TiledDiffusion, its Tiled VAE (nodes/pack_nodes_tiled_vae.py,
graphflow/models/tiled_vae.py): the grid and fast mode's scaled picture against the pack's
formulas transcribed here (tiled_vae.py at 1169db008422); tiled encodes and decodes against the
untiled ones of the same random-weight VAE (exact where the padding covers the network's reach,
close at the pack's padding); the statistics against GroupNorm's own; the inputs, a UI-format save
and the refusals."""

import math

import pytest
import torch
import torch.nn.functional as F

from graphflow.context import NodeInputError
from graphflow.models.tiled_vae import (PAD_DECODER, PAD_ENCODER, decoder_steps, encoder_steps, estimate_stats,
                                        fast_sample, pooled, split_tiles, tiled_run)
from graphflow.models.vae import AutoencoderKL, PixelSpaceVAE, VAEConfig
from graphflow.testing import write_flow_vae, write_vae
from nodes.pack_nodes_tiled_vae import VAEDecodeTiled_TiledDiffusion, VAEEncodeTiled_TiledDiffusion
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry(builtin_registry):
    return builtin_registry


def small_vae(attention: bool = False) -> AutoencoderKL:
    """A random-weight KL autoencoder of downscale 2, small enough for CPU tests; its decoder
    reaches 12 latent pixels, its encoder 19 pixels."""
    torch.manual_seed(0)
    return AutoencoderKL(VAEConfig(ch=4, ch_mult=(1, 2), num_res_blocks=1, mid_attention=attention,
                                   norm_groups=2)).eval()


def smooth(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(*shape[:2], max(2, shape[2] // 6), max(2, shape[3] // 6), generator=g)
    return F.interpolate(coarse, size=shape[2:], mode="bilinear")


# -- the pack's formulas, transcribed -------------------------------------------------------------

def pack_best_tile_size(lowerbound, upperbound):
    divider = 32
    while divider >= 2:
        remainer = lowerbound % divider
        if remainer == 0:
            return lowerbound
        candidate = lowerbound - remainer + divider
        if candidate <= upperbound:
            return candidate
        divider //= 2
    return lowerbound


def pack_split_tiles(h, w, tile_size, pad, is_decoder):
    """VAEHook.split_tiles: input bboxes [x1, x2, y1, y2] and output bboxes (scaled by 8)."""
    ins, outs = [], []
    nh = max(math.ceil((h - 2 * pad) / tile_size), 1)
    nw = max(math.ceil((w - 2 * pad) / tile_size), 1)
    rh = pack_best_tile_size(math.ceil((h - 2 * pad) / nh), tile_size)
    rw = pack_best_tile_size(math.ceil((w - 2 * pad) / nw), tile_size)
    for i in range(nh):
        for j in range(nw):
            box = [pad + j * rw, min(pad + (j + 1) * rw, w), pad + i * rh, min(pad + (i + 1) * rh, h)]
            out = [box[0] if box[0] > pad else 0, box[1] if box[1] < w - pad else w,
                   box[2] if box[2] > pad else 0, box[3] if box[3] < h - pad else h]
            outs.append([x * 8 if is_decoder else x // 8 for x in out])
            ins.append([max(0, box[0] - pad), min(w, box[1] + pad), max(0, box[2] - pad), min(h, box[3] + pad)])
    return ins, outs


def pack_fast_sample(z, tile_size):
    small = F.interpolate(z, scale_factor=tile_size / max(z.shape[2], z.shape[3]), mode="nearest-exact")
    std_old, mean_old = torch.std_mean(z, dim=[0, 2, 3], keepdim=True)
    std_new, mean_new = torch.std_mean(small, dim=[0, 2, 3], keepdim=True)
    return torch.clamp_((small - mean_new) / std_new * std_old + mean_old, min=z.min(), max=z.max())


def test_the_grid_is_the_packs():
    for is_decoder, pad, tiles, sides in ((True, PAD_DECODER, (16, 48, 64, 190), (1, 9, 22, 23, 40, 64, 97, 300)),
                                          (False, PAD_ENCODER, (256, 512, 1008), (8, 64, 320, 520, 1024, 2000))):
        for tile in tiles:
            for h in sides:
                for w in sides:
                    want_in, want_out = pack_split_tiles(h, w, tile, pad, is_decoder)
                    got = split_tiles(h, w, tile, pad)
                    scale = (lambda v: v * 8) if is_decoder else (lambda v: v // 8)
                    assert [[l0, l1, t0, t1] for (t0, t1, l0, l1), _ in got] == want_in, (h, w, tile)
                    assert [[scale(d0), scale(d1), scale(c0), scale(c1)] for _, (c0, c1, d0, d1) in got] == \
                        want_out, (h, w, tile)
                    cover = torch.zeros(h, w, dtype=torch.int)
                    for _, (c0, c1, d0, d1) in got:
                        cover[c0:c1, d0:d1] += 1
                    assert (cover == 1).all()  # the cores tile the picture, each pixel once


def test_fast_modes_scaled_picture_is_the_packs():
    for shape, tile in (((2, 4, 37, 45), 16), ((1, 3, 64, 40), 96), ((1, 4, 30, 30), 7)):
        z = torch.randn(*shape)
        torch.testing.assert_close(fast_sample(z, tile), pack_fast_sample(z, tile), rtol=0, atol=0)


def test_pooled_statistics_are_the_unions():
    parts = [torch.randn(2, 3, n) * s + m for n, s, m in ((5, 1.0, 0.0), (17, 2.0, 3.0), (1, 1.0, -4.0))]
    var, mean = pooled([(p.shape[2], *torch.var_mean(p, dim=2, unbiased=False)) for p in parts])
    want_var, want_mean = torch.var_mean(torch.cat(parts, dim=2), dim=2, unbiased=False)
    torch.testing.assert_close(mean, want_mean)
    torch.testing.assert_close(var, want_var)


# -- tiled against untiled ------------------------------------------------------------------------

def decode(vae, z, tile, pad=PAD_DECODER, **options):
    return tiled_run(decoder_steps(vae), z, tile, pad, 2, 3, "cpu", torch.float32, **options)


def encode(vae, x, tile, pad=PAD_ENCODER, **options):
    return tiled_run(encoder_steps(vae), x, tile, pad, 1 / 2, 8, "cpu", torch.float32, **options)[:, :4]


@torch.no_grad()
def test_tiled_decode_with_gathered_statistics_is_the_untiled_decode():
    vae = small_vae()
    z = smooth(2, 4, 37, 45)  # 2 x 3 tiles of 8 latent pixels, the last ones cut short
    want = vae.decode(z)
    assert len(split_tiles(37, 45, 8, 14)) == 6
    # 14 latent pixels of padding cover the decoder's reach: the same numbers
    torch.testing.assert_close(decode(vae, z, 8, pad=14), want, rtol=0, atol=2e-5)
    # the pack's 11 fall a pixel short of it: close
    torch.testing.assert_close(decode(vae, z, 8), want, rtol=0, atol=1e-2 * want.abs().max().item())


@torch.no_grad()
def test_tiled_encode_with_gathered_statistics_is_the_untiled_encode():
    vae = small_vae()
    x = smooth(2, 3, 110, 142).clamp(-1, 1)  # 3 x 5 tiles of 16 pixels with the pack's 32 of padding
    assert len(split_tiles(110, 142, 16, PAD_ENCODER)) == 15
    torch.testing.assert_close(encode(vae, x, 16), vae.encode(x)[0], rtol=0, atol=2e-5)


@torch.no_grad()
def test_without_gathering_the_tiles_would_differ():
    """The check above can fail: each tile normalised by its own statistics is far off."""
    vae = small_vae()
    z = smooth(2, 4, 37, 45)
    want = vae.decode(z)
    steps = decoder_steps(vae)
    own = [s if s.kind != "norm" else type(s)("apply", s.fn) for s in steps]
    assert (decode(vae, z, 8, pad=14) - want).abs().max() < 1e-4
    assert (tiled_run(own, z, 8, 14, 2, 3, "cpu", torch.float32) - want).abs().max() > 1e-2


@torch.no_grad()
def test_attention_runs_per_tile_and_one_tile_is_the_untiled_decode():
    vae = small_vae(attention=True)
    z = smooth(1, 4, 20, 24)  # one tile
    torch.testing.assert_close(decode(vae, z, 64), vae.decode(z), rtol=0, atol=2e-5)
    x = smooth(1, 3, 40, 48).clamp(-1, 1)
    torch.testing.assert_close(encode(vae, x, 256), vae.encode(x)[0], rtol=0, atol=2e-5)


@torch.no_grad()
def test_the_decoder_sees_only_tiles():
    vae = small_vae()
    seen_in, seen_out = [], []
    hooks = [vae.decoder.conv_in.register_forward_pre_hook(lambda m, a: seen_in.append(max(a[0].shape[2:]))),
             vae.decoder.conv_out.register_forward_pre_hook(lambda m, a: seen_out.append(max(a[0].shape[2:])))]
    tiles = len(split_tiles(40, 52, 8, PAD_DECODER))
    try:
        for fast in (False, True):
            seen_in.clear(), seen_out.clear()
            decode(vae, smooth(1, 4, 40, 52), 8, fast=fast)
            assert tiles == 12 and len(seen_in) == tiles + fast  # each tile (and fast mode's scaled latent)
            assert len(seen_out) == tiles  # the scaled latent stops at the last GroupNorm
            assert max(seen_in) == 8 + 2 * PAD_DECODER and max(seen_out) == (8 + 2 * PAD_DECODER) * 2
    finally:
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def test_fast_statistics_are_groupnorms_on_the_scaled_picture():
    """Every GroupNorm's estimate is the statistics nn.GroupNorm meets running the whole network
    on fast mode's picture; color_fix estimates those before the first downsampling only."""
    vae = small_vae()
    x = smooth(2, 3, 36, 44)
    met = []
    norms = [m for m in vae.encoder.modules() if isinstance(m, torch.nn.GroupNorm)]
    hooks = [m.register_forward_pre_hook(lambda m, a: met.append(
        torch.var_mean(a[0].reshape(a[0].shape[0], m.num_groups, -1), dim=2, unbiased=False))) for m in norms]
    try:
        vae.encoder(x)
    finally:
        for hook in hooks:
            hook.remove()
    steps = encoder_steps(vae)
    fixed = estimate_stats(steps, x, color_fix=False)
    assert len(fixed) == len(met) == sum(s.kind == "norm" for s in steps)
    for (var, mean), (want_var, want_mean) in zip((fixed[i] for i in sorted(fixed)), met):
        torch.testing.assert_close(mean, want_mean, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(var, want_var, rtol=1e-5, atol=1e-5)
    first_down = next(i for i, s in enumerate(steps) if s.kind == "down")
    partial = estimate_stats(steps, x, color_fix=True)
    assert sorted(partial) == [i for i, s in enumerate(steps[:first_down]) if s.kind == "norm"]


@torch.no_grad()
def test_fast_mode_stays_near():
    """Fast mode's statistics come from a picture scaled to about two thirds, whose features'
    spread differs (borders weigh more in a smaller picture; a random-weight network's features
    are noise-like): its decode stays within a fifth of the picture's spread on average, where
    the exact one is within 1e-4; color_fix keeps the encode nearer than fast alone."""
    vae = small_vae()
    z = smooth(2, 4, 37, 45)
    want = vae.decode(z)
    got = decode(vae, z, 32, fast=True)
    assert (got - want).abs().mean() < 0.2 * want.std()
    x = smooth(2, 3, 110, 142).clamp(-1, 1)
    want = vae.encode(x)[0]
    fast, fixed = encode(vae, x, 96, fast=True), encode(vae, x, 96, fast=True, color_fix=True)
    assert (fixed - want).abs().mean() < (fast - want).abs().mean() < 0.2 * want.std()


def test_interrupts_reach_between_tiles():
    vae = small_vae()
    calls = []

    def on_tile(done, total):
        calls.append((done, total))
        if done == 3:
            raise KeyboardInterrupt

    with torch.no_grad(), pytest.raises(KeyboardInterrupt):
        decode(vae, smooth(1, 4, 40, 52), 8, on_tile=on_tile)
    stretches = 1 + sum(s.kind == "norm" for s in decoder_steps(vae))
    total = len(split_tiles(40, 52, 8, PAD_DECODER)) * stretches
    assert calls == [(1, total), (2, total), (3, total)]


# -- the nodes ------------------------------------------------------------------------------------

# VAEEncodeTiled_TiledDiffusion / VAEDecodeTiled_TiledDiffusion's INPUT_TYPES as read: (name,
# default, (min, max, step)); the tile sizes' defaults are the pack's without a GPU
PACK_INPUTS = {
    VAEEncodeTiled_TiledDiffusion: [("pixels", None, None), ("vae", None, None), ("tile_size", 512, (256, 4096, 16)),
                                     ("fast", True, None), ("color_fix", True, None)],
    VAEDecodeTiled_TiledDiffusion: [("samples", None, None), ("vae", None, None), ("tile_size", 512, (384, 4096, 16)),
                                     ("fast", True, None)],
}


def test_the_inputs_are_the_packs():
    for cls, inputs in PACK_INPUTS.items():
        assert list(cls.input_specs) == [name for name, _, _ in inputs]
        for name, default, bounds in inputs:
            spec = cls.input_specs[name]
            if default is not None:
                assert spec.widget.default == default, name
            if bounds:
                assert (spec.widget.min, spec.widget.max, spec.widget.step) == bounds, name
        assert cls.category == "_for_testing"
    assert list(VAEEncodeTiled_TiledDiffusion.outputs) == ["LATENT"]
    assert list(VAEDecodeTiled_TiledDiffusion.outputs) == ["IMAGE"]


@pytest.fixture(scope="module")
def sd_vae(tmp_path_factory):
    from graphflow.models.checkpoint import load_vae

    return load_vae(write_vae(tmp_path_factory.mktemp("vae") / "vae.safetensors"), dtype=torch.float32)


@pytest.fixture(scope="module")
def flux_vae(tmp_path_factory):
    from graphflow.models.checkpoint import load_vae

    return load_vae(write_flow_vae(tmp_path_factory.mktemp("flux_vae") / "vae.safetensors"), dtype=torch.float32)


@pytest.mark.parametrize("which", ["sd_vae", "flux_vae"])
def test_the_nodes_decode_and_encode_as_the_vae(registry, request, which):
    """A picture one tile covers (the nodes' smallest tiles are 48 latent pixels): the VAE's own
    decode and encode, for SD's 4 and FLUX's 16 channels."""
    vae = request.getfixturevalue(which)
    z = torch.randn(2, vae.latent_channels, 6, 5)
    image = call(registry, "VAEDecodeTiled_TiledDiffusion", samples={"samples": z}, vae=vae, fast=False)
    torch.testing.assert_close(image, vae.decode(z), rtol=0, atol=1e-4)
    latent = call(registry, "VAEEncodeTiled_TiledDiffusion", pixels=image[:, :44, :36], vae=vae, fast=False)
    torch.testing.assert_close(latent["samples"], vae.encode(image[:, :44, :36]), rtol=0, atol=1e-4)
    assert latent["samples"].shape == (2, vae.latent_channels, 5, 4)


@pytest.mark.parametrize("which", ["sd_vae", "flux_vae"])
def test_fast_mode_takes_a_flat_picture_and_an_empty_latent(registry, request, which):
    # the pack's rescaling divides a flat channel's 0 spread by 0: NaN everywhere; ours moves it to the
    # mean only. (Not the exact mode's result: the borders' zero padding weighs more on the scaled
    # picture's statistics, and this random-weight network's features are noise-like: see
    # test_fast_mode_stays_near; here finite and of the exact result's size.)
    vae = request.getfixturevalue(which)
    canvas = torch.ones(1, 64, 72, 3) * torch.tensor([1.0, 0.5, 0.0])
    latents = {fast: call(registry, "VAEEncodeTiled_TiledDiffusion", pixels=canvas, vae=vae, tile_size=256,
                          fast=fast)["samples"] for fast in (True, False)}
    assert latents[True].isfinite().all()
    assert latents[True].abs().max() < 3 * latents[False].abs().max()
    empty = {"samples": torch.zeros(1, vae.latent_channels, 60, 8)}
    images = {fast: call(registry, "VAEDecodeTiled_TiledDiffusion", samples=empty, vae=vae, tile_size=384,
                         fast=fast) for fast in (True, False)}
    assert images[True].isfinite().all()
    assert images[True].abs().max() < 3 * images[False].abs().max()


def test_a_picture_of_other_channels_is_refused_by_name(registry, sd_vae):
    for channels in (1, 2, 5):
        with pytest.raises(NodeInputError, match=r"\[B, H, W, 3 or 4\]") as e:
            call(registry, "VAEEncodeTiled_TiledDiffusion", pixels=torch.rand(1, 64, 64, channels), vae=sd_vae)
        assert e.value.input == "pixels"


def test_bad_inputs_are_refused(registry, sd_vae):
    z = {"samples": torch.zeros(1, 4, 4, 4)}
    with pytest.raises(NodeInputError, match="Tiled VAE runs the KL autoencoder") as e:
        call(registry, "VAEDecodeTiled_TiledDiffusion", samples=z, vae=PixelSpaceVAE())
    assert e.value.input == "vae"
    with pytest.raises(NodeInputError) as e:
        call(registry, "VAEDecodeTiled_TiledDiffusion", samples={"samples": torch.zeros(1, 16, 4, 4)}, vae=sd_vae)
    assert e.value.input == "samples"
    with pytest.raises(NodeInputError) as e:
        call(registry, "VAEDecodeTiled_TiledDiffusion", samples={"samples": torch.zeros(1, 4, 2, 4, 4)}, vae=sd_vae)
    assert e.value.input == "samples"
    node = VAEEncodeTiled_TiledDiffusion.__new__(VAEEncodeTiled_TiledDiffusion)
    node.__dict__.update(pixels=torch.zeros(1, 16, 16, 3), vae=sd_vae, tile_size=264, fast=True, color_fix=True)
    with pytest.raises(NodeInputError) as e:
        node.run()
    assert e.value.input == "tile_size"
    with pytest.raises(NodeInputError) as e:
        call(registry, "VAEEncodeTiled_TiledDiffusion", pixels=torch.zeros(1, 4, 16, 3), vae=sd_vae)
    assert e.value.input == "pixels"


def test_a_ui_save_reads_and_runs(registry, tmp_folders):
    (tmp_folders.models / "vae").mkdir(exist_ok=True)
    write_vae(tmp_folders.models / "vae" / "tiny_vae.safetensors")
    nodes = [
        ui_node(1, "VAELoader", ["tiny_vae.safetensors"], outputs=[("VAE", "VAE", [1, 2])]),
        ui_node(2, "EmptyLatentImage", [64, 48, 1], outputs=[("LATENT", "LATENT", [3])]),
        ui_node(3, "VAEDecodeTiled_TiledDiffusion", [384, False],
                [("samples", "LATENT", 3, False), ("vae", "VAE", 1, False)], [("IMAGE", "IMAGE", [4])]),
        ui_node(4, "VAEEncodeTiled_TiledDiffusion", [256, True, False],
                [("pixels", "IMAGE", 4, False), ("vae", "VAE", 2, False)], [("LATENT", "LATENT", [])]),
    ]
    links = [[1, 1, 0, 3, 1, "VAE"], [2, 1, 0, 4, 1, "VAE"], [3, 2, 0, 3, 0, "LATENT"], [4, 3, 0, 4, 0, "IMAGE"]]
    result = run_graph(registry, ui_graph(nodes, links), outputs=["3", "4"])
    image, latent = (v[0] if isinstance(v, tuple) else v for v in (result.values["3"], result.values["4"]))
    assert image.shape == (1, 48, 64, 3) and torch.isfinite(image).all()
    assert latent["samples"].shape == (1, 4, 6, 8) and torch.isfinite(latent["samples"]).all()
