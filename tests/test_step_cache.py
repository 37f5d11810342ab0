"""EasyCache and LazyCache (graphflow.sampling.step_cache) on tiny random-weight models: a window
outside the run, or threshold 0, changes nothing bit for bit; a large threshold skips network calls
and stays near the uncached result; two runs give the same result (state is per run); the input
MODEL is unchanged; cond and uncond batched or split give the same skips; a ComfyUI graph runs."""

import logging
import re

import pytest
import torch

from graphflow.models.diffusion_model import DiffusionModel
from graphflow.models.mmdit import MMDiT
from graphflow.models.unet import UNet, UNetConfig
from graphflow.sampling.model_sampling import DiscreteSchedule
from graphflow.sampling.pipeline import sample
from graphflow.sampling.schedules import compute_sigmas
from graphflow.sampling.step_cache import with_easycache, with_lazycache
from graphflow.testing import flow_model_config
from test_comfy_core_demo import base_graph, described, run as run_graph
from test_nodes_image_mask import call


class Counting(torch.nn.Module):
    """The network, counting its calls and rows."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls, self.rows = net, 0, 0
        self.config = getattr(net, "config", None)

    def forward(self, x, *args, **kwargs):
        self.calls += 1
        self.rows += x.shape[0]
        return self.net(x, *args, **kwargs)


def unet_model() -> DiffusionModel:
    torch.manual_seed(0)
    config = UNetConfig(model_channels=32, channel_mult=(1,), num_res_blocks=1, transformer_depth=(1,),
                        transformer_depth_middle=0, context_dim=32, num_heads=-1, num_head_channels=32)
    return DiffusionModel(Counting(UNet(config).eval()), "sd1")


def flow_model() -> DiffusionModel:
    torch.manual_seed(0)
    return DiffusionModel(Counting(MMDiT(flow_model_config("sd3_medium")).eval()), "sd3", prediction="flow")


def conds(model):
    dim = model.unet.net.config.context_dim
    options = {"pooled_output": torch.zeros(1, model.adm_channels)} if model.is_flow else {}
    return [[torch.ones(1, 5, dim) * 0.5, options]], [[torch.zeros(1, 5, dim), options]]


def generate(model, steps=12, cfg=5.0, negative=None):
    positive, default_negative = conds(model)
    channels = model.latent_format.channels
    latent = {"samples": torch.zeros(1, channels, 16, 16)}
    with torch.no_grad():
        return sample(model, 3, steps, cfg, "euler", "simple" if model.is_flow else "karras", positive,
                      default_negative if negative is None else negative, latent)["samples"]


def cached_run(make, patch, **kwargs):
    model = make()
    plain = generate(model)
    plain_calls = model.unet.calls
    patched = patch(model, **kwargs)
    model.unet.calls = 0
    out = generate(patched)
    return plain, plain_calls, out, model.unet.calls, patched


@pytest.mark.parametrize("patch", [with_easycache, with_lazycache])
@pytest.mark.parametrize("settings", [{"reuse_threshold": 0.0, "start_percent": 0.0, "end_percent": 1.0},
                                      {"reuse_threshold": 3.0, "start_percent": 1.0, "end_percent": 1.0},
                                      {"reuse_threshold": 3.0, "start_percent": 0.0, "end_percent": 0.0}])
def test_no_skip_is_bit_identical(patch, settings):
    plain, plain_calls, out, calls, _ = cached_run(unet_model, patch, **settings)
    assert calls == plain_calls
    assert torch.equal(out, plain)


def psnr(a, b):
    return float(10 * torch.log10((b.max() - b.min()) ** 2 / ((a - b) ** 2).mean()))


@pytest.mark.parametrize("make", [unet_model, flow_model])
@pytest.mark.parametrize("patch", [with_easycache, with_lazycache])
def test_large_threshold_skips_calls_and_stays_close(make, patch):
    plain, plain_calls, out, calls, patched = cached_run(make, patch, reuse_threshold=0.5, start_percent=0.0,
                                                         end_percent=1.0)
    state = patched.network_wrappers[0].last if patch is with_easycache else patched.prediction_wrappers[0].last
    assert state.skipped >= 2 and calls == plain_calls - state.skipped
    assert 0 < (out - plain).abs().max()
    assert psnr(out, plain) > 20  # the cached steps stay near the computed ones


@pytest.mark.parametrize("patch", [with_easycache, with_lazycache])
def test_runs_are_independent_and_the_input_model_unchanged(patch):
    model = unet_model()
    attributes = dict(vars(model))
    plain = generate(model)
    patched = patch(model, reuse_threshold=0.5, start_percent=0.0, end_percent=1.0)
    first, second = generate(patched), generate(patched)
    assert torch.equal(first, second)
    assert vars(model) == attributes
    assert torch.equal(generate(model), plain)
    model.unet.calls = 0
    generate(model)
    assert model.unet.calls == 12  # the input model skips nothing


def test_easycache_skips_the_same_with_cond_and_uncond_split():
    """Entries of different token lengths (lcm > 4x) run as two calls: the cond's call decides and
    the uncond's call follows, applying its own cached difference."""
    model = unet_model()
    positive, _ = conds(model)
    negative = [[torch.zeros(1, 77, 32), {}]]  # 5 and 77 tokens cannot batch
    patched = with_easycache(model, reuse_threshold=0.5, start_percent=0.0, end_percent=1.0)
    model.unet.calls = model.unet.rows = 0
    split = generate(patched, negative=negative)
    state = patched.network_wrappers[0].last
    assert state.skipped >= 2
    assert model.unet.calls == 2 * (12 - state.skipped)  # both sides skipped together
    model.unet.calls = 0
    plain = generate(model, negative=negative)
    assert psnr(split, plain) > 20


def test_easycache_cache_is_per_entry(monkeypatch):
    """A skipped step is x + (o - x) of the last computed step for each entry's rows: recomputed here
    from the network's recorded inputs and outputs."""
    from graphflow.sampling import model_sampling
    model = unet_model()
    computed, calls = [], []
    handle = model.unet.net.register_forward_hook(lambda module, args, output: computed.append(output.clone()))
    original = model_sampling.wrapped_network

    def recording(wrappers, run, xc, sigma, channels):
        out = original(wrappers, run, xc, sigma, channels)
        calls.append((xc.clone(), out.clone()))
        return out

    monkeypatch.setattr(model_sampling, "wrapped_network", recording)
    patched = with_easycache(model, reuse_threshold=0.5, start_percent=0.0, end_percent=1.0)
    try:
        generate(patched)
    finally:
        handle.remove()
    last, skipped = None, 0
    for xc, out in calls:
        if any(torch.equal(o, out) for o in computed):
            last = (xc, out)
            continue
        skipped += 1
        assert xc.shape[0] == 2  # cond and uncond rows, each with its own difference
        assert torch.allclose(out, xc + (last[1] - last[0]), atol=1e-6)
    assert skipped == patched.network_wrappers[0].last.skipped >= 2


def test_easycache_output_magnitude_is_over_the_whole_call(monkeypatch, caplog):
    """k * mean|x - x_prev| / |o_prev|, with |o_prev| the mean magnitude of the whole call's output
    (cond and uncond rows batched, as ComfyUI's), the rates on the first entry's rows: recomputed
    here from the recorded calls at threshold 0 (every step computed, so the sum restarts each step)."""
    from graphflow.sampling import model_sampling
    model = unet_model()

    class LouderNegative(torch.nn.Module):  # the negative's rows (context -4) come out 3x larger
        def __init__(self, net):
            super().__init__()
            self.net, self.config = net, net.config

        def forward(self, x, t, context, *args, **kwargs):
            return self.net(x, t, context, *args, **kwargs) * (1 + 2 * (context[:, :1, :1, None] < -1))

    model.unet.net = LouderNegative(model.unet.net)
    calls = []
    original = model_sampling.wrapped_network

    def recording(wrappers, run, xc, sigma, channels):
        out = original(wrappers, run, xc, sigma, channels)
        calls.append((xc[:, :channels].clone(), out.clone()))
        return out

    monkeypatch.setattr(model_sampling, "wrapped_network", recording)
    patched = with_easycache(model, reuse_threshold=0.0, start_percent=0.0, end_percent=1.0, verbose=True)
    negative = [[torch.full((1, 5, 32), -4.0), {}]]  # batches with the positive; a rather different output
    with caplog.at_level(logging.INFO, logger="graphflow.sampling.step_cache"):
        generate(patched, negative=negative)
    logged = [float(m) for m in re.findall(r"accumulated change (\S+)\)", caplog.text)]
    assert len(calls) == 12 and all(x.shape[0] == 2 for x, _ in calls)  # cond and uncond in one call
    mean = lambda t: t.abs().float().mean()
    sub = [(x[:1, :, ::8, ::8], o[:1, :, ::8, ::8]) for x, o in calls]  # the first entry's rows
    want, lead_only = [], []
    for i in range(2, 12):
        rate = mean(sub[i - 1][1] - sub[i - 2][1]) / mean(sub[i - 1][0] - sub[i - 2][0])
        change = rate * mean(sub[i][0] - sub[i - 1][0])
        want.append(float(change / mean(calls[i - 1][1])))
        lead_only.append(float(change / mean(calls[i - 1][1][:1])))
    assert logged == pytest.approx(want, rel=2e-3)
    assert max(abs(a / b - 1) for a, b in zip(want, lead_only)) > 0.02  # the first entry's rows alone differ


def test_easycache_leader_is_the_first_entry_inside_the_window():
    """The entry that decides is the first one of the first call inside the window (ComfyUI's
    first_cond_uuid), not of the run's first call: with the negative split by
    ConditioningSetTimestepRange, the entry leading before the window is gone inside it."""
    model = unet_model()
    negative = [[torch.zeros(1, 5, 32), {"start_percent": 0.0, "end_percent": 0.3}],
                [torch.full((1, 5, 32), 0.2), {"start_percent": 0.3, "end_percent": 1.0}]]
    patched = with_easycache(model, reuse_threshold=3.0, start_percent=0.5, end_percent=1.0)
    model.unet.calls = 0
    generate(patched, negative=negative)
    state = patched.network_wrappers[0].last
    assert state.skipped >= 2
    assert model.unet.calls == 12 - state.skipped


def test_bad_settings_are_refused(builtin_registry):
    with pytest.raises(ValueError, match="start_percent"):
        with_easycache(unet_model(), 0.2, 1.5, 0.9)
    from graphflow.context import NodeInputError
    with pytest.raises(NodeInputError, match="EasyCache"):
        call(builtin_registry, "EasyCache", model="not a model", reuse_threshold=0.2, start_percent=0.1,
             end_percent=0.9, verbose=False)


def test_step_caches_in_a_comfyui_graph(builtin_registry, tmp_folders):
    """EasyCache at ComfyUI's defaults over 20 steps of the demo model still draws the prompt (and
    skipped steps: the image moved); LazyCache chained after it at threshold 0 changes nothing. (At
    10 steps, or with LazyCache at 0.2, this eps model's image changes colour: caching the
    output-minus-input difference suits flow models better.)"""
    graph = base_graph(width=64)
    graph["3"]["inputs"]["steps"] = 20
    graph["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}}
    plain = run_graph(builtin_registry, graph).values["8"][0][0]
    graph.update({
        "20": {"class_type": "EasyCache", "inputs": {"model": ["4", 0], "reuse_threshold": 0.2,
                                                     "start_percent": 0.15, "end_percent": 0.95, "verbose": False}},
        "21": {"class_type": "LazyCache", "inputs": {"model": ["20", 0], "reuse_threshold": 0.0,
                                                     "start_percent": 0.15, "end_percent": 0.95, "verbose": True}},
    })
    graph["3"]["inputs"]["model"] = ["21", 0]
    image = run_graph(builtin_registry, graph).values["8"][0][0]
    assert described(image) == ("red", "circle", "white")
    assert 0.001 < (image - plain).abs().mean() < 0.05



@pytest.mark.parametrize("patch, state_class", [(with_easycache, "EasyCacheState"), (with_lazycache, "LazyCacheState")])
def test_one_host_read_per_step_until_the_window_ends(monkeypatch, patch, state_class):
    """The skip decision is read back once per step (the deciding call; the uncond's split call
    follows without reading) and not at all once sigma passed end_percent."""
    from graphflow.sampling import step_cache
    reads = []
    read = step_cache._Window.read
    monkeypatch.setattr(getattr(step_cache, state_class), "read",
                        lambda self, sigma, candidate: reads.append(1) or read(self, sigma, candidate))
    model = unet_model()
    negative = [[torch.zeros(1, 77, 32), {}]]  # split cond / uncond calls
    generate(patch(model, reuse_threshold=0.5, start_percent=0.0, end_percent=1.0), negative=negative)
    assert len(reads) == 12
    reads.clear()
    generate(patch(model, reuse_threshold=0.5, start_percent=0.0, end_percent=0.5), negative=negative)
    assert 1 <= len(reads) < 12


@pytest.mark.parametrize("patch, first", [(with_easycache, 3), (with_lazycache, 2)])
def test_skips_only_inside_the_window(caplog, patch, first):
    """Skips happen only at end_sigma < sigma <= start_sigma, EasyCache's from the third step there
    (x_prev, then k are measured first), LazyCache's from the second (it records x before)."""
    model = unet_model()
    patched = patch(model, reuse_threshold=3.0, start_percent=0.3, end_percent=0.9, verbose=True)
    cache = (getattr(patched, "network_wrappers", ()) + getattr(patched, "prediction_wrappers", ()))[0]
    with caplog.at_level(logging.INFO, logger="graphflow.sampling.step_cache"):
        generate(patched, steps=20)
    skipped = [float(m) for m in re.findall(r"skipping the step at sigma (\S+)", caplog.text)]
    assert len(skipped) == cache.last.skipped >= 2
    assert all(cache.last.end_sigma < s <= cache.last.start_sigma for s in skipped)
    sigmas = compute_sigmas(DiscreteSchedule.for_model(model), "karras", 20, 1.0)[:-1].tolist()
    inside = [s for s in sigmas if cache.last.end_sigma < s <= cache.last.start_sigma]
    assert skipped[0] == pytest.approx(inside[first - 1], rel=1e-3)  # threshold 3 skips as soon as it can


@pytest.mark.parametrize("patch", [with_easycache, with_lazycache])
def test_the_model_keeps_the_counts_of_its_last_run_but_no_tensors(patch):
    """The patched MODEL lives on in the executor's cache: after sampling its `last` state holds the
    run's counts, not its inputs, outputs and differences (the latent's size, each, on the device)."""
    patched = patch(unet_model(), reuse_threshold=3.0, start_percent=0.0, end_percent=1.0)
    cache = (getattr(patched, "network_wrappers", ()) + getattr(patched, "prediction_wrappers", ()))[0]
    generate(patched, steps=8)
    state = cache.last
    assert state.calls > 0 and state.skipped >= 1

    def tensors(value):
        if torch.is_tensor(value):
            return 1
        if isinstance(value, dict):
            return sum(tensors(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return sum(tensors(v) for v in value)
        return 0
    assert {name: tensors(value) for name, value in vars(state).items() if tensors(value)} == {}
