"""The ControlNet nodes: loaders' refusals (named file, what was expected), T2I-Adapters and
Control-LoRAs through the nodes and the sampler, ComfyUI names."""

import pytest
import torch
from safetensors.torch import save_file

from graphflow.context import NodeInputError
from graphflow.testing import write_checkpoint, write_controlnet, write_lora
from tests.test_nodes_image_mask import call


@pytest.fixture
def models(tmp_folders):
    (tmp_folders.models / "controlnet").mkdir(parents=True)
    (tmp_folders.models / "checkpoints").mkdir(parents=True)
    write_checkpoint(tmp_folders.models / "checkpoints" / "tiny.safetensors", "sd1")
    return tmp_folders.models


def load_model(registry):
    return call(registry, "LoadCheckpoint", checkpoint="tiny.safetensors")


def sample(registry, model, positive, negative, steps=2):
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    return call(registry, "KSampler", model=model, positive=positive, negative=negative, latent_image=latent,
                seed=3, steps=steps, cfg=4.0, sampler_name="euler", scheduler="normal", denoise=1.0)["samples"]


def test_loaders_refuse_wrong_and_damaged_files(builtin_registry, models):
    folder = models / "controlnet"
    write_lora(folder / "a-lora.safetensors", "sd1")
    good = write_controlnet(folder / "good.safetensors", "sd1")
    (folder / "cut.safetensors").write_bytes(good.read_bytes()[:5000])

    class Evil:
        def __reduce__(self):
            return (exec, ("import os",))

    torch.save({"control_model.input_hint_block.0.weight": Evil()}, folder / "evil.pth")
    cases = {"a-lora.safetensors": r"a-lora.safetensors is not a ControlNet: expected .*control_model.input_hint_block.* a LoRA",
             "cut.safetensors": r"cut.safetensors is not a readable safetensors file.*truncated",
             "evil.pth": r"evil.pth was refused by PyTorch.s restricted unpickler"}
    for node in ("LoadControlNet", "LoadDiffControlNet"):
        for name, message in cases.items():
            extra = {"model": load_model(builtin_registry)[0]} if node == "LoadDiffControlNet" else {}
            with pytest.raises(NodeInputError, match=message) as info:
                call(builtin_registry, node, control_net_name=name, **extra)
            assert info.value.input == "control_net_name"


def test_t2i_adapter_through_the_nodes_and_sampler(builtin_registry, models):
    from graphflow.models.t2i_adapter import T2IAdapter, T2IAdapterConfig

    model, clip, _ = load_model(builtin_registry)
    cfg = model.unet.config
    torch.manual_seed(0)
    adapter = T2IAdapter(T2IAdapterConfig(channels=tuple(m * cfg.model_channels for m in cfg.channel_mult)))
    save_file({k: v.contiguous() for k, v in adapter.state_dict().items()}, str(models / "controlnet" / "t2i.safetensors"))
    net = call(builtin_registry, "LoadControlNet", control_net_name="t2i.safetensors")
    assert isinstance(net, T2IAdapter)
    positive = call(builtin_registry, "CLIPEncode", text="a red circle", clip=clip)
    negative = call(builtin_registry, "CLIPEncode", text="", clip=clip)
    image = torch.rand(1, 64, 64, 3)
    plain = sample(builtin_registry, model, positive, negative)
    applied = call(builtin_registry, "ApplyControlNet", conditioning=positive, control_net=net, image=image, strength=1.0)
    assert applied[0][1]["control"].net is net and "control" not in positive[0][1]
    assert (sample(builtin_registry, model, applied, negative) - plain).abs().max() > 1e-3
    # a 1-channel (sketch / canny) adapter takes the image's grey levels
    grey = T2IAdapter(T2IAdapterConfig(channels=tuple(m * cfg.model_channels for m in cfg.channel_mult), hint_channels=1))
    save_file({k: v.contiguous() for k, v in grey.state_dict().items()}, str(models / "controlnet" / "t2i_grey.safetensors"))
    grey = call(builtin_registry, "LoadControlNet", control_net_name="t2i_grey.safetensors")
    assert grey.config.hint_channels == 1
    applied = call(builtin_registry, "ApplyControlNet", conditioning=positive, control_net=grey, image=image, strength=1.0)
    assert (sample(builtin_registry, model, applied, negative) - plain).abs().max() > 1e-3
    zero = call(builtin_registry, "ApplyControlNet", conditioning=positive, control_net=net, image=image, strength=0.0)
    assert torch.equal(sample(builtin_registry, model, zero, negative), plain)


def test_advanced_apply_stacks_and_shares_controls(builtin_registry, models):
    write_controlnet(models / "controlnet" / "a.safetensors", "sd1", seed=1)
    write_controlnet(models / "controlnet" / "b.safetensors", "sd1", seed=2)
    model, clip, _ = load_model(builtin_registry)
    a = call(builtin_registry, "LoadControlNet", control_net_name="a.safetensors")
    b = call(builtin_registry, "LoadDiffControlNet", model=model, control_net_name="b.safetensors")
    positive = call(builtin_registry, "CLIPEncode", text="a red circle", clip=clip)
    negative = call(builtin_registry, "CLIPEncode", text="", clip=clip)
    image = torch.rand(1, 48, 48, 3)
    p1, n1 = call(builtin_registry, "ApplyControlNetAdvanced", positive=positive, negative=negative, control_net=a,
                  image=image, strength=0.7, start_percent=0.0, end_percent=1.0)
    p2, n2 = call(builtin_registry, "ApplyControlNetAdvanced", positive=p1, negative=n1, control_net=b,
                  image=image, strength=0.4, start_percent=0.2, end_percent=0.8)
    top = p2[0][1]["control"]
    assert top is n2[0][1]["control"]  # one control object for both sides: one batched UNet call
    assert top.net is b and top.previous.net is a and top.previous.strength == 0.7
    # 4 steps: sigmas 14.6, 2.92, 0.93, 0.03; b is active from 5.09 (20 %) to 0.57 (80 %): the middle two
    stacked, alone = sample(builtin_registry, model, p2, n2, steps=4), sample(builtin_registry, model, p1, n1, steps=4)
    assert (stacked - alone).abs().max() > 1e-4
    p3, n3 = call(builtin_registry, "ApplyControlNetAdvanced", positive=p1, negative=n1, control_net=b,
                  image=image, strength=0.4, start_percent=0.85, end_percent=0.9)  # between steps: never active
    assert torch.equal(sample(builtin_registry, model, p3, n3, steps=4), alone)


def test_comfyui_names(builtin_registry):
    from graphflow.workflow import import_comfy

    graph = {
        "1": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "x.safetensors"}},
        "2": {"class_type": "DiffControlNetLoader", "inputs": {"model": ["9", 0], "control_net_name": "x.safetensors"}},
        "3": {"class_type": "ControlNetApply", "inputs": {"conditioning": ["9", 1], "control_net": ["1", 0],
                                                          "image": ["9", 2], "strength": 0.5}},
        "4": {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["3", 0], "negative": ["9", 1], "control_net": ["2", 0], "image": ["9", 2], "strength": 1.0,
            "start_percent": 0.1, "end_percent": 0.9, "vae": ["9", 3]}},
    }
    wf = import_comfy(graph, builtin_registry)
    assert [wf.nodes[k].type for k in "1234"] == ["LoadControlNet", "LoadDiffControlNet", "ApplyControlNet",
                                                  "ApplyControlNetAdvanced"]
    assert wf.nodes["4"].inputs["start_percent"] == 0.1


def test_control_lora_is_built_on_the_sampled_model(builtin_registry, models):
    """ComfyUI's ControlLora is built when sampling starts, from the sampled model's UNet weights
    (LoRAs merged), whichever loader read it: ControlNetLoader takes it too, and
    DiffControlNetLoader's model input does not matter."""
    from graphflow.memory import manager
    from graphflow.models.controlnet import ControlLoraFile, ControlNet, ControlNetConfig
    from graphflow.testing import write_lora

    model, clip, _ = load_model(builtin_registry)
    base = model.unet.state_dict()
    with torch.device("meta"):
        layout = ControlNet(ControlNetConfig(unet=model.unet.config)).state_dict()
    g = torch.Generator().manual_seed(0)
    state = {"lora_controlnet": torch.tensor([])}
    for k, v in layout.items():
        if k in base and v.ndim >= 2:
            stem = k.removesuffix(".weight")
            state[stem + ".up"] = torch.randn(v.shape[0], 2, generator=g) * 0.01
            state[stem + ".down"] = torch.randn(2, v[0].numel(), generator=g) * 0.01
        elif k not in base:
            state[k] = torch.randn(v.shape, generator=g) * 0.01
    save_file(state, str(models / "controlnet" / "control-lora-test.safetensors"))
    (models / "loras").mkdir(exist_ok=True)
    write_lora(models / "loras" / "style.safetensors", "sd1", text=False, scale=0.2)
    patched = call(builtin_registry, "LoadLoRA", model=model, clip=None, lora_name="style.safetensors",
                   strength_model=1.0, strength_clip=1.0)[0]
    diff = call(builtin_registry, "LoadDiffControlNet", model=model, control_net_name="control-lora-test.safetensors")
    plain = call(builtin_registry, "LoadControlNet", control_net_name="control-lora-test.safetensors")
    assert isinstance(diff, ControlLoraFile) and isinstance(plain, ControlLoraFile)
    key = "input_blocks.1.0.in_layers.2.weight"
    stem = key.removesuffix(".weight")
    merged = manager().weights(patched.unet, patched.patches)[key].float()
    assert (merged - base[key].float()).abs().max() > 1e-3  # the LoRA changes this weight
    expected = merged + (state[stem + ".up"] @ state[stem + ".down"]).reshape(base[key].shape)
    built = diff.bind(patched)
    torch.testing.assert_close(built.state_dict()[key].float(), expected, atol=2e-3, rtol=1e-3)
    positive = call(builtin_registry, "CLIPEncode", text="a red circle", clip=clip)
    negative = call(builtin_registry, "CLIPEncode", text="", clip=clip)
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(2))
    runs = []
    for loaded in (diff, plain):
        sides = call(builtin_registry, "ApplyControlNetAdvanced", positive=positive, negative=negative,
                     control_net=loaded, image=image, strength=1.0, start_percent=0.0, end_percent=1.0)
        runs.append(sample(builtin_registry, patched, *sides))
    assert diff.bind(patched) is built  # the sampler bound it to the sampled model (another would rebuild it)
    torch.testing.assert_close(runs[1], runs[0], atol=1e-6, rtol=0)
    assert (runs[0] - sample(builtin_registry, patched, positive, negative)).abs().max() > 1e-4


def test_controlnet_for_another_model_family_is_refused_clearly(builtin_registry, models):
    write_controlnet(models / "controlnet" / "xl.safetensors", "sdxl")
    model, clip, _ = load_model(builtin_registry)
    net = call(builtin_registry, "LoadControlNet", control_net_name="xl.safetensors")
    positive = call(builtin_registry, "CLIPEncode", text="a red circle", clip=clip)
    applied = call(builtin_registry, "ApplyControlNet", conditioning=positive, control_net=net,
                   image=torch.rand(1, 64, 64, 3), strength=1.0)
    with pytest.raises(Exception, match="ControlNet was made for a model with .*-wide text embeddings"):
        sample(builtin_registry, model, applied, positive)


def test_validation_checks_the_controlnet_file(builtin_registry, models):
    """A damaged ControlNet file is reported before anything runs, naming the node's input."""
    from pathlib import Path

    from graphflow.validation import validate
    from graphflow.workflow import load_workflow

    good = write_controlnet(models / "controlnet" / "good.safetensors", "sd1")
    (models / "controlnet" / "cut.safetensors").write_bytes(good.read_bytes()[:5000])
    wf = load_workflow(Path(__file__).parent.parent / "workflows" / "controlnet.json")
    wf.nodes["8"].inputs["control_net_name"] = "cut.safetensors"
    problems = validate(wf, builtin_registry)
    assert any(p.input == "control_net_name" and "cut.safetensors" in p.message for p in problems), problems


def test_clip_text_encode_controlnet_gives_the_controlnet_its_own_prompt(builtin_registry, models, monkeypatch):
    from graphflow.models.controlnet import ControlApplied

    write_controlnet(models / "controlnet" / "a.safetensors", "sd1", seed=1)
    model, clip, _ = load_model(builtin_registry)
    net = call(builtin_registry, "LoadControlNet", control_net_name="a.safetensors")
    positive = call(builtin_registry, "CLIPEncode", text="a red circle", clip=clip)
    negative = call(builtin_registry, "CLIPEncode", text="", clip=clip)
    image = torch.rand(1, 64, 64, 3)
    # on both sides, as one control: both sides' ControlNet texts given, the sides run as one batch
    applied, negative = call(builtin_registry, "ApplyControlNetAdvanced", positive=positive, negative=negative,
                             control_net=net, image=image, strength=1.0, start_percent=0.0, end_percent=1.0)
    own_negative = call(builtin_registry, "CLIPTextEncodeControlnet", clip=clip, conditioning=negative, text="")
    seen = []  # (context the ControlNet got, the UNet call's batch)
    residuals = ControlApplied.residuals

    def spy(self, x, sigma, timesteps, context, *args, **kwargs):
        seen.append(context.clone())
        return residuals(self, x, sigma, timesteps, context, *args, **kwargs)

    monkeypatch.setattr(ControlApplied, "residuals", spy)
    plain = sample(builtin_registry, model, applied, negative)
    # its own text the same as the prompt: the same picture
    same = call(builtin_registry, "CLIPTextEncodeControlnet", clip=clip, conditioning=applied, text="a red circle")
    torch.testing.assert_close(sample(builtin_registry, model, same, own_negative), plain, atol=1e-5, rtol=0)
    # another text: the ControlNet attends to it, the UNet still to the prompt
    seen.clear()
    other = call(builtin_registry, "CLIPTextEncodeControlnet", clip=clip, conditioning=applied, text="a blue square")
    encoded, pooled = clip.encode("a blue square")
    assert torch.equal(other[0][1]["cross_attn_controlnet"], encoded) and "cross_attn_controlnet" not in applied[0][1]
    assert torch.equal(other[0][1]["pooled_output_controlnet"], pooled)
    assert other[0][1]["control"] is applied[0][1]["control"]
    assert torch.equal(other[0][0], positive[0][0])
    changed = sample(builtin_registry, model, other, own_negative)
    assert (changed - plain).abs().max() > 1e-4
    empty, _ = clip.encode("")
    assert len(seen) == 2  # one batched call per step: the positive's row reads its text, the negative's its own
    for c in seen:
        matches = [tuple(torch.allclose(row.float(), ref[0], atol=1e-6) for ref in (encoded, empty)) for row in c]
        assert sorted(matches) == [(False, True), (True, False)]
    # without a ControlNet the text changes nothing
    bare = call(builtin_registry, "CLIPTextEncodeControlnet", clip=clip, conditioning=positive, text="a blue square")
    torch.testing.assert_close(sample(builtin_registry, model, bare, negative),
                               sample(builtin_registry, model, positive, negative), atol=1e-5, rtol=0)


def test_deprecated_apply_controlnet_guides_the_negative_too(builtin_registry, models):
    """ComfyUI's ControlNetApply marks its control control_apply_to_uncond: a negative prompt with no
    control of its own runs with the positive's, so it samples as the advanced node applied to both
    sides (which leaves a negative alone only when told to: its mark is off)."""
    write_controlnet(models / "controlnet" / "a.safetensors", "sd1", seed=1)
    model, clip, _ = load_model(builtin_registry)
    net = call(builtin_registry, "LoadControlNet", control_net_name="a.safetensors")
    positive = call(builtin_registry, "CLIPEncode", text="a red circle", clip=clip)
    negative = call(builtin_registry, "CLIPEncode", text="", clip=clip)
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(4))
    old = call(builtin_registry, "ApplyControlNet", conditioning=positive, control_net=net, image=image, strength=0.8)
    assert old[0][1]["control_apply_to_uncond"] is True and "control" not in negative[0][1]
    both = call(builtin_registry, "ApplyControlNetAdvanced", positive=positive, negative=negative, control_net=net,
                image=image, strength=0.8, start_percent=0.0, end_percent=1.0)
    assert both[0][0][1]["control_apply_to_uncond"] is False
    torch.testing.assert_close(sample(builtin_registry, model, old, negative), sample(builtin_registry, model, *both),
                               atol=0, rtol=0)
    positive_only = [both[0], negative]  # the advanced node's control on the positive alone
    alone = sample(builtin_registry, model, *positive_only)
    assert (alone - sample(builtin_registry, model, old, negative)).abs().max() > 1e-4


def test_share_controls_follows_comfyui_fill_rule():
    from graphflow.sampling.guidance import Cond, share_controls

    ctx = torch.zeros(1, 1, 1)
    a, b, own = object(), object(), object()
    marked = [Cond(ctx, control=a, control_to_uncond=True), Cond(ctx, control=b, control_to_uncond=True)]
    side = [Cond(ctx), Cond(ctx, area=(4, 4, 0, 0)), Cond(ctx)]
    share_controls(marked[:1], side)
    assert [c.control for c in side] == [a, None, None]  # the first area-less entry; areas never
    side = [Cond(ctx)]
    share_controls(marked, side)
    assert side[0].control is b  # two controls on one entry: the last one wins
    side = [Cond(ctx), Cond(ctx, control=own)]
    share_controls(marked, side)
    assert [c.control for c in side] == [None, own]  # a side with a control of its own is left alone
    side = [Cond(ctx)]
    share_controls([Cond(ctx, control=a)], side)
    assert side[0].control is None  # unmarked (ControlNetApplyAdvanced's) controls stay on their side


def test_start_after_end_is_a_control_that_never_acts(builtin_registry, models):
    """ComfyUI accepts start_percent > end_percent: no sigma lies in the window, the picture is the
    one without the ControlNet."""
    write_controlnet(models / "controlnet" / "a.safetensors", "sd1", seed=1)
    model, clip, _ = load_model(builtin_registry)
    net = call(builtin_registry, "LoadControlNet", control_net_name="a.safetensors")
    positive = call(builtin_registry, "CLIPEncode", text="a red circle", clip=clip)
    negative = call(builtin_registry, "CLIPEncode", text="", clip=clip)
    p, n = call(builtin_registry, "ApplyControlNetAdvanced", positive=positive, negative=negative, control_net=net,
                image=torch.rand(1, 64, 64, 3), strength=1.0, start_percent=0.8, end_percent=0.2)
    assert p[0][1]["control"].net is net
    torch.testing.assert_close(sample(builtin_registry, model, p, n, steps=4),
                               sample(builtin_registry, model, positive, negative, steps=4), atol=1e-5, rtol=0)


def test_share_controls_gives_the_negative_the_positive_gligen_boxes():
    """ComfyUI fills a box-less negative with the positive's GLIGEN boxes, unmarked (apply_empty_x_to_equal_area
    on 'gligen'), and leaves a negative with boxes of its own alone."""
    from graphflow.sampling.guidance import Cond, share_controls

    ctx = torch.zeros(1, 1, 1)
    boxes, own = object(), object()
    side = [Cond(ctx), Cond(ctx, area=(4, 4, 0, 0))]
    share_controls([Cond(ctx, gligen=boxes)], side)
    assert [c.gligen for c in side] == [boxes, None]
    side = [Cond(ctx, gligen=own)]
    share_controls([Cond(ctx, gligen=boxes)], side)
    assert side[0].gligen is own
    side = [Cond(ctx)]
    share_controls([Cond(ctx, gligen=boxes, area=(4, 4, 0, 0))], side)
    assert side[0].gligen is None  # an area entry's boxes stay with it


@pytest.mark.parametrize("class_type", ["DiffControlNetLoader", "DiffControlNetLoaderAdvanced",
                                        "ACN_DiffControlNetLoaderAdvanced"])
def test_diff_controlnet_loaders_run_in_a_workflow(builtin_registry, models, class_type):
    """Their fingerprint took the MODEL socket, which a fingerprint never gets: every run of
    them failed with a TypeError (only calls of the node itself were tested)."""
    from graphflow.executor import Executor
    from graphflow.testing import write_controlnet
    from graphflow.workflow import import_comfy

    write_controlnet(models / "controlnet" / "x.safetensors", "sd1")
    graph = {"9": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
             "2": {"class_type": class_type, "inputs": {"model": ["9", 0], "control_net_name": "x.safetensors"}}}
    executor = Executor(builtin_registry)
    result = executor.run(import_comfy(graph, builtin_registry), outputs=["2"])
    assert result.ok, result.error
    assert executor.run(import_comfy(graph, builtin_registry), outputs=["2"]).cached == ["9", "2"]
