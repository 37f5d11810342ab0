"""BlenderNeko's ComfyUI_TiledKSampler (nodes/pack_nodes_tiled_ksampler.py): the tile positions
against the pack's rules (tiling.py), tiled sampling against KSampler / KSamplerAdvanced (one tile
as large as the latent; a pointwise denoiser, for which tiles can't matter; the demo model), the
conditioning cut to tiles, the refusals, the estimate, and the pack's class names in UI saves and
API prompts."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphflow.comfy_format import custom_pack, export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.resource_limits import Size, sampling_memory
from graphflow.workflow import parse_workflow
from nodes.pack_nodes_tiled_ksampler import (MAX_TILE_STEPS, STRATEGIES, Tile, TileConditioning, TiledKSampler,
                                             full_size, padded_tiles, random_tiles, tile_plan, tile_steps)
from tests.sampling_fakes import FakeModel, gaussian_eps, prompt
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry(builtin_registry):
    return builtin_registry


def coverage(tiles, height, width, strategy, tile_h, tile_w):
    """How many times each latent pixel is written by these tiles (a mask's weight counted)."""
    count = torch.zeros(height, width)
    for tile in tiles:
        mask = tile.mask
        if strategy in ("padded", "random strict"):
            tile, mask = full_size(tile, mask, tile_h, tile_w, height, width)
        assert tile.h > 0 and tile.w > 0
        assert 0 <= tile.y and tile.y + tile.h <= height and 0 <= tile.x and tile.x + tile.w <= width
        count[tile.y:tile.y + tile.h, tile.x:tile.x + tile.w] += 1 if mask is None else mask[0, 0]
    return count


SIZES = list(itertools.product((5, 32, 33, 40, 64, 70, 100), (7, 32, 48, 71, 96), (32, 40, 64), (32, 48, 64)))


@pytest.mark.parametrize("strategy", ["simple", "padded"])
def test_grid_strategies_write_every_latent_pixel_exactly_once(strategy):
    for height, width, tile_h, tile_w in SIZES:
        tile_h, tile_w = min(tile_h, height), min(tile_w, width)
        if strategy == "padded" and min(tile_h, tile_w) < 4:
            continue
        plan = tile_plan(strategy, 5, height, width, tile_h, tile_w, 0)
        tiles = [tile for one_pass in plan for group in one_pass for tile in group]
        assert all(tile.steps == 5 for tile in tiles)  # each tile runs every step at once
        count = coverage(tiles, height, width, strategy, tile_h, tile_w)
        assert torch.equal(count, torch.ones(height, width)), (strategy, height, width, tile_h, tile_w)


@pytest.mark.parametrize("strategy", ["random", "random strict"])
def test_random_strategies_write_every_latent_pixel_once_per_step(strategy):
    for height, width, tile_h, tile_w in SIZES:
        tile_h, tile_w = min(tile_h, height), min(tile_w, width)
        [groups] = tile_plan(strategy, 4, height, width, tile_h, tile_w, 7)
        groups = list(groups)
        assert len(groups) == 4
        for group in groups:
            assert all(tile.steps == 1 for tile in group)
            count = coverage(group, height, width, strategy, tile_h, tile_w)
            assert torch.equal(count, torch.ones(height, width)), (strategy, height, width, tile_h, tile_w)


def test_random_positions_follow_the_seed_as_the_pack_draws_them():
    """Per step two float32 uniforms from torch.manual_seed(seed): rows jittered back by
    int(u1 * tile_h), the columns of even rows by int(u0 * tile_w) and of odd rows by
    int(((u0 + .5) % 1) * tile_w); odd steps swap rows and columns. Reference: tiling.py's
    calc_coords formula with numpy."""
    height, width, tile_h, tile_w = 70, 90, 32, 40
    groups = list(random_tiles(3, height, width, tile_h, tile_w, torch.Generator().manual_seed(1234)))
    rands = torch.rand((3, 2), generator=torch.manual_seed(1234)).numpy()

    def spans(size, tile, jitter):
        n = int((size + jitter - 1) // tile + 1)
        edges = [int(np.clip(tile * c - jitter, 0, size)) for c in range(n + 1)]
        return [(a, b - a) for a, b in zip(edges, edges[1:])]

    for step, (u0, u1) in enumerate(rands):
        jw = (int(u0 * tile_w), int(((u0 + np.float32(.5)) % np.float32(1.0)) * tile_w))
        jh = (int(u1 * tile_h), int(((u1 + np.float32(.5)) % np.float32(1.0)) * tile_h))
        rows = [spans(height, tile_h, j) for j in jh]
        cols = [spans(width, tile_w, j) for j in jw]
        if step % 2 == 0:
            want = [(y, h, x, w) for i, (y, h) in enumerate(rows[0]) for x, w in cols[i % 2]]
        else:
            want = [(y, h, x, w) for i, (x, w) in enumerate(cols[0]) for y, h in rows[i % 2]]
        assert [(t.y, t.h, t.x, t.w) for t in groups[step]] == want
    again = random_tiles(3, height, width, tile_h, tile_w, torch.Generator().manual_seed(1234))
    other = random_tiles(3, height, width, tile_h, tile_w, torch.Generator().manual_seed(1235))
    positions = [[(t.y, t.x) for t in group] for group in groups]
    assert [[(t.y, t.x) for t in group] for group in again] == positions
    assert [[(t.y, t.x) for t in group] for group in other] != positions


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_tile_steps_are_counted_without_making_the_tiles(strategy):
    for height, width, tile_h, tile_w in SIZES[::3]:
        tile_h, tile_w = min(tile_h, height), min(tile_w, width)
        if strategy == "padded" and min(tile_h, tile_w) < 4:
            continue
        plan = tile_plan(strategy, 5, height, width, tile_h, tile_w, 3)
        made = sum(tile.steps for one_pass in plan for group in one_pass for tile in group)
        assert tile_steps(strategy, 5, height, width, tile_h, tile_w, 3) == made, (height, width, tile_h, tile_w)


def test_a_long_random_plan_is_made_step_by_step():
    """The probe's case (1,086,920 tiles, 12 s and 143 MB made before the first step): the first
    group comes at once, and only as the steps are reached are more made."""
    generator = torch.Generator().manual_seed(0)
    groups = random_tiles(1000, 1024, 1024, 32, 32, generator)
    first = next(iter(groups))
    assert 32 * 32 <= len(first) <= 33 * 33 and all(tile.steps == 1 for tile in first)
    one_step = torch.Generator().manual_seed(0)
    torch.rand((2,), generator=one_step)
    assert torch.equal(generator.get_state(), one_step.get_state())  # one step's jitters drawn, no more


def test_more_tile_steps_than_the_cap_are_refused_before_sampling(registry):
    # the pack's big uses pass: an 8192 x 8192 image in 512-pixel tiles at 100 steps, any strategy
    for strategy in STRATEGIES:
        assert tile_steps(strategy, 100, 1024, 1024, 64, 64, 0) <= MAX_TILE_STEPS
    assert tile_steps("padded", 100, 1024, 1024, 64, 64, 0) == (16 + 15) ** 2 * 100
    # a 8192 x 8192 latent in 256-pixel tiles over 1000 steps: about 1.09 million tile steps
    model = pointwise_model()
    model.unet.predict = lambda *args: pytest.fail("refused runs sample nothing")
    with pytest.raises(NodeInputError) as e:
        call(registry, "TiledKSamplerAdvanced", model=model, positive=prompt(1.0), negative=prompt(0.0),
             latent_image={"samples": torch.zeros(1, 4, 1024, 1024)}, tile_width=256, tile_height=256, steps=1000,
             tiling_strategy="random")
    assert e.value.input == "steps" and str(MAX_TILE_STEPS) in str(e.value)


def test_steps_over_denoise_past_the_cap_is_refused_by_name_as_in_ksampler(registry):
    """int(steps / denoise) is the schedule both KSampler and the tiled sampler cut their steps
    from (graphflow.sampling.schedules.schedule_length): 20 steps at denoise 2e-5 would be a
    million-step schedule."""
    from graphflow.sampling.flow_sampling import model_sampling_for
    from graphflow.sampling.schedules import MAX_SCHEDULE_STEPS, compute_sigmas, schedule_length

    assert MAX_SCHEDULE_STEPS == 20000  # any steps (at most 10000) at denoise 0.5 or more pass
    assert schedule_length(20, 0.5) == 40 and schedule_length(20, 1.0) == 20 and schedule_length(10000, 1.0) == 10000
    assert schedule_length(10000, 0.5) == 20000 and schedule_length(20, 20 / 20000) == 20000
    model = pointwise_model()
    schedule = model_sampling_for(model)
    assert len(compute_sigmas(schedule, "normal", 20, 20 / 20000)) == 21
    with pytest.raises(NodeInputError) as e:
        compute_sigmas(schedule, "normal", 20, 2e-5)
    assert e.value.input == "denoise"
    model.unet.predict = lambda *args: pytest.fail("refused runs sample nothing")
    for node in ("KSampler", "TiledKSampler", "BasicScheduler"):
        inputs = dict(model=model, steps=20, denoise=2e-5)
        if node != "BasicScheduler":
            inputs.update(positive=prompt(1.0), negative=prompt(0.0), latent_image=latent(32, 32))
        with pytest.raises(NodeInputError) as e:
            call(registry, node, **inputs)
        assert e.value.input == "denoise" and "20000" in str(e.value), node


def test_padded_tiles_write_their_middle_half_and_reach_the_border():
    passes = padded_tiles(2, 64, 64, 32, 32)
    assert len(passes) == 4
    grid = passes[0][0]
    assert [(t.y, t.x) for t in grid] == [(0, 0), (0, 32), (32, 0), (32, 32)]
    corner = grid[0].mask[0, 0]
    want = torch.zeros(32, 32)
    want[0:24, 0:24] = 1  # the middle half, stretched to the image's top and left border
    assert torch.equal(corner, want)
    both_shifted = passes[3][0]
    assert [(t.y, t.x, t.h, t.w) for t in both_shifted] == [(16, 16, 32, 32)]
    want = torch.zeros(32, 32)
    want[8:24, 8:24] = 1
    assert torch.equal(both_shifted[0].mask[0, 0], want)
    # sizes are rounded down to a multiple of 4 latent pixels
    assert padded_tiles(1, 40, 40, 38, 38)[0][0][0].h == 36


def test_a_short_tile_is_moved_inwards_with_its_mask_where_it_was():
    tile = next(random_tiles(1, 40, 40, 32, 32, torch.Generator().manual_seed(0)))[-1]
    assert tile.y + tile.h == 40 and tile.x + tile.w == 40 and (tile.h < 32 or tile.w < 32)
    moved, mask = full_size(tile, None, 32, 32, 40, 40)
    assert (moved.y, moved.x, moved.h, moved.w) == (8, 8, 32, 32)
    want = torch.zeros(40, 40)
    want[tile.y:, tile.x:] = 1
    assert torch.equal(mask[0, 0], want[8:, 8:])


# -- sampling against KSampler ------------------------------------------------------------------

def pointwise_model():
    """A denoiser that is exact for model-space data N(0.3, 0.8^2), pixel by pixel: tiles can't change it."""
    return FakeModel(gaussian_eps(0.3, 0.8))


def latent(height=40, width=72, seed=0, **extra):
    generator = torch.Generator().manual_seed(seed)
    return {"samples": torch.randn(1, 4, height, width, generator=generator) * 3, **extra}


def tiled(registry, model, latent_image, strategy, sampler="euler", steps=6, denoise=1.0, tile=256, seed=11):
    out = call(registry, "TiledKSampler", model=model, seed=seed, tile_width=tile, tile_height=tile,
                 tiling_strategy=strategy, steps=steps, cfg=3.0, sampler_name=sampler, scheduler="karras",
                 positive=prompt(1.0), negative=prompt(0.0), latent_image=latent_image, denoise=denoise)
    return out["samples"]


def ksampler(registry, model, latent_image, sampler="euler", steps=6, denoise=1.0, seed=11):
    out = call(registry, "KSampler", model=model, seed=seed, steps=steps, cfg=3.0, sampler_name=sampler,
                 scheduler="karras", positive=prompt(1.0), negative=prompt(0.0), latent_image=latent_image,
                 denoise=denoise)
    return out["samples"]


@pytest.mark.parametrize("strategy", ["random strict", "simple", "padded"])
def test_a_tile_as_large_as_the_latent_is_ksampler(registry, strategy):
    """img2img (denoise < 1: KSampler's noise is sigma_0 * noise too) with euler, which keeps no
    state between steps: one tile = KSampler, up to float rounding of the per-step latent scaling."""
    model = pointwise_model()
    model.unet.predict = lambda x, t, c, y: torch.tanh(x.roll(1, -1) + x.roll(3, -2)) * 0.5  # not pointwise
    image = latent(32, 32)
    want = ksampler(registry, model, image, denoise=0.6)
    got = tiled(registry, model, image, strategy, denoise=0.6)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_random_tiles_split_even_a_latent_one_tile_covers(registry):
    """"random" jitters the grid whatever the sizes: a tile as large as the latent is cut in two
    at every step (random strict moves the pieces back to full size, so the model sees it all)."""
    [groups] = tile_plan("random", 3, 32, 32, 32, 32, 11)
    assert all(len(group) > 1 for group in groups)
    model = pointwise_model()
    model.unet.predict = lambda x, t, c, y: torch.tanh(x.roll(1, -1) + x.roll(3, -2)) * 0.5
    image = latent(32, 32)
    want = ksampler(registry, model, image, denoise=0.6)
    assert (tiled(registry, model, image, "random", denoise=0.6) - want).abs().max() > 1e-2


def test_padded_with_one_tile_is_ksampler_at_full_denoise_bit_for_bit(registry):
    model = pointwise_model()
    model.unet.predict = lambda x, t, c, y: torch.tanh(x.roll(1, -1) + x.roll(3, -2)) * 0.5
    image = {"samples": torch.zeros(1, 4, 32, 32)}
    for sampler in ("euler", "dpmpp_2m", "euler_ancestral"):
        assert torch.equal(tiled(registry, model, image, "padded", sampler), ksampler(registry, model, image, sampler))


@pytest.mark.parametrize("strategy", ["random", "random strict", "simple", "padded"])
def test_with_a_pointwise_denoiser_tiles_change_nothing(registry, strategy):
    model = pointwise_model()
    image = latent(40, 72)
    # padded samples each tile from the start (KSampler's full-denoise noise scaling), the others
    # add sigma_0 * noise to the whole latent: KSampler's img2img rule
    denoise = 1.0 if strategy == "padded" else 0.7
    want = ksampler(registry, model, image, denoise=denoise)
    got = tiled(registry, model, image, strategy, denoise=denoise)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert len(model.unet.calls) > 2 * 6  # many tiles were sampled


def test_multistep_samplers_restart_at_every_step_with_random_tiles(registry):
    """dpmpp_2m keeps the last prediction between steps; run one step per tile (random) it is
    first order at every step, as in the pack: different from KSampler, while simple (all steps per
    tile) is KSampler's."""
    model = pointwise_model()
    image = latent(40, 72)
    want = ksampler(registry, model, image, "dpmpp_2m", denoise=0.7)
    torch.testing.assert_close(tiled(registry, model, image, "simple", "dpmpp_2m", denoise=0.7), want,
                               rtol=1e-4, atol=1e-4)
    restarted = tiled(registry, model, image, "random", "dpmpp_2m", denoise=0.7)
    assert (restarted - want).abs().max() > 1e-3
    one_step_euler = tiled(registry, model, image, "random", "euler", denoise=0.7)
    torch.testing.assert_close(restarted, one_step_euler, rtol=1e-4, atol=1e-4)  # dpmpp_2m's first step is euler's


def test_a_noise_mask_is_cut_to_the_tiles(registry):
    model = pointwise_model()
    mask = torch.zeros(1, 40, 72)
    mask[:, 5:30, 10:60] = 1.0
    image = latent(40, 72, noise_mask=mask)
    for strategy in ("random", "random strict", "simple"):
        got = tiled(registry, model, image, strategy, denoise=0.8)
        torch.testing.assert_close(got, ksampler(registry, model, image, denoise=0.8), rtol=1e-4, atol=1e-4)
        assert torch.equal(got[..., :5, :], image["samples"][..., :5, :])  # outside the mask: untouched


def test_a_batch_with_a_mask_per_image_on_moved_tiles(registry):
    """Tiles moved inwards at the border (padded, random strict) carry each image's noise mask."""
    model = pointwise_model()
    mask = torch.zeros(2, 40, 72)
    mask[0, 5:30, 10:60] = 1.0
    mask[1, 20:, 40:] = 1.0
    generator = torch.Generator().manual_seed(3)
    image = {"samples": torch.randn(2, 4, 40, 72, generator=generator) * 3, "noise_mask": mask}
    for strategy, denoise in (("padded", 1.0), ("random strict", 0.8)):
        got = tiled(registry, model, image, strategy, denoise=denoise)
        torch.testing.assert_close(got, ksampler(registry, model, image, denoise=denoise), rtol=1e-4, atol=1e-4)
        assert torch.equal(got[1, :, :20], image["samples"][1, :, :20])


def test_advanced_steps_and_the_packs_leftover_noise_switch(registry):
    """start/end like KSamplerAdvanced; return_with_leftover_noise the pack's way round."""
    model = pointwise_model()
    model.unet.predict = lambda x, t, c, y: torch.tanh(x.roll(1, -1)) * 0.5
    image = latent(32, 32)

    def advanced(node, strategy=None, **widgets):
        inputs = dict(model=model, noise_seed=4, steps=8, cfg=2.0, sampler_name="euler", scheduler="normal",
                      positive=prompt(1.0), negative=prompt(0.0), latent_image=image, start_at_step=3,
                      end_at_step=6, **widgets)
        if strategy is not None:
            inputs.update(tile_width=256, tile_height=256, tiling_strategy=strategy)
        return call(registry, node, **inputs)["samples"]

    # "disable" (the pack: no full denoise) keeps end_at_step's noise, as KSamplerAdvanced's "enable" does
    kept = advanced("KSamplerAdvanced", return_with_leftover_noise="enable")
    for strategy in ("simple", "random strict"):
        torch.testing.assert_close(advanced("TiledKSamplerAdvanced", strategy, return_with_leftover_noise="disable"),
                                   kept, rtol=1e-4, atol=1e-4)
    # "enable" with one step per tile run (random strict): the last sigma set to 0, KSamplerAdvanced's "disable"
    denoised = advanced("KSamplerAdvanced", return_with_leftover_noise="disable")
    torch.testing.assert_close(advanced("TiledKSamplerAdvanced", "random strict", return_with_leftover_noise="enable"),
                               denoised, rtol=1e-4, atol=1e-4)
    # ... but simple runs all steps in one tile run: the pack's switch never fires there
    torch.testing.assert_close(advanced("TiledKSamplerAdvanced", "simple", return_with_leftover_noise="enable"),
                               kept, rtol=1e-4, atol=1e-4)
    assert (kept - denoised).abs().max() > 1e-2
    # add_noise disable: no starting noise, as KSamplerAdvanced
    torch.testing.assert_close(advanced("TiledKSamplerAdvanced", "random strict", add_noise="disable"),
                               advanced("KSamplerAdvanced", add_noise="disable", return_with_leftover_noise="enable"),
                               rtol=1e-4, atol=1e-4)
    # nothing to run: the latent as given
    same = call(registry, "TiledKSamplerAdvanced", model=model, positive=prompt(1.0), negative=prompt(0.0),
                latent_image=image, start_at_step=5, end_at_step=5)["samples"]
    assert torch.equal(same, image["samples"])


def test_ancestral_noise_is_drawn_per_tile_run_from_the_seed(registry):
    model = pointwise_model()
    image = latent(40, 72)
    first = tiled(registry, model, image, "random", "euler_ancestral", denoise=0.7)
    assert torch.equal(first, tiled(registry, model, image, "random", "euler_ancestral", denoise=0.7))
    assert not torch.equal(first, tiled(registry, model, image, "random", "euler_ancestral", denoise=0.7, seed=12))
    assert torch.isfinite(first).all()


def test_every_tile_run_is_seeded_with_the_seed(registry):
    """The pack gives every tile run the node's seed (its sampler.sample(..., seed=noise_seed)), so
    tiles of one size draw the same ancestral noise: without starting noise, a latent of four equal
    tiles comes out as four equal tiles, each KSamplerAdvanced's run on that tile alone."""
    model = pointwise_model()
    model.unet.predict = lambda x, t, c, y: torch.tanh(x.roll(1, -1) + x.roll(3, -2)) * 0.5
    one = latent(32, 32)["samples"]

    def run(node, samples, seed=5, **widgets):
        return call(registry, node, model=model, add_noise="disable", noise_seed=seed, steps=4, cfg=3.0,
                    sampler_name="euler_ancestral", scheduler="karras", positive=prompt(1.0), negative=prompt(0.0),
                    latent_image={"samples": samples}, **widgets)["samples"]

    out = run("TiledKSamplerAdvanced", one.repeat(1, 1, 2, 2), tile_width=256, tile_height=256,
              tiling_strategy="simple")
    tiles = [out[..., y:y + 32, x:x + 32] for y in (0, 32) for x in (0, 32)]
    assert all(torch.equal(tile, tiles[0]) for tile in tiles[1:])
    alone = run("KSamplerAdvanced", one)
    torch.testing.assert_close(tiles[0], alone, rtol=1e-4, atol=1e-4)
    assert (run("KSamplerAdvanced", one, seed=6) - alone).abs().max() > 1e-2  # the ancestral noise counts


def test_the_demo_model_tiled_is_finite_and_close_to_untiled(registry):
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "graphflow-demo.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blue", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 320, "height": 256, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": 3, "steps": 3, "cfg": 5.0, "sampler_name": "euler", "scheduler": "karras",
            "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "denoise": 1.0}},
        "6": {"class_type": "BNK_TiledKSampler", "inputs": {
            "model": ["1", 0], "seed": 3, "tile_width": 256, "tile_height": 256, "tiling_strategy": "random",
            "steps": 3, "cfg": 5.0, "sampler_name": "euler", "scheduler": "karras", "positive": ["2", 0],
            "negative": ["3", 0], "latent_image": ["4", 0], "denoise": 1.0}},
    }
    result = run_graph(registry, graph, outputs=["5", "6"])
    untiled = result.values["5"][0]["samples"]
    out = result.values["6"][0]["samples"]
    assert out.shape == (1, 4, 32, 40) and torch.isfinite(out).all()
    # the same picture with seams: close to the untiled one, but not it (a real model sees its neighbours)
    difference = (out - untiled).abs().mean() / untiled.abs().mean()
    assert 1e-3 < difference < 0.6, difference
    assert torch.corrcoef(torch.stack([out.flatten(), untiled.flatten()]))[0, 1] > 0.6


# -- conditioning cut to tiles ------------------------------------------------------------------

def test_areas_masks_and_gligen_boxes_are_cut_to_the_tile():
    from graphflow.models.gligen import GligenBoxes
    from nodes.pack_nodes_tiled_ksampler import Tile

    mask = torch.zeros(1, 16, 16)
    mask[:, :4, :4] = 1
    boxes = GligenBoxes(object(), [("a", 4, 4, 2, 2), ("b", 4, 4, 20, 20)])
    side = TileConditioning("positive", [
        (torch.zeros(1, 2, 3), {"area": (8, 8, 6, 6), "strength": 0.5}),
        (torch.zeros(1, 2, 3), {"area": ("percentage", 0.25, 0.25, 0.0, 0.0)}),
        (torch.zeros(1, 2, 3), {"mask": mask}),  # [16, 16] resized to the 32 x 32 latent
        (torch.zeros(1, 2, 3), {"gligen": boxes}),
    ], 32, 32, {})
    cut = side.cut(Tile(4, 16, 10, 16, 1), {})  # latent rows 4..20, columns 10..26
    # the first area meets it in rows 6..14, columns 10..14; the percentage area (8 x 8 at the corner)
    # misses it, and so does the mask (bilinear 2x: 0 from column 9 on): both left out; no GLIGEN box
    # meets it, so its entry goes on without boxes
    assert len(cut) == 2
    assert cut[0][1]["area"] == (8, 4, 2, 0) and cut[0][1]["strength"] == 0.5
    assert "gligen" not in cut[1][1] and "area" not in cut[1][1]
    corner = side.cut(Tile(0, 16, 0, 16, 1), {})
    assert [options.get("area") for _, options in corner] == [(8, 8, 6, 6), (8, 8, 0, 0), None, None]
    resized = F.interpolate(mask[:, None], size=(32, 32), mode="bilinear")[:, 0]
    torch.testing.assert_close(corner[2][1]["mask"], resized[:, :16, :16])
    assert corner[3][1]["gligen"].boxes == [("a", 4, 4, 2, 2)]
    far = side.cut(Tile(18, 14, 18, 14, 1), {})
    assert far[-1][1]["gligen"].boxes == [("b", 4, 4, 2, 2)]
    assert boxes.boxes == [("a", 4, 4, 2, 2), ("b", 4, 4, 20, 20)]  # the input is left as it was


def test_controlnet_hints_are_stretched_to_the_latent_and_cut_to_the_tile():
    from graphflow.models.controlnet import ControlApplied
    from nodes.pack_nodes_tiled_ksampler import Tile

    first = ControlApplied(object(), torch.rand(1, 100, 120, 3), 0.7)
    second = ControlApplied(object(), torch.rand(1, 256, 256, 3), 1.0, previous=first)
    side = TileConditioning("positive", [(torch.zeros(1, 2, 3), {"control": second})], 32, 32, {})
    negative = TileConditioning("negative", [(torch.zeros(1, 2, 3), {"control": second})], 32, 32, side.hints)
    controls = {}
    tile = Tile(4, 16, 8, 20, 1)
    [(_, options)] = side.cut(tile, controls)
    [(_, other)] = negative.cut(tile, controls)
    assert options["control"] is other["control"]  # shared by both sides, as the input was
    stretched = F.interpolate(first.image.movedim(-1, 1), size=(256, 256), mode="nearest-exact")
    torch.testing.assert_close(options["control"].previous.image.movedim(-1, 1), stretched[:, :, 32:160, 64:224])
    assert torch.equal(options["control"].image, second.image[:, 32:160, 64:224])
    assert options["control"].strength == 1.0 and options["control"].previous.strength == 0.7
    assert second.image.shape == (1, 256, 256, 3)  # the input is left as it was
    # what is held for the whole run is each control's own image and where its pixels go, not the
    # hint stretched to the latent's pixel size (at 8192 x 8192 pixels that is 805 MB a control)
    held = [part for parts in side.hints.values() for part in parts]
    assert sum(part.numel() for part in held) == first.image.numel() + second.image.numel() + 2 * (256 + 256)


# -- refusals, estimate, formats ----------------------------------------------------------------

def test_what_it_cannot_tile_is_refused_by_name(registry):
    from graphflow.models.controlnet import ControlApplied

    model = pointwise_model()
    with pytest.raises(NodeInputError) as e:
        tiled(registry, model, latent(32, 32), "random", denoise=0.0)
    assert e.value.input == "denoise"
    flow = FakeModel(gaussian_eps(0.3, 0.8))
    flow.prediction = "flow"
    with pytest.raises(NodeInputError) as e:
        tiled(registry, flow, latent(32, 32), "random")
    assert e.value.input == "model" and "flow" in str(e.value)
    masked = ControlApplied(object(), torch.rand(1, 64, 64, 3), 1.0, mask=torch.ones(1, 1, 64, 64))
    for options, what in (({"control": masked}, "mask"), ({"concat_latent_image": torch.zeros(1, 4, 8, 8)}, "concat")):
        with pytest.raises(NodeInputError) as e:
            call(registry, "TiledKSampler", model=model, positive=[(torch.zeros(1, 77, 8), options)],
                 negative=prompt(0.0), latent_image=latent(32, 32), tile_width=256, tile_height=256)
        assert e.value.input == "positive" and what in str(e.value)
    with pytest.raises(NodeInputError) as e:
        call(registry, "TiledKSampler", model=model, positive=prompt(1.0), negative=prompt(0.0),
             latent_image={"samples": torch.zeros(1, 3, 8, 8) + 1})
    assert e.value.input == "latent_image"
    for area in (("a", 8, 0, 0), ("percentage", "half", 0.5, 0.0, 0.0), (8, 8, 0), ("percentage", 0.5, 0.5, 0.0)):
        for side in ("positive", "negative"):
            entry = [(torch.zeros(1, 77, 8), {"area": area})]
            inputs = {"positive": prompt(1.0), "negative": prompt(0.0), side: entry}
            with pytest.raises(NodeInputError) as e:
                call(registry, "TiledKSampler", model=model, latent_image=latent(32, 32), **inputs)
            assert e.value.input == side and "area" in str(e.value), (area, side)


def test_advanced_controlnet_masks_are_refused_by_name(registry):
    """Advanced-ControlNet's strength mask, a timestep keyframe's mask and masked weights scale the
    residuals over the whole image; cut to a tile they would be the whole mask stretched onto it."""
    from graphflow.models.advanced_control import (UNIVERSAL, AdvancedControl, ControlWeights, TimestepKeyframe,
                                                   TimestepKeyframes)

    mask = torch.zeros(1, 64, 64)
    mask[:, :32] = 1
    image = torch.rand(1, 64, 64, 3)
    plain = AdvancedControl(object(), image, 1.0)
    side = TileConditioning("positive", [(torch.zeros(1, 2, 3), {"control": plain})], 32, 32, {})
    [(_, options)] = side.cut(Tile(0, 16, 0, 16, 1), {})  # without a mask: cut as any ControlNet
    assert options["control"].image.shape == (1, 128, 128, 3)
    for control, what in (
            (AdvancedControl(object(), image, 1.0, strength_mask=mask), "strength mask"),
            (AdvancedControl(object(), image, 1.0, keyframes=TimestepKeyframes.only(TimestepKeyframe(mask=mask))),
             "keyframe's mask"),
            (AdvancedControl(object(), image, 1.0, weights_override=ControlWeights(UNIVERSAL, mask=mask)),
             "masked weights"),
            (AdvancedControl(object(), image, 1.0, keyframes=TimestepKeyframes.only(
                TimestepKeyframe(weights=ControlWeights(UNIVERSAL, mask=mask)))), "masked weights"),
            (AdvancedControl(object(), image, 0.5, previous=AdvancedControl(object(), image, 1.0, strength_mask=mask)),
             "strength mask")):  # one earlier in the chain too
        with pytest.raises(NodeInputError) as e:
            call(registry, "TiledKSampler", model=pointwise_model(), positive=prompt(1.0),
                 negative=[(torch.zeros(1, 77, 8), {"control": control})], latent_image=latent(32, 32),
                 tile_width=256, tile_height=256)
        assert e.value.input == "negative" and what in str(e.value), str(e.value)


def test_the_help_says_where_it_differs_from_the_pack():
    from nodes.pack_nodes_tiled_ksampler import TiledKSamplerAdvanced

    help_text = " ".join(TiledKSampler.description().split())
    for said in ("random, random strict and simple add it to the whole latent", "shifted columns by the tile's width",
                 "an area given in percent", "ends at the tile's edge", "carries the latent's noise_mask",
                 "keeps its own GLIGEN boxes", "sampled with the seed", "1,000,000 tile steps", "20000 steps"):
        assert said in help_text, said
    assert "start_at_step >= end_at_step returns the latent as given" in " ".join(
        TiledKSamplerAdvanced.description().split())


def test_the_memory_estimate_is_one_tiles():
    big = Size(1, 4096, 4096)
    estimate = TiledKSampler.estimate({"tile_width": 512, "tile_height": 768}, {"latent_image": big})
    assert estimate.size == big and estimate.memory == sampling_memory(Size(1, 768, 512))
    small = Size(2, 256, 320)
    assert TiledKSampler.estimate({"tile_width": 512, "tile_height": 512}, {"latent_image": small}).memory == \
        sampling_memory(small)


def demo_ui_graph(advanced=False):
    if advanced:
        sampler = ui_node(6, "BNK_TiledKSamplerAdvanced",
                          ["enable", 42, "fixed", 256, 256, "random strict", 3, 4.0, "euler", "karras", 0, 10000,
                           "disable", "enable"],
                          [("model", "MODEL", 1, False), ("positive", "CONDITIONING", 2, False),
                           ("negative", "CONDITIONING", 3, False), ("latent_image", "LATENT", 4, False)],
                          [("LATENT", "LATENT", [])])
    else:
        sampler = ui_node(6, "BNK_TiledKSampler",
                          [42, "randomize", 256, 256, "padded", 3, 4.0, "euler", "karras", 1.0],
                          [("model", "MODEL", 1, False), ("positive", "CONDITIONING", 2, False),
                           ("negative", "CONDITIONING", 3, False), ("latent_image", "LATENT", 4, False)],
                          [("LATENT", "LATENT", [])])
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["graphflow-demo.safetensors"],
                outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [5, 6]), ("VAE", "VAE", [])]),
        ui_node(2, "CLIPTextEncode", ["a red circle"], [("clip", "CLIP", 5, False)],
                [("CONDITIONING", "CONDITIONING", [2])]),
        ui_node(3, "CLIPTextEncode", ["blue"], [("clip", "CLIP", 6, False)], [("CONDITIONING", "CONDITIONING", [3])]),
        ui_node(4, "EmptyLatentImage", [320, 256, 1], outputs=[("LATENT", "LATENT", [4])]),
        sampler,
    ]
    links = [[1, 1, 0, 6, 0, "MODEL"], [2, 2, 0, 6, 1, "CONDITIONING"], [3, 3, 0, 6, 2, "CONDITIONING"],
             [4, 4, 0, 6, 3, "LATENT"], [5, 1, 1, 2, 0, "CLIP"], [6, 1, 1, 3, 0, "CLIP"]]
    return ui_graph(nodes, links)


@pytest.mark.parametrize("advanced", [False, True])
def test_a_ui_save_with_the_packs_classes_runs_and_exports_back(registry, advanced):
    graph = demo_ui_graph(advanced)
    workflow = parse_workflow(graph, registry)
    node = workflow.nodes["6"]
    if advanced:
        assert node.type == "TiledKSamplerAdvanced" and node.inputs["tiling_strategy"] == "random strict"
        assert node.inputs["noise_seed"] == 42 and node.inputs["preview"] == "enable"
    else:
        assert node.type == "TiledKSampler" and node.inputs["tiling_strategy"] == "padded"
        assert node.inputs["seed"] == 42 and node.inputs["denoise"] == 1.0
    result = run_graph(registry, graph, outputs=["6"])
    out = result.values["6"][0]["samples"]
    assert out.shape == (1, 4, 32, 40) and torch.isfinite(out).all() and out.abs().max() > 0.05
    saved = {n["id"]: n for n in export_ui(workflow, registry)["nodes"]}
    original = {n["id"]: n for n in graph["nodes"]}
    assert saved[6]["type"] == original[6]["type"]
    assert saved[6]["widgets_values"] == original[6]["widgets_values"]


def test_an_api_prompt_with_the_packs_classes_round_trips(registry):
    prompt_graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "graphflow-demo.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "blue", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 320, "height": 256, "batch_size": 1}},
        "5": {"class_type": "BNK_TiledKSamplerAdvanced", "inputs": {
            "model": ["1", 0], "add_noise": "enable", "noise_seed": 9, "tile_width": 256, "tile_height": 256,
            "tiling_strategy": "simple", "steps": 2, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal",
            "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0], "start_at_step": 0,
            "end_at_step": 10000, "return_with_leftover_noise": "disable", "preview": "disable"}},
    }
    result = run_graph(registry, prompt_graph, outputs=["5"])
    assert torch.isfinite(result.values["5"][0]["samples"]).all()
    api = export_api(parse_workflow(prompt_graph, registry), registry)
    for node_id, entry in prompt_graph.items():
        assert api[node_id]["class_type"] == entry["class_type"]
        assert api[node_id]["inputs"] == entry["inputs"], node_id


def test_the_pack_is_named_by_whole_class_names():
    assert custom_pack("BNK_TiledKSampler") == "ComfyUI_TiledKSampler"
    assert custom_pack("BNK_TiledKSamplerAdvanced") == "ComfyUI_TiledKSampler"
    assert custom_pack("BNK_NoiseFromSomewhere") != "ComfyUI_TiledKSampler"


# -- a real ControlNet through tiles ------------------------------------------------------------

@pytest.fixture
def controlnet_models(tmp_folders):
    from graphflow.testing import write_checkpoint, write_controlnet

    (tmp_folders.models / "controlnet").mkdir(parents=True, exist_ok=True)
    (tmp_folders.models / "checkpoints").mkdir(parents=True, exist_ok=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    write_controlnet(tmp_folders.models / "controlnet" / "net.safetensors", "sd1")
    return tmp_folders.models


def test_a_controlnet_sees_its_hint_cut_to_each_tile(registry, controlnet_models, monkeypatch):
    from graphflow.models.controlnet import ControlApplied

    model, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    net = call(registry, "LoadControlNet", control_net_name="net.safetensors")
    positive = call(registry, "CLIPEncode", text="a red circle", clip=clip)
    negative = call(registry, "CLIPEncode", text="", clip=clip)
    image = torch.rand(1, 256, 288, 3, generator=torch.Generator().manual_seed(0))  # the latent's pixel size
    applied = call(registry, "ApplyControlNet", conditioning=positive, control_net=net, image=image, strength=1.0)
    start = latent(32, 36)

    def run(node, positive, **widgets):
        return call(registry, node, model=model, positive=positive, negative=negative, latent_image=start,
                    steps=2, cfg=4.0, sampler_name="euler", scheduler="normal", denoise=0.6, **widgets)["samples"]

    # one tile as large as the latent: KSampler's run, hint and all
    whole = run("TiledKSampler", applied, seed=2, tile_width=320, tile_height=256, tiling_strategy="simple")
    torch.testing.assert_close(whole, run("KSampler", applied, seed=2), rtol=1e-3, atol=1e-3)
    # tiles of 256 x 256 pixels: every hint the net reads is the image's part under the tile
    seen = []
    hint = ControlApplied.hint

    def recorded(self, *args, **kwargs):
        out = hint(self, *args, **kwargs)
        seen.append(out.float().cpu())
        return out

    monkeypatch.setattr(ControlApplied, "hint", recorded)
    tiled_out = run("TiledKSampler", applied, seed=2, tile_width=256, tile_height=256, tiling_strategy="random strict")
    pixels = image.movedim(-1, 1)
    assert seen and all(h.shape[-2:] == (256, 256) for h in seen)
    for h in seen:
        assert any(torch.allclose(h, pixels[:, :, :, x:x + 256].to(h.dtype), atol=1e-2) for x in range(0, 33, 8))
    assert torch.isfinite(tiled_out).all()
    plain = run("TiledKSampler", positive, seed=2, tile_width=256, tile_height=256, tiling_strategy="random strict")
    assert (tiled_out - plain).abs().max() > 1e-3  # the control did something


def test_prompt_editing_switches_in_tiles_as_in_ksampler(registry):
    """A CLIP Text Encode++ edit ([circle:square:0.5]) switches at the schedule's middle step in tile
    runs as in KSampler: one full padded tile gives KSampler's latent (not the unedited prompt's),
    and "random"'s one-step tile runs count their step in the whole schedule (each run's own two
    sigmas would always be its first step: the edit never switched, the result was all "circle")."""
    def encode(text):
        return {"class_type": "smZ CLIPTextEncode", "inputs": {
            "text": text, "clip": ["1", 1], "parser": "A1111", "mean_normalization": True,
            "multi_conditioning": True, "use_old_emphasis_implementation": False, "with_SDXL": False, "ascore": 6.0,
            "width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024,
            "text_g": "", "text_l": ""}}

    sampling = {"seed": 3, "steps": 4, "cfg": 5.0, "sampler_name": "euler", "scheduler": "karras", "denoise": 1.0,
                "model": ["1", 0], "negative": ["3", 0], "latent_image": ["4", 0]}

    def tiled(positive, strategy):
        return {"class_type": "BNK_TiledKSampler", "inputs": {**sampling, "positive": [positive, 0], "tile_width": 256,
                                                             "tile_height": 256, "tiling_strategy": strategy}}

    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "graphflow-demo.safetensors"}},
        "2": encode("a red [circle:square:0.5]"),
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 256, "height": 256, "batch_size": 1}},
        "5": {"class_type": "KSampler", "inputs": {**sampling, "positive": ["2", 0]}},
        "6": tiled("2", "padded"),
        "7": encode("a red circle"),
        "8": {"class_type": "KSampler", "inputs": {**sampling, "positive": ["7", 0]}},
        "10": encode("a red square"),
        "11": tiled("2", "random"), "12": tiled("7", "random"), "13": tiled("10", "random"),
    }
    keys = ["5", "6", "8", "11", "12", "13"]
    result = run_graph(registry, graph, outputs=keys)
    got = {k: result.values[k][0]["samples"] for k in keys}
    assert not torch.allclose(got["5"], got["8"], atol=1e-3)
    assert torch.equal(got["6"], got["5"])
    for plain in ("12", "13"):
        assert not torch.allclose(got["11"], got[plain], atol=1e-3), plain


def test_counting_stops_past_the_cap():
    """10,000 random steps over an 8192 x 8192 latent in 256-pixel tiles: the count stops once past
    MAX_TILE_STEPS (it took seconds counting every step of a run refused anyway)."""
    import time

    from nodes.pack_nodes_tiled_ksampler import MAX_TILE_STEPS

    start = time.perf_counter()
    total = tile_steps("random", 10000, 1024, 1024, 32, 32, 0)
    assert total > MAX_TILE_STEPS and time.perf_counter() - start < 2.0
