"""chengzeyi/Comfy-WaveSpeed's ApplyFBCacheOnModel (nodes/pack_nodes_wavespeed.py) on a tiny random
FLUX, UNet, LTX-Video and SD3.5 Medium (the pack's generic CachedTransformerBlocks path: the first
block's image-token residual compared; LTX-Video's residual added before the output norm): which
calls run the blocks after the first follows the rule written out here from the pack's
first_block_cache.py (3ac0d83d) and fbcache_nodes.py (04f882b9) on the first block's outputs
recorded during the run; threshold 0 (or max_consecutive_cache_hits 0) is the model itself; a
threshold that never skips gives the unpatched sampling bit for bit; the start / end window and the
consecutive-hit limit; cond and uncond batched or split; SD3 under a ControlNet and Skip Layer
Guidance, masked LTX-Video; the value a skip adds; fresh state per run; Wan and HiDream refused with
why the pack fails on them; the demo model's and LTX-Video's API-format workflows
through the executor."""

import dataclasses

import pytest
import torch

from graphflow.models.block_runner import block_runner
from graphflow.models.diffusion_model import DiffusionModel
from graphflow.models.flux import Flux
from graphflow.models.ltxv import LTXV
from graphflow.models.mmdit import MMDiT
from graphflow.models.unet import UNet, UNetConfig
from graphflow.sampling.flow_sampling import model_sampling_for
from graphflow.sampling.pipeline import sample
from graphflow.testing import flow_model_config, ltxv_configs
from test_nodes_image_mask import call

STEPS = 10


@pytest.fixture(scope="module")
def flux():
    torch.manual_seed(0)
    return DiffusionModel(Flux(flow_model_config("flux_dev")).eval(), "flux", prediction="flow")


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    config = UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, transformer_depth=(1, 1),
                        transformer_depth_middle=1, context_dim=32, num_heads=-1, num_head_channels=32)
    return DiffusionModel(UNet(config).eval(), "sd1")


@pytest.fixture(scope="module")
def ltxv():
    """The tiny LTX-Video at depth 3 (the checkpoints' tiny one has one block: nothing after the first)."""
    torch.manual_seed(0)
    net = LTXV(dataclasses.replace(ltxv_configs()[0], depth=3)).eval()
    with torch.no_grad():  # random tables: zeros leave the blocks' modulation out
        for block in net.transformer_blocks:
            block.scale_shift_table.normal_(0, 0.1)
    return DiffusionModel(net, "ltxv", prediction="flow")


@pytest.fixture(scope="module")
def sd3():
    """The tiny SD3.5 Medium: 3 joint blocks, MMDiT-X self-attention in the first two."""
    torch.manual_seed(0)
    return DiffusionModel(MMDiT(flow_model_config("sd35_medium")).eval(), "sd3", prediction="flow")


class Recorder:
    """Per network call: the sigma, the first block's probe as the pack takes it (FLUX: the image
    tokens after double block 0; UNet: input block 1's output minus block 0's) from forward hooks,
    and whether the last block ran."""

    def __init__(self, model):
        self.calls, net = [], model.unet
        self.hooks = []
        if isinstance(net, Flux):
            firsts, last = [net.double_blocks[0]], net.single_blocks[-1]
        elif isinstance(net, MMDiT):  # the image tokens' residual over joint block 0: (context, x) in and out
            firsts, last = [], net.joint_blocks[-1]
            self.hooks = [net.joint_blocks[0].register_forward_pre_hook(
                lambda m, args: self.calls[-1]["outs"].append(args[1].detach().clone())),
                net.joint_blocks[0].register_forward_hook(
                lambda m, args, out: self.calls[-1]["outs"].append(out[1].detach().clone()))]
        elif isinstance(net, LTXV):  # the first block's residual: its input (pre-hook) and output
            firsts, last = [], net.transformer_blocks[-1]
            self.hooks = [net.transformer_blocks[0].register_forward_pre_hook(
                lambda m, args: self.calls[-1]["outs"].append(args[0].detach().clone()))]
            self.hooks.append(net.transformer_blocks[0].register_forward_hook(self.first))
            self.hooks.append(net.proj_out.register_forward_pre_hook(
                lambda m, args: self.calls[-1].update(final=args[0].detach().clone())))
            self.hooks.append(net.adaln_single.register_forward_hook(
                lambda m, args, out: self.calls[-1].update(embedded=out[1].detach().clone())))
            self.hooks.append(last.register_forward_hook(
                lambda m, args, out: self.calls[-1].update(blocks_out=out.detach().clone())))
        else:
            firsts, last = [net.input_blocks[0], net.input_blocks[1]], net.output_blocks[-1]
        self.hooks = [net.register_forward_pre_hook(self.start)] + getattr(self, "hooks", [])
        self.hooks += [m.register_forward_hook(self.first) for m in firsts]
        self.hooks.append(last.register_forward_hook(lambda *a: self.calls[-1].update(ran=True)))

    def start(self, module, args):
        # the largest: under LTX-Video's timestep mask the first token's may be 0
        self.calls.append({"sigma": float(args[1].max()), "outs": [], "ran": False})

    def first(self, module, args, out):
        self.calls[-1]["outs"].append((out[0] if isinstance(out, tuple) else out).detach().clone())

    def probes(self):
        return [c["outs"][0] if len(c["outs"]) == 1 else c["outs"][1] - c["outs"][0] for c in self.calls]

    def close(self):
        for h in self.hooks:
            h.remove()


def rel(current, previous):
    return float((previous.double() - current.double()).abs().mean() / previous.double().abs().mean())


def expected_runs(probes, sigmas, calls_per_step, threshold, start_sigma=float("inf"), end_sigma=0.0, max_hits=-1):
    """The pack's rule: a step's first call decides on its probe against the last computed one, in
    the window and under the hit limit; the step's later calls follow, each with its own cache."""
    previous, hits, use_cache, runs = {}, 0, False, []
    for i, (probe, sigma) in enumerate(zip(probes, sigmas)):
        seq = i % calls_per_step
        use = False
        if seq in previous:
            if seq == 0:
                use_cache = (rel(probe, previous[0]) < threshold and end_sigma <= sigma <= start_sigma
                             and (max_hits < 0 or hits < max_hits))
                hits = hits + 1 if use_cache else 0
            use = use_cache
        if not use:
            previous[seq] = probe
        runs.append(not use)
    return runs


def conds(dim, tokens, seed, pooled=None):
    g = torch.Generator().manual_seed(seed)
    options = {} if pooled is None else {"pooled_output": torch.randn(1, pooled, generator=g)}
    return [[torch.randn(1, tokens, dim, generator=g), options]]


def generate(model, cfg=1.0, negative_tokens=5, noise_mask=None):
    if model.arch == "ltxv":
        start = torch.randn(1, 128, 2, 4, 4, generator=torch.Generator().manual_seed(4))
        latent = {"samples": torch.zeros(1, 128, 2, 4, 4)} if noise_mask is None else \
            {"samples": start, "noise_mask": noise_mask}
        dim = model.unet.config.caption_channels
        with torch.no_grad():
            return sample(model, 3, STEPS, cfg, "euler", "simple", conds(dim, 6, 1), conds(dim, negative_tokens, 2),
                          latent)["samples"]
    if model.arch == "sd3":
        cfg_ = model.unet.config
        dim, pooled, size, scheduler = cfg_.context_dim, cfg_.adm_in_channels, 16, "simple"
    elif model.is_flow:
        cfg_ = model.unet.config
        dim, pooled, size, scheduler = cfg_.context_in_dim, cfg_.vec_in_dim, 16, "simple"
    else:
        dim, pooled, size, scheduler = 32, None, 16, "karras"
    latent = {"samples": torch.zeros(1, model.latent_format.channels, size, size)}
    with torch.no_grad():
        return sample(model, 3, STEPS, cfg, "euler", scheduler, conds(dim, 5, 1, pooled),
                      conds(dim, negative_tokens, 2, pooled), latent)["samples"]


def fbcache(model, builtin_registry, **settings):
    inputs = {"object_to_patch": "diffusion_model", "residual_diff_threshold": 0.1, "start": 0.0, "end": 1.0,
              "max_consecutive_cache_hits": -1, **settings}
    return call(builtin_registry, "ApplyFBCacheOnModel", model=model, **inputs)


def recorded_run(model, patched, **kwargs):
    recorder = Recorder(model)
    try:
        out = generate(patched, **kwargs)
    finally:
        recorder.close()
    return out, recorder


@pytest.mark.parametrize("family", ["flux", "unet", "ltxv", "sd3"])
@pytest.mark.parametrize("settings", [{"residual_diff_threshold": 0.0}, {"max_consecutive_cache_hits": 0},
                                      {"residual_diff_threshold": 1e-9}])
def test_never_skipping_is_the_unpatched_sampling(request, builtin_registry, family, settings):
    model = request.getfixturevalue(family)
    plain = generate(model)
    patched = fbcache(model, builtin_registry, **settings)
    assert (patched is model) == ("residual_diff_threshold" not in settings or settings["residual_diff_threshold"] == 0)
    assert torch.equal(generate(patched), plain)


@pytest.mark.parametrize("family, threshold", [("flux", 0.2), ("unet", 0.3), ("ltxv", 0.08), ("sd3", 0.5)])
def test_skips_follow_the_written_out_rule(request, builtin_registry, family, threshold):
    model = request.getfixturevalue(family)
    plain = generate(model)
    patched = fbcache(model, builtin_registry, residual_diff_threshold=threshold)
    out, recorder = recorded_run(model, patched)
    ran = [c["ran"] for c in recorder.calls]
    assert ran == expected_runs(recorder.probes(), [c["sigma"] for c in recorder.calls], 1, threshold)
    assert ran.count(False) >= 2
    state = patched.network_wrappers[-1].last
    assert (state.skipped, state.computed) == (ran.count(False), ran.count(True))
    assert 0 < float((out - plain).abs().max())


def test_window_and_hit_limit(flux, builtin_registry):
    schedule = model_sampling_for(flux)
    for start, end, hits in ((0.3, 0.8, -1), (0.0, 1.0, 1)):
        patched = fbcache(flux, builtin_registry, residual_diff_threshold=0.2, start=start, end=end,
                          max_consecutive_cache_hits=hits)
        _, recorder = recorded_run(flux, patched)
        ran, sigmas = [c["ran"] for c in recorder.calls], [c["sigma"] for c in recorder.calls]
        start_sigma, end_sigma = schedule.percent_to_sigma(start), schedule.percent_to_sigma(end)
        assert ran == expected_runs(recorder.probes(), sigmas, 1, 0.2, start_sigma, end_sigma, hits)
        assert ran.count(False) >= 1
        assert all(r for r, s in zip(ran, sigmas) if not end_sigma <= s <= start_sigma)
        assert not any(not a and not b for a, b in zip(ran, ran[1:])) or hits < 0


@pytest.mark.parametrize("family, threshold, tokens", [("unet", 0.3, (5, 77)), ("ltxv", 0.08, (6, 9)),
                                                          ("sd3", 0.5, (5, 9))])
def test_cond_and_uncond_batched_and_split(request, builtin_registry, family, threshold, tokens):
    """cfg 5: prompts of equal length run as one call per step (one probe over both rows); of
    different lengths as two, the second following the first's decision with its own cached
    residual."""
    model = request.getfixturevalue(family)
    patched = fbcache(model, builtin_registry, residual_diff_threshold=threshold)
    for negative_tokens, calls_per_step in zip(tokens, (1, 2)):
        _, recorder = recorded_run(model, patched, cfg=5.0, negative_tokens=negative_tokens)
        assert len(recorder.calls) == STEPS * calls_per_step
        ran = [c["ran"] for c in recorder.calls]
        assert ran == expected_runs(recorder.probes(), [c["sigma"] for c in recorder.calls], calls_per_step,
                                    threshold)
        assert ran.count(False) >= 2


@pytest.mark.parametrize("family, threshold", [("flux", 0.2), ("ltxv", 0.08), ("sd3", 0.5)])
def test_runs_repeat_and_the_input_model_is_unchanged(request, builtin_registry, family, threshold):
    """The state resets between runs: a second run skips the same calls and gives the same picture."""
    model = request.getfixturevalue(family)
    plain = generate(model)
    patched = fbcache(model, builtin_registry, residual_diff_threshold=threshold)
    (first, one), (second, two) = recorded_run(model, patched), recorded_run(model, patched)
    assert [c["ran"] for c in one.calls] == [c["ran"] for c in two.calls] and not all(c["ran"] for c in one.calls)
    assert torch.equal(first, second) and not torch.equal(first, plain)
    assert torch.equal(generate(model), plain)


def test_ltxv_residual_is_the_blocks_and_the_output_norm_runs_after(ltxv, builtin_registry):
    """As the pack's CachedTransformerBlocks in place of LTXVModel.transformer_blocks: a skipped
    call's final projection input is layer_norm(after block 0 + (last computed call's blocks output
    - its after block 0)) * (1 + scale) + shift, the output norm written out on the skipped call's
    embedded timestep, not the cached normed output."""
    _, recorder = recorded_run(ltxv, fbcache(ltxv, builtin_registry, residual_diff_threshold=0.08))
    table, last, skipped = ltxv.unet.scale_shift_table, None, 0
    for c in recorder.calls:
        after_first = c["outs"][1]
        if c["ran"]:
            last = c
            continue
        hidden = after_first + (last["blocks_out"] - last["outs"][1])
        shift, scale = table[0] + c["embedded"], table[1] + c["embedded"]
        mean, var = hidden.mean(-1, keepdim=True), hidden.var(-1, unbiased=False, keepdim=True)
        want = (hidden - mean) / torch.sqrt(var + 1e-6) * (1 + scale) + shift
        assert torch.allclose(c["final"], want, atol=1e-5)
        skipped += 1
    assert skipped >= 2


def test_sd3_skip_adds_the_cached_image_token_residual(sd3, builtin_registry):
    """A skipped SD3 call's tokens into the final layer are the image tokens after joint block 0 +
    (the last computed call's stack output - its tokens after joint block 0), written out from hooks."""
    outs = []
    hook = sd3.unet.final_layer.register_forward_pre_hook(lambda m, args: outs.append(args[0].detach().clone()))
    try:
        _, recorder = recorded_run(sd3, fbcache(sd3, builtin_registry, residual_diff_threshold=0.5))
    finally:
        hook.remove()
    last, skipped = None, 0
    for c, final in zip(recorder.calls, outs):
        if c["ran"]:
            last = (c["outs"][1], final)
            continue
        assert torch.allclose(final, c["outs"][1] + (last[1] - last[0]), atol=1e-5)
        skipped += 1
    assert skipped >= 2


def test_sd3_skip_layer_guidance_call_keeps_its_own_cache(sd3, builtin_registry):
    """Skip Layer Guidance's extra call (the positive prompt without joint block 1) is its step's
    last call: it follows the step's first call's decision, and a skip adds its own cached residual
    (from the last computed call in its place), not the positive prompt's."""
    slg = call(builtin_registry, "SkipLayerGuidanceSD3", model=sd3, layers="1", scale=3.0, start_percent=0.0,
               end_percent=1.0)
    for cfg, per_step in ((1.0, 2), (3.0, 3)):  # cond + skipped; cond, uncond (other length) + skipped
        finals = []
        hook = sd3.unet.final_layer.register_forward_pre_hook(lambda m, args: finals.append(args[0].clone()))
        try:
            _, recorder = recorded_run(sd3, fbcache(slg, builtin_registry, residual_diff_threshold=0.5), cfg=cfg,
                                       negative_tokens=9)
        finally:
            hook.remove()
        ran = [c["ran"] for c in recorder.calls]
        assert len(ran) == per_step * STEPS and ran.count(False) >= per_step
        assert ran == expected_runs(recorder.probes(), [c["sigma"] for c in recorder.calls], per_step, 0.5)
        last = {}
        for i, (c, final) in enumerate(zip(recorder.calls, finals)):
            if c["ran"]:
                last[i % per_step] = final - c["outs"][1]
            else:
                assert torch.allclose(final, c["outs"][1] + last[i % per_step], atol=1e-5)


def test_sd3_controlnet_probe_is_joint_block_0_alone(sd3):
    """With ControlNet residuals the probe is joint block 0's image-token residual without them, as
    in the pack (ComfyUI adds control_o[0] after the swapped one-entry block list); residual 0 is
    added after, and a skip's tokens into the final layer are block 0's output + r0 + the computed
    call's (stack output - (its block 0 output + r0))."""
    from graphflow.sampling.block_cache import FirstBlockCacheState

    net, g = sd3.unet, torch.Generator().manual_seed(3)
    x = torch.randn(1, 16, 8, 8, generator=g)
    context, y = torch.randn(1, 5, 192, generator=g), torch.randn(1, 192, generator=g)
    residuals = [torch.randn(1, 16, 128, generator=g) for _ in range(2)]
    seen = {}
    hooks = [net.joint_blocks[0].register_forward_pre_hook(lambda m, args: seen.update(block_in=args[1].clone())),
             net.joint_blocks[0].register_forward_hook(lambda m, args, out: seen.update(block_out=out[1].clone())),
             net.final_layer.register_forward_pre_hook(lambda m, args: seen.update(final=args[0].clone()))]
    state = FirstBlockCacheState(10.0, float("inf"), 0.0, -1)
    calls = []
    try:
        with torch.no_grad():
            net(x, torch.tensor([1.0]), context, y)
            plain_probe = seen["block_out"] - seen["block_in"]
            for sigma, xc in ((1.0, x), (0.9, x + 0.01 * torch.randn(x.shape, generator=g))):
                s = torch.tensor([sigma])
                state(lambda v: net(v, s, context, y, control={"output": residuals}), xc, s, 16)
                calls.append(dict(seen))
    finally:
        for h in hooks:
            h.remove()
    assert torch.allclose(state.buffers[0]["probe"], plain_probe, atol=1e-6)
    assert (state.computed, state.skipped) == (1, 1)
    first, second = calls
    cached = first["final"] - (first["block_out"] + residuals[0])
    assert torch.allclose(second["final"], second["block_out"] + residuals[0] + cached, atol=1e-5)


def test_masked_ltxv_follows_the_rule_on_every_tokens_probe(ltxv, builtin_registry):
    """LTX-Video with its first frame kept (a per-token timestep mask: that frame's tokens at sigma 0):
    the probe is the first block's residual over all tokens, the kept frame's included, as the
    pack's CachedTransformerBlocks compares it, so the masked run skips more than the unmasked one;
    the window is read on the call's sigma (the largest token's, not the kept frame's 0)."""
    schedule, mask = model_sampling_for(ltxv), torch.tensor([0.0, 1.0]).reshape(1, 1, 2, 1, 1)
    for start, end in ((0.0, 1.0), (0.3, 0.8)):
        patched = fbcache(ltxv, builtin_registry, residual_diff_threshold=0.08, start=start, end=end)
        _, recorder = recorded_run(ltxv, patched, noise_mask=mask)
        ran, sigmas = [c["ran"] for c in recorder.calls], [c["sigma"] for c in recorder.calls]
        start_sigma, end_sigma = schedule.percent_to_sigma(start), schedule.percent_to_sigma(end)
        assert min(sigmas) > 0
        assert ran == expected_runs(recorder.probes(), sigmas, 1, 0.08, start_sigma, end_sigma)
        assert ran.count(False) >= 1
    _, unmasked = recorded_run(ltxv, fbcache(ltxv, builtin_registry, residual_diff_threshold=0.08))
    _, masked = recorded_run(ltxv, fbcache(ltxv, builtin_registry, residual_diff_threshold=0.08), noise_mask=mask)
    assert [c["ran"] for c in masked.calls].count(False) > [c["ran"] for c in unmasked.calls].count(False)


def test_ltxv_uncached_forward_takes_no_probe(ltxv, monkeypatch):
    """Without a cache LTX-Video runs every block and the output norm straight through (no first
    block residual made and thrown away), giving the same samples as the first-then-rest path."""
    from graphflow.models import ltxv as ltxv_module

    def first_then_rest(stack):
        stack.first()
        return stack.rest()

    with torch.no_grad():
        plain = generate(ltxv)
        with block_runner(first_then_rest):
            split = generate(ltxv)
    monkeypatch.setattr(ltxv_module.LTXVBlocks, "first", lambda self: pytest.fail("all() took a probe"))
    with torch.no_grad():
        assert torch.equal(generate(ltxv), plain)
    assert torch.equal(split, plain)


@pytest.mark.parametrize("arch, says", [("wan", "TypeError"), ("hidream", "No supported blocks found")])
def test_families_the_pack_fails_on_are_refused_with_why(flux, builtin_registry, arch, says):
    from graphflow.context import NodeInputError
    with pytest.raises(NodeInputError, match=says) as info:
        fbcache(DiffusionModel(flux.unet, arch, prediction="flow"), builtin_registry)
    assert info.value.input == "model"


def test_bad_inputs_are_named(flux, builtin_registry):
    from graphflow.context import NodeInputError
    cases = [("object_to_patch", "'model'", lambda: fbcache(flux, builtin_registry, object_to_patch="model")),
             ("model", "not lumina2 yet", lambda: fbcache(DiffusionModel(flux.unet, "lumina2", prediction="flow"),
                                                              builtin_registry)),
             ("model", "ApplyFBCacheOnModel", lambda: fbcache("not a model", builtin_registry))]
    for input_name, match, run in cases:
        with pytest.raises(NodeInputError, match=match) as info:
            run()
        assert info.value.input == input_name


def test_api_workflow_with_the_pack_class_name(builtin_registry, tmp_folders, monkeypatch):
    """The demo model (an SD1 UNet) through ApplyFBCacheOnModel at 0.3 in a ComfyUI API prompt:
    fewer calls run the UNet's later blocks; the picture moves but still draws the prompt."""
    from graphflow.models.unet import UNetBlocks
    from test_comfy_core_demo import base_graph, described, run as run_graph

    runs = []
    rest = UNetBlocks.rest
    monkeypatch.setattr(UNetBlocks, "rest", lambda self: runs.append(1) or rest(self))
    graph = base_graph(width=64)
    graph["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}}
    plain = run_graph(builtin_registry, graph).values["8"][0][0]
    assert len(runs) == 10
    graph["20"] = {"class_type": "ApplyFBCacheOnModel",
                   "inputs": {"model": ["4", 0], "object_to_patch": "diffusion_model", "residual_diff_threshold": 0.3,
                              "start": 0.0, "end": 1.0, "max_consecutive_cache_hits": -1}}
    graph["3"]["inputs"]["model"] = ["20", 0]
    runs.clear()
    image = run_graph(builtin_registry, graph).values["8"][0][0]
    assert len(runs) <= 8
    assert 0 < float((image - plain).abs().mean()) < 0.02
    assert described(image) == described(plain)


def test_the_packs_other_classes_are_named_with_why(builtin_registry):
    from graphflow.comfy_format import custom_pack, unknown_type_hint
    assert builtin_registry.comfy_node("ApplyFBCacheOnModel") is not None
    for name, says in (("VelocatorQuantizeModel", "velocator"), ("EnhancedCompileModel", "not built yet"),
                       ("ApplyFBCacheOnModelAdvanced", "not built yet")):
        assert builtin_registry.comfy_node(name) is None and custom_pack(name) == "Comfy-WaveSpeed"
        assert says in unknown_type_hint(name)


def test_api_workflow_on_ltx_video(builtin_registry, tmp_folders, monkeypatch):
    """ComfyUI's LTX-Video text-to-video example in API format (tests/test_context_windows.py's,
    shrunk, 8 steps) with ApplyFBCacheOnModel before the sampler, on a tiny checkpoint of 3 blocks: fewer
    calls run the blocks after the first and the video moves, a little."""
    import json

    import graphflow.testing
    from graphflow.executor import Executor
    from graphflow.models.ltxv import LTXVBlocks
    from graphflow.workflow import parse_workflow
    from test_context_windows import ltxv_graph

    tiny = graphflow.testing.ltxv_configs
    monkeypatch.setattr(graphflow.testing, "ltxv_configs",
                        lambda scaled_down=True: (dataclasses.replace(tiny()[0], depth=3), tiny()[1]))
    m = tmp_folders.models
    for sub in ("checkpoints", "text_encoders"):
        (m / sub).mkdir()
    graphflow.testing.write_ltxv_checkpoint(m / "checkpoints" / "ltxv.safetensors", dtype=torch.float32, seed=3)
    graphflow.testing.write_flow_text_encoder(m / "text_encoders" / "t5.safetensors", "t5xxl", dtype=torch.float32,
                                              seed=1)
    runs, rest, every = [], LTXVBlocks.rest, LTXVBlocks.all  # calls that ran the blocks after the first
    monkeypatch.setattr(LTXVBlocks, "rest", lambda self, tail=True: runs.append(1) or rest(self, tail))
    monkeypatch.setattr(LTXVBlocks, "all", lambda self: runs.append(1) or every(self))

    def run(threshold):
        graph = ltxv_graph(None)
        graph["7"]["inputs"]["steps"] = 8
        graph["20"] = {"class_type": "ApplyFBCacheOnModel",
                       "inputs": {"model": ["1", 0], "object_to_patch": "diffusion_model",
                                  "residual_diff_threshold": threshold, "start": 0.0, "end": 1.0,
                                  "max_consecutive_cache_hits": -1}}
        graph["9"]["inputs"]["model"] = ["20", 0]
        runs.clear()
        result = Executor(builtin_registry).run(parse_workflow(json.loads(json.dumps(graph)), builtin_registry),
                                               outputs=["9"])
        assert result.ok, json.dumps(result.error, default=str)[:3000]
        return result.values["9"][0]["samples"], len(runs)

    plain, plain_runs = run(0.0)
    cached, cached_runs = run(0.5)
    assert plain_runs == 16 and 2 <= cached_runs < 16  # cond and uncond (prompts of two lengths) split
    assert 0 < float((cached - plain).abs().max()) < float(plain.abs().max())
