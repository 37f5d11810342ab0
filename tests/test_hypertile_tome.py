"""HyperTile and TomePatchModel (Token Merging) on a tiny random-weight SD1 UNet: tiles and merges
checked against attention computed by hand, identity settings exactly the unpatched UNet, the
input model unchanged, and a sampling run end to end."""

import pytest
import torch

from graphflow.context import NodeInputError
from graphflow.models.diffusion_model import DiffusionModel
from graphflow.models.hypertile import from_tiles, hypertile_patch, tile_counts, tiled_grid, to_tiles
from graphflow.models.tome import bipartite_soft_matching, partition, tome_patch
from graphflow.models.unet import Attention, BasicTransformerBlock, UNet, latent_size, transformer_block_levels
from graphflow.sampling import sample
from graphflow.testing import unet_config
from test_nodes_image_mask import call


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DiffusionModel(UNet(unet_config("sd1")).eval(), "sd1")


def inputs(model, size=16):
    g = torch.Generator().manual_seed(3)
    return (torch.randn(1, 4, size, size, generator=g), torch.tensor([500.0]),
            torch.randn(1, 77, model.unet.config.context_dim, generator=g))


def attn1_token_counts(unet, x, t, context):
    """(level, tokens per batch item, batch) of each self-attention call of a forward."""
    levels = transformer_block_levels(unet)
    seen, hooks = [], []
    for path, level in levels.items():
        attn = unet.get_submodule(path).attn1
        hooks.append(attn.register_forward_pre_hook(
            lambda m, args, level=level: seen.append((level, args[0].shape[1], args[0].shape[0]))))
    try:
        with torch.no_grad():
            out = unet(x, t, context)
    finally:
        for hook in hooks:
            hook.remove()
    return out, seen


def test_block_levels_follow_the_unets_resolutions(model):
    levels = transformer_block_levels(model.unet)  # tiny SD1: 2 levels, attention in every block
    assert levels["input_blocks.1.1.transformer_blocks.0"] == 0
    assert levels["input_blocks.3.1.transformer_blocks.0"] == 1
    assert levels["middle_block.1.transformer_blocks.0"] == 1
    assert [levels[f"output_blocks.{k}.1.transformer_blocks.0"] for k in range(4)] == [1, 1, 0, 0]
    assert all(isinstance(model.unet.get_submodule(p), BasicTransformerBlock) for p in levels)


# -- HyperTile --------------------------------------------------------------------------------

def test_tile_counts_take_the_smallest_divisors_at_least_the_tile():
    import random
    rng = random.Random(0)
    assert tile_counts(16, 4, 1, rng) == 4  # tile 4
    assert tile_counts(16, 4, 2, rng) == 4  # candidates 4, 8: all but the last -> 4 (ComfyUI's draw)
    assert {tile_counts(24, 4, 3, random.Random(s)) for s in range(40)} == {6, 4}  # tiles 4 or 6, not 8
    assert tile_counts(12, 5, 1, rng) == 2  # 6 is the smallest divisor >= 5
    assert tile_counts(8, 32, 2, rng) == 1  # a tile larger than the grid: one tile
    assert tile_counts(7, 2, 2, rng) == 1  # a prime length has no smaller tile


def test_each_tile_attends_within_itself_only():
    torch.manual_seed(1)
    attention = Attention(32, 2, 16).eval()
    h, w, nh, nw = 6, 8, 2, 4
    tokens = torch.randn(2, h * w, 32)
    with torch.no_grad():
        out = from_tiles(attention(to_tiles(tokens, (h, w), nh, nw)), (h, w), nh, nw)
        grid_in, grid_out = tokens.reshape(2, h, w, 32), out.reshape(2, h, w, 32)
        th, tw = h // nh, w // nw
        for i in range(nh):
            for j in range(nw):
                tile = grid_in[:, i * th:(i + 1) * th, j * tw:(j + 1) * tw].reshape(2, th * tw, 32)
                alone = attention(tile).reshape(2, th, tw, 32)
                torch.testing.assert_close(grid_out[:, i * th:(i + 1) * th, j * tw:(j + 1) * tw], alone)
    assert torch.equal(from_tiles(to_tiles(tokens, (h, w), nh, nw), (h, w), nh, nw), tokens)


def test_hypertile_tiles_queries_on_comfyuis_grid_against_contiguous_key_runs():
    # ComfyUI's patch on a non-square 8 x 16 latent: the 128 tokens read as 16 rows of 8 (its
    # aspect ratio reads width as rows), tile 4 -> 4 x 2 tiles of 4 x 4; tile k (row-major over the
    # tiles) attends to tokens 16k .. 16k + 15 of the untiled sequence as keys and values
    torch.manual_seed(2)
    block = BasicTransformerBlock(32, 2, 16, None).eval()
    block.self_attention_patches = (hypertile_patch(32, 2, 0, False, salt=0),)
    tokens = torch.randn(2, 128, 32)
    token = latent_size.set((8, 16))
    try:
        with torch.no_grad():
            out = block._patched_self_attention(tokens, (8, 16))
    finally:
        latent_size.reset(token)
    expected = torch.empty_like(out)
    with torch.no_grad():
        for a in range(4):
            for c in range(2):
                k = a * 2 + c
                index = [(4 * a + p) * 8 + 4 * c + q for p in range(4) for q in range(4)]
                expected[:, index] = block.attn1(tokens[:, index], tokens[:, 16 * k:16 * k + 16])
    torch.testing.assert_close(out, expected)


def test_hypertile_picks_blocks_by_comfyuis_token_count():
    assert tiled_grid(128, (8, 16), 0) == (16, 8, 0)
    assert tiled_grid(32, (8, 16), 1) == (8, 4, 1) and tiled_grid(32, (8, 16), 0) is None
    # 15 x 16: level 1's grid is 8 x 8 (rounded up), not 7.5 x 8: ComfyUI leaves it untiled
    assert tiled_grid(240, (15, 16), 1) == (16, 15, 0) and tiled_grid(64, (15, 16), 1) is None


def test_hypertile_leaves_a_rounded_up_level_alone(builtin_registry, model):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 4, 15, 16, generator=g)
    t, context = torch.tensor([500.0]), torch.randn(1, 77, model.unet.config.context_dim, generator=g)
    patched = call(builtin_registry, "HyperTile", model=model, tile_size=32, swap_size=2, max_depth=1)
    _, calls = attn1_token_counts(patched.unet, x, t, context)
    # level 0: 16 rows of 15 in 4 x 3 tiles of 4 x 5; level 1 (8 x 8 tokens) untiled
    assert {c for c in calls if c[0] == 0} == {(0, 20, 12)}
    assert {c for c in calls if c[0] == 1} == {(1, 64, 1)}


def test_hypertile_covering_the_whole_image_is_the_unpatched_unet(builtin_registry, model):
    x, t, context = inputs(model)
    with torch.no_grad():
        before = model.unet(x, t, context)
        whole = call(builtin_registry, "HyperTile", model=model, tile_size=2048, max_depth=3)
        assert torch.equal(whole.unet(x, t, context), before)


def test_hypertile_tiles_the_chosen_levels_of_a_copy(builtin_registry, model):
    x, t, context = inputs(model)
    before, plain_calls = attn1_token_counts(model.unet, x, t, context)
    # tile_size 32 -> 4 latent pixels: the 16 x 16 level-0 grid in 4 x 4 tiles of 4 x 4 tokens
    patched = call(builtin_registry, "HyperTile", model=model, tile_size=32, swap_size=2, max_depth=0)
    out, calls = attn1_token_counts(patched.unet, x, t, context)
    assert [c for c in calls if c[0] == 0] == [(0, 16, 16)] * 3
    assert [c for c in calls if c[0] == 1] == [c for c in plain_calls if c[0] == 1] == [(1, 64, 1)] * 4
    assert out.shape == before.shape and (out - before).abs().max() > 1e-4
    deeper = call(builtin_registry, "HyperTile", model=model, tile_size=32, max_depth=1)
    _, calls = attn1_token_counts(deeper.unet, x, t, context)
    assert {c for c in calls if c[0] == 1} == {(1, 16, 4)}  # the 8 x 8 level in tiles of 4 x 4
    scaled = call(builtin_registry, "HyperTile", model=model, tile_size=32, max_depth=1, scale_depth=True)
    _, calls = attn1_token_counts(scaled.unet, x, t, context)
    assert {c for c in calls if c[0] == 1} == {(1, 64, 1)}  # tiles of 4 * 2 there: the whole 8 x 8
    assert {c for c in calls if c[0] == 0} == {(0, 16, 16)}
    # the input model is unchanged and shares its weights
    with torch.no_grad():
        assert torch.equal(model.unet(x, t, context), before)
    assert all(model.unet.get_submodule(p).self_attention_patches == () for p in transformer_block_levels(model.unet))
    assert all(p is q for p, q in zip(patched.unet.parameters(), model.unet.parameters()))


def test_a_model_without_unet_blocks_passes_unchanged(builtin_registry, caplog):
    # ComfyUI's attn1 patches never fire on a DiT (FLUX, SD3): the picture is the plain one
    class Flow:
        unet = torch.nn.Linear(1, 1)
    flow = Flow()
    for node in ("HyperTile", "TomePatchModel", "PatchModelAddDownscale"):
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert call(builtin_registry, node, model=flow) is flow
        assert "passed on unchanged" in caplog.text
    with pytest.raises(NodeInputError) as e:  # not a MODEL at all
        call(builtin_registry, "HyperTile", model=object())
    assert e.value.input == "model"


# -- Token Merging ----------------------------------------------------------------------------

@pytest.mark.parametrize("h, w, ratio, merged", [(8, 8, 0.5, 32), (8, 8, 1.0, 16), (8, 8, 0.0, 64),
                                                 (5, 7, 0.3, 25), (5, 7, 1.0, 6)])
def test_merged_token_count_is_n_minus_r(h, w, ratio, merged):
    # r = int(ratio N), at most the source tokens: all but one per full 2x2 region
    src, dst = partition(h, w, torch.Generator().manual_seed(0), "cpu")
    assert dst.numel() == (h // 2) * (w // 2) and sorted(torch.cat([src, dst]).tolist()) == list(range(h * w))
    x = torch.randn(2, h * w, 16)
    merge, unmerge = bipartite_soft_matching(x, src, dst, int(ratio * h * w))
    assert merge(x).shape == (2, merged, 16)
    assert unmerge(merge(x)).shape == x.shape


def test_one_random_destination_per_2x2_region():
    seen = set()
    for seed in range(8):
        src, dst = partition(4, 6, torch.Generator().manual_seed(seed), "cpu")
        regions = sorted(((i // 6) // 2, (i % 6) // 2) for i in dst.tolist())
        assert regions == sorted((a, b) for a in range(2) for b in range(3))
        seen.add(tuple(dst.tolist()))
    assert len(seen) > 1  # the choice within a region is random


def test_merging_averages_into_the_most_similar_destination():
    # tokens constant over each 2x2 region (random directions per region): every source is most
    # similar to its own region's destination, so merging all of them leaves the region tokens
    h, w, c = 4, 4, 16
    regions = torch.randn(2, h // 2, w // 2, c)
    x = regions.repeat_interleave(2, 1).repeat_interleave(2, 2).reshape(2, h * w, c)
    src, dst = partition(h, w, torch.Generator().manual_seed(1), "cpu")
    merge, unmerge = bipartite_soft_matching(x, src, dst, 12)
    merged = merge(x)
    torch.testing.assert_close(merged, x[:, dst])
    torch.testing.assert_close(unmerge(merged), x)
    # one source merged: its destination becomes the mean of the two, both positions get it back
    y = torch.randn(1, h * w, c)
    merge, unmerge = bipartite_soft_matching(y, src, dst, 1)
    unit = y / y.norm(dim=-1, keepdim=True)
    scores = unit[:, src] @ unit[:, dst].transpose(-1, -2)
    best = scores.max(-1).values.argmax().item()
    target = scores[0, best].argmax().item()
    out = merge(y)
    assert out.shape[1] == h * w - 1
    torch.testing.assert_close(out[0, -dst.numel() + target], (y[0, src[best]] + y[0, dst[target]]) / 2)
    restored = unmerge(out)
    torch.testing.assert_close(restored[0, src[best]], restored[0, dst[target]])
    keep = [i for i in range(h * w) if i not in (src[best].item(), dst[target].item())]
    torch.testing.assert_close(restored[0, keep], y[0, keep])


def test_tome_merges_only_the_queries():
    # ComfyUI merges the queries; every query still attends to all tokens, so a token that was
    # neither merged nor merged into gets exactly the unpatched attention's output
    torch.manual_seed(3)
    block = BasicTransformerBlock(32, 2, 16, None).eval()
    tokens = torch.randn(1, 64, 32)
    token = latent_size.set((8, 8))  # as the UNet publishes it: the block is at the latent's size
    try:
        with torch.no_grad():
            plain = block.attn1(tokens)
            block.self_attention_patches = (tome_patch(0.25, salt=0),)
            out = block._patched_self_attention(tokens, (8, 8))
    finally:
        latent_size.reset(token)
    same = (out - plain).abs().amax(-1)[0] < 1e-5
    assert 64 - 2 * 16 <= int(same.sum()) < 64  # 16 merged away: at most 32 tokens changed
    shared = torch.nonzero(~same)[:, 0]
    for i in shared.tolist():  # the changed ones share their output with the token they merged with
        assert ((out[0, shared] - out[0, i]).abs().amax(-1) < 1e-5).sum() >= 2


def test_tome_ratio_zero_is_the_unpatched_unet(builtin_registry, model):
    x, t, context = inputs(model)
    with torch.no_grad():
        before = model.unet(x, t, context)
        assert torch.equal(call(builtin_registry, "TomePatchModel", model=model, ratio=0.0).unet(x, t, context), before)


def test_tome_merges_the_full_resolution_self_attention_of_a_copy(builtin_registry, model):
    x, t, context = inputs(model)
    before, _ = attn1_token_counts(model.unet, x, t, context)
    patched = call(builtin_registry, "TomePatchModel", model=model, ratio=0.3)
    out, calls = attn1_token_counts(patched.unet, x, t, context)
    assert [c for c in calls if c[0] == 0] == [(0, 256 - int(0.3 * 256), 1)] * 3
    assert {c for c in calls if c[0] == 1} == {(1, 64, 1)}
    assert out.shape == before.shape and (out - before).abs().max() > 1e-4
    again, _ = attn1_token_counts(patched.unet, x, t, context)
    assert torch.equal(again, out)  # the same destinations every call: reproducible
    with torch.no_grad():
        assert torch.equal(model.unet(x, t, context), before)


def test_sampling_with_hypertile_and_tome(builtin_registry, model):
    dim = model.unet.config.context_dim
    cond = [(torch.full((1, 77, dim), 0.5), {})]
    uncond = [(torch.full((1, 77, dim), -0.5), {})]
    latent = {"samples": torch.zeros(1, 4, 16, 16)}
    plain = sample(model, 1, 2, 4.0, "euler", "normal", cond, uncond, latent)["samples"]
    tiled = call(builtin_registry, "HyperTile", model=model, tile_size=64)
    both = call(builtin_registry, "TomePatchModel", model=tiled, ratio=0.5)
    out = sample(both, 1, 2, 4.0, "euler", "normal", cond, uncond, latent)["samples"]
    assert out.shape == plain.shape and torch.isfinite(out).all()
    assert (out - plain).abs().max() > 1e-4
    torch.testing.assert_close(sample(both, 1, 2, 4.0, "euler", "normal", cond, uncond, latent)["samples"], out)


def test_hypertile_tiles_svds_spatial_self_attention(builtin_registry):
    # ComfyUI's SVD UNet hands HyperTile its latent shape too: the full-size spatial blocks are tiled
    from graphflow.models.svd import SVDConfig, SVDUNet
    config = SVDConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(True, False),
                       context_dim=24, num_head_channels=16)
    torch.manual_seed(0)
    model = DiffusionModel(SVDUNet(config).eval(), "svd", "v")
    patched = call(builtin_registry, "HyperTile", model=model, tile_size=32, swap_size=1, max_depth=0)
    spatial = [m.attn1 for m in patched.unet.modules() if isinstance(m, BasicTransformerBlock)]
    seen = []
    hooks = [a.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[:2]))) for a in spatial]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, config.in_channels, 16, 16, generator=g)
    try:
        with torch.no_grad():
            patched.unet(x, torch.tensor([0.5, 0.5]), torch.randn(2, 1, 24, generator=g),
                         torch.randn(2, config.adm_in_channels, generator=g), num_frames=2)
    finally:
        for hook in hooks:
            hook.remove()
    assert (2 * 16, 16) in seen  # 2 frames x 16 tiles of 4 x 4 tokens
