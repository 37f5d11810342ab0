"""welltop-cn/ComfyUI-TeaCache's TeaCache and CompileModel (nodes/pack_nodes_teacache.py) on a tiny
random FLUX: which calls run the blocks follows the rule written out here from the pack's
nodes.py (3657f7f5) with its FLUX coefficients, on the block inputs recorded during the run; a
threshold that never skips gives the unpatched sampling bit for bit; the percent window, cond and
uncond batched or split, fresh state per run; an API-format workflow through the executor."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphflow.models.diffusion_model import DiffusionModel
from graphflow.models.flux import Flux
from graphflow.sampling.pipeline import sample
from graphflow.testing import flow_model_config
from test_nodes_image_mask import call

# the pack's SUPPORTED_MODELS_COEFFICIENTS["flux"], highest power first (nodes.py 3657f7f5)
FLUX_COEFFICIENTS = [4.98651651e+02, -2.83781631e+02, 5.58554382e+01, -3.82021401e+00, 2.64230861e-01]
STEPS = 10


@pytest.fixture(scope="module")
def flux():
    torch.manual_seed(0)
    net = Flux(flow_model_config("flux_dev")).eval()
    return DiffusionModel(net, "flux", prediction="flow")


class Recorder:
    """Per network call: the image tokens and conditioning vector the blocks start from (wrapping
    Flux.embed, which the cache does not touch), and whether the last single block ran."""

    def __init__(self, model, monkeypatch):
        self.calls = []
        net, embed = model.unet, model.unet.embed

        def recorded(*args, **kwargs):
            img, txt, vec, pe = embed(*args, **kwargs)
            self.calls.append({"img": img.detach().clone(), "vec": vec.detach().clone(), "txt": txt.shape[1],
                               "ran": False})
            return img, txt, vec, pe

        monkeypatch.setattr(net, "embed", recorded)
        self.hook = net.single_blocks[-1].register_forward_hook(lambda *a: self.calls[-1].update(ran=True))

    def close(self):
        self.hook.remove()


def modulated(model, img, vec):
    """(1 + scale1) * LayerNorm(img) + shift1 of the first double block, written out."""
    block = model.unet.double_blocks[0]
    shift, scale = block.img_mod.lin(F.silu(vec))[:, None].chunk(6, dim=-1)[:2]
    return (1 + scale) * F.layer_norm(img, img.shape[-1:], eps=1e-6) + shift


@torch.no_grad()
def expected_runs(model, calls, threshold, enabled):
    """Which calls run the blocks by the pack's rule; one state per kind of call (its token count)."""
    states, runs = {}, []
    for call_, on in zip(calls, enabled):
        m = modulated(model, call_["img"], call_["vec"]).double()
        state = states.setdefault(call_["txt"], {"acc": 0.0, "prev": None})
        compute = True
        if state["prev"] is not None:
            d = float((m - state["prev"]).abs().mean() / state["prev"].abs().mean())
            state["acc"] += float(np.polyval(FLUX_COEFFICIENTS, d))
            compute = not state["acc"] < threshold
        if compute:
            state["acc"] = 0.0
        state["prev"] = m
        runs.append(compute or not on)
    return runs


def conds(model, tokens=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    cfg = model.unet.config
    options = {"pooled_output": torch.randn(1, cfg.vec_in_dim, generator=g)}
    return [[torch.randn(1, tokens, cfg.context_in_dim, generator=g), options]]


def generate(model, cfg=1.0, negative_tokens=5):
    latent = {"samples": torch.zeros(1, 16, 16, 16)}
    with torch.no_grad():
        return sample(model, 3, STEPS, cfg, "euler", "simple", conds(model), conds(model, negative_tokens, 2),
                      latent)["samples"]


def teacache(model, builtin_registry, **settings):
    inputs = {"model_type": "flux", "rel_l1_thresh": 0.4, "start_percent": 0.0, "end_percent": 1.0,
              "cache_device": "cuda", **settings}
    return call(builtin_registry, "TeaCache", model=model, **inputs)


def percent_of_call(calls_per_step):
    return [i / STEPS for i in range(STEPS) for _ in range(calls_per_step)]


@pytest.mark.parametrize("threshold", [0.0, 1e-9])
def test_never_skipping_is_the_unpatched_sampling(flux, builtin_registry, threshold):
    plain = generate(flux)
    patched = teacache(flux, builtin_registry, rel_l1_thresh=threshold)
    assert (patched is flux) == (threshold == 0)  # 0: the pack returns the model itself
    assert torch.equal(generate(patched), plain)


@pytest.mark.parametrize("window", [(0.0, 1.0), (0.35, 0.75)])
def test_skips_follow_the_written_out_rule(flux, builtin_registry, monkeypatch, window):
    plain = generate(flux)
    patched = teacache(flux, builtin_registry, rel_l1_thresh=0.6, start_percent=window[0], end_percent=window[1])
    recorder = Recorder(flux, monkeypatch)
    out = generate(patched)
    recorder.close()
    ran = [c["ran"] for c in recorder.calls]
    enabled = [window[0] <= p <= window[1] for p in percent_of_call(1)]
    assert ran == expected_runs(flux, recorder.calls, 0.6, enabled)
    assert 2 <= ran.count(False) and all(r for r, on in zip(ran, enabled) if not on)
    state = patched.network_wrappers[-1].last
    assert (state.skipped, state.computed) == (ran.count(False), ran.count(True))
    assert 0 < float((out - plain).abs().max())


def test_cond_and_uncond_batched_and_split(flux, builtin_registry, monkeypatch):
    """cfg 3: cond and uncond of equal length run as one call (one state, as the pack's FLUX);
    of lengths that cannot batch, as two calls each step, each kind keeping its own state."""
    patched = teacache(flux, builtin_registry, rel_l1_thresh=0.6)
    for negative_tokens, calls_per_step in ((5, 1), (77, 2)):
        recorder = Recorder(flux, monkeypatch)
        generate(patched, cfg=3.0, negative_tokens=negative_tokens)
        recorder.close()
        assert len(recorder.calls) == STEPS * calls_per_step
        ran = [c["ran"] for c in recorder.calls]
        assert ran == expected_runs(flux, recorder.calls, 0.6, [True] * len(ran))
        assert ran.count(False) >= 2


def test_runs_repeat_and_the_input_model_is_unchanged(flux, builtin_registry):
    plain = generate(flux)
    patched = teacache(flux, builtin_registry, rel_l1_thresh=0.6)
    first, second = generate(patched), generate(patched)
    assert torch.equal(first, second) and not torch.equal(first, plain)
    assert torch.equal(generate(flux), plain)


def test_bad_inputs_are_named(flux, builtin_registry):
    from graphflow.context import NodeInputError
    cases = [("model_type", "'hunyuan_video' is not built",
              lambda: teacache(flux, builtin_registry, model_type="hunyuan_video")),
             ("model_type", "needs a FLUX MODEL, got a sd1 model",
              lambda: teacache(DiffusionModel(flux.unet, "sd1"), builtin_registry)),
             ("model", "TeaCache", lambda: teacache("not a model", builtin_registry))]
    for name, value in (("backend", "eager"), ("mode", "max-autotune"), ("fullgraph", True), ("dynamic", True)):
        inputs = {"mode": "default", "backend": "inductor", "fullgraph": False, "dynamic": False, name: value}
        cases.append((name, "graphflow compiles with",
                      lambda inputs=inputs: call(builtin_registry, "TeaCacheCompileModel", model=flux, **inputs)))
    for input_name, match, run in cases:
        with pytest.raises(NodeInputError, match=match) as info:
            run()
        assert info.value.input == input_name


def test_compile_model_is_torch_compile_model(flux, builtin_registry):
    ours = call(builtin_registry, "TeaCacheCompileModel", model=flux, mode="default", backend="cudagraphs",
                fullgraph=False, dynamic=False)
    theirs = call(builtin_registry, "TorchCompileModel", model=flux, backend="cudagraphs")
    assert ours.options == theirs.options and ours.options != flux.options


@pytest.fixture(scope="module")
def flux_models(tmp_path_factory):
    from graphflow.testing import write_flow_checkpoint, write_text_encoder

    models = tmp_path_factory.mktemp("teacache_models")
    for sub in ("diffusion_models", "text_encoders"):
        (models / sub).mkdir()
    write_flow_checkpoint(models / "diffusion_models" / "flux_dev.safetensors", "flux_dev", dtype=torch.float32,
                          components=("model",), prefixed=False, seed=4)
    for name, seed in (("t5xxl", 1), ("clip_l", 2)):
        write_text_encoder(models / "text_encoders" / f"{name}.safetensors", name, seed=seed, dtype=torch.float32)
    return models


def test_api_workflow_with_the_pack_class_names(builtin_registry, tmp_folders, flux_models, monkeypatch):
    from graphflow.models.flux import FluxBlocks
    from test_comfy_core_demo import run as run_graph

    tmp_folders.models = flux_models
    runs = []
    rest = FluxBlocks.rest
    monkeypatch.setattr(FluxBlocks, "rest", lambda self: runs.append(1) or rest(self))
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux_dev.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl.safetensors",
                                                         "clip_name2": "clip_l.safetensors", "type": "flux"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red square", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 0]}},
        "6": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 128, "height": 128, "batch_size": 1}},
        "8": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "seed": 5, "steps": 8, "cfg": 1.0,
                                                   "sampler_name": "euler", "scheduler": "simple",
                                                   "positive": ["3", 0], "negative": ["4", 0],
                                                   "latent_image": ["6", 0], "denoise": 1.0}},
    }
    plain = run_graph(builtin_registry, graph).values["8"][0]["samples"]
    assert len(runs) == 8
    graph["9"] = {"class_type": "TeaCache", "inputs": {"model": ["1", 0], "model_type": "flux", "rel_l1_thresh": 3.0,
                                                       "start_percent": 0.0, "end_percent": 1.0}}
    graph["10"] = {"class_type": "CompileModel", "inputs": {"model": ["9", 0], "mode": "default",
                                                             "backend": "inductor", "fullgraph": False,
                                                             "dynamic": False}}
    graph["8"]["inputs"]["model"] = ["9", 0]
    runs.clear()
    cached = run_graph(builtin_registry, graph).values["8"][0]["samples"]
    assert 2 <= 8 - len(runs) and not torch.equal(cached, plain)
    assert cached.shape == plain.shape and torch.isfinite(cached).all()


def test_the_pack_classes_are_ours(builtin_registry):
    from graphflow.comfy_format import custom_pack
    for name in ("TeaCache", "CompileModel"):
        assert builtin_registry.comfy_node(name) is not None and custom_pack(name) == "ComfyUI-TeaCache"


# Wan 2.1 (the pack's is_cfg family): a state per conditioning entry of a batched call, the probe
# the time embedding e (or its six-way projection e0 in ret mode); the blocks run when any entry's does
WAN_COEFFICIENTS = {
    "wan2.1_t2v_1.3B": [2.39676752e+03, -1.31110545e+03, 2.01331979e+02, -8.29855975e+00, 1.37887774e-01],
    "wan2.1_t2v_1.3B_ret_mode": [-5.21862437e+04, 9.23041404e+03, -5.28275948e+02, 1.36987616e+01, -4.99875664e-02],
}


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.testing import write_wan

    path = write_wan(tmp_path_factory.mktemp("teacache_wan") / "wan.safetensors", seed=4, dtype=torch.float32)
    return load_diffusion_model(path, device="cpu", dtype=torch.float32)


def wan_generate(model, cfg=5.0):
    g = torch.Generator().manual_seed(5)
    positive, negative = [(torch.randn(1, 8, 32, generator=g), {})], [(torch.randn(1, 8, 32, generator=g), {})]
    with torch.no_grad():
        return sample(model, 7, STEPS, cfg, "euler", "simple", positive, negative,
                      {"samples": torch.zeros(1, 16, 2, 4, 4)})["samples"]


def wan_expected_runs(probes, coefficients, threshold, entries):
    states, runs = [{"acc": 0.0, "prev": None, "compute": True} for _ in range(entries)], []
    for probe in probes:
        size = probe.shape[0] // entries
        for k, state in enumerate(states):
            m = probe[k * size:(k + 1) * size].double()
            if state["prev"] is not None:
                d = float((m - state["prev"]).abs().mean() / state["prev"].abs().mean())
                state["acc"] += float(np.polyval(coefficients, d))
                state["compute"] = not state["acc"] < threshold
                if state["compute"]:
                    state["acc"] = 0.0
            state["prev"] = m
        runs.append(any(state["compute"] for state in states))
    return runs


@pytest.mark.parametrize("model_type, threshold", [("wan2.1_t2v_1.3B", 800.0), ("wan2.1_t2v_1.3B_ret_mode", -5000.0)])
def test_wan_skips_follow_the_written_out_rule(wan, builtin_registry, model_type, threshold):
    """The random tiny Wan's embeddings move far more per step than a trained one's, so its rescaled
    changes are in the hundreds (past the node's 10: with_teacache itself takes them) and negative in
    ret mode, whose polynomial is, as the pack's (a negative threshold there computes some calls)."""
    from graphflow.sampling.block_cache import with_teacache

    plain = wan_generate(wan)
    if not model_type.endswith("ret_mode"):  # positive rescaled changes: a tiny threshold never skips
        never = teacache(wan, builtin_registry, model_type=model_type, rel_l1_thresh=1e-9)
        assert torch.equal(wan_generate(never), plain)
    patched = with_teacache(wan, model_type, threshold)
    net, calls = wan.unet, []
    probe_module = net.time_projection if model_type.endswith("ret_mode") else net.time_embedding
    hooks = [probe_module.register_forward_hook(lambda m, a, out: calls.append({"probe": out.detach().float().clone(),
                                                                                "ran": False})),
             net.blocks[-1].register_forward_hook(lambda *a: calls[-1].update(ran=True))]
    try:
        out = wan_generate(patched)
    finally:
        for h in hooks:
            h.remove()
    ran = [c["ran"] for c in calls]
    assert len(calls) == STEPS and calls[0]["probe"].shape[0] == 2  # cond and uncond batched
    assert ran == wan_expected_runs([c["probe"] for c in calls], WAN_COEFFICIENTS[model_type], threshold, 2)
    assert ran.count(False) >= 2 and ran.count(True) >= 2 and not torch.equal(out, plain)


def test_per_entry_states_decide_together():
    """The Wan families' rule on a call batching two entries whose probes differ: each entry keeps
    its sum, the blocks run when either says so, each entry gets its own residual back."""
    from graphflow.sampling.block_cache import TeaCacheState
    from graphflow.sampling.guidance import UNetRows, unet_rows

    class Stack:
        def __init__(self, hidden, probe):
            self.hidden, self.probe, self.ran = hidden, probe, False

        def modulated(self, ret_mode=False):
            return self.probe

        def all(self):  # each row its own residual: h + 1 for cond's, 2h + 7 for uncond's
            self.ran = True
            return self.hidden * torch.tensor([[2.0], [3.0]]) + torch.tensor([[1.0], [7.0]])

    coefficients = [1.0, 0.0]  # poly(d) = d: the sums are the relative changes themselves
    state = TeaCacheState(coefficients, 0.25, 0.0, 1.0, None, True, False)
    conds = (object(), object())
    # cond's probe moves by 5% a call (sums 0.05, 0.10, 0.15), uncond's by 5%, 30%, 0% (0.05, 0.35: run,
    # reset, 0): the third call runs for uncond alone; judged as one, the third would skip (0.225)
    probes = [(1.0, 1.0), (1.05, 1.05), (1.1025, 1.365), (1.157625, 1.365)]
    ran, outs = [], []
    for step, (a, b) in enumerate(probes):
        hidden = torch.tensor([[float(step)], [10.0 * step]]).expand(2, 3)
        stack = Stack(hidden, torch.tensor([[a], [b]]))
        token = unet_rows.set(UNetRows(torch.tensor([1.0 - step / 10]), None, conds))
        try:
            outs.append(state(lambda xc: run_blocks_of(stack), None, torch.tensor([1.0 - step / 10]), 4))
        finally:
            unet_rows.reset(token)
        ran.append(stack.ran)
    assert ran == [True, False, True, False]
    # a skip adds each row the residual of its own rows at the last computed step (h0: 0 and 0, h2: 2 and 20)
    assert torch.equal(outs[1], torch.tensor([[1.0 + 0 + 1], [10.0 + 0 + 7]]).expand(2, 3))
    assert torch.equal(outs[3], torch.tensor([[3.0 + 2 + 1], [30.0 + 2 * 20 + 7]]).expand(2, 3))


def run_blocks_of(stack):
    from graphflow.models.block_runner import run_blocks
    return run_blocks(stack)


def test_wan_model_type_needs_a_wan_model(flux, builtin_registry):
    from graphflow.context import NodeInputError
    with pytest.raises(NodeInputError, match="needs a Wan 2.1 MODEL, got a flux model") as info:
        teacache(flux, builtin_registry, model_type="wan2.1_t2v_14B")
    assert info.value.input == "model_type"


# HiDream-I1 (also an is_cfg family): the probe is the timestep embedding (before the pooled vector)
HIDREAM_COEFFICIENTS = [-3.13605009e+04, -7.12425503e+02, 4.91363285e+01, 8.26515490e+00, 1.08053901e-01]


@pytest.fixture(scope="module")
def hidream():
    from graphflow.models.hidream import HiDream
    from graphflow.testing import hidream_config, hidream_state

    net = HiDream(hidream_config()).eval()
    net.load_state_dict(hidream_state(seed=3), strict=True)
    return DiffusionModel(net, "hidream", prediction="flow")


def hidream_generate(model):
    from graphflow.testing import HIDREAM_TINY_LLAMA_DIM, HIDREAM_TINY_POOLED_DIM, HIDREAM_TINY_T5_DIM

    g = torch.Generator().manual_seed(5)

    def prompt():
        return [(torch.randn(1, 5, HIDREAM_TINY_T5_DIM, generator=g),
                 {"pooled_output": torch.randn(1, HIDREAM_TINY_POOLED_DIM, generator=g),
                  "conditioning_llama3": torch.randn(1, 4, 7, HIDREAM_TINY_LLAMA_DIM, generator=g)})]
    positive, negative = prompt(), prompt()
    with torch.no_grad():
        return sample(model, 7, STEPS, 5.0, "euler", "simple", positive, negative,
                      {"samples": torch.zeros(1, 16, 8, 8)})["samples"]


def test_hidream_skips_follow_the_written_out_rule(hidream, builtin_registry):
    from graphflow.sampling.block_cache import with_teacache

    plain = hidream_generate(hidream)
    net, calls = hidream.unet, []
    hooks = [net.t_embedder.timestep_embedder.register_forward_hook(
                 lambda m, a, out: calls.append({"probe": out.detach().float().clone(), "ran": False})),
             net.single_stream_blocks[-1].block.register_forward_hook(lambda *a: calls[-1].update(ran=True))]
    try:
        changes = hidream_generate(hidream)  # the rescaled changes of this tiny model, to pick a threshold
        rescaled = [float(np.polyval(HIDREAM_COEFFICIENTS, float((b["probe"][:1] - a["probe"][:1]).abs().mean()
                                                                 / a["probe"][:1].abs().mean())))
                    for a, b in zip(calls, calls[1:])]
        assert torch.equal(changes, plain)
        # the polynomial is negative at this random model's large changes, so the sum only falls: a
        # threshold between the first two changes runs the second call and skips from the third on
        threshold = (rescaled[0] + rescaled[1]) / 2
        assert rescaled[1] < threshold < rescaled[0]
        calls.clear()
        out = hidream_generate(with_teacache(hidream, "hidream_i1_full", threshold))
    finally:
        for h in hooks:
            h.remove()
    ran = [c["ran"] for c in calls]
    assert len(calls) == STEPS and calls[0]["probe"].shape[0] == 2
    assert ran == wan_expected_runs([c["probe"] for c in calls], HIDREAM_COEFFICIENTS, threshold, 2)
    assert ran.count(False) >= 2 and ran.count(True) >= 2 and not torch.equal(out, plain)


# LTX-Video (an is_cfg family): the probe is the first block's attention input, the residual runs to
# after the output norm and modulation
LTXV_COEFFICIENTS = [2.14700694e+01, -1.28016453e+01, 2.31279151e+00, 7.92487521e-01, 9.69274326e-03]


@pytest.fixture(scope="module")
def ltxv():
    from graphflow.models.ltxv import LTXV
    from graphflow.testing import ltxv_configs

    torch.manual_seed(0)
    net = LTXV(ltxv_configs()[0]).eval()
    with torch.no_grad():  # random tables: zeros would leave the modulation out of the probe
        for block in net.transformer_blocks:
            block.scale_shift_table.normal_(0, 0.1)
    return DiffusionModel(net, "ltxv", prediction="flow")


def ltxv_generate(model):
    g = torch.Generator().manual_seed(5)
    dim = model.unet.config.caption_channels
    positive, negative = [(torch.randn(1, 6, dim, generator=g), {})], [(torch.randn(1, 6, dim, generator=g), {})]
    with torch.no_grad():
        return sample(model, 7, STEPS, 3.0, "euler", "simple", positive, negative,
                      {"samples": torch.zeros(1, 128, 2, 4, 4)})["samples"]


def ltxv_probe(model, hidden, temb):
    """rms_norm(x) * (1 + scale_msa) + shift_msa of the first block, written out."""
    table = model.unet.transformer_blocks[0].scale_shift_table
    mods = table + temb.reshape(temb.shape[0], -1, 6, table.shape[-1])
    normed = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + 1e-6)
    return normed * (1 + mods[:, :, 1]) + mods[:, :, 0]


def test_ltxv_skips_follow_the_written_out_rule(ltxv, builtin_registry):
    plain = ltxv_generate(ltxv)
    net, calls = ltxv.unet, []
    hooks = [net.patchify_proj.register_forward_hook(
                 lambda m, a, out: calls.append({"hidden": out.detach().clone(), "ran": False})),
             net.adaln_single.register_forward_hook(lambda m, a, out: calls[-1].update(temb=out[0].detach().clone())),
             net.transformer_blocks[-1].register_forward_hook(lambda *a: calls[-1].update(ran=True)),
             net.proj_out.register_forward_pre_hook(lambda m, a: calls[-1].update(final=a[0].detach().clone()))]
    try:
        with torch.no_grad():
            never = teacache(ltxv, builtin_registry, model_type="ltxv", rel_l1_thresh=1e-9)
            assert torch.equal(ltxv_generate(never), plain)
            calls.clear()
            out = ltxv_generate(teacache(ltxv, builtin_registry, model_type="ltxv", rel_l1_thresh=0.3))
            probes = [ltxv_probe(ltxv, c["hidden"], c["temb"]) for c in calls]
    finally:
        for h in hooks:
            h.remove()
    ran = [c["ran"] for c in calls]
    assert len(calls) == STEPS and probes[0].shape[0] == 2
    assert ran == wan_expected_runs(probes, LTXV_COEFFICIENTS, 0.3, 2)
    assert ran.count(False) >= 2 and ran.count(True) >= 2 and not torch.equal(out, plain)
    # a skipped call's head input: its tokens + the last computed call's (normed, modulated output - tokens)
    last = None
    for c in calls:
        if c["ran"]:
            last = c
        else:
            assert torch.allclose(c["final"], c["hidden"] + (last["final"] - last["hidden"]), atol=1e-5)


def test_ui_saves_with_and_without_cache_device(builtin_registry):
    """The editor's widgets: [model_type, rel_l1_thresh, start_percent, end_percent] at nodes.py
    3657f7f5, with cache_device 5th in the pack's later saves (1.9.0's "cuda")."""
    from graphflow.comfy_format import import_ui

    def ui(values):
        return {"nodes": [{"id": 1, "type": "TeaCache", "inputs": [], "outputs": [], "widgets_values": values}],
                "links": []}
    older = import_ui(ui(["flux", 0.4, 0, 1]), builtin_registry).nodes["1"].inputs
    later = import_ui(ui(["wan2.1_t2v_14B", 0.2, 0.1, 0.9, "cpu"]), builtin_registry).nodes["1"].inputs
    assert {k: older[k] for k in ("model_type", "rel_l1_thresh", "start_percent", "end_percent")} == {
        "model_type": "flux", "rel_l1_thresh": 0.4, "start_percent": 0, "end_percent": 1}
    assert older.get("cache_device", "cuda") == "cuda"
    assert later == {"model_type": "wan2.1_t2v_14B", "rel_l1_thresh": 0.2, "start_percent": 0.1, "end_percent": 0.9,
                     "cache_device": "cpu"}


def test_later_model_types_are_refused_by_name(flux, builtin_registry):
    from graphflow.context import NodeInputError
    for model_type in ("flux-kontext", "lumina_2", "hidream_i1_dev", "hidream_i1_fast"):
        with pytest.raises(NodeInputError, match=f"'{model_type}' is not built") as info:
            teacache(flux, builtin_registry, model_type=model_type)
        assert info.value.input == "model_type"
