"""ComfyUI-Advanced-ControlNet's nodes (nodes/advanced_controlnet.py): each weight, mask and
keyframe rule checked on the residuals the UNet receives against the pack's formula rebuilt
here, the default apply checked against the core ControlNetApplyAdvanced bit for bit, the timestep
keyframe schedule against the pack's loop rebuilt here, the latent keyframe nodes against their
parsing and numpy's curves, a UI-format save and an API prompt with the pack's class names, and the
clear errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from graphflow.comfy_format import export_api, export_ui
from graphflow.context import NodeInputError
from graphflow.testing import write_checkpoint, write_controlnet
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_pack_nodes import run_graph, ui_graph, ui_node
from nodes.advanced_controlnet import _WEIGHT_NAMES
from tests.test_union_controlnet import sdxl_models  # noqa: F401 (a fixture)

BASE = 0.8


@pytest.fixture
def models(tmp_folders):
    (tmp_folders.models / "controlnet").mkdir(parents=True)
    (tmp_folders.models / "checkpoints").mkdir(parents=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    write_controlnet(tmp_folders.models / "controlnet" / "cn.safetensors", "sd1", seed=1)
    return tmp_folders.models


@pytest.fixture
def setup(builtin_registry, models):
    model, clip, _ = call(builtin_registry, "LoadCheckpoint", checkpoint="tiny.safetensors")
    net = call(builtin_registry, "LoadControlNet", control_net_name="cn.safetensors")
    positive = call(builtin_registry, "CLIPEncode", text="a red circle", clip=clip)
    negative = call(builtin_registry, "CLIPEncode", text="", clip=clip)
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    return model, net, positive, negative, image


def sample(registry, model, positive, negative, steps=3, batch=1):
    """The latent, and per UNet call the control it received and which rows were the negative's."""
    from graphflow.sampling.guidance import unet_rows

    seen = []

    def hook(module, args, kwargs):
        control = kwargs.get("control")
        rows = unet_rows.get()
        seen.append((None if control is None else
                     {k: [None if r is None else r.detach().float().clone() for r in v] for k, v in control.items()},
                     None if rows is None else rows.negative))

    handle = model.unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        latent = {"samples": torch.zeros(batch, 4, 8, 8)}
        out = call(registry, "KSampler", model=model, positive=positive, negative=negative, latent_image=latent,
                   seed=3, steps=steps, cfg=4.0, sampler_name="euler", scheduler="normal", denoise=1.0)["samples"]
    finally:
        handle.remove()
    return out, seen


def core(registry, setup, strength=0.7, **extra):
    model, net, positive, negative, image = setup
    p, n = call(registry, "ApplyControlNetAdvanced", positive=positive, negative=negative, control_net=net,
                image=image, strength=strength, start_percent=0.0, end_percent=1.0)
    return sample(registry, model, p, n, **extra)


def acn(registry, setup, strength=0.7, node="AdvancedControlNetApplyV2", control_net=None, steps=3, batch=1,
        **inputs):
    model, net, positive, negative, image = setup
    out = call(registry, node, positive=positive, negative=negative, control_net=control_net or net, image=image,
               strength=strength, start_percent=0.0, end_percent=1.0, **inputs)
    return sample(registry, model, out[0], out[1], steps=steps, batch=batch)


def first(seen):
    control, rows = seen[0]
    return control, rows


def test_default_apply_is_the_core_apply_exactly(builtin_registry, setup):
    latent, seen = core(builtin_registry, setup)
    for node in ("AdvancedControlNetApplyV2", "AdvancedControlNetApply"):
        mine, mine_seen = acn(builtin_registry, setup, node=node)
        assert torch.equal(mine, latent)
        assert len(mine_seen) == len(seen)
        for (a, _), (b, _) in zip(mine_seen, seen):
            assert a.keys() == b.keys() and all(torch.equal(x, y) for k in a for x, y in zip(a[k], b[k]))
    # default weights in a keyframe and a loader's schedule change nothing either
    weights, shortcut = call(builtin_registry, "DefaultControlNetWeights")
    mine, _ = acn(builtin_registry, setup, weights_override=weights, timestep_kf=shortcut)
    assert torch.equal(mine, latent)
    zero = call(builtin_registry, "AdvancedControlNetApplyV2", positive=setup[2], negative=setup[3],
                control_net=setup[1], image=setup[4], strength=0.0, start_percent=0.0, end_percent=1.0)
    assert zero[0] is setup[2] and zero[1] is setup[3]


def _universal(n):
    """The pack's ControlNetAdvanced universal weights for a list of n residuals (control.py)."""
    return [BASE ** float(n - i) for i in range(n + 1)][:-1]


def test_scaled_soft_weights_scale_each_residual_by_the_packs_formula(builtin_registry, setup):
    (plain, _), = [first(core(builtin_registry, setup)[1])]
    extras = call(builtin_registry, "ExtrasMiddleMult", middle_mult=0.5)
    for node, inputs in (("ScaledSoftControlNetWeights", {"flip_weights": True}),
                         ("ScaledSoftControlNetWeightsV2", {})):
        weights, _ = call(builtin_registry, node, base_multiplier=BASE, uncond_multiplier=1.0, cn_extras=extras,
                          **inputs)
        control, _ = first(acn(builtin_registry, setup, weights_override=weights)[1])
        n = len(plain["output"])
        for r, p, w in zip(control["output"], plain["output"], _universal(n)):
            torch.testing.assert_close(r, p * w, rtol=2e-3, atol=1e-5)
        torch.testing.assert_close(control["middle"][0], plain["middle"][0] * 0.5, rtol=2e-3, atol=1e-5)
    # the weights travel in the TK_SHORTCUT too, and through the loader to the core apply node
    weights, shortcut = call(builtin_registry, "ScaledSoftControlNetWeights", base_multiplier=BASE, flip_weights=False)
    scheduled = call(builtin_registry, "LoadControlNetAdvanced", control_net_name="cn.safetensors",
                     tk_optional=shortcut)
    model, _, positive, negative, image = setup
    p, n = call(builtin_registry, "ApplyControlNetAdvanced", positive=positive, negative=negative,
                control_net=scheduled, image=image, strength=0.7, start_percent=0.0, end_percent=1.0)
    control, _ = first(sample(builtin_registry, model, p, n)[1])
    for r, q, w in zip(control["output"], plain["output"], _universal(len(plain["output"]))):
        torch.testing.assert_close(r, q * w, rtol=2e-3, atol=1e-5)
    torch.testing.assert_close(control["middle"][0], plain["middle"][0], rtol=2e-3, atol=1e-5)


def test_custom_weights_multiply_residual_k_by_weight_k(builtin_registry, setup):
    plain, _ = first(core(builtin_registry, setup)[1])
    values = [0.1 * (k + 1) for k in range(13)]
    weights, _ = call(builtin_registry, "CustomControlNetWeights", flip_weights=False,
                      **{f"weight_{k:02d}": v for k, v in enumerate(values)})
    control, _ = first(acn(builtin_registry, setup, weights_override=weights)[1])
    for k, (r, p) in enumerate(zip(control["output"], plain["output"])):
        torch.testing.assert_close(r, p * values[k], rtol=2e-3, atol=1e-5)
    torch.testing.assert_close(control["middle"][0], plain["middle"][0] * values[12], rtol=2e-3, atol=1e-5)
    sd15, _ = call(builtin_registry, "SoftControlNetWeightsSD15")  # the pack's soft defaults: 0.825 ** (12 - k)
    control, _ = first(acn(builtin_registry, setup, weights_override=sd15)[1])
    for k, (r, p) in enumerate(zip(control["output"], plain["output"])):
        torch.testing.assert_close(r, p * 0.825 ** (12 - k), rtol=2e-3, atol=1e-5)


def test_mask_scales_each_residual_by_the_mask_resized_twice(builtin_registry, setup):
    plain, _ = first(core(builtin_registry, setup)[1])
    mask = torch.rand(1, 40, 56, generator=torch.Generator().manual_seed(1))
    control, _ = first(acn(builtin_registry, setup, mask_optional=mask[0])[1])  # a [H, W] mask is a batch of one
    pixels = F.interpolate(mask[:, None], size=(64, 64), mode="bilinear")  # the latent's pixel size first
    for r, p in zip(control["output"] + control["middle"], plain["output"] + plain["middle"]):
        torch.testing.assert_close(r, p * F.interpolate(pixels, size=p.shape[2:], mode="bilinear"), rtol=2e-3,
                                   atol=1e-5)


def test_uncond_multiplier_scales_the_negative_rows_only(builtin_registry, setup):
    plain, rows = first(core(builtin_registry, setup)[1])
    assert sorted(rows) == [False, True]  # positive and negative in one call
    weights, _ = call(builtin_registry, "CustomControlNetWeights", uncond_multiplier=0.25, flip_weights=False)
    control, mine_rows = first(acn(builtin_registry, setup, weights_override=weights)[1])
    assert mine_rows == rows
    mult = torch.tensor([0.25 if negative else 1.0 for negative in rows]).reshape(-1, 1, 1, 1)
    for r, p in zip(control["output"], plain["output"]):
        torch.testing.assert_close(r, p * mult, rtol=2e-3, atol=1e-5)


def _latent_mults(frames, count, null):
    """The pack's calc_latent_keyframe_mults for one conditioning entry's latents."""
    mults = [null] * count
    for index, strength in frames:
        real = index + count if index < 0 else index
        if 0 <= real < count:
            mults[real] = strength
    return mults


def test_latent_keyframes_scale_each_latent_and_null_the_others(builtin_registry, setup):
    plain, rows = first(core(builtin_registry, setup, batch=3)[1])
    group = call(builtin_registry, "LatentKeyframe", batch_index=1, strength=0.5)
    group = call(builtin_registry, "LatentKeyframe", batch_index=-1, strength=0.75, prev_latent_kf=group)
    control, _ = first(acn(builtin_registry, setup, latent_kf_override=group, batch=3)[1])
    mults = torch.tensor(_latent_mults([(1, 0.5), (-1, 0.75)], 3, 0.0) * (len(rows) // 3)).reshape(-1, 1, 1, 1)
    for r, p in zip(control["output"], plain["output"]):
        torch.testing.assert_close(r, p * mults, rtol=2e-3, atol=1e-5)
    # in a timestep keyframe, with its null strength and its own strength on top
    keyframe = call(builtin_registry, "TimestepKeyframe", start_percent=0.0, strength=0.5, latent_keyframe=group,
                    null_latent_kf_strength=0.2)
    control, _ = first(acn(builtin_registry, setup, timestep_kf=keyframe, batch=3)[1])
    mults = torch.tensor(_latent_mults([(1, 0.5), (-1, 0.75)], 3, 0.2) * (len(rows) // 3)).reshape(-1, 1, 1, 1)
    for r, p in zip(control["output"], plain["output"]):
        torch.testing.assert_close(r, p * mults * 0.5, rtol=2e-3, atol=1e-5)


def test_t2i_adapter_weights_follow_the_packs_places(builtin_registry, setup, models):
    from graphflow.models.t2i_adapter import T2IAdapter, T2IAdapterConfig

    model, _, positive, negative, image = setup
    cfg = model.unet.config
    torch.manual_seed(0)
    adapter = T2IAdapter(T2IAdapterConfig(channels=tuple(m * cfg.model_channels for m in cfg.channel_mult)))
    save_file({k: v.contiguous() for k, v in adapter.state_dict().items()},
              str(models / "controlnet" / "t2i.safetensors"))
    net = call(builtin_registry, "LoadControlNet", control_net_name="t2i.safetensors")
    p, n = call(builtin_registry, "ApplyControlNetAdvanced", positive=positive, negative=negative, control_net=net,
                image=image, strength=1.0, start_percent=0.0, end_percent=1.0)
    plain, _ = first(sample(builtin_registry, model, p, n)[1])
    four = (0.2, 0.4, 0.6, 0.8)
    weights, _ = call(builtin_registry, "CustomT2IAdapterWeights", **dict(zip(("weight_00", "weight_01", "weight_02",
                                                                              "weight_03"), four)), flip_weights=False)
    for kind, override in (("custom", weights), ("universal", call(builtin_registry, "ScaledSoftControlNetWeightsV2",
                                                                   base_multiplier=BASE)[0])):
        control, _ = first(acn(builtin_registry, setup, strength=1.0, control_net=net, weights_override=override)[1])
        # the pack's list: each of four weights for three places, read reversed against ComfyUI's reversed list
        arranged = [w for w in (four if kind == "custom" else (BASE ** 7, BASE ** 2, BASE, 1.0)) for _ in range(3)]
        length = len(plain["input"]) + len(plain.get("middle") or ())
        reversed_weights = arranged[::-1]
        assert any(r is not None for r in plain["input"])
        for place, (r, q) in enumerate(zip(control["input"], plain["input"])):
            if q is None:
                assert r is None
                continue
            index = length - 1 - place  # the place in ComfyUI's reversed list
            w = reversed_weights[index] if index < len(reversed_weights) else 1.0
            torch.testing.assert_close(r, q * w, rtol=2e-3, atol=1e-5)
    controlnet_weights, _ = call(builtin_registry, "SoftControlNetWeights", flip_weights=False)
    with pytest.raises(NodeInputError, match="controlnet weights do not suit this t2iadapter") as info:
        call(builtin_registry, "AdvancedControlNetApplyV2", positive=positive, negative=negative, control_net=net,
             image=image, strength=1.0, start_percent=0.0, end_percent=1.0, weights_override=controlnet_weights)
    assert info.value.input == "weights_override"


class FakeNet(torch.nn.Module):
    """A net whose residuals are ones: what reaches the UNet is the schedule's multiplier."""

    def control(self, applied, x, *args, **kwargs):
        return {"output": [torch.ones(x.shape[0], 1, 2, 2)], "middle": [torch.ones(x.shape[0], 1, 1, 1)]}


class LinearSchedule:
    def percent_to_sigma(self, percent):
        return 999999999.9 if percent <= 0 else 0.0 if percent >= 1 else 10.0 * (1 - percent)


def _pack_schedule(frames, sigmas):
    """The pack's prepare_current_timestep loop (utils.py), rebuilt: per call the keyframe used
    (None: the same step as the call before)."""
    starts = [LinearSchedule().percent_to_sigma(f["start"]) for f in frames]
    index, current, used, prev, out = -1, None, 0, None, []
    for t in sigmas:
        if t == prev:
            out.append(current)
            continue
        if current is None or used >= current["guarantee"]:
            for i in range(index + 1, len(frames)):
                if starts[i] >= t:
                    index, current, used = i, frames[i], 0
                    if current["guarantee"] > 0:
                        break
                else:
                    break
        prev, used = t, used + 1
        out.append(current)
    return out


def test_timestep_keyframes_follow_the_packs_schedule(builtin_registry):
    from graphflow.models.advanced_control import AdvancedControl

    frames = [{"start": 0.0, "strength": 1.0, "guarantee": 0}, {"start": 0.3, "strength": 0.5, "guarantee": 2},
              {"start": 0.35, "strength": 0.25, "guarantee": 0}, {"start": 0.4, "strength": 0.125, "guarantee": 1},
              {"start": 0.8, "strength": 0.0, "guarantee": 1}]
    group = None
    for f in frames[1:]:
        group = call(builtin_registry, "TimestepKeyframe", start_percent=f["start"], strength=f["strength"],
                     guarantee_steps=f["guarantee"], prev_timestep_kf=group)
    sigmas = [10.0, 8.0, 7.5, 7.5, 6.0, 5.0, 3.0, 1.0, 0.5]
    want = _pack_schedule(frames, sigmas)
    control = AdvancedControl(FakeNet(), torch.zeros(1, 8, 8, 3), 0.5, keyframes=group)
    for run in range(2):  # a sigma above the last one seen starts the schedule again
        for sigma, frame in zip(sigmas, want):
            got = control.residuals(torch.zeros(1, 4, 2, 2), torch.tensor([sigma]), None, None, None,
                                    LinearSchedule())
            if frame["strength"] == 0:
                assert got is None
            else:
                assert got["output"][0].flatten().tolist() == pytest.approx([0.5 * frame["strength"]] * 4)
                assert got["middle"][0].item() == pytest.approx(0.5 * frame["strength"])
    # a run that starts lower (a second pass) starts the schedule again when the pipeline says so
    control.start_run()
    for sigma, frame in zip([6.0, 5.0, 4.0], _pack_schedule(frames, [6.0, 5.0, 4.0])):
        got = control.residuals(torch.zeros(1, 4, 2, 2), torch.tensor([sigma]), None, None, None, LinearSchedule())
        assert got["middle"][0].item() == pytest.approx(0.5 * frame["strength"])
    # the 0.3 keyframe is taken again for its two guaranteed steps, though the 0.4 one starts at sigma 6
    assert [f["strength"] for f in _pack_schedule(frames, [6.0, 5.0, 4.0])] == [0.5, 0.5, 0.125]
    # within a run the pipeline started, rising sigmas (FlipSigmas' unsampling) only move it forward
    rising = [0.5, 1.0, 3.0, 8.0]
    control.start_run()
    want = _pack_schedule(frames, rising)
    assert [f["strength"] for f in want] == [0.5, 0.5, 0.125, 0.125]
    for sigma, frame in zip(rising, want):
        got = control.residuals(torch.zeros(1, 4, 2, 2), torch.tensor([sigma]), None, None, None, LinearSchedule())
        assert got["middle"][0].item() == pytest.approx(0.5 * frame["strength"])


def test_one_keyframe_from_the_start_never_reads_sigma(builtin_registry):
    """The schedule cannot move: sigma (a device tensor on a GPU, a wait to read) is left alone."""
    from graphflow.models.advanced_control import AdvancedControl

    _, shortcut = call(builtin_registry, "ScaledSoftControlNetWeightsV2", base_multiplier=BASE)
    for keyframes in (None, shortcut):
        control = AdvancedControl(FakeNet(), torch.zeros(1, 8, 8, 3), 0.5, keyframes=keyframes)
        for _ in range(3):
            got = control.residuals(torch.zeros(1, 4, 2, 2), None, None, None, None, LinearSchedule())
            weight = 1.0 if keyframes is None else BASE ** 1  # the one "output" residual of one
            assert got["output"][0].flatten().tolist() == pytest.approx([0.5 * weight] * 4)


def test_keyframe_weights_inherit_or_reset(builtin_registry):
    from graphflow.models.advanced_control import AdvancedControl

    weights, _ = call(builtin_registry, "CustomControlNetWeights", weight_00=0.5, weight_12=0.25, flip_weights=False)
    group = call(builtin_registry, "TimestepKeyframe", start_percent=0.0, cn_weights=weights)
    group = call(builtin_registry, "TimestepKeyframe", start_percent=0.5, strength=1.0, prev_timestep_kf=group)
    group = call(builtin_registry, "TimestepKeyframe", start_percent=0.7, inherit_missing=False, prev_timestep_kf=group)
    control = AdvancedControl(FakeNet(), torch.zeros(1, 8, 8, 3), 1.0, keyframes=group)
    got = []
    for sigma in (9.0, 4.0, 2.0):
        r = control.residuals(torch.zeros(1, 4, 2, 2), torch.tensor([sigma]), None, None, None, LinearSchedule())
        got.append((r["output"][0].flatten()[0].item(), r["middle"][0].item()))
    assert got == [(0.5, 0.25), (0.5, 0.25), (1.0, 1.0)]  # kept by the 0.5 keyframe, dropped by the 0.7 one


def test_latent_keyframe_group_parses_as_the_pack():
    from nodes.advanced_controlnet import _parse_index_strengths

    assert _parse_index_strengths("0, 2:4=0.5, -1=0.3", 6) == [(0, 1.0), (2, 0.5), (3, 0.5), (5, 0.3)]
    assert _parse_index_strengths("-3:-1=0.5", 6) == [(3, 0.5), (4, 0.5)]  # slices of the batch
    assert _parse_index_strengths("1:3", -1) == [(1, 1.0), (2, 1.0)]  # no latent: as written
    for text, message in (("7", "out of range for the 6 latents"), ("x", "must be a whole number"),
                          ("1=-2", "cannot be negative"), ("1=a", "must be a number")):
        with pytest.raises(NodeInputError, match=message) as info:
            _parse_index_strengths(text, 6)
        assert info.value.input == "index_strengths"
    with pytest.raises(NodeInputError, match="needs a latent"):
        _parse_index_strengths("-1", -1)


def test_latent_keyframe_nodes(builtin_registry):
    earlier = call(builtin_registry, "LatentKeyframe", batch_index=2, strength=0.9)
    group = call(builtin_registry, "LatentKeyframeGroup", index_strengths="0:4=0.5", prev_latent_kf=earlier,
                 latent_optional={"samples": torch.zeros(6, 4, 8, 8)})
    assert group.frames == ((0, 0.5), (1, 0.5), (2, 0.9), (3, 0.5))  # the earlier node's keyframe wins
    batched = call(builtin_registry, "LatentKeyframeBatchedGroup", float_strengths=[0.1, 0.2, 0.3])
    assert batched.frames == ((0, 0.1), (1, 0.2), (2, 0.3))
    assert call(builtin_registry, "LatentKeyframeBatchedGroup", float_strengths=0.5).frames == ()
    t = np.linspace(0, 1, 5)
    curves = {"linear": np.linspace(0.2, 1.0, 5), "ease-in": 0.8 * t ** 2 + 0.2,
              "ease-out": 0.8 * (1 - (1 - t) ** 2) + 0.2, "ease-in-out": 0.8 * (1 - np.cos(t * np.pi)) / 2 + 0.2}
    for name, want in curves.items():
        got = call(builtin_registry, "LatentKeyframeTiming", batch_index_from=3, batch_index_to_excl=8,
                   strength_from=0.2, strength_to=1.0, interpolation=name)
        assert [i for i, _ in got.frames] == [3, 4, 5, 6, 7]
        np.testing.assert_allclose([s for _, s in got.frames], want)
    with pytest.raises(NodeInputError, match="at least batch_index_from") as info:
        call(builtin_registry, "LatentKeyframeTiming", batch_index_from=3, batch_index_to_excl=1, strength_from=1.0,
             strength_to=1.0, interpolation="linear")
    assert info.value.input == "batch_index_to_excl"


def test_clear_errors(builtin_registry, setup):
    model, net, positive, negative, image = setup
    args = dict(positive=positive, negative=negative, control_net=net, image=image, strength=1.0, start_percent=0.0,
                end_percent=1.0)
    t2i_weights, shortcut = call(builtin_registry, "SoftT2IAdapterWeights", flip_weights=False)
    with pytest.raises(NodeInputError, match="has t2iadapter weights, which do not suit this controlnet") as info:
        call(builtin_registry, "AdvancedControlNetApplyV2", **args, timestep_kf=shortcut)
    assert info.value.input == "timestep_kf"
    with pytest.raises(NodeInputError, match=r"expected a MASK \[B, H, W\] or \[H, W\]") as info:
        call(builtin_registry, "AdvancedControlNetApplyV2", **args, mask_optional=torch.ones(1, 1, 8, 8))
    assert info.value.input == "mask_optional"
    for node, inputs, name in (("TimestepKeyframe", {"start_percent": 0.0}, "mask_optional"),
                               ("ScaledSoftMaskedUniversalWeights", {}, "mask")):
        with pytest.raises(NodeInputError, match=r"expected a MASK \[B, H, W\] or \[H, W\]") as info:
            call(builtin_registry, node, **inputs, **{name: torch.ones(8)})
        assert info.value.input == name
    with pytest.raises(NodeInputError, match="expected an IMAGE") as info:
        call(builtin_registry, "AdvancedControlNetApplyV2", **{**args, "image": torch.ones(8, 8)})
    assert info.value.input == "image"
    with pytest.raises(NodeInputError, match="t2iadapter weights, which do not suit") as info:
        call(builtin_registry, "LoadDiffControlNetAdvanced", model=model, control_net_name="cn.safetensors",
             tk_optional=shortcut)
    assert info.value.input == "tk_optional"


ACN_API = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
    "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["1", 1]}},
    "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
    "4": {"class_type": "ControlNetLoaderAdvanced", "inputs": {"control_net_name": "cn.safetensors",
                                                               "timestep_keyframe": ["7", 0]}},
    "5": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0x808080}},
    "6": {"class_type": "ScaledSoftControlNetWeights", "inputs": {"base_multiplier": 0.85, "flip_weights": False,
                                                                  "uncond_multiplier": 0.5}},
    "7": {"class_type": "TimestepKeyframe", "inputs": {"start_percent": 0.0, "strength": 0.8,
                                                       "control_net_weights": ["6", 0], "null_latent_kf_strength": 0.1,
                                                       "inherit_missing": True, "guarantee_steps": 1}},
    "8": {"class_type": "LatentKeyframeGroup", "inputs": {"index_strengths": "0=1.0, 1=0.5", "print_keyframes": False}},
    "9": {"class_type": "ACN_AdvancedControlNetApply",
          "inputs": {"positive": ["2", 0], "negative": ["3", 0], "control_net": ["4", 0], "image": ["5", 0],
                     "strength": 0.9, "start_percent": 0.0, "end_percent": 1.0, "latent_kf_override": ["8", 0]}},
    "10": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 2}},
    "11": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["9", 0], "negative": ["9", 1],
                                                "latent_image": ["10", 0], "seed": 1, "steps": 2, "cfg": 3.0,
                                                "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
}


def test_api_prompt_with_the_packs_names_runs_and_round_trips(builtin_registry, models):
    workflow = parse_workflow(ACN_API, builtin_registry)
    assert workflow.nodes["4"].inputs["tk_optional"] == ["7", 0]  # the pack's old input names read
    assert workflow.nodes["7"].inputs["cn_weights"] == ["6", 0]
    result = run_graph(builtin_registry, ACN_API, outputs=["11"])
    assert result.values["11"][0]["samples"].shape == (2, 4, 8, 8)
    api = export_api(workflow, builtin_registry)
    assert api["9"]["class_type"] == "ACN_AdvancedControlNetApply" and "cn_weights" in api["7"]["inputs"]
    assert parse_workflow(api, builtin_registry).to_json()["nodes"] == workflow.to_json()["nodes"]
    again = parse_workflow(export_ui(workflow, builtin_registry), builtin_registry)
    assert again.to_json()["nodes"] == workflow.to_json()["nodes"]


def test_api_prompt_giving_an_old_and_the_current_name_reads_the_link_the_pack_takes(builtin_registry):
    """The pack's functions take a link under an input's old name over the current name's
    (`control_net_weights if control_net_weights else cn_weights`; the loaders' timestep_keyframe
    when not None): in either order the old name's link is read, the other named in a note. An old
    name's widget value is not passed on by ComfyUI: the current name is read, the old one noted."""
    from graphflow.validation import validate

    sources = {"20": {"class_type": "TimestepKeyframe", "inputs": {"start_percent": 0.0}},
               "21": {"class_type": "TimestepKeyframe", "inputs": {"start_percent": 0.5}},
               "22": {"class_type": "ScaledSoftControlNetWeights", "inputs": {"base_multiplier": 0.8}},
               "23": {"class_type": "ScaledSoftControlNetWeights", "inputs": {"base_multiplier": 0.5}},
               "24": {"class_type": "LatentKeyframe", "inputs": {"batch_index": 0, "strength": 0.5}},
               "25": {"class_type": "LatentKeyframe", "inputs": {"batch_index": 1, "strength": 0.5}}}
    cases = [("TimestepKeyframe", {"start_percent": 0.2}, "control_net_weights", "cn_weights", "22", "23"),
             ("TimestepKeyframe", {"start_percent": 0.2}, "prev_timestep_keyframe", "prev_timestep_kf", "20", "21"),
             ("LatentKeyframe", {"batch_index": 2, "strength": 1.0}, "prev_latent_keyframe", "prev_latent_kf", "24", "25"),
             ("LatentKeyframeGroup", {"index_strengths": "0"}, "prev_latent_keyframe", "prev_latent_kf", "24", "25"),
             ("LatentKeyframeTiming", {}, "prev_latent_keyframe", "prev_latent_kf", "24", "25"),
             ("LatentKeyframeBatchedGroup", {}, "prev_latent_keyframe", "prev_latent_kf", "24", "25"),
             ("ControlNetLoaderAdvanced", {"control_net_name": "cn.safetensors"}, "timestep_keyframe", "tk_optional",
              "20", "21")]
    for class_type, inputs, old, current, old_source, current_source in cases:
        for order in (1, -1):
            both = dict(list({old: [old_source, 0], current: [current_source, 0]}.items())[::order])
            graph = {**sources, "1": {"class_type": class_type, "inputs": {**inputs, **both}}}
            workflow = parse_workflow(graph, builtin_registry)
            assert workflow.nodes["1"].inputs[current] == [old_source, 0], (class_type, old, order)
            [note] = [n for n in workflow.notes if n["node_id"] == "1"]
            assert note["input"] == current and f"earlier name {old!r}" in note["message"]
        # a value, not a link, under the old name: ComfyUI passes no undeclared value on
        graph = {**sources, "1": {"class_type": class_type, "inputs": {**inputs, old: 7, current: [current_source, 0]}}}
        workflow = parse_workflow(graph, builtin_registry)
        assert workflow.nodes["1"].inputs[current] == [current_source, 0]
        [note] = [n for n in workflow.notes if n["node_id"] == "1"]
        assert note["input"] == old and "the current name is read" in note["message"]
    # the interpolation nodes' functions have no old names (ComfyUI's call would fail): a problem
    graph = {**sources, "1": {"class_type": "ACN_TimestepKeyframeInterpolation", "inputs": {
        "start_percent": 0.0, "end_percent": 1.0, "strength_start": 1.0, "strength_end": 0.5,
        "interpolation": "linear", "intervals": 3, "prev_timestep_keyframe": ["20", 0]}}}
    problems = validate(parse_workflow(graph, builtin_registry), builtin_registry, outputs=["1"])
    assert [(p.node_id, p.input) for p in problems] == [("1", "prev_timestep_keyframe")]
    assert "unknown input" in problems[0].message


def test_ui_save_with_the_packs_widgets_runs_and_round_trips(builtin_registry, models):
    nodes = [
        ui_node(1, "CheckpointLoaderSimple", ["tiny.safetensors"],
                outputs=[("MODEL", "MODEL", [1]), ("CLIP", "CLIP", [2, 3]), ("VAE", "VAE", [])]),
        ui_node(2, "CLIPTextEncode", ["a red circle"], [("clip", "CLIP", 2, False)],
                [("CONDITIONING", "CONDITIONING", [4])]),
        ui_node(3, "CLIPTextEncode", [""], [("clip", "CLIP", 3, False)], [("CONDITIONING", "CONDITIONING", [5])]),
        ui_node(4, "ControlNetLoaderAdvanced", ["cn.safetensors"], [("tk_optional", "TIMESTEP_KEYFRAME", None, False)],
                [("CONTROL_NET", "CONTROL_NET", [6])]),
        ui_node(5, "EmptyImage", [64, 64, 1, 0], outputs=[("IMAGE", "IMAGE", [7])]),
        ui_node(6, "SoftControlNetWeights",
                [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0, 1.0, False, 1.0],
                [("cn_extras", "CN_WEIGHTS_EXTRAS", None, False)],
                [("CN_WEIGHTS", "CONTROL_NET_WEIGHTS", [8]), ("TK_SHORTCUT", "TIMESTEP_KEYFRAME", [])]),
        ui_node(7, "ACN_AdvancedControlNetApply", [1.0, 0.0, 0.8],
                [("positive", "CONDITIONING", 4, False), ("negative", "CONDITIONING", 5, False),
                 ("control_net", "CONTROL_NET", 6, False), ("image", "IMAGE", 7, False),
                 ("weights_override", "CONTROL_NET_WEIGHTS", 8, False)],
                [("positive", "CONDITIONING", [9]), ("negative", "CONDITIONING", [10]), ("model_opt", "MODEL", [])]),
        ui_node(8, "EmptyLatentImage", [64, 64, 1], outputs=[("LATENT", "LATENT", [11])]),
        ui_node(9, "KSampler", [5, "fixed", 2, 3.0, "euler", "normal", 1.0],
                [("model", "MODEL", 1, False), ("positive", "CONDITIONING", 9, False),
                 ("negative", "CONDITIONING", 10, False), ("latent_image", "LATENT", 11, False)],
                [("LATENT", "LATENT", [])]),
    ]
    links = [[1, 1, 0, 9, 0, "MODEL"], [2, 1, 1, 2, 0, "CLIP"], [3, 1, 1, 3, 0, "CLIP"],
             [4, 2, 0, 7, 0, "CONDITIONING"], [5, 3, 0, 7, 1, "CONDITIONING"], [6, 4, 0, 7, 2, "CONTROL_NET"],
             [7, 5, 0, 7, 3, "IMAGE"], [8, 6, 0, 7, 4, "CONTROL_NET_WEIGHTS"], [9, 7, 0, 9, 1, "CONDITIONING"],
             [10, 7, 1, 9, 2, "CONDITIONING"], [11, 8, 0, 9, 3, "LATENT"]]
    graph = ui_graph(nodes, links)
    workflow = parse_workflow(graph, builtin_registry)
    saved = workflow.to_json()["nodes"]
    assert saved["6"]["inputs"]["weight_09"] == 1.0 and saved["6"]["inputs"]["weight_00"] == 0.1
    assert saved["7"]["inputs"]["end_percent"] == 0.8
    result = run_graph(builtin_registry, graph, outputs=["9"])
    assert result.values["9"][0]["samples"].shape == (1, 4, 8, 8)
    again = parse_workflow(export_ui(workflow, builtin_registry), builtin_registry)
    assert again.to_json()["nodes"] == workflow.to_json()["nodes"]
    api = export_api(workflow, builtin_registry)
    assert api["6"]["class_type"] == "SoftControlNetWeights" and api["4"]["class_type"] == "ControlNetLoaderAdvanced"
    assert parse_workflow(api, builtin_registry).to_json()["nodes"] == workflow.to_json()["nodes"]


def test_scaled_soft_masked_weights_raise_the_mask_per_residual(builtin_registry, setup):
    plain, _ = first(core(builtin_registry, setup)[1])
    mask = torch.rand(1, 24, 40, generator=torch.Generator().manual_seed(2))
    weights, _ = call(builtin_registry, "ScaledSoftMaskedUniversalWeights", mask=mask, min_base_multiplier=0.25,
                      max_base_multiplier=0.9)
    control, _ = first(acn(builtin_registry, setup, weights_override=weights)[1])
    # the pack's linear_conversion to [min, max], resized to each residual, to the power n - k
    scaled = (mask - mask.min()) / (mask.max() - mask.min()) * (0.9 - 0.25) + 0.25
    n = len(plain["output"])
    for k, (r, p) in enumerate(zip(control["output"], plain["output"])):
        resized = F.interpolate(scaled[:, None], size=p.shape[2:], mode="bilinear")
        torch.testing.assert_close(r, p * resized ** float(n - k), rtol=2e-3, atol=1e-5)
    torch.testing.assert_close(control["middle"][0], plain["middle"][0], rtol=2e-3, atol=1e-5)  # power 0
    flat, _ = call(builtin_registry, "ScaledSoftMaskedUniversalWeights", mask=torch.ones(8, 8), min_base_multiplier=0.1,
                   max_base_multiplier=0.6)
    assert torch.equal(flat.mask, torch.full((8, 8), 0.6))


def test_timestep_keyframe_series_nodes(builtin_registry):
    group = call(builtin_registry, "TimestepKeyframeInterpolation", start_percent=0.2, end_percent=0.6,
                 strength_start=1.0, strength_end=0.2, interpolation="ease-in-out", intervals=5)
    frames = group.frames[1:]  # after the group's own first keyframe
    percents = torch.linspace(0.2, 0.6, 5)
    t = torch.linspace(0, 1, 5).numpy()
    strengths = (0.2 - 1.0) * ((1 - np.cos(t * np.pi)) / 2) + 1.0  # the pack's curve, in numpy's float32
    assert [f.start_percent for f in frames] == percents.tolist()
    np.testing.assert_allclose([f.strength for f in frames], strengths, rtol=1e-6)
    assert [f.guarantee_steps for f in frames] == [1, 0, 0, 0, 0]
    listed = call(builtin_registry, "TimestepKeyframeFromStrengthList", float_strengths=[0.9, 0.5, 0.1],
                  start_percent=0.0, end_percent=0.5)
    assert [(f.start_percent, f.strength) for f in listed.frames[1:]] == [(0.0, 0.9), (0.25, 0.5), (0.5, 0.1)]
    one = call(builtin_registry, "TimestepKeyframeFromStrengthList", float_strengths=0.4, start_percent=0.3,
               end_percent=0.5)
    assert [(f.start_percent, f.strength) for f in one.frames[1:]] == [(pytest.approx(0.3), 0.4)]
    # added to an earlier group at once: sorted by start, equal starts in the order added (earlier group first)
    earlier = call(builtin_registry, "TimestepKeyframe", start_percent=0.25, strength=0.7)
    merged = call(builtin_registry, "TimestepKeyframeFromStrengthList", float_strengths=[0.9, 0.5, 0.1],
                  start_percent=0.0, end_percent=0.5, prev_timestep_kf=earlier)
    assert [(f.start_percent, f.strength) for f in merged.frames] == [
        (0.0, 1.0), (0.0, 0.9), (0.25, 0.7), (0.25, 0.5), (0.5, 0.1)]
    many = call(builtin_registry, "TimestepKeyframeFromStrengthList", float_strengths=[0.5] * 10000,
                start_percent=0.0, end_percent=1.0)
    assert len(many.frames) == 10001 and [f.start_percent for f in many.frames] == sorted(
        f.start_percent for f in many.frames)
    with pytest.raises(NodeInputError, match="10001 strengths; at most 10000") as info:
        call(builtin_registry, "TimestepKeyframeFromStrengthList", float_strengths=[0.5] * 10001, start_percent=0.0,
             end_percent=1.0)
    assert info.value.input == "float_strengths"


def test_masks_are_refused_on_sd3_and_flux_controlnets(builtin_registry, setup, models):
    from graphflow.models.advanced_control import AdvancedControl
    from graphflow.testing import write_flow_controlnet

    _, _, positive, negative, image = setup
    # an XLabs FLUX ControlNet encodes its hint itself (no VAE needed); an SD3 one reads it through a VAE
    write_flow_controlnet(models / "controlnet" / "xlabs.safetensors", "flux_dev", "ours", dtype=torch.float32,
                          hint_block=True)
    write_flow_controlnet(models / "controlnet" / "sd3.safetensors", "sd3_medium", dtype=torch.float32)
    mask = torch.ones(8, 8)
    masked_kf = call(builtin_registry, "TimestepKeyframe", start_percent=0.0, mask_optional=mask)
    for name, vae in (("xlabs.safetensors", {}), ("sd3.safetensors", {"vae_optional": object()})):
        net = call(builtin_registry, "LoadControlNetAdvanced", control_net_name=name)
        assert name == "sd3.safetensors" or not net.needs_vae
        with pytest.raises(NodeInputError, match="not this SD3 / FLUX ControlNet") as info:
            call(builtin_registry, "AdvancedControlNetApplyV2", positive=positive, negative=negative,
                 control_net=net, image=image, strength=1.0, start_percent=0.0, end_percent=1.0,
                 mask_optional=mask, **vae)
        assert info.value.input == "mask_optional"
        with pytest.raises(NodeInputError, match="not this SD3 / FLUX ControlNet") as info:
            call(builtin_registry, "AdvancedControlNetApplyV2", positive=positive, negative=negative,
                 control_net=net, image=image, strength=1.0, start_percent=0.0, end_percent=1.0,
                 timestep_kf=masked_kf, **vae)
        assert info.value.input == "timestep_kf"
        # the loader's schedule (which the core apply node would take as it is) is refused at the loader
        with pytest.raises(NodeInputError, match="not this SD3 / FLUX ControlNet") as info:
            call(builtin_registry, "LoadControlNetAdvanced", control_net_name=name, tk_optional=masked_kf)
        assert info.value.input == "tk_optional"
    with pytest.raises(NodeInputError, match="connect the model's VAE") as info:
        call(builtin_registry, "AdvancedControlNetApplyV2", positive=positive, negative=negative,
             control_net=call(builtin_registry, "LoadControlNetAdvanced", control_net_name="sd3.safetensors"),
             image=image, strength=1.0, start_percent=0.0, end_percent=1.0)
    assert info.value.input == "vae_optional"

    class TokenNet(torch.nn.Module):  # residuals as token rows [B, tokens, width], reaching the control unchecked
        def control(self, applied, x, *args, **kwargs):
            return {"input": [torch.ones(x.shape[0], 4, 3)]}

    control = AdvancedControl(TokenNet(), torch.zeros(1, 8, 8, 3), 1.0, keyframes=masked_kf)
    with pytest.raises(ValueError, match="not this SD3 / FLUX ControlNet, whose residuals are token rows"):
        control.residuals(torch.zeros(1, 4, 2, 2), torch.tensor([5.0]), None, None, None, LinearSchedule())
    assert AdvancedControl(TokenNet(), torch.zeros(1, 8, 8, 3), 1.0).residuals(
        torch.zeros(1, 4, 2, 2), torch.tensor([5.0]), None, None, None, LinearSchedule())["input"][0].shape == (1, 4, 3)


def test_huge_keyframe_ranges_are_refused(builtin_registry):
    from graphflow.resource_limits import Size
    from nodes.advanced_controlnet import (KEYFRAME_BYTES, LatentKeyframeGroup, LatentKeyframeTiming,
                                           _parse_index_strengths)

    with pytest.raises(NodeInputError, match="at most 100000") as info:
        _parse_index_strengths("0:200000", -1)
    assert info.value.input == "index_strengths"
    # many ranges, each under the cap, count together: 20 x 99999 keyframes are refused
    many = ", ".join(f"{k * 10 ** 6}:{k * 10 ** 6 + 99999}" for k in range(20))
    with pytest.raises(NodeInputError, match="names 1999980 keyframes; at most 100000") as info:
        _parse_index_strengths(many, -1)
    assert info.value.input == "index_strengths"
    assert len(_parse_index_strengths("0:50000, 60000:110000", -1)) == 100000  # at the cap: made
    assert LatentKeyframeGroup.estimate({"index_strengths": many}, {}).memory == 1999980 * KEYFRAME_BYTES
    # with a latent connected, ranges are slices of its batch
    assert LatentKeyframeGroup.estimate({"index_strengths": "0:1000000000, 2, -3:-1"},
                                        {"latent_optional": Size(6, 64, 64)}).memory == (6 + 1 + 2) * KEYFRAME_BYTES
    with pytest.raises(NodeInputError, match="at most 100000"):
        call(builtin_registry, "LatentKeyframeTiming", batch_index_from=0, batch_index_to_excl=10 ** 9,
             strength_from=1.0, strength_to=1.0, interpolation="linear")
    assert LatentKeyframeTiming.estimate({"batch_index_from": 0, "batch_index_to_excl": 10 ** 9}, {}).memory >= 10 ** 11


def test_comfyui_clients_see_the_packs_optional_inputs():
    from graphflow.server.comfyui_object_info import class_info
    from graphflow.workflow import comfy_aliases
    from nodes.advanced_controlnet import AdvancedControlNetApply, LoadControlNetAdvanced, TimestepKeyframe

    for cls, required, optional in (
            (AdvancedControlNetApply, ["positive", "negative", "control_net", "image", "strength", "start_percent",
                                       "end_percent"],
             ["mask_optional", "timestep_kf", "latent_kf_override", "weights_override", "model_optional",
              "vae_optional"]),
            (LoadControlNetAdvanced, ["control_net_name"], ["tk_optional"]),
            (TimestepKeyframe, ["start_percent"], ["prev_timestep_kf", "strength", "cn_weights", "latent_keyframe",
                                                   "null_latent_kf_strength", "inherit_missing", "guarantee_steps",
                                                   "mask_optional"])):
        alias = comfy_aliases(cls)[0]
        order = class_info(cls, alias.class_types[0], alias)["input_order"]
        assert order == {"required": required, "optional": optional}


def test_loaders_give_the_net_itself_or_with_its_schedule(builtin_registry, setup):
    from graphflow.models.advanced_control import KeyframedNet
    from graphflow.models.controlnet import ControlNet

    model = setup[0]
    _, shortcut = call(builtin_registry, "ScaledSoftControlNetWeightsV2", base_multiplier=BASE)
    for node, extra in (("LoadControlNetAdvanced", {}), ("LoadDiffControlNetAdvanced", {"model": model}),
                        ("LoadControlNetAdvancedV2", {}), ("LoadDiffControlNetAdvancedV2", {"model": model})):
        plain = call(builtin_registry, node, control_net_name="cn.safetensors", **extra)
        assert isinstance(plain, ControlNet)
        scheduled = call(builtin_registry, node, control_net_name="cn.safetensors", tk_optional=shortcut, **extra)
        assert isinstance(scheduled, KeyframedNet) and scheduled.keyframes is shortcut
        assert isinstance(scheduled.net, ControlNet)
        assert scheduled.config is scheduled.net.config  # the net's attributes read through


def test_a_scheduled_union_net_keeps_its_schedule_when_typed(sdxl_models, builtin_registry):
    from graphflow.choices import UNION_CONTROLNET_TYPES
    from graphflow.models.advanced_control import AdvancedControl, KeyframedNet
    from graphflow.models.controlnet import UnionTyped

    _, shortcut = call(builtin_registry, "ScaledSoftControlNetWeightsV2", base_multiplier=BASE)
    loaded = call(builtin_registry, "LoadControlNetAdvanced",
                  control_net_name="diffusion_pytorch_model_promax.safetensors", tk_optional=shortcut)
    typed = call(builtin_registry, "SetUnionControlNetType", control_net=loaded, type="depth")
    assert isinstance(typed, KeyframedNet) and typed.keyframes is shortcut and isinstance(typed.net, UnionTyped)
    conditioning = [(torch.zeros(1, 77, 2048), {})]
    positive, _ = call(builtin_registry, "ApplyControlNetAdvanced", positive=conditioning, negative=conditioning,
                       control_net=typed, image=torch.rand(1, 64, 64, 3), strength=1.0, start_percent=0.0,
                       end_percent=1.0)
    applied = positive[0][1]["control"]
    assert isinstance(applied, AdvancedControl) and applied.keyframes is shortcut
    assert applied.control_type == UNION_CONTROLNET_TYPES.index("depth") - 1 and applied.net is loaded.net


def _pack_residual_mask(mask, latent_hw, r, chunks):
    """The pack's order, rebuilt: the whole batch resized to the pixel size, then cut or extended
    to the latents, repeated per entry, resized to the residual."""
    m = mask.reshape(-1, 1, *mask.shape[-2:]).float()
    if latent_hw is not None:
        m = F.interpolate(m, size=(latent_hw[0] * 8, latent_hw[1] * 8), mode="bilinear")
    count = r.shape[0] // chunks
    m = m[:count] if m.shape[0] >= count else torch.cat([m] + [m[-1:]] * (count - m.shape[0]))
    if m.shape[0] != 1 and m.shape[0] != r.shape[0]:
        m = m.repeat(chunks, 1, 1, 1)
    return F.interpolate(m, size=tuple(r.shape[2:]), mode="bilinear")


def test_residual_masks_are_cut_first_and_made_once_a_run():
    from graphflow.models.advanced_control import _residual_mask

    x = torch.zeros(6, 4, 12, 10)
    for batch in (1, 2, 9):  # fewer masks than latents, and more (the extra ones never resized)
        mask = torch.rand(batch, 8, 8, generator=torch.Generator().manual_seed(batch))
        cache = {}
        for shape in ((6, 3, 12, 10), (6, 3, 6, 5), (6, 3, 12, 10)):
            r = torch.zeros(shape)
            for hw in ((12, 10), None):  # a strength mask, and a weight mask (no pixel size)
                got = _residual_mask(mask, None if hw is None else x, r, 2, cache)
                torch.testing.assert_close(got, _pack_residual_mask(mask, hw, r, 2), rtol=1e-6, atol=1e-6)
                assert got is _residual_mask(mask, None if hw is None else x, r, 2, cache)  # made once
        # one pixel-size mask for each of the two rules, one residual mask per residual size and rule
        assert sorted(k[0] for k in cache) == ["pixel mask"] * 2 + ["residual mask"] * 4
        pixel = next(v for k, v in cache.items() if k[0] == "pixel mask" and k[1][2] is not None)
        assert pixel.shape[0] == 6  # 3 latents an entry, 2 entries: 9 masks are cut before the resize


def test_middle_mult_leaves_a_control_loras_middle_residual(builtin_registry):
    """The pack's ControlLoraAdvanced universal weights give no weight function for the middle
    residual (1.0); its ControlNetAdvanced / T2IAdapterAdvanced give the extras' middle_mult."""
    from graphflow.models.advanced_control import CONTROLLORA, CONTROLNET, T2IADAPTER

    extras = call(builtin_registry, "ExtrasMiddleMult", middle_mult=2.5)
    weights, _ = call(builtin_registry, "ScaledSoftControlNetWeightsV2", base_multiplier=BASE, cn_extras=extras)
    assert weights.weight("middle", 0, 1, CONTROLNET) == 2.5
    assert weights.weight("middle", 0, 1, T2IADAPTER) == 2.5
    assert weights.weight("middle", 0, 1, CONTROLLORA) == 1.0
    assert [weights.weight("output", k, 9, CONTROLLORA) for k in range(9)] == [1.0] * 9


@pytest.fixture
def sdxl_layout_models(tmp_folders):
    """A small SDXL with SDXL's block layout (3 levels of 2 residual blocks: 9 input blocks, no
    attention on the first level), its ControlNet and an SDXL T2I-Adapter for it."""
    from dataclasses import replace

    from graphflow.models.controlnet import ControlNet, ControlNetConfig
    from graphflow.models.t2i_adapter import T2IAdapter, T2IAdapterConfig
    from graphflow.testing import _module_shapes, random_state, unet_config

    m = tmp_folders.models
    for sub in ("checkpoints", "controlnet"):
        (m / sub).mkdir(parents=True, exist_ok=True)
    cfg = replace(unet_config("sdxl"), channel_mult=(1, 2, 4), num_res_blocks=(2, 2, 2), transformer_depth=(0, 1, 1))
    write_checkpoint(m / "checkpoints" / "xl9.safetensors", "sdxl", unet=cfg, dtype=torch.float32)
    with torch.device("meta"):
        shapes = _module_shapes(ControlNet(ControlNetConfig(unet=cfg)))
    save_file({"control_model." + k: v for k, v in random_state(shapes, 4, torch.float32).items()},
              str(m / "controlnet" / "cn_xl9.safetensors"))
    widths = [k * cfg.model_channels for k in cfg.channel_mult]
    torch.manual_seed(0)
    adapter = T2IAdapter(T2IAdapterConfig(channels=(*widths, widths[-1]), blocks_per_level=1, downscale=16,
                                          down_levels=(2,)))
    save_file({k: v.contiguous() for k, v in adapter.state_dict().items()},
              str(m / "controlnet" / "t2i_xl.safetensors"))
    return m


def test_sdxl_controlnet_and_t2i_adapter_weights_follow_the_packs_formulas(builtin_registry, sdxl_layout_models):
    """SDXL: 9 input blocks. The pack's universal weights for a ControlNet's n residuals: base ** (n - k),
    the middle 1. Its T2I weights (each of four for three places, a 12-place list) are read reversed
    against ComfyUI's reversed "input" list, which for an SDXL adapter holds the 9 blocks and the
    middle feature: block b takes the arranged weight b + 2, the middle one 1."""
    model, clip, _ = call(builtin_registry, "LoadCheckpoint", checkpoint="xl9.safetensors")
    positive = call(builtin_registry, "CLIPEncode", text="a red circle", clip=clip)
    negative = call(builtin_registry, "CLIPEncode", text="", clip=clip)
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))

    def controls(net, override=None):
        setup = (model, net, positive, negative, image)
        if override is None:
            p, n = call(builtin_registry, "ApplyControlNetAdvanced", positive=positive, negative=negative,
                        control_net=net, image=image, strength=1.0, start_percent=0.0, end_percent=1.0)
            return first(sample(builtin_registry, model, p, n, steps=1)[1])[0]
        return first(acn(builtin_registry, setup, strength=1.0, weights_override=override, steps=1)[1])[0]

    universal, _ = call(builtin_registry, "ScaledSoftControlNetWeightsV2", base_multiplier=BASE)
    cn = call(builtin_registry, "LoadControlNet", control_net_name="cn_xl9.safetensors")
    plain, weighted = controls(cn), controls(cn, universal)
    assert len(plain["output"]) == 9
    for r, p, w in zip(weighted["output"], plain["output"], _universal(9)):
        torch.testing.assert_close(r, p * w, rtol=2e-3, atol=1e-5)
    torch.testing.assert_close(weighted["middle"][0], plain["middle"][0], rtol=2e-3, atol=1e-5)

    t2i = call(builtin_registry, "LoadControlNet", control_net_name="t2i_xl.safetensors")
    plain = controls(t2i)
    assert len(plain["input"]) == 9 and plain["middle"][0] is not None
    # diffusers' places: after level 0's downsampler (no attention there), levels 1 and 2's last blocks
    assert [b for b, r in enumerate(plain["input"]) if r is not None] == [3, 5, 8]
    four = (0.2, 0.4, 0.6, 0.8)
    custom, _ = call(builtin_registry, "CustomT2IAdapterWeights", **dict(zip(_WEIGHT_NAMES[:4], four)),
                     flip_weights=False)
    for override, levels in ((custom, four), (universal, (BASE ** 7, BASE ** 2, BASE, 1.0))):
        arranged = [w for w in levels for _ in range(3)]
        weighted = controls(t2i, override)
        for b, (r, p) in enumerate(zip(weighted["input"], plain["input"])):
            if p is None:
                assert r is None
            else:
                torch.testing.assert_close(r, p * arranged[b + 2], rtol=2e-3, atol=1e-5)
        torch.testing.assert_close(weighted["middle"][0], plain["middle"][0], rtol=2e-3, atol=1e-5)


def test_each_residual_is_multiplied_once(builtin_registry):
    """Keyframe strength, latent keyframes, a mask and the weight fold into one small multiplier:
    one multiply of the residual itself, with the product of the pack's factors."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from graphflow.models.advanced_control import AdvancedControl

    class WideNet(torch.nn.Module):
        def control(self, applied, x, *args, **kwargs):
            return {"output": [torch.ones(x.shape[0], 8, 4, 4)]}

    class FullSizeMuls(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.overloadpacket is torch.ops.aten.mul and getattr(out, "shape", None) == (2, 8, 4, 4):
                FullSizeMuls.count += 1
            return out

    weights, _ = call(builtin_registry, "CustomControlNetWeights", weight_00=0.5, flip_weights=False)
    latents = call(builtin_registry, "LatentKeyframe", batch_index=1, strength=0.25)
    mask = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(2))
    group = call(builtin_registry, "TimestepKeyframe", start_percent=0.0, strength=0.8, cn_weights=weights,
                 latent_keyframe=latents, null_latent_kf_strength=0.6, mask_optional=mask)
    control = AdvancedControl(WideNet(), torch.zeros(1, 8, 8, 3), 0.7, keyframes=group)
    with FullSizeMuls():
        got = control.residuals(torch.zeros(2, 4, 4, 4), torch.tensor([5.0]), None, None, None, LinearSchedule())
    assert FullSizeMuls.count == 1
    pixels = F.interpolate(mask[:, None], size=(32, 32), mode="bilinear")
    want = torch.ones(2, 8, 4, 4) * torch.tensor([0.6, 0.25]).reshape(2, 1, 1, 1) \
        * F.interpolate(pixels, size=(4, 4), mode="bilinear") * 0.8 * 0.7 * 0.5
    torch.testing.assert_close(got["output"][0], want, rtol=1e-6, atol=1e-7)


def test_shared_inputs_keep_each_nodes_places():
    """The apply nodes share their inputs and the Custom weights nodes are their Soft ones: each
    keeps the pack's input order (UI saves are read by position) and the Custom ones default to 1."""
    import nodes.advanced_controlnet as acn_nodes

    control = ["control_net", "image", "strength", "start_percent", "end_percent", "mask_optional", "timestep_kf",
               "latent_kf_override", "weights_override"]
    for name, sides, own in (("AdvancedControlNetApply", ["positive", "negative"], ["model_optional", "vae_optional"]),
                             ("AdvancedControlNetApplyV2", ["positive", "negative"], ["vae_optional"]),
                             ("AdvancedControlNetApplySingle", ["conditioning"], ["model_optional", "vae_optional"]),
                             ("AdvancedControlNetApplySingleV2", ["conditioning"], ["vae_optional"])):
        assert list(getattr(acn_nodes, name).input_specs) == sides + control + own
    for soft, custom, weights, extra in (
            ("SoftControlNetWeights", "CustomControlNetWeights", list(_WEIGHT_NAMES), ["flip_weights"]),
            ("SoftControlNetWeightsSD15", "CustomControlNetWeightsSD15",
             [f"output_{k}" for k in range(12)] + ["middle_0"], []),
            ("SoftT2IAdapterWeights", "CustomT2IAdapterWeights", list(_WEIGHT_NAMES[:4]), ["flip_weights"]),
            ("SoftT2IAdapterWeightsV2", "CustomT2IAdapterWeightsV2", [f"input_{k}" for k in range(4)], [])):
        for cls in (getattr(acn_nodes, soft), getattr(acn_nodes, custom)):
            assert list(cls.input_specs) == weights + extra + ["uncond_multiplier", "cn_extras"]
        specs = getattr(acn_nodes, custom).input_specs
        assert [specs[w].widget.default for w in weights] == [1.0] * len(weights)
        assert getattr(acn_nodes, soft).input_specs[weights[0]].widget.default < 1.0
