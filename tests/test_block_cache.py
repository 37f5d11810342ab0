"""The block caches (graphflow.sampling.block_cache: TeaCache, First Block Cache) beside the rest of
graphflow on a tiny random FLUX and SD1 UNet: torch.compile makes the same graphs however many steps
run (the decisions stay outside the graph), Deep Shrink resizing inside First Block Cache's span,
TiledDiffusion after a block cache refused, a later block cache replacing an earlier one, nothing
held past the run, the library functions' refusals; skips by the packs' rules with a ControlNet
(First Block Cache on the UNet) and with Kontext reference tokens (TeaCache on FLUX)."""

import copy

import pytest
import torch

from graphflow.context import NodeInputError
from graphflow.models.deep_shrink import apply_deep_shrink
from graphflow.sampling.block_cache import with_first_block_cache, with_teacache
from graphflow.sampling.flow_sampling import model_sampling_for
from graphflow.sampling.guidance import unet_rows
from graphflow.sampling.pipeline import sample
from test_nodes_image_mask import call
from test_pack_nodes_wavespeed import fbcache, flux, generate, unet  # noqa: F401 (flux, unet: fixtures)


def flux_conds(model, seed):
    g = torch.Generator().manual_seed(seed)
    cfg = model.unet.config
    return [[torch.randn(1, 5, cfg.context_in_dim, generator=g), {"pooled_output": torch.randn(1, cfg.vec_in_dim,
                                                                                               generator=g)}]]


def compiled_graphs(model, steps):
    """(graphs torch.compile made in a first sampling run of `steps` steps, graphs added by a second
    run, calls the cache skipped in the first)."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    compiled = model.with_options(compile_backend=backend)
    counts = []
    try:
        for _ in range(2):
            with torch.no_grad():
                sample(compiled, 3, steps, 1.0, "euler", "simple", flux_conds(model, 1), flux_conds(model, 2),
                       {"samples": torch.zeros(1, 16, 16, 16)})
            counts.append(len(graphs))
    finally:
        torch._dynamo.reset()
    return counts[0], counts[1] - counts[0], compiled.network_wrappers[-1].last.skipped


@pytest.mark.parametrize("patch", [lambda m: with_teacache(m, "flux", 0.6), lambda m: with_first_block_cache(m, 0.2)],
                         ids=["teacache", "fbcache"])
def test_compiled_graphs_do_not_grow_with_the_steps(flux, patch):
    """Traced, the host numbers the caches decide on were guarded on: every step recompiled (until
    torch's recompile limit) instead of reusing the graphs of skipping and of computing."""
    few, again, skipped_few = compiled_graphs(patch(flux), 4)
    many, _, skipped_many = compiled_graphs(patch(flux), 12)
    assert skipped_few >= 1 and skipped_many > skipped_few  # both branches traced in either run
    assert few == many and again == 0


def test_first_block_cache_under_deep_shrink_at_the_first_blocks(unet, builtin_registry):
    """Deep Shrink halving the latent after input block 1 makes the stack's output another size than
    the first block's: those calls have no residual and always compute; the others may skip."""
    shrunk = apply_deep_shrink(unet, 1, 2.0, 0.0, 0.5)
    patched = fbcache(shrunk, builtin_registry, residual_diff_threshold=0.3)
    calls, net = [], unet.unet
    hooks = [net.register_forward_pre_hook(lambda *a: calls.append([float(unet_rows.get().sigma.reshape(-1)[0]),
                                                                     False])),
             net.output_blocks[-1].register_forward_hook(lambda *a: calls[-1].__setitem__(1, True))]
    try:
        out = generate(patched)  # crashed: the residual of a stack whose size changed inside it
    finally:
        for hook in hooks:
            hook.remove()
    assert torch.isfinite(out).all()
    assert patched.network_wrappers[-1].last.skipped >= 1
    end_sigma = model_sampling_for(unet).percent_to_sigma(0.5)  # Deep Shrink's, sigma falling
    shrinking = [ran for sigma, ran in calls if sigma >= end_sigma]
    assert shrinking and all(shrinking)


def test_a_block_cache_before_tiled_diffusion_is_refused(unet, builtin_registry):
    """One cache state for all tiles would compare each tile with the one before it and could add
    another tile's residual."""
    from nodes.pack_nodes_tiled_diffusion import TiledDiffusionWrapper
    tiles = {"method": "MultiDiffusion", "tile_width": 64, "tile_height": 64, "tile_overlap": 16, "tile_batch_size": 1}
    cached = fbcache(unet, builtin_registry, residual_diff_threshold=0.3)
    with pytest.raises(NodeInputError, match="block cache") as info:
        call(builtin_registry, "TiledDiffusion", model=cached, **tiles)
    assert info.value.input == "model"
    by_hand = copy.copy(cached)  # the library path: the wrappers in that order
    by_hand.network_wrappers = (*cached.network_wrappers, TiledDiffusionWrapper(*tiles.values()))
    with pytest.raises(ValueError, match=r"block cache \(First Block Cache\) applied before TiledDiffusion"):
        generate(by_hand)


def test_a_later_block_cache_replaces_the_earlier(flux, builtin_registry):
    """Stacked, the inner cache's runner took over and the outer one ran nothing (0 computed, 0
    skipped); the later node is the one that runs, as ComfyUI's last unet function wrapper."""
    from test_pack_nodes_teacache import teacache
    both = fbcache(teacache(flux, builtin_registry, rel_l1_thresh=0.6), builtin_registry, residual_diff_threshold=0.2)
    assert len(both.network_wrappers) == 1
    only = fbcache(flux, builtin_registry, residual_diff_threshold=0.2)
    assert torch.equal(generate(both), generate(only))
    assert both.network_wrappers[0].last.skipped == only.network_wrappers[0].last.skipped >= 1


def held_tensors(obj, seen=None) -> list:
    """The tensors reachable from obj through containers and object attributes (not functions)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or callable(obj) and not hasattr(obj, "__dict__"):
        return []
    seen.add(id(obj))
    if torch.is_tensor(obj):
        return [obj]
    if isinstance(obj, dict):
        children = [*obj.keys(), *obj.values()]
    elif isinstance(obj, (list, tuple, set)):
        children = list(obj)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type) and not callable(getattr(obj, "__code__", None)):
        children = [v for k, v in vars(obj).items() if k != "make"]
    else:
        return []
    return [t for child in children for t in held_tensors(child, seen)]


@pytest.mark.parametrize("cache", ["teacache", "fbcache"])
def test_no_hidden_states_are_held_after_the_run(flux, builtin_registry, cache):
    """The MODEL (in the executor's cache) keeps its last run's state for its counts: without
    end_run that held the probes and residuals on the device (GBs for a large video model)."""
    from test_pack_nodes_teacache import teacache
    patched = (teacache(flux, builtin_registry, rel_l1_thresh=0.6) if cache == "teacache"
               else fbcache(flux, builtin_registry, residual_diff_threshold=0.2))
    generate(patched, cfg=2.0)
    state = patched.network_wrappers[-1].last
    assert state.computed >= 1 and state.skipped >= 1
    assert held_tensors(patched.network_wrappers[-1]) == []


def test_library_refusals(flux, builtin_registry):
    for model_type in ("hunyuan_video", "flux-kontext", "flux2"):
        with pytest.raises(ValueError, match=f"model_type '{model_type}' is not built in graphflow; built: flux, "):
            with_teacache(flux, model_type, 0.3)
    with pytest.raises(ValueError, match="TeaCache: start_percent 0.9 is after end_percent 0.1"):
        with_teacache(flux, "flux", 0.3, 0.9, 0.1)
    with pytest.raises(ValueError, match=r"TeaCache: start_percent and end_percent must lie in \[0, 1\]"):
        with_teacache(flux, "flux", 0.3, 0.0, 1.5)
    with pytest.raises(ValueError, match="First Block Cache: start 0.9 is after end 0.1"):
        with_first_block_cache(flux, 0.2, 0.9, 0.1)
    with pytest.raises(ValueError, match="residual_diff_threshold must be at least 0, got -0.1"):
        with_first_block_cache(flux, -0.1)
    with pytest.raises(ValueError, match="max_consecutive_cache_hits must be -1"):
        with_first_block_cache(flux, 0.2, max_consecutive_cache_hits=-2)
    from test_pack_nodes_teacache import teacache
    with pytest.raises(NodeInputError, match="before start_percent 0.9: TeaCache would never skip") as info:
        teacache(flux, builtin_registry, start_percent=0.9, end_percent=0.1)
    assert info.value.input == "end_percent"
    with pytest.raises(NodeInputError, match="before start 0.9: First Block Cache would never skip") as info:
        fbcache(flux, builtin_registry, start=0.9, end=0.1)
    assert info.value.input == "end"


def test_first_block_cache_with_a_controlnet_skips_by_the_rule(unet, builtin_registry):
    """A ControlNet's residuals go into the blocks after the first (middle and output blocks): the
    skips still follow the pack's rule on the first blocks' probe, and a skipped call adds the
    residual of the last computed call, which held the control's part."""
    from graphflow.models.controlnet import ControlApplied, ControlNet, ControlNetConfig
    from test_pack_nodes_wavespeed import STEPS, Recorder, expected_runs

    torch.manual_seed(3)
    net = ControlNet(ControlNetConfig(unet=unet.unet.config))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    g = torch.Generator().manual_seed(0)
    context = torch.randn(1, 5, 32, generator=g)
    control = ControlApplied(net, torch.rand(1, 128, 128, 3, generator=g), 1.0)
    patched = fbcache(unet, builtin_registry, residual_diff_threshold=0.3)

    def run(model, positive):
        recorder = Recorder(unet)
        try:
            with torch.no_grad():
                out = sample(model, 3, STEPS, 1.0, "euler", "karras", positive, [(context * 0, {})],
                             {"samples": torch.zeros(1, 4, 16, 16)})["samples"]
        finally:
            recorder.close()
        return out, recorder

    controlled, recorder = run(patched, [(context, {"control": control})])
    plain, _ = run(patched, [(context, {})])
    runs = [c["ran"] for c in recorder.calls]
    assert runs == expected_runs(recorder.probes(), [c["sigma"] for c in recorder.calls], 1, 0.3)
    assert not all(runs) and (controlled - plain).abs().max() > 1e-3


def test_teacache_with_kontext_reference_tokens_skips_by_the_rule(flux, builtin_registry, monkeypatch):
    """Kontext's reference latents join the image tokens before the blocks: the probe and the
    residual cover them, as the pack's (its img is concatenated before its TeaCache probe), and the
    skips follow the rule written out on the recorded tokens."""
    from test_pack_nodes_teacache import Recorder, expected_runs, teacache

    g = torch.Generator().manual_seed(5)
    cfg = flux.unet.config
    reference = torch.randn(1, 16, 8, 8, generator=g)
    positive = [[torch.randn(1, 5, cfg.context_in_dim, generator=g),
                 {"pooled_output": torch.randn(1, cfg.vec_in_dim, generator=g), "reference_latents": [reference]}]]
    patched = teacache(flux, builtin_registry, rel_l1_thresh=0.6)
    recorder = Recorder(flux, monkeypatch)
    try:
        with torch.no_grad():
            sample(patched, 3, 10, 1.0, "euler", "simple", positive, positive, {"samples": torch.zeros(1, 16, 16, 16)})
    finally:
        recorder.close()
    assert recorder.calls[0]["img"].shape[1] == 8 * 8 + 4 * 4  # the latent's tokens and the reference's
    runs = [c["ran"] for c in recorder.calls]
    assert runs == expected_runs(flux, recorder.calls, 0.6, [True] * len(runs))
    assert not all(runs)
