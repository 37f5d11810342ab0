"""shiimizu's ComfyUI-TiledDiffusion (nodes/pack_nodes_tiled_diffusion.py): the tile grid, the batches,
Mixture of Diffusers' weights and SpotDiffusion's shifts against the pack's formulas transcribed here
(tiled_diffusion.py at 1169db008422); tiled network calls against the untiled ones (a pointwise
network, for which tiles can't matter; a random-weight SD1 UNet on a latent one tile covers), the
blend of a network with reach against the pack's loop written out; a ControlNet hint cut per tile;
the refusals; the pack's inputs and a UI-format save."""

import math

import numpy as np
import pytest
import torch

from graphflow.comfy_format import custom_pack, unknown_type_hint
from graphflow.context import NodeInputError
from graphflow.testing import write_checkpoint, write_controlnet
from nodes.pack_nodes_tiled_diffusion import (TiledDiffusion, TiledDiffusionParams, SpotDiffusionParams,
                                              TiledDiffusionWrapper, fibonacci_spacing, gaussian_weights, spot_roll,
                                              spot_shifts, tile_batches, tile_grid)
from tests.sampling_fakes import FakeModel, gaussian_eps, prompt
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node


@pytest.fixture(scope="module")
def registry(builtin_registry):
    return builtin_registry


# -- the pack's formulas, transcribed -------------------------------------------------------------

def pack_grid(w, h, tile_w, tile_h, overlap):
    """init_grid_bbox + split_bboxes: (x, y) of each tile, rows first."""
    overlap = max(0, min(overlap, min(tile_w, tile_h) - 4))
    tile_w, tile_h = min(tile_w, w), min(tile_h, h)
    cols = -((w - overlap) // -(tile_w - overlap))
    rows = -((h - overlap) // -(tile_h - overlap))
    dx = (w - tile_w) / (cols - 1) if cols > 1 else 0
    dy = (h - tile_h) / (rows - 1) if rows > 1 else 0
    return [(min(int(row * dy), h - tile_h), min(int(col * dx), w - tile_w), tile_h, tile_w)
            for row in range(rows) for col in range(cols)]


def pack_gaussian(tile_w, tile_h):
    f = lambda x, midpoint, var=0.01: np.exp(-(x - midpoint) * (x - midpoint) / (tile_w * tile_w) / (2 * var)) \
        / np.sqrt(2 * np.pi * var)  # noqa: E731
    x_probs = [f(x, (tile_w - 1) / 2) for x in range(tile_w)]
    y_probs = [f(y, tile_h / 2) for y in range(tile_h)]
    return torch.from_numpy(np.outer(y_probs, x_probs)).float()


SIZES = [(h, w, th, tw, o) for h in (9, 16, 40, 57) for w in (8, 24, 64, 77)
         for th, tw in ((16, 16), (24, 12), (96, 96)) for o in (0, 4, 8, 30)]


def test_the_grid_is_the_packs():
    for height, width, tile_h, tile_w, overlap in SIZES:
        try:
            want = pack_grid(width, height, tile_w, tile_h, overlap)
        except ZeroDivisionError:  # the pack's failure: a tile the latent's size, as large as the overlap
            want = None
        got = tile_grid(height, width, tile_h, tile_w, overlap)
        if want is not None:
            assert got == want, (height, width, tile_h, tile_w, overlap)
        count = torch.zeros(height, width)
        for y, x, h, w in got:
            assert 0 <= y and y + h <= height and 0 <= x and x + w <= width
            count[y:y + h, x:x + w] += 1
        assert count.min() >= 1  # every latent pixel is in a tile
    assert tile_grid(8, 8, 96, 96, 8) == [(0, 0, 8, 8)]  # the pack: ZeroDivisionError


def test_batches_are_the_packs_optimal_batch_size():
    for n in range(1, 30):
        for size in range(1, 9):
            tiles = list(range(n))
            batches = tile_batches(tiles, size)
            count = math.ceil(n / size)
            per = math.ceil(n / count)
            assert batches == [tiles[i * per:(i + 1) * per] for i in range(count)]
            assert sum(batches, []) == tiles


def test_gaussian_weights_are_the_packs_including_its_quirk():
    for tile_w, tile_h in ((8, 8), (12, 20), (17, 5)):
        torch.testing.assert_close(gaussian_weights(tile_w, tile_h), pack_gaussian(tile_w, tile_h), rtol=1e-6, atol=0)
    bell = gaussian_weights(10, 10)
    assert not torch.allclose(bell, bell.T)  # down centred at h / 2, across at (w - 1) / 2: the pack's


def pack_fibonacci(x):
    result = torch.zeros_like(x)
    fib = [0, 1]
    while fib[-1] < len(x):
        fib.append(fib[-1] + fib[-2])
    used = set()
    for i, val in enumerate(x):
        target = fib[i % len(fib)] % len(x)
        while target in used:
            target = (target + 1) % len(x)
        result[target] = val
        used.add(target)
    return result


@pytest.mark.parametrize("method", ["random", "sorted", "fibonacci"])
def test_spot_shifts_are_the_packs(method):
    steps, th, tw, seed = 13, 12, 20, 5
    height = torch.randint(0, th, (steps,), generator=torch.Generator(device="cpu").manual_seed(seed))
    width = torch.randint(0, tw, (steps,), generator=torch.Generator(device="cpu").manual_seed(seed))
    if method == "sorted":
        height, width = height.sort().values, width.sort().values
    elif method == "fibonacci":
        height, width = pack_fibonacci(height.sort().values), pack_fibonacci(width.sort().values)
    got = spot_shifts(steps, th, tw, seed, method)
    assert torch.equal(got[0], height) and torch.equal(got[1], width)
    assert torch.equal(fibonacci_spacing(torch.arange(8)), pack_fibonacci(torch.arange(8)))
    # the pack's default seed without SpotDiffusionParams is -1: torch takes it as 2**64 - 1
    assert torch.equal(spot_shifts(4, th, tw, -1, "random")[0],
                       torch.randint(0, th, (4,), generator=torch.Generator().manual_seed(2 ** 64 - 1)))


def test_spot_roll_follows_the_packs_rule():
    for step in range(4):
        for tile_h, tile_w in ((8, 6), (6, 8), (6, 6)):
            condition = step % 2 == 0 if tile_h > tile_w else step % 2 != 0
            assert spot_roll(step, 3, 2, 20, 20, tile_h, tile_w) == ((3, 0) if condition else (0, 2))
    assert spot_roll(1, 3, 2, 8, 20, 8, 6) == (0, 2)  # one tile covers the height: no roll down
    assert spot_roll(1, 3, 2, 20, 6, 8, 6) == (3, 0)
    assert spot_roll(0, 0, 2, 20, 20, 8, 6) == (0, 2)


# -- the wrapper against the pack's loops -----------------------------------------------------------

def recording_run(network, seen):
    def run(xc, regions=None, shift=(0, 0)):
        seen.append((xc.clone(), regions, shift))
        return network(xc)
    return run


def reach(xc):
    """A network whose output reads its neighbours (so tiles matter), with one more output channel."""
    out = torch.tanh(xc + 0.5 * xc.roll(1, -1) - 0.25 * xc.roll(2, -2))
    return torch.cat([out, out[:, :1] * 2], dim=1)


def pack_blend(method, x, tile, overlap, batch):
    """The pack's MultiDiffusion / MixtureOfDiffusers loop (tiled_diffusion.py) over `reach`."""
    n, _, h, w = x.shape
    grid = pack_grid(w, h, tile, tile, overlap)
    buffer = torch.zeros(n, x.shape[1] + 1, h, w)
    weights = torch.zeros(1, 1, h, w)
    tile_h, tile_w = min(tile, h), min(tile, w)
    bell = pack_gaussian(tile_w, tile_h) if method == "Mixture of Diffusers" else 1.0
    for y, x0, th, tw in grid:
        weights[..., y:y + th, x0:x0 + tw] += bell
    for y, x0, th, tw in grid:
        out = reach(x[..., y:y + th, x0:x0 + tw])
        if method == "MultiDiffusion":
            buffer[..., y:y + th, x0:x0 + tw] += out
        else:
            buffer[..., y:y + th, x0:x0 + tw] += out * bell * (1 / weights)[..., y:y + th, x0:x0 + tw]
    return torch.where(weights > 1, buffer / weights, buffer) if method == "MultiDiffusion" else buffer


@pytest.mark.parametrize("method", ["MultiDiffusion", "Mixture of Diffusers"])
def test_blending_is_the_packs(method):
    x = torch.randn(2, 5, 30, 41, generator=torch.Generator().manual_seed(0))
    seen = []
    state = TiledDiffusionWrapper(method, 16 * 8, 16 * 8, 4 * 8, 3)()
    got = state(recording_run(reach, seen), x, torch.tensor([3.0, 3.0]), 4)
    torch.testing.assert_close(got, pack_blend(method, x, 16, 4, 3), rtol=1e-5, atol=1e-6)
    grid = tile_grid(30, 41, 16, 16, 4)
    assert [r for _, r, _ in seen] == tile_batches(grid, 3)
    assert all(xc.shape[0] == 2 * len(r) and xc.shape[2:] == (16, 16) for xc, r, _ in seen)  # a tile's memory


def test_each_batch_of_tiles_checks_for_an_interrupt(monkeypatch):
    import nodes.pack_nodes_tiled_diffusion as pack

    checks = []
    monkeypatch.setattr(pack, "check_interrupted", lambda: checks.append(1))
    state = TiledDiffusionWrapper("MultiDiffusion", 16 * 8, 16 * 8, 4 * 8, 2)()
    state(recording_run(reach, []), torch.zeros(1, 4, 30, 41), torch.tensor([1.0]), 4)
    assert len(checks) == len(tile_batches(tile_grid(30, 41, 16, 16, 4), 2)) > 1


def test_spot_diffusion_rolls_tiles_and_back_as_the_pack():
    x = torch.randn(1, 4, 24, 40, generator=torch.Generator().manual_seed(1))
    sigmas = torch.tensor([14.6, 7.0, 3.0, 1.0, 0.0])
    wrapper = TiledDiffusionWrapper("SpotDiffusion", 16 * 8, 12 * 8, 2 * 8, 2).with_options(seed=9)
    state = wrapper()
    state.start_run(sigmas)
    shifts = spot_shifts(4, 12, 16, 9, "random")
    for step, sigma in enumerate(sigmas[:-1]):
        seen = []
        got = state(recording_run(reach, seen), x, (sigma + 0.01).reshape(1), 4)  # the nearest sigma's step
        roll = spot_roll(step, int(shifts[0][step]), int(shifts[1][step]), 24, 40, 12, 16)
        assert {s for _, _, s in seen} == {roll}
        rolled = x.roll(roll, dims=(-2, -1))
        want = torch.zeros(1, 5, 24, 40)
        for y, x0, h, w in pack_grid(40, 24, 16, 12, 2):  # assigned in order: a later tile overwrites
            want[..., y:y + h, x0:x0 + w] = reach(rolled[..., y:y + h, x0:x0 + w])
        assert torch.equal(got, want.roll((-roll[0], -roll[1]), dims=(-2, -1)))


def pointwise(xc):
    return torch.tanh(xc) * 0.7 + xc[:, :1] * 0.1


@pytest.mark.parametrize("method", ["MultiDiffusion", "Mixture of Diffusers", "SpotDiffusion"])
def test_a_pointwise_network_is_the_untiled_call(method):
    x = torch.randn(2, 4, 33, 50, generator=torch.Generator().manual_seed(2))
    state = TiledDiffusionWrapper(method, 16 * 8, 20 * 8, 8 * 8, 2)()
    state.start_run(torch.tensor([5.0, 1.0, 0.0]))
    got = state(recording_run(pointwise, []), x, torch.tensor([5.0, 5.0]), 4)
    if method == "SpotDiffusion":  # each pixel from one tile
        assert torch.equal(got, pointwise(x))
    else:  # averages of equal values (three tiles' sum / 3), weights summing to 1: up to rounding
        torch.testing.assert_close(got, pointwise(x), rtol=1e-6, atol=1e-6)


# -- sampling ---------------------------------------------------------------------------------------

def tiled_model(registry, model, method="MultiDiffusion", tile=128, overlap=32, batch=4):
    return call(registry, "TiledDiffusion", model=model, method=method, tile_width=tile, tile_height=tile,
                tile_overlap=overlap, tile_batch_size=batch)


def ksampler(registry, model, latent, positive=None, negative=None, steps=4, seed=3):
    return call(registry, "KSampler", model=model, seed=seed, steps=steps, cfg=3.0, sampler_name="euler",
                scheduler="karras", positive=positive or prompt(1.0), negative=negative or prompt(0.0),
                latent_image=latent, denoise=1.0)["samples"]


@pytest.mark.parametrize("method", ["MultiDiffusion", "SpotDiffusion"])
def test_ksampler_through_tiled_diffusion_with_a_pointwise_model_is_ksampler(registry, method):
    model = FakeModel(gaussian_eps(0.3, 0.8))
    latent = {"samples": torch.zeros(1, 4, 40, 56)}
    want = ksampler(registry, model, latent)
    model.unet.calls.clear()
    got = ksampler(registry, tiled_model(registry, model, method), latent)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    shapes = {tuple(c["x"].shape[2:]) for c in model.unet.calls}
    assert shapes == {(16, 16)}  # the network saw tiles only


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiled_diffusion")
    write_checkpoint(root / "tiny.safetensors", "sd1")
    write_controlnet(root / "cn.safetensors", "sd1", seed=1)
    return root


@pytest.fixture
def sd1(registry, tmp_folders, model_files):
    for kind, name in (("checkpoints", "tiny.safetensors"), ("controlnet", "cn.safetensors")):
        (tmp_folders.models / kind).mkdir(exist_ok=True)
        (tmp_folders.models / kind / name).symlink_to(model_files / name)
    model, clip, _ = call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    positive = call(registry, "CLIPEncode", text="a red circle", clip=clip)
    negative = call(registry, "CLIPEncode", text="", clip=clip)
    return model, positive, negative


@pytest.mark.parametrize("method", ["MultiDiffusion", "Mixture of Diffusers", "SpotDiffusion"])
def test_a_real_unet_on_a_latent_one_tile_covers_is_the_untiled_model(registry, sd1, method):
    model, positive, negative = sd1
    latent = {"samples": torch.zeros(1, 4, 16, 16)}
    want = ksampler(registry, model, latent, positive, negative, steps=2)
    got = ksampler(registry, tiled_model(registry, model, method, tile=256), latent, positive, negative, steps=2)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_a_real_unet_sampled_in_tiles(registry, sd1):
    model, positive, negative = sd1
    latent = {"samples": torch.zeros(1, 4, 16, 24)}
    seen = []
    handle = model.unet.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    try:
        got = ksampler(registry, tiled_model(registry, model, "Mixture of Diffusers", tile=128, overlap=64),
                       latent, positive, negative, steps=2)
    finally:
        handle.remove()
    assert torch.isfinite(got).all() and got.shape == (1, 4, 16, 24)
    assert {s[2:] for s in seen} == {(16, 16)} and {s[0] for s in seen} == {2 * 2}  # two tiles, cond + uncond
    assert (got - ksampler(registry, model, latent, positive, negative, steps=2)).abs().max() > 1e-4


def test_a_controlnet_hint_is_cut_per_tile(registry, sd1):
    from graphflow.models.controlnet import resize_hint

    model, positive, negative = sd1
    net = call(registry, "LoadControlNet", control_net_name="cn.safetensors")
    image = torch.rand(1, 100, 150, 3, generator=torch.Generator().manual_seed(0))
    controlled = call(registry, "ApplyControlNet", conditioning=positive, control_net=net, image=image, strength=0.9)
    latent = {"samples": torch.zeros(1, 4, 16, 24)}
    # one tile: the cut path gives the untiled picture
    want = ksampler(registry, model, latent, controlled, negative, steps=2)
    got = ksampler(registry, tiled_model(registry, model, tile=256), latent, controlled, negative, steps=2)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # each tile's hint: the hint stretched to the latent's pixel size, (rolled and) cut
    applied = controlled[0][1]["control"]
    stretched = resize_hint(image, 128, 192)
    for region, shift in (((0, 8, 16, 16), (0, 0)), ((0, 0, 16, 16), (0, 5))):
        cut = applied.cut(region, (16, 24), shift)
        y, x, h, w = (8 * v for v in region)
        want_hint = stretched.roll((8 * shift[0], 8 * shift[1]), dims=(-2, -1))[:, :, y:y + h, x:x + w]
        assert torch.equal(cut.image.movedim(-1, 1), want_hint)
        assert torch.equal(cut.hint(128, 128, 1, "cpu", torch.float32), want_hint)  # no second resize
    # sampled in two tiles (columns 0 and 8), the net sees each tile's part of the hint
    hints = []
    handle = applied.net.register_forward_pre_hook(lambda module, args: hints.append(args[1].detach().float().clone()))
    try:
        tiled = ksampler(registry, tiled_model(registry, model, tile=128, overlap=64), latent, controlled, negative,
                         steps=2)
    finally:
        handle.remove()
    assert torch.isfinite(tiled).all()
    assert len(hints) == 2 * 2  # two steps, two tiles
    for hint, x in zip(hints, (0, 64, 0, 64)):
        torch.testing.assert_close(hint[:1], stretched[..., x:x + 128], rtol=0, atol=1e-3)  # the net's dtype
        assert (hint[:1] - stretched[..., 32:160]).abs().max() > 0.1  # not some other part


def test_a_t2i_adapter_reads_each_tiles_hint(registry, sd1, tmp_folders):
    """A T2I-Adapter caches its features per control: each tile's cut is its own control, kept
    with the features, so a tile never takes another tile's (freed cuts hand on their ids)."""
    from safetensors.torch import save_file

    from graphflow.models.controlnet import resize_hint
    from graphflow.models.t2i_adapter import T2IAdapter, T2IAdapterConfig

    model, positive, negative = sd1
    cfg = model.unet.config
    torch.manual_seed(0)
    adapter = T2IAdapter(T2IAdapterConfig(channels=tuple(m * cfg.model_channels for m in cfg.channel_mult)))
    save_file({k: v.contiguous() for k, v in adapter.state_dict().items()},
              str(tmp_folders.models / "controlnet" / "t2i.safetensors"))
    net = call(registry, "LoadControlNet", control_net_name="t2i.safetensors")
    image = torch.rand(1, 128, 192, 3, generator=torch.Generator().manual_seed(1))
    controlled = call(registry, "ApplyControlNet", conditioning=positive, control_net=net, image=image, strength=1.0)
    latent = {"samples": torch.zeros(1, 4, 16, 24)}
    hints = []
    handle = net.register_forward_pre_hook(lambda module, args: hints.append(args[0].detach().float().clone()))
    try:
        got = ksampler(registry, tiled_model(registry, model, tile=128, overlap=64), latent, controlled, negative,
                       steps=3)
    finally:
        handle.remove()
    assert torch.isfinite(got).all()
    stretched = resize_hint(image, 128, 192)
    assert len(hints) == 3 * 2  # each step's two tiles computed afresh
    for hint, x in zip(hints, (0, 64) * 3):
        torch.testing.assert_close(hint[:1], stretched[..., x:x + 128], rtol=0, atol=1e-3)


@pytest.fixture(scope="module")
def flux_dev(tmp_path_factory):
    """A random-weight FLUX dev (2x2 patches, guidance) and its config."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.testing import flow_model_config, write_flow_checkpoint

    path = write_flow_checkpoint(tmp_path_factory.mktemp("flux") / "flux.safetensors", "flux_dev",
                                 dtype=torch.float32, components=("model",))
    return load_diffusion_model(path, device="cpu", dtype=torch.float32), flow_model_config("flux_dev")


def test_flux_tiles_are_the_untiled_model_on_each_tile_blended(registry, flux_dev):
    """A random-weight FLUX dev (2x2 patches, guidance): the tiled call is the untiled model on each
    tile's crop, averaged (MultiDiffusion); a latent one tile covers is the untiled call."""
    from graphflow.sampling.flow_sampling import FlowDenoiser

    model, cfg = flux_dev
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 12, 20, generator=g)
    sigma = torch.tensor([0.7, 0.7])
    inputs = {"context": torch.randn(2, 5, cfg.context_in_dim, generator=g),
              "y": torch.randn(2, cfg.vec_in_dim, generator=g), "guidance": torch.tensor([3.5, 3.5])}
    plain = FlowDenoiser(model)
    with torch.no_grad():
        one = FlowDenoiser(tiled_model(registry, model, tile=256))(x, sigma, **inputs)
        torch.testing.assert_close(one, plain(x, sigma, **inputs), rtol=1e-5, atol=1e-5)
        got = FlowDenoiser(tiled_model(registry, model, tile=96, overlap=32, batch=2))(x, sigma, **inputs)
        grid = tile_grid(12, 20, 12, 12, 4)
        assert len(grid) == 2
        want, count = torch.zeros_like(x), torch.zeros(12, 20)
        for y, x0, h, w in grid:
            want[..., y:y + h, x0:x0 + w] += plain(x[..., y:y + h, x0:x0 + w], sigma, **inputs)
            count[y:y + h, x0:x0 + w] += 1
    torch.testing.assert_close(got, want / count, rtol=1e-4, atol=1e-5)


def test_params_nodes_change_the_tiled_diffusion_on_the_model(registry):
    model = FakeModel(gaussian_eps(0.3, 0.8))
    tiled = tiled_model(registry, model, "SpotDiffusion")
    spot = call(registry, "SpotDiffusionParams", model=tiled, shift_method="sorted", seed=7)
    [wrapper] = spot.network_wrappers
    assert (wrapper.seed, wrapper.shift_method) == (7, "sorted") and tiled.network_wrappers[0].seed == -1
    ranged = call(registry, "TiledDiffusionParams", model=spot, start_sigma=2.0, end_sigma=0.0)
    assert (ranged.network_wrappers[0].start_sigma, ranged.network_wrappers[0].seed) == (2.0, 7)
    # outside the range the whole latent is one call
    latent = {"samples": torch.zeros(1, 4, 40, 56)}
    model.unet.calls.clear()
    ksampler(registry, ranged, latent)
    whole = [c for c in model.unet.calls if c["x"].shape[2:] == (40, 56)]
    tiles = [c for c in model.unet.calls if c["x"].shape[2:] == (16, 16)]
    assert whole and tiles


def test_refusals(registry, sd1):
    from graphflow.sampling.model_sampling import ModelDenoiser
    from graphflow.sampling.step_cache import with_easycache

    model = FakeModel(gaussian_eps(0.3, 0.8))
    for node in ("SpotDiffusionParams", "TiledDiffusionParams"):
        with pytest.raises(NodeInputError) as error:
            call(registry, node, model=model)
        assert error.value.input == "model" and "after the Tiled Diffusion node" in str(error.value)
    video = FakeModel(gaussian_eps(0.3, 0.8))
    video.is_video = True
    with pytest.raises(NodeInputError) as error:
        tiled_model(registry, video)
    assert error.value.input == "model"
    # a wrapper after TiledDiffusion would see tiles
    latent = {"samples": torch.zeros(1, 4, 40, 56)}
    with pytest.raises(Exception, match="apply TiledDiffusion last"):
        ksampler(registry, with_easycache(tiled_model(registry, model), 0.2, 0.0, 1.0), latent)
    # GLIGEN boxes can't be cut to tiles
    denoiser = ModelDenoiser(tiled_model(registry, model))
    with pytest.raises(ValueError, match="GLIGEN"):
        denoiser(torch.zeros(1, 4, 40, 56), torch.tensor([1.0]), prompt(1.0)[0][0], gligen=object())


# -- the pack's inputs and a UI-format save -----------------------------------------------------------

PACK_INPUTS = {  # INPUT_TYPES as read: (name, default, min, max, step)
    TiledDiffusion: [("model", None), ("method", "Mixture of Diffusers"), ("tile_width", 768, 16, 8192, 16),
                     ("tile_height", 768, 16, 8192, 16), ("tile_overlap", 64, 0, 2048, 32),
                     ("tile_batch_size", 4, 1, 8192, 1)],
    SpotDiffusionParams: [("model", None), ("shift_method", "random"), ("seed", 0, 0, 0xffffffffffffffff, 1)],
    TiledDiffusionParams: [("model", None), ("start_sigma", 9999.0, 0.0, 9999.0, 0.01),
                           ("end_sigma", 0.0, 0.0, 9999.0, 0.01)],
}


def test_inputs_are_the_packs():
    for cls, inputs in PACK_INPUTS.items():
        specs = list(cls.input_specs.values())
        assert [s.name for s in specs] == [i[0] for i in inputs]
        for spec, (name, default, *bounds) in zip(specs, inputs):
            if default is None:
                continue
            assert spec.widget.default == default, name
            if bounds:
                assert (spec.widget.min, spec.widget.max, spec.widget.step) == tuple(bounds), name
        assert cls.category == "_for_testing"
    assert TiledDiffusion.input_specs["method"].widget.options == ["MultiDiffusion", "Mixture of Diffusers",
                                                                   "SpotDiffusion"]
    for name in ("TiledDiffusion", "SpotDiffusionParams_TiledDiffusion", "TiledDiffusionParams_TiledDiffusion"):
        assert custom_pack(name) == "ComfyUI-TiledDiffusion"


def test_the_tiled_vae_is_the_packs(registry):
    for name in ("VAEEncodeTiled_TiledDiffusion", "VAEDecodeTiled_TiledDiffusion"):
        assert custom_pack(name) == "ComfyUI-TiledDiffusion" and "not built" not in unknown_type_hint(name)
        assert registry.comfy_node(name) is not None


def test_a_ui_save_reads_and_runs(registry, sd1):
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [5, 6]), ("VAE", "VAE", [])]),
        ui_node(2, "TiledDiffusion", ["SpotDiffusion", 64, 96, 32, 2], [("model", "MODEL", 1, False)],
                [("MODEL", "MODEL", [2])]),
        ui_node(3, "SpotDiffusionParams_TiledDiffusion", ["fibonacci", 5, "fixed"], [("model", "MODEL", 2, False)],
                [("MODEL", "MODEL", [3])]),
        ui_node(4, "TiledDiffusionParams_TiledDiffusion", [9999, 0], [("model", "MODEL", 3, False)],
                [("MODEL", "MODEL", [4])]),
        ui_node(5, "CLIPTextEncode", ["a cat"], [("clip", "CLIP", 5, False)], [("CONDITIONING", "CONDITIONING", [7])]),
        ui_node(6, "CLIPTextEncode", [""], [("clip", "CLIP", 6, False)], [("CONDITIONING", "CONDITIONING", [8])]),
        ui_node(7, "EmptyLatentImage", [128, 192, 1], outputs=[("LATENT", "LATENT", [9])]),
        ui_node(8, "KSampler", [1, "fixed", 2, 4.0, "euler", "normal", 1.0],
                [("model", "MODEL", 4, False), ("positive", "CONDITIONING", 7, False),
                 ("negative", "CONDITIONING", 8, False), ("latent_image", "LATENT", 9, False)],
                [("LATENT", "LATENT", [])]),
    ]
    links = [[1, 1, 0, 2, 0, "MODEL"], [2, 2, 0, 3, 0, "MODEL"], [3, 3, 0, 4, 0, "MODEL"], [4, 4, 0, 8, 0, "MODEL"],
             [5, 1, 1, 5, 0, "CLIP"], [6, 1, 1, 6, 0, "CLIP"], [7, 5, 0, 8, 1, "CONDITIONING"],
             [8, 6, 0, 8, 2, "CONDITIONING"], [9, 7, 0, 8, 3, "LATENT"]]
    result = run_graph(registry, ui_graph(nodes, links), outputs=["4", "8"])
    [wrapper] = result.values["4"][0].network_wrappers if isinstance(result.values["4"], tuple) \
        else result.values["4"].network_wrappers
    assert (wrapper.method, wrapper.tile_w, wrapper.tile_h, wrapper.overlap, wrapper.batch_size) == \
        ("SpotDiffusion", 8, 12, 4, 2)
    assert (wrapper.shift_method, wrapper.seed, wrapper.start_sigma, wrapper.end_sigma) == ("fibonacci", 5, 9999, 0)
    samples = result.values["8"]
    samples = samples[0] if isinstance(samples, tuple) else samples
    assert samples["samples"].shape == (1, 4, 24, 16) and torch.isfinite(samples["samples"]).all()


def test_an_ip_adapter_gives_the_same_latent_at_any_tile_batch_size(registry, sd1, tmp_path):
    """Tiles stacked in one call each keep their rows' roles: the negative prompt's rows get the
    uncond image tokens however many tiles share the call."""
    from graphflow.models.ip_adapter import apply_ip_adapter, load_ip_adapter
    from graphflow.testing import write_ip_adapter

    model, positive, negative = sd1
    adapter = load_ip_adapter(write_ip_adapter(tmp_path / "ipa.safetensors", "sd1", dtype=torch.float32,
                                               unet=model.unet.config, scale=3.0))
    tokens = adapter.tokens(torch.randn(1, 32, generator=torch.Generator().manual_seed(1)))
    patched = apply_ip_adapter(model, adapter, tokens, torch.zeros_like(tokens), 1.0)
    latent = {"samples": torch.zeros(1, 4, 16, 24)}
    one, four = (ksampler(registry, tiled_model(registry, patched, tile=128, overlap=64, batch=batch), latent,
                          positive, negative, steps=2) for batch in (1, 4))
    torch.testing.assert_close(four, one, rtol=1e-3, atol=2e-3)  # batched float rounding only


def test_spot_diffusion_under_ksampler_advanced_takes_the_whole_schedules_shifts(registry, monkeypatch):
    """start_at_step 4 of 8: the steps run are the schedule's 4..7, with the shifts the pack draws
    for all 8 steps (it reads KSampler's sigmas before the cut), sorted over all 8."""
    import nodes.pack_nodes_tiled_diffusion as pack

    rolls = []
    real_roll = pack.spot_roll
    monkeypatch.setattr(pack, "spot_roll", lambda step, sh, sw, *rest: rolls.append((step, sh, sw))
                        or real_roll(step, sh, sw, *rest))
    model = call(registry, "SpotDiffusionParams", model=tiled_model(registry, FakeModel(gaussian_eps(0.3, 0.8)),
                                                                     "SpotDiffusion"), shift_method="sorted", seed=7)
    call(registry, "KSamplerAdvanced", model=model, add_noise="enable", noise_seed=3, steps=8, cfg=3.0,
         sampler_name="euler", scheduler="karras", positive=prompt(1.0), negative=prompt(0.0),
         latent_image={"samples": torch.zeros(1, 4, 40, 56)}, start_at_step=4, end_at_step=10000,
         return_with_leftover_noise="disable")
    heights, widths = spot_shifts(8, 16, 16, 7, "sorted")
    assert rolls == [(step, int(heights[step]), int(widths[step])) for step in range(4, 8)]


def test_self_attention_guidance_is_refused_with_tiles(registry, sd1):
    """SAG reads the whole latent's middle attention map, which tiles never make: refused in either
    order at the nodes, and at sampling for a model patched around them."""
    from graphflow.sampling.self_attention_guidance import self_attention_guidance

    model, positive, negative = sd1
    sag = call(registry, "SelfAttentionGuidance", model=model, scale=0.5, blur_sigma=2.0)
    with pytest.raises(NodeInputError) as error:
        tiled_model(registry, sag)
    assert error.value.input == "model" and "Self-Attention Guidance" in str(error.value)
    with pytest.raises(NodeInputError) as error:
        call(registry, "SelfAttentionGuidance", model=tiled_model(registry, model), scale=0.5, blur_sigma=2.0)
    assert error.value.input == "model" and "Tiled Diffusion" in str(error.value)
    latent = {"samples": torch.zeros(1, 4, 16, 24)}
    with pytest.raises(Exception, match="Self-Attention Guidance reads the whole latent"):
        ksampler(registry, self_attention_guidance(tiled_model(registry, model), 0.5, 2.0), latent, positive, negative,
                 steps=1)


def test_a_second_tiled_diffusion_replaces_the_first_which_runs_outside_its_range(registry):
    model = FakeModel(gaussian_eps(0.3, 0.8))
    first = tiled_model(registry, model, tile=128, overlap=0)
    second = tiled_model(registry, first, tile=192, overlap=0)
    assert len(second.network_wrappers) == 1
    latent = {"samples": torch.zeros(1, 4, 40, 56)}
    want = ksampler(registry, model, latent)
    got = ksampler(registry, second, latent)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)  # a pointwise model: tiles can't matter
    assert {tuple(c["x"].shape[2:]) for c in model.unet.calls[-4:]} == {(24, 24)}
    ranged = call(registry, "TiledDiffusionParams", model=second, start_sigma=2.0, end_sigma=0.0)
    model.unet.calls.clear()
    ksampler(registry, ranged, latent)
    assert {tuple(c["x"].shape[2:]) for c in model.unet.calls} == {(16, 16), (24, 24)}


def test_spot_diffusion_rolls_a_controlnet_hint_through_a_sampler_resizing_once_a_run(registry, sd1, monkeypatch):
    """Each step's tiles see the hint rolled by the step's shift and cut; the hint is stretched once a
    run and each (tile, shift) cut resized once, the stretched hint left off the conditioning."""
    import graphflow.models.controlnet as controlnet
    import nodes.pack_nodes_tiled_diffusion as pack

    model, positive, negative = sd1
    net = call(registry, "LoadControlNet", control_net_name="cn.safetensors")
    image = torch.rand(1, 100, 150, 3, generator=torch.Generator().manual_seed(0))
    controlled = call(registry, "ApplyControlNet", conditioning=positive, control_net=net, image=image, strength=0.9)
    applied = controlled[0][1]["control"]
    stretched = controlnet.resize_hint(image, 128, 192)
    rolls, hints, resizes = [], [], []
    real_roll, real_resize = pack.spot_roll, controlnet.resize_hint
    monkeypatch.setattr(pack, "spot_roll", lambda *args: rolls.append(real_roll(*args)) or rolls[-1])
    monkeypatch.setattr(controlnet, "resize_hint", lambda *args, **kw: resizes.append(args[1:3]) or real_resize(*args,
                                                                                                               **kw))
    handle = applied.net.register_forward_pre_hook(lambda module, args: hints.append(args[1].detach().float().clone()))
    spot = call(registry, "SpotDiffusionParams", shift_method="random", seed=5,
                model=tiled_model(registry, model, "SpotDiffusion", tile=128, overlap=64))
    try:
        ksampler(registry, spot, {"samples": torch.zeros(1, 4, 16, 24)}, controlled, negative, steps=3)
    finally:
        handle.remove()
    assert len(rolls) == 3 and len(hints) == 3 * 2 and any(roll != (0, 0) for roll in rolls)
    for i, hint in enumerate(hints):
        down, across = rolls[i // 2]
        x = (0, 64)[i % 2]
        want = stretched.roll((8 * down, 8 * across), dims=(-2, -1))[..., x:x + 128]
        torch.testing.assert_close(hint[:1], want, rtol=0, atol=1e-3)
    assert resizes.count((128, 192)) == 1  # stretched once a run
    assert len(resizes) <= 1 + len(set(rolls)) * 2  # and each (tile, shift) cut's hint once
    assert not any(torch.is_tensor(v) and v.shape[-2:] == (128, 192) for v in vars(applied).values())


def test_flux_reference_latents_go_whole_to_each_tile(registry, flux_dev):
    """Kontext-style reference latents: every tile sees the whole reference, as the pack passes
    them (a list, not cut); a CLIPTextEncodeControlnet context without a ControlNet is not refused."""
    from graphflow.sampling.flow_sampling import FlowDenoiser

    model, cfg = flux_dev
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 12, 20, generator=g)
    sigma = torch.tensor([0.7, 0.7])
    inputs = {"context": torch.randn(2, 5, cfg.context_in_dim, generator=g),
              "y": torch.randn(2, cfg.vec_in_dim, generator=g), "guidance": torch.tensor([3.5, 3.5]),
              "reference_latents": [torch.randn(2, 16, 8, 6, generator=g)]}
    plain = FlowDenoiser(model)
    with torch.no_grad():
        got = FlowDenoiser(tiled_model(registry, model, tile=96, overlap=32, batch=2))(
            x, sigma, control_context=torch.randn(2, 5, cfg.context_in_dim, generator=g), **inputs)
        want, count = torch.zeros_like(x), torch.zeros(12, 20)
        for y, x0, h, w in tile_grid(12, 20, 12, 12, 4):
            want[..., y:y + h, x0:x0 + w] += plain(x[..., y:y + h, x0:x0 + w], sigma, **inputs)
            count[y:y + h, x0:x0 + w] += 1
        without = plain(x[..., :12, :12], sigma, **{k: v for k, v in inputs.items() if k != "reference_latents"})
    assert (without - plain(x[..., :12, :12], sigma, **inputs)).abs().max() > 1e-4  # the reference matters
    torch.testing.assert_close(got, want / count, rtol=1e-4, atol=1e-5)


def test_a_controlnet_reading_a_latent_hint_is_named_not_built_yet():
    from graphflow.models.controlnet import ControlApplied

    applied = ControlApplied(object(), torch.zeros(1, 16, 16, 3), 1.0, vae=object())
    with pytest.raises(ValueError, match="takes a VAE.*not built yet"):
        applied.cut((0, 0, 2, 2), (2, 2))
    masked = ControlApplied(object(), torch.zeros(1, 16, 16, 3), 1.0, mask=torch.ones(1, 16, 16))
    with pytest.raises(ValueError, match="carries a mask .an inpainting ControlNet's. can't be cut"):
        masked.cut((0, 0, 2, 2), (2, 2))
