"""IP-Adapter: the image projections and the patched UNet against diffusers' IP-Adapter
(UNet2DConditionModel._load_ip_adapter_weights, IPAdapterAttnProcessor2_0) on the same weights,
the negative rows' tokens and the timestep range, and the nodes end to end on a tiny SD1.5."""

import json

import pytest
import torch

from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.models import DiffusionModel
from graphflow.models.file_kind import identify
from graphflow.models.ip_adapter import IPAdapterError, read_ip_adapter_state, apply_ip_adapter, load_ip_adapter
from graphflow.models.weight_files import WeightFile
from graphflow.sampling.guidance import UNetRows, unet_rows
from safetensors.torch import save_file

from graphflow.testing import (clip_vision_state, write_checkpoint, write_clip_vision, write_controlnet, write_ip_adapter,
                               write_lora)
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_unet import TINY, random_unet, to_diffusers_unet


def diffusers_with_adapter(ours, path, weight: float):
    theirs, _ = to_diffusers_unet(ours)
    nested = {"image_proj": {}, "ip_adapter": {}}
    for key, value in read_ip_adapter_state(path).items():
        group, _, rest = key.partition(".")
        nested[group][rest] = value
    theirs._load_ip_adapter_weights([nested], low_cpu_mem_usage=False)
    for processor in theirs.attn_processors.values():
        if hasattr(processor, "scale"):
            processor.scale = [weight]
    return theirs


@pytest.mark.parametrize("kind", ["basic", "plus"])
@pytest.mark.parametrize("name", ["sd1", "sdxl"])
def test_unet_with_image_tokens_matches_diffusers(tmp_path, name, kind):
    """Projection and decoupled cross-attention as diffusers', every attn2 matched to its file
    layer (SDXL's levels have different depths, so a wrong order would not fit or differ); the
    second row is the negative prompt's, which gets the uncond features' tokens."""
    cfg = TINY[name]
    ours = random_unet(cfg)
    path = write_ip_adapter(tmp_path / "ipa.safetensors", name, kind, dtype=torch.float32, unet=cfg)
    adapter = load_ip_adapter(path)
    weight = 0.7
    theirs = diffusers_with_adapter(ours, path, weight)
    g = torch.Generator().manual_seed(1)
    b, h, w = 2, 16, 24
    features = torch.randn(*((b, 32) if kind == "basic" else (b, 5, 64)), generator=g)
    x = torch.randn(b, 4, h, w, generator=g)
    t = torch.tensor([999.0, 261.5])
    context = torch.randn(b, 7, cfg.context_dim, generator=g)
    model = DiffusionModel(ours, "sdxl" if cfg.adm_in_channels else "sd1")
    y, added = None, {}
    if cfg.adm_in_channels:
        pooled = torch.randn(b, 32, generator=g)
        y = model.encode_adm({"pooled_output": pooled}, 8 * w, 8 * h)
        added = {"text_embeds": pooled, "time_ids": torch.tensor([[8 * h, 8 * w, 0, 0, 8 * h, 8 * w]] * b).float()}

    tokens = adapter.tokens(features)
    with torch.no_grad():
        reference_tokens = theirs.encoder_hid_proj.image_projection_layers[0](features)
        torch.testing.assert_close(tokens, reference_tokens, atol=1e-5, rtol=0)
        patched = apply_ip_adapter(model, adapter, tokens[:1], tokens[1:], weight)
        added["image_embeds"] = [features[:, None]]  # one image per row
        ref = theirs(x, t, encoder_hidden_states=context, added_cond_kwargs=added).sample
        plain = ours(x, t, context, y)
        marker = unet_rows.set(UNetRows(torch.tensor([5.0]), (False, True)))
        try:
            out = patched.unet(x, t, context, y)
        finally:
            unet_rows.reset(marker)
        all_cond = patched.unet(x, t, context, y)  # no sampling context: every row gets the image tokens
    assert (ref - plain).abs().max() > 1e-3  # the image tokens matter
    assert (out - ref).abs().max().item() <= 1e-4
    torch.testing.assert_close(all_cond[:1], out[:1], atol=1e-6, rtol=0)
    assert (all_cond[1:] - ref[1:]).abs().max() > 1e-4  # row 2 really took the uncond tokens
    assert torch.equal(model.unet(x, t, context, y), plain)  # the input model is unchanged


def test_timestep_range_scaling_and_stacking(tmp_path):
    cfg = TINY["sd1"]
    model = DiffusionModel(random_unet(cfg), "sd1")
    adapter = load_ip_adapter(write_ip_adapter(tmp_path / "ipa.safetensors", "sd1", dtype=torch.float32, unet=cfg))
    tokens = adapter.tokens(torch.randn(1, 32, generator=torch.Generator().manual_seed(2)))
    g = torch.Generator().manual_seed(3)
    x, t, context = torch.randn(1, 4, 8, 8, generator=g), torch.tensor([500.0]), torch.randn(1, 7, 768, generator=g)

    def run(m, sigma):
        marker = unet_rows.set(UNetRows(torch.tensor([sigma]), (False,)))
        try:
            with torch.no_grad():
                return m.unet(x, t, context)
        finally:
            unet_rows.reset(marker)

    plain = run(model, 5.0)
    ranged = apply_ip_adapter(model, adapter, tokens, tokens, 1.0, sigma_range=(10.0, 2.0))
    always = apply_ip_adapter(model, adapter, tokens, tokens, 1.0)
    assert torch.equal(run(ranged, 20.0), plain) and torch.equal(run(ranged, 1.0), plain)
    torch.testing.assert_close(run(ranged, 5.0), run(always, 5.0), atol=0, rtol=0)
    assert (run(always, 5.0) - plain).abs().max() > 1e-3
    # K+V scales keys and values: the same as V only at weight 1, different elsewhere
    torch.testing.assert_close(run(apply_ip_adapter(model, adapter, tokens, tokens, 1.0, scaling="K+V"), 5.0),
                               run(always, 5.0), atol=1e-6, rtol=0)
    half_v = run(apply_ip_adapter(model, adapter, tokens, tokens, 0.5), 5.0)
    half_kv = run(apply_ip_adapter(model, adapter, tokens, tokens, 0.5, scaling="K+V"), 5.0)
    assert (half_v - half_kv).abs().max() > 1e-5
    # two adapters add up: twice the same at 0.5 is once at 1.0
    twice = apply_ip_adapter(apply_ip_adapter(model, adapter, tokens, tokens, 0.5), adapter, tokens, tokens, 0.5)
    torch.testing.assert_close(run(twice, 5.0), run(always, 5.0), atol=1e-5, rtol=0)


@pytest.mark.parametrize("scaling", ["V only", "K+V", "K+V w/ C penalty", "K+mean(V) w/ C penalty"])
def test_embeds_scalings_closed_form(scaling):
    """The image attention of one attn2 by hand: softmax(q k^T / sqrt(d)) v per head, with the
    weight on the output (V only), on keys and values (K+V), times inner width / 1280 (C
    penalty), or on the keys and only the values' mean over the tokens (K+mean(V))."""
    from graphflow.models.ip_adapter import _ip_attention

    g = torch.Generator().manual_seed(4)
    heads, d, inner, n = 2, 8, 16, 3
    to_k, to_v = torch.nn.Linear(6, inner, bias=False), torch.nn.Linear(6, inner, bias=False)
    with torch.no_grad():
        to_k.weight.copy_(torch.randn(inner, 6, generator=g))
        to_v.weight.copy_(torch.randn(inner, 6, generator=g))
    tokens, q = torch.randn(1, n, 6, generator=g), torch.randn(1, heads, 5, d, generator=g)
    weight = 0.6
    out = _ip_attention(to_k, to_v, tokens, tokens, weight, None, scaling)(q)
    k, v = tokens[0] @ to_k.weight.T, tokens[0] @ to_v.weight.T  # [n, inner]
    w = weight * inner / 1280 if "penalty" in scaling else weight
    if scaling == "K+mean(V) w/ C penalty":
        k, v = k * w, v + (w - 1) * v.mean(0)
    elif scaling != "V only":
        k, v = k * w, v * w
    expected = torch.stack([torch.softmax(q[0, h] @ k[:, h * d:(h + 1) * d].T / d ** 0.5, -1) @ v[:, h * d:(h + 1) * d]
                            for h in range(heads)])[None]
    if scaling == "V only":
        expected = expected * weight
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_k_mean_v_takes_each_concatenated_images_own_mean():
    """Two images concatenated (4 tokens each): K+mean(V) scales each image's values' mean over its
    own 4 tokens, as the pack (whose images are batch rows until the attention joins them), not
    the mean over all 8."""
    from graphflow.models.ip_adapter import _ip_attention

    g = torch.Generator().manual_seed(5)
    heads, d, inner, per_image = 2, 8, 16, 4
    to_k, to_v = torch.nn.Linear(6, inner, bias=False), torch.nn.Linear(6, inner, bias=False)
    with torch.no_grad():
        to_k.weight.copy_(torch.randn(inner, 6, generator=g))
        to_v.weight.copy_(torch.randn(inner, 6, generator=g))
    tokens, q = torch.randn(1, 2 * per_image, 6, generator=g), torch.randn(1, heads, 5, d, generator=g)
    weight = 0.6
    out = _ip_attention(to_k, to_v, tokens, tokens, weight, None, "K+mean(V) w/ C penalty",
                        image_tokens=per_image)(q)
    w = weight * inner / 1280
    k, v = tokens[0] @ to_k.weight.T * w, tokens[0] @ to_v.weight.T
    first, second = v[:per_image], v[per_image:]
    v = torch.cat([first + (w - 1) * first.mean(0), second + (w - 1) * second.mean(0)])
    expected = torch.stack([torch.softmax(q[0, h] @ k[:, h * d:(h + 1) * d].T / d ** 0.5, -1) @ v[:, h * d:(h + 1) * d]
                            for h in range(heads)])[None]
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_pickled_bin_loads_like_safetensors(tmp_path):
    a = load_ip_adapter(write_ip_adapter(tmp_path / "a.safetensors", "sd1", "plus", dtype=torch.float32))
    b = load_ip_adapter(write_ip_adapter(tmp_path / "b.bin", "sd1", "plus", dtype=torch.float32))
    assert a.config == b.config and a.config.kind == "plus" and a.config.depth == 4
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


@pytest.fixture
def models(tmp_folders):
    m = tmp_folders.models
    for sub in ("checkpoints", "clip_vision", "ipadapter"):
        (m / sub).mkdir(parents=True)
    write_checkpoint(m / "checkpoints" / "sd1.safetensors", "sd1", dtype=torch.float32)
    write_clip_vision(m / "clip_vision" / "vit_tiny.safetensors", dtype=torch.float32)
    write_ip_adapter(m / "ipadapter" / "ip-adapter_sd15.safetensors", "sd1", dtype=torch.float32, scale=3.0)
    write_ip_adapter(m / "ipadapter" / "ip-adapter-plus_sd15.safetensors", "sd1", "plus", dtype=torch.float32)
    write_lora(m / "ipadapter" / "a_lora.safetensors", "sd1")
    write_controlnet(m / "ipadapter" / "a_controlnet.safetensors", "sd1")
    return m


def graph(adapter_file="ip-adapter_sd15.safetensors", weight=1.0, **extra):
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd1.safetensors"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "vit_tiny.safetensors"}},
        "5": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0x30a0ff}},
        "6": {"class_type": "IPAdapterModelLoader", "inputs": {"ipadapter_file": adapter_file}},
        "7": {"class_type": "IPAdapterAdvanced", "inputs": {
            "model": ["1", 0], "ipadapter": ["6", 0], "image": ["5", 0], "clip_vision": ["4", 0], "weight": weight,
            "weight_type": "linear", "combine_embeds": "concat", "start_at": 0.0, "end_at": 1.0,
            "embeds_scaling": "V only", **extra}},
        "8": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "9": {"class_type": "KSampler", "inputs": {"model": ["7", 0], "positive": ["2", 0], "negative": ["3", 0],
                                                    "latent_image": ["8", 0], "seed": 3, "steps": 2, "cfg": 4.0,
                                                    "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
    }


def run(registry, g):
    result = Executor(registry).run(parse_workflow(json.loads(json.dumps(g)), registry), outputs=["9"])
    assert result.ok, result.error or result.problems
    return result.values["9"][0]["samples"]


def test_comfyui_graph_weight_zero_is_the_plain_model(builtin_registry, models):
    """An IPAdapter_plus graph imports and samples: weight 0 gives the image without the adapter,
    bit for bit; weight 1 changes it, and so does a plus adapter and the timestep range."""
    plain_graph = graph()
    plain_graph["9"]["inputs"]["model"] = ["1", 0]
    plain = run(builtin_registry, plain_graph)
    assert torch.equal(run(builtin_registry, graph(weight=0.0)), plain)
    prompted = run(builtin_registry, graph())
    assert (prompted - plain).abs().max() > 1e-3
    plus = run(builtin_registry, graph("ip-adapter-plus_sd15.safetensors"))
    assert (plus - plain).abs().max() > 1e-3 and (plus - prompted).abs().max() > 1e-3
    late = run(builtin_registry, graph(start_at=0.5))  # only the second of two steps
    assert (late - plain).abs().max() > 1e-5 and (late - prompted).abs().max() > 1e-5
    never = run(builtin_registry, graph(start_at=1.0))
    assert torch.equal(never, plain)
    # start_at after end_at: no sigma lies in the window, the pack's adapter never acts (no error)
    assert torch.equal(run(builtin_registry, graph(start_at=0.8, end_at=0.2)), plain)
    negative = graph(image_negative=["5", 0])  # the same image on both sides
    assert (run(builtin_registry, negative) - prompted).abs().max() > 1e-5


def test_simple_node_and_sdxl(builtin_registry, models):
    write_checkpoint(models / "checkpoints" / "sdxl.safetensors", "sdxl", dtype=torch.float32)
    write_ip_adapter(models / "ipadapter" / "ip-adapter_sdxl.safetensors", "sdxl", dtype=torch.float32)
    vision = call(builtin_registry, "LoadCLIPVision", clip_name="vit_tiny.safetensors")
    image = torch.rand(2, 48, 40, 3, generator=torch.Generator().manual_seed(4))
    for ckpt, file in (("sd1.safetensors", "ip-adapter_sd15.safetensors"), ("sdxl.safetensors", "ip-adapter_sdxl.safetensors")):
        model = call(builtin_registry, "LoadCheckpoint", checkpoint=ckpt)[0]
        adapter = call(builtin_registry, "IPAdapterModelLoader", ipadapter_file=file)
        patched = call(builtin_registry, "IPAdapter", model=model, ipadapter=adapter, image=image, clip_vision=vision)
        assert patched.unet is not model.unet and patched.arch == model.arch
        extras = [m.extra_attention for m in patched.unet.modules() if getattr(m, "extra_attention", None)]
        assert len(extras) == len(adapter.to_k_ip)
        # two images, concat: 2 x 4 tokens reach every cross-attention
        q = torch.randn(1, 1, 5, adapter.to_k_ip[0].out_features)
        assert extras[0](q).shape == q.shape
    sd1_adapter = call(builtin_registry, "IPAdapterModelLoader", ipadapter_file="ip-adapter_sd15.safetensors")
    with pytest.raises(NodeInputError, match="made for another model") as info:  # an SD1.5 adapter on SDXL
        call(builtin_registry, "IPAdapter", model=model, ipadapter=sd1_adapter, image=image, clip_vision=vision)
    assert info.value.input == "ipadapter"


def test_bad_inputs_are_named(builtin_registry, models):
    vision = call(builtin_registry, "LoadCLIPVision", clip_name="vit_tiny.safetensors")
    model = call(builtin_registry, "LoadCheckpoint", checkpoint="sd1.safetensors")[0]
    adapter = call(builtin_registry, "IPAdapterModelLoader", ipadapter_file="ip-adapter_sd15.safetensors")
    image = torch.rand(1, 32, 32, 3)
    base = dict(model=model, ipadapter=adapter, image=image, clip_vision=vision)
    for kind in ("a_lora.safetensors", "a_controlnet.safetensors"):
        with pytest.raises(NodeInputError, match=rf"{kind} is no IP-Adapter: expected image_proj.*put it in models/") as info:
            call(builtin_registry, "IPAdapterModelLoader", ipadapter_file=kind)
        assert info.value.input == "ipadapter_file"
    cases = [(dict(attn_mask=torch.ones(1, 2, 8, 8)), "attn_mask", r"MASK \[B, H, W\], got shape \(1, 2, 8, 8\)"),
             (dict(clip_vision=None), "clip_vision", "no CLIP vision model"),
             (dict(image=torch.rand(32, 32)), "image", r"IMAGE \[B, H, W, C\]")]
    for change, name, message in cases:
        with pytest.raises(NodeInputError, match=message) as info:
            call(builtin_registry, "IPAdapterAdvanced", **{**base, **change})
        assert info.value.input == name
    save_file(clip_vision_state(projection_dim=16, dtype=torch.float32), str(models / "clip_vision" / "other.safetensors"))
    other = call(builtin_registry, "LoadCLIPVision", clip_name="other.safetensors")
    with pytest.raises(NodeInputError, match=r"takes CLIP vision image embeddings \[B, 32\], got \(1, 16\)") as info:
        call(builtin_registry, "IPAdapterAdvanced", **{**base, "clip_vision": other})
    assert info.value.input == "clip_vision"
    with pytest.raises(NodeInputError, match="IPAdapterModelLoader or IPAdapterUnifiedLoader") as info:
        call(builtin_registry, "IPAdapter", **{**base, "ipadapter": vision})
    assert info.value.input == "ipadapter"


def test_file_kind_names_the_ipadapter_folder(tmp_path):
    with WeightFile(write_ip_adapter(tmp_path / "ipa.safetensors")) as f:
        kind = identify(f.shapes)
    assert kind.folder == "ipadapter" and kind.loader == "IPAdapterModelLoader"
    with pytest.raises(IPAdapterError, match="FaceID"):
        save_file({"image_proj.proj.0.weight": torch.zeros(2, 2), "ip_adapter.1.to_k_ip.weight": torch.zeros(2, 2)},
                     str(tmp_path / "faceid.safetensors"))
        load_ip_adapter(tmp_path / "faceid.safetensors")


def test_comfyui_ui_workflow_widgets_map_in_the_packs_order(builtin_registry):
    """A ComfyUI_IPAdapter_plus UI workflow's widget values land on the inputs of the same names."""
    from graphflow.comfy_format import import_ui

    ui = {"nodes": [
        {"id": 1, "type": "IPAdapterAdvanced", "inputs": [], "outputs": [],
         "widgets_values": [0.8, "linear", "average", 0.1, 0.9, "K+V"]},
        {"id": 2, "type": "IPAdapter", "inputs": [], "outputs": [], "widgets_values": [0.6, 0.2, 0.7, "standard"]},
        {"id": 3, "type": "IPAdapterModelLoader", "inputs": [], "outputs": [],
         "widgets_values": ["ip-adapter_sd15.safetensors"]},
        {"id": 4, "type": "IPAdapterUnifiedLoader", "inputs": [], "outputs": [],
         "widgets_values": ["PLUS (high strength)"]},
        {"id": 5, "type": "IPAdapterEncoder", "inputs": [], "outputs": [], "widgets_values": [0.7]},
        {"id": 6, "type": "IPAdapterEmbeds", "inputs": [], "outputs": [],
         "widgets_values": [0.9, "style transfer", 0.1, 0.8, "K+V"]},
        {"id": 7, "type": "IPAdapterBatch", "inputs": [], "outputs": [],
         "widgets_values": [0.5, "composition", 0.0, 0.6, "V only", 4]},
        {"id": 8, "type": "IPAdapterStyleComposition", "inputs": [], "outputs": [],
         "widgets_values": [0.8, 0.6, True, "add", 0.1, 0.9, "K+V"]}], "links": []}
    nodes = import_ui(ui, builtin_registry).nodes
    assert nodes["1"].inputs == {"weight": 0.8, "weight_type": "linear", "combine_embeds": "average", "start_at": 0.1,
                                 "end_at": 0.9, "embeds_scaling": "K+V"}
    assert nodes["2"].inputs == {"weight": 0.6, "start_at": 0.2, "end_at": 0.7, "weight_type": "standard"}
    assert nodes["3"].inputs == {"ipadapter_file": "ip-adapter_sd15.safetensors"}
    assert nodes["4"].inputs == {"preset": "PLUS (high strength)"}
    assert nodes["5"].inputs == {"weight": 0.7}
    assert nodes["6"].inputs == {"weight": 0.9, "weight_type": "style transfer", "start_at": 0.1, "end_at": 0.8,
                                 "embeds_scaling": "K+V"}
    assert nodes["7"].inputs == {"weight": 0.5, "weight_type": "composition", "start_at": 0.0, "end_at": 0.6,
                                 "embeds_scaling": "V only", "encode_batch_size": 4}
    assert nodes["8"].inputs == {"weight_style": 0.8, "weight_composition": 0.6, "expand_style": True,
                                 "combine_embeds": "add", "start_at": 0.1, "end_at": 0.9, "embeds_scaling": "K+V"}


# ComfyUI_IPAdapter_plus's per-transformer weights (IPAdapterPlus.py ipadapter_execute and
# CrossAttentionPatch.py), as multiples of the weight, transformers in ComfyUI's transformer_index
# order (SDXL: input 0-3, middle 4, output 5-10; SD1.5: input 0-5, middle 6, output 7-15).
# "c": the composition weight itself (IPAdapterAdvanced passes 1.0); a trailing "s": swapped (the
# positive rows get zero tokens, the negative rows the image's).
PACK_TABLE = {
    "sdxl": {
        "style transfer": "0 0 0 0 0 0 1 0 0 0 0",
        "composition": "0 0 0 1 0 0 0 0 0 0 0",
        "strong style transfer": "1 1 1 0 1 1 1 1 1 1 1",
        "style and composition": "0 0 0 c 0 0 1 0 0 0 0",
        "strong style and composition": "1 1 1 c 1 1 1 1 1 1 1",
        "style transfer precise": "0 0 0 1s 0 0 1 0 0 0 0",
        "composition precise": ".1s .1s .1s 1 .1s .1s 1s .1s .1s .1s .1s",
        "weak input": ".2 .2 .2 .2 1 1 1 1 1 1 1",
        "weak middle": "1 1 1 1 .2 1 1 1 1 1 1",
        "weak output": "1 1 1 1 1 .2 .2 .2 .2 .2 .2",
        "strong middle": ".2 .2 .2 .2 1 .2 .2 .2 .2 .2 .2",
        "linear": "1 1 1 1 1 1 1 1 1 1 1",
    },
    "sd1": {
        "style transfer": "1 1 1 1 0 0 0 0 0 1 1 1 1 1 1 1",
        "composition": "0 0 0 0 .25 1 0 0 0 0 0 0 0 0 0 0",
        "strong style transfer": "1 1 1 1 0 0 1 1 1 1 1 1 1 1 1 1",
        "style and composition": "1 1 1 1 .25c c 0 0 0 1 1 1 1 1 1 1",
        "strong style and composition": "1 1 1 1 c c 1 1 1 1 1 1 1 1 1 1",
        "style transfer precise": "1 1 1 1 .25s 1s 0 0 0 1 1 1 1 1 1 1",
        "composition precise": "1s 1s 1s 1s .25 1 .1s .1s .1s 1s 1s 1s 1s 1s 1s 1s",
        "weak input": ".2 .2 .2 .2 .2 .2 1 1 1 1 1 1 1 1 1 1",
        "weak middle": "1 1 1 1 1 1 .2 1 1 1 1 1 1 1 1 1",
        "weak output": "1 1 1 1 1 1 1 .2 .2 .2 .2 .2 .2 .2 .2 .2",
        "strong middle": ".2 .2 .2 .2 .2 .2 1 .2 .2 .2 .2 .2 .2 .2 .2 .2",
        "linear": "1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
    },
}
# the ease types: 0.05 + 0.95 * ramp(i / layers)
EASE_RAMPS = {"ease in": lambda x: 1 - x, "ease out": lambda x: x, "ease in-out": lambda x: 1 - abs(2 * x - 1),
              "reverse in-out": lambda x: abs(2 * x - 1)}


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_weight_types_follow_the_packs_table(arch):
    from graphflow.models.ip_adapter import transformer_weights
    from nodes.ip_adapter import WEIGHT_TYPES

    weight, composition, layers = 0.7, 0.3, 11 if arch == "sdxl" else 16
    covered = set()
    for weight_type, row in PACK_TABLE[arch].items():
        got = transformer_weights(weight_type, weight, arch == "sdxl", layers, composition)
        expected = []
        for cell in row.split():
            swapped, cell = cell.endswith("s"), cell.rstrip("s")
            if cell.endswith("c"):
                value = composition * float(cell[:-1] or 1)
            else:
                value = weight * float(cell)
            expected.append((value, swapped))
        assert [(pytest.approx(w, abs=1e-12), s) for w, s in got] == expected, weight_type
        covered.add(weight_type)
    for weight_type, ramp in EASE_RAMPS.items():
        got = [w for w, _ in transformer_weights(weight_type, weight, arch == "sdxl", layers)]
        assert got == pytest.approx([weight * (0.05 + 0.95 * ramp(i / layers)) for i in range(layers)], abs=1e-12)
        covered.add(weight_type)
    # every choice the node offers is checked, and IPAdapterStyleComposition's expand_style type
    assert covered == {*WEIGHT_TYPES, "strong style and composition"}


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_transformer_numbers_are_comfyuis_transformer_index(arch):
    """Full-size UNets: the attn2s numbered by the spatial transformer they sit in, in the order
    the UNet runs them (input, middle, output blocks)."""
    from graphflow.models import UNet
    from graphflow.models.ip_adapter import cross_attentions, transformer_numbers
    from tests.test_unet import FULL

    with torch.device("meta"):
        unet = UNet(FULL[arch])
    paths = cross_attentions(unet)
    numbers, layers = transformer_numbers(paths)
    if arch == "sd1":
        runs = [f"input_blocks.{i}" for i in (1, 2, 4, 5, 7, 8)] + ["middle_block"] + \
               [f"output_blocks.{i}" for i in range(3, 12)]
    else:
        runs = [f"input_blocks.{i}" for i in (4, 5, 7, 8)] + ["middle_block"] + [f"output_blocks.{i}" for i in range(6)]
    assert layers == len(runs) == (16 if arch == "sd1" else 11) and len(paths) == (16 if arch == "sd1" else 70)
    for path, number in zip(paths, numbers):
        assert path.startswith(runs[number] + "."), (path, number)


def _attn2_outputs(unet, run):
    """Each attn2's input and output during run()."""
    seen, hooks = {}, []
    for name, module in unet.named_modules():
        if name.endswith(".attn2"):
            hooks.append(module.register_forward_hook(
                lambda m, args, out, name=name: seen.__setitem__(name, (m, args, out))))
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return seen


def test_sdxl_style_transfer_touches_output_block_1_only(tmp_path):
    """"style transfer" on SDXL: only up_blocks.0.attentions.1 (output block 1) gets the image; it
    matches diffusers with InstantStyle's per-block scale there and 0 elsewhere, and every other
    attn2 computes exactly the plain attention of its input."""
    cfg = TINY["sdxl"]
    ours = random_unet(cfg)
    path = write_ip_adapter(tmp_path / "ipa.safetensors", "sdxl", dtype=torch.float32, unet=cfg, scale=3.0)
    adapter = load_ip_adapter(path)
    model = DiffusionModel(ours, "sdxl")
    g = torch.Generator().manual_seed(5)
    b, h, w = 1, 16, 16
    features = torch.randn(b, 32, generator=g)
    x, t = torch.randn(b, 4, h, w, generator=g), torch.tensor([500.0])
    context = torch.randn(b, 7, cfg.context_dim, generator=g)
    pooled = torch.randn(b, 32, generator=g)
    y = model.encode_adm({"pooled_output": pooled}, 8 * w, 8 * h)
    weight = 2.0
    tokens = adapter.tokens(features)
    patched = apply_ip_adapter(model, adapter, tokens, torch.zeros_like(tokens), weight, weight_type="style transfer")
    extras = [n for n, m in patched.unet.named_modules() if getattr(m, "extra_attention", None)]
    assert extras and all(n.startswith("output_blocks.1.1.") for n in extras)
    assert len(extras) == sum(1 for n, _ in ours.named_modules() if n.startswith("output_blocks.1.1.") and n.endswith("attn2"))
    with torch.no_grad():
        seen = _attn2_outputs(patched.unet, lambda: patched.unet(x, t, context, y))
        plain_modules = dict(ours.named_modules())
        for name, (module, args, out) in seen.items():
            plain_out = plain_modules[name](*args)
            if name in extras:
                assert (out - plain_out).abs().max() > 1e-4, name
            else:
                assert torch.equal(out, plain_out), name
        theirs = diffusers_with_adapter(ours, path, weight)
        for name, processor in theirs.attn_processors.items():
            if hasattr(processor, "scale"):
                processor.scale = [weight if name.startswith("up_blocks.0.attentions.1.") else 0.0]
        added = {"text_embeds": pooled, "time_ids": torch.tensor([[8 * h, 8 * w, 0, 0, 8 * h, 8 * w]]).float(),
                 "image_embeds": [features[:, None]]}
        ref = theirs(x, t, encoder_hidden_states=context, added_cond_kwargs=added).sample
        out = patched.unet(x, t, context, y)
    change = (out - ours(x, t, context, y)).abs().max().item()
    print(f"style transfer changes the output by {change:.2e}, differs from diffusers by {(out - ref).abs().max():.2e}")
    assert change > 1e-4
    assert (out - ref).abs().max().item() <= 1e-5


def test_precise_weight_types_swap_the_sides(tmp_path):
    """"style transfer precise" on SDXL: in input block 8's transformer the positive rows get no
    image (zero tokens: an exactly zero addition) and the negative rows the image's tokens."""
    cfg = TINY["sdxl"]
    ours = random_unet(cfg)
    adapter = load_ip_adapter(write_ip_adapter(tmp_path / "ipa.safetensors", "sdxl", dtype=torch.float32, unet=cfg))
    tokens = adapter.tokens(torch.randn(1, 32, generator=torch.Generator().manual_seed(6)))
    uncond = adapter.tokens(torch.zeros(1, 32))
    model = DiffusionModel(ours, "sdxl")
    patched = apply_ip_adapter(model, adapter, tokens, uncond, 1.0, weight_type="style transfer precise")
    plain = apply_ip_adapter(model, adapter, tokens, uncond, 1.0, weight_type="composition")  # input 8, unswapped
    modules, plain_modules = dict(patched.unet.named_modules()), dict(plain.unet.named_modules())
    name = next(n for n in modules if n.startswith("input_blocks.8.1.") and n.endswith("attn2"))
    q = torch.randn(1, modules[name].heads, 6, modules[name].to_q.out_features // modules[name].heads).repeat(2, 1, 1, 1)
    marker = unet_rows.set(UNetRows(torch.tensor([5.0]), (False, True)))
    try:
        swapped, normal = modules[name].extra_attention(q, (2, 3)), plain_modules[name].extra_attention(q, (2, 3))
    finally:
        unet_rows.reset(marker)
    assert torch.equal(swapped[:1], torch.zeros_like(swapped[:1]))  # positive: nothing
    torch.testing.assert_close(swapped[1:], normal[:1], atol=1e-6, rtol=0)  # negative: the image's part
    assert (normal[1:] - normal[:1]).abs().max() > 1e-4


def test_attention_mask(tmp_path):
    """A mask of zeros is no adapter, bit for bit; 0.5 everywhere is half the weight; a left-half
    mask changes the first cross-attention's output in the left half only; each attention's
    image part is multiplied by the mask resized (bilinear) to its own grid."""
    cfg = TINY["sd1"]
    model = DiffusionModel(random_unet(cfg), "sd1")
    adapter = load_ip_adapter(write_ip_adapter(tmp_path / "ipa.safetensors", "sd1", dtype=torch.float32, unet=cfg))
    tokens = adapter.tokens(torch.randn(1, 32, generator=torch.Generator().manual_seed(7)))
    g = torch.Generator().manual_seed(8)
    x, t, context = torch.randn(1, 4, 8, 12, generator=g), torch.tensor([500.0]), torch.randn(1, 7, 768, generator=g)

    def run(m):
        with torch.no_grad():
            return m.unet(x, t, context)

    plain = run(model)
    full = apply_ip_adapter(model, adapter, tokens, tokens, 0.8)
    assert torch.equal(run(apply_ip_adapter(model, adapter, tokens, tokens, 0.8, mask=torch.zeros(1, 64, 96))), plain)
    torch.testing.assert_close(run(apply_ip_adapter(model, adapter, tokens, tokens, 0.8, mask=torch.full((64, 96), 0.5))),
                               run(apply_ip_adapter(model, adapter, tokens, tokens, 0.4)), atol=1e-5, rtol=0)
    left = torch.zeros(1, 64, 96)
    left[:, :, :48] = 1.0
    halved = apply_ip_adapter(model, adapter, tokens, tokens, 0.8, mask=left)
    first = cross_attentions_of(halved.unet)[0]
    with torch.no_grad():
        out = _attn2_outputs(halved.unet, lambda: halved.unet(x, t, context))[first][2]
        ref = _attn2_outputs(model.unet, lambda: model.unet(x, t, context))[first][2]
    grid = (out - ref).abs().amax(-1).reshape(8, 12)  # the first transformer works at the latent's grid
    assert grid[:, :6].min() > 1e-6 and torch.equal(grid[:, 6:], torch.zeros(8, 6))
    assert (run(halved) - plain).abs().max() > 1e-4 and (run(halved) - run(full)).abs().max() > 1e-4
    # the closed form at another grid: extra(q) = unmasked extra(q) * bilinear(mask) per token
    mask = torch.rand(1, 40, 56, generator=g)
    name = [n for n in cross_attentions_of(halved.unet)][-1]
    masked_module = dict(apply_ip_adapter(model, adapter, tokens, tokens, 0.8, mask=mask).unet.named_modules())[name]
    q = torch.randn(1, 8, 15, masked_module.to_q.out_features // 8, generator=g)
    resized = torch.nn.functional.interpolate(mask[:, None], size=(3, 5), mode="bilinear").reshape(1, 1, 15, 1)
    torch.testing.assert_close(masked_module.extra_attention(q, (3, 5)),
                               dict(full.unet.named_modules())[name].extra_attention(q, (3, 5)) * resized,
                               atol=1e-6, rtol=0)


def test_attention_mask_grid_at_odd_latent_sizes():
    """ComfyUI_IPAdapter_plus sizes the mask from the latent's size and the token count only: a
    13 x 10 latent's 4 x 3 token level gets the mask at 3 x 4, its rows laid end to end; a
    120 x 49 latent's 15 x 7 level (105 tokens) gets it at 17 x 6 (102), one zero token before
    and two after."""
    from graphflow.models.ip_adapter import _ip_attention, mask_grid
    from graphflow.models.unet import latent_size

    assert mask_grid((13, 10), 12) == (3, 4) and mask_grid((120, 49), 105) == (17, 6)
    assert mask_grid((64, 96), 48 * 32 // 4) == (16, 24) and mask_grid((75, 50), 38 * 25) == (38, 25)
    g = torch.Generator().manual_seed(9)
    to_k, to_v = torch.nn.Linear(6, 16, bias=False), torch.nn.Linear(6, 16, bias=False)
    tokens = torch.randn(1, 3, 6, generator=g)
    plain = _ip_attention(to_k, to_v, tokens, tokens, 0.7, None, "V only")
    # 2 x 2 blocks of one value: halving them (bilinear) gives each block's value exactly
    def masked_and_plain(rows, cols, latent, grid):
        """A mask of 2 x 2 blocks of one value (halving it bilinearly gives each block's value
        exactly), applied at `grid` tokens of a `latent`-sized run: (pattern, masked, plain)."""
        pattern = torch.rand(rows, cols, generator=g)
        mask = pattern.repeat_interleave(2, 0).repeat_interleave(2, 1)[None]
        masked = _ip_attention(to_k, to_v, tokens, tokens, 0.7, None, "V only", mask)
        q = torch.randn(1, 2, grid[0] * grid[1], 8, generator=g)
        marker = latent_size.set(latent)
        try:
            with torch.no_grad():
                return pattern, masked(q, grid), plain(q, grid)
        finally:
            latent_size.reset(marker)

    pattern, out, ref = masked_and_plain(3, 4, (13, 10), (4, 3))
    torch.testing.assert_close(out, ref * pattern.reshape(1, 1, 12, 1), atol=1e-6, rtol=0)
    pattern, out, ref = masked_and_plain(17, 6, (120, 49), (15, 7))
    expected = torch.cat([torch.zeros(1), pattern.flatten(), torch.zeros(2)]).reshape(1, 1, 105, 1)
    torch.testing.assert_close(out, ref * expected, atol=1e-6, rtol=0)


def cross_attentions_of(unet):
    from graphflow.models.ip_adapter import cross_attentions

    return cross_attentions(unet)


def test_unified_loader_finds_the_presets_files(builtin_registry, models):
    """IPAdapterUnifiedLoader -> IPAdapter without a clip_vision (the pack's usual graph) samples
    the same image as IPAdapterModelLoader + CLIPVisionLoader on the files the preset names; a
    preset whose files are missing says what it looked for."""
    import shutil

    shutil.copy(models / "clip_vision" / "vit_tiny.safetensors",
                models / "clip_vision" / "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors")
    g = graph()
    g["4"]["inputs"]["clip_name"] = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
    g["7"]["inputs"]["weight_type"] = "ease out"
    separate = run(builtin_registry, g)
    unified = graph()
    unified["6"] = {"class_type": "IPAdapterUnifiedLoader",
                    "inputs": {"model": ["1", 0], "preset": "STANDARD (medium strength)"}}
    unified["7"] = {"class_type": "IPAdapter", "inputs": {
        "model": ["6", 0], "ipadapter": ["6", 1], "image": ["5", 0], "weight": 1.0, "start_at": 0.0, "end_at": 1.0,
        "weight_type": "prompt is more important"}}  # the pack's simple node: ease out
    assert torch.equal(run(builtin_registry, unified), separate)
    model = call(builtin_registry, "LoadCheckpoint", checkpoint="sd1.safetensors")[0]
    _, bundle = call(builtin_registry, "IPAdapterUnifiedLoader", model=model, preset="PLUS (high strength)")
    assert bundle.adapter_file == "ip-adapter-plus_sd15.safetensors" and bundle.adapter.config.kind == "plus"
    assert bundle.clip_vision_file == "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
    _, again = call(builtin_registry, "IPAdapterUnifiedLoader", model=model, preset="PLUS (high strength)",
                    ipadapter=bundle)
    assert again.adapter is bundle.adapter and again.clip_vision is bundle.clip_vision  # the pipeline's, reused
    for preset, message in [("PLUS FACE (portraits)", r"'PLUS FACE \(portraits\)' \(SD1.5\) found no IP-Adapter in "
                                                      r"models/ipadapter: looked for a file name matching plus.face.sd15"),
                            ("VIT-G (medium strength)", r"sd15.vit.g"),
                            ("FULL FACE - SD1.5 only (portraits stronger)", "not supported")]:
        with pytest.raises(NodeInputError, match=message) as info:
            call(builtin_registry, "IPAdapterUnifiedLoader", model=model, preset=preset)
        assert info.value.input == "preset"
    write_checkpoint(models / "checkpoints" / "sdxl.safetensors", "sdxl", dtype=torch.float32)
    sdxl = call(builtin_registry, "LoadCheckpoint", checkpoint="sdxl.safetensors")[0]
    with pytest.raises(NodeInputError, match="SD1.5 only") as info:
        call(builtin_registry, "IPAdapterUnifiedLoader", model=sdxl, preset="LIGHT - SD1.5 only (low strength)")
    with pytest.raises(NodeInputError, match=r"\(SDXL\) found no IP-Adapter .*ip.adapter.sdxl.vit.h"):
        call(builtin_registry, "IPAdapterUnifiedLoader", model=sdxl, preset="STANDARD (medium strength)")
    write_ip_adapter(models / "ipadapter" / "ip-adapter_sdxl_vit-h.safetensors", "sdxl", dtype=torch.float32)
    _, bundle = call(builtin_registry, "IPAdapterUnifiedLoader", model=sdxl, preset="STANDARD (medium strength)")
    assert bundle.adapter_file == "ip-adapter_sdxl_vit-h.safetensors"
    write_ip_adapter(models / "ipadapter" / "ip-adapter_sdxl.safetensors", "sdxl", dtype=torch.float32)
    with pytest.raises(NodeInputError, match=r"no CLIP vision model in models/clip_vision: .*ViT.bigG.14"):
        call(builtin_registry, "IPAdapterUnifiedLoader", model=sdxl, preset="VIT-G (medium strength)")


def test_encoder_and_embeds(builtin_registry, models):
    """IPAdapterEncoder -> IPAdapterEmbeds samples what IPAdapterAdvanced does with the image;
    the encoder's weight scales the features, its mask multiplies the preprocessed pixels (zeros:
    the model's mean colour), and neg_embed, when given, is the negative side's."""
    advanced = graph(weight_type="ease in")
    embeds = graph()
    embeds["10"] = {"class_type": "IPAdapterEncoder", "inputs": {"ipadapter": ["6", 0], "image": ["5", 0],
                                                                 "weight": 1.0, "clip_vision": ["4", 0]}}
    embeds["7"] = {"class_type": "IPAdapterEmbeds", "inputs": {
        "model": ["1", 0], "ipadapter": ["6", 0], "pos_embed": ["10", 0], "weight": 1.0, "weight_type": "ease in",
        "start_at": 0.0, "end_at": 1.0, "embeds_scaling": "V only"}}
    assert torch.equal(run(builtin_registry, embeds), run(builtin_registry, advanced))
    embeds["7"]["inputs"]["neg_embed"] = ["10", 0]  # the image on both sides, as image_negative does
    assert torch.equal(run(builtin_registry, embeds), run(builtin_registry, graph(weight_type="ease in",
                                                                               image_negative=["5", 0])))

    vision = call(builtin_registry, "LoadCLIPVision", clip_name="vit_tiny.safetensors")
    adapter = call(builtin_registry, "IPAdapterModelLoader", ipadapter_file="ip-adapter_sd15.safetensors")
    image = torch.rand(1, 40, 48, 3, generator=torch.Generator().manual_seed(9))
    plain = vision.encode_image(image).image_embeds
    pos, neg = call(builtin_registry, "IPAdapterEncoder", ipadapter=adapter, image=image, weight=0.5, clip_vision=vision)
    torch.testing.assert_close(pos, 0.5 * plain, atol=0, rtol=0)
    assert torch.equal(neg, torch.zeros_like(plain))
    ones, _ = call(builtin_registry, "IPAdapterEncoder", ipadapter=adapter, image=image, weight=1.0,
                   mask=torch.ones(1, 40, 48), clip_vision=vision)
    torch.testing.assert_close(ones, plain, atol=1e-5, rtol=0)  # bicubic resizing of ones: 1 up to rounding
    zeros, _ = call(builtin_registry, "IPAdapterEncoder", ipadapter=adapter, image=image, weight=1.0,
                    mask=torch.zeros(1, 40, 48), clip_vision=vision)
    size = vision.config.image_size
    with torch.no_grad():
        zero_pixels = vision.module(torch.zeros(1, 3, size, size)).image_embeds
    torch.testing.assert_close(zeros, zero_pixels, atol=1e-6, rtol=0)
    assert (zeros - plain).abs().max() > 1e-3
    plus = call(builtin_registry, "IPAdapterModelLoader", ipadapter_file="ip-adapter-plus_sd15.safetensors")
    pos, neg = call(builtin_registry, "IPAdapterEncoder", ipadapter=plus, image=image, weight=1.0, clip_vision=vision)
    assert torch.equal(neg, vision.encode_image(torch.zeros(1, 224, 224, 3)).penultimate_hidden_states)
    model = call(builtin_registry, "LoadCheckpoint", checkpoint="sd1.safetensors")[0]
    base = dict(model=model, ipadapter=plus, pos_embed=pos)
    with pytest.raises(NodeInputError, match="needs the CLIP vision model") as info:
        call(builtin_registry, "IPAdapterEmbeds", **base)
    assert info.value.input == "clip_vision"
    with pytest.raises(NodeInputError, match=r"penultimate hidden states \[B, T, 64\]") as info:
        call(builtin_registry, "IPAdapterEmbeds", **{**base, "pos_embed": plain})
    assert info.value.input == "pos_embed"
    assert call(builtin_registry, "IPAdapterEmbeds", **base, neg_embed=neg).unet is not model.unet


def test_masks_follow_the_latents_of_each_side(tmp_path):
    """Two masks, a batch of two latents with CFG (rows: positive 0, 1, negative 0, 1): each side's
    k-th row takes mask k; a single mask serves every row."""
    cfg = TINY["sd1"]
    model = DiffusionModel(random_unet(cfg), "sd1")
    adapter = load_ip_adapter(write_ip_adapter(tmp_path / "ipa.safetensors", "sd1", dtype=torch.float32, unet=cfg))
    tokens = adapter.tokens(torch.randn(1, 32, generator=torch.Generator().manual_seed(10)))
    masks = torch.stack([torch.ones(16, 16), torch.zeros(16, 16)])
    name = cross_attentions_of(model.unet)[0]
    masked = dict(apply_ip_adapter(model, adapter, tokens, tokens, 1.0, mask=masks).unet.named_modules())[name]
    full = dict(apply_ip_adapter(model, adapter, tokens, tokens, 1.0).unet.named_modules())[name]
    q = torch.randn(1, 8, 16, masked.to_q.out_features // 8).repeat(4, 1, 1, 1)
    marker = unet_rows.set(UNetRows(torch.tensor([5.0]), (False, False, True, True)))
    try:
        got, ref = masked.extra_attention(q, (4, 4)), full.extra_attention(q, (4, 4))
    finally:
        unet_rows.reset(marker)
    torch.testing.assert_close(got[[0, 2]], ref[[0, 2]], atol=1e-6, rtol=0)
    assert torch.equal(got[[1, 3]], torch.zeros_like(got[[1, 3]]))


def test_per_latent_rows_count_within_each_batched_entry():
    """Two positive entries (say two area conds) and the negative batched in one UNet call, two
    latents each: rows are entry 0's latents 0, 1, entry 1's latents 0, 1, the negative's 0, 1.
    Each row takes the image and the mask of its latent (the pack's rows / len(cond_or_uncond)),
    not of its place among all the positive rows."""
    from graphflow.models.ip_adapter import _ip_attention

    g = torch.Generator().manual_seed(12)
    heads, d, inner = 2, 8, 16
    to_k, to_v = torch.nn.Linear(6, inner, bias=False), torch.nn.Linear(6, inner, bias=False)
    with torch.no_grad():
        to_k.weight.copy_(torch.randn(inner, 6, generator=g))
        to_v.weight.copy_(torch.randn(inner, 6, generator=g))
    cond, uncond = torch.randn(2, 3, 6, generator=g), torch.randn(2, 3, 6, generator=g)  # one image per latent
    masks = torch.stack([torch.ones(4, 4), torch.full((4, 4), 0.5)])
    q = torch.randn(6, heads, 16, d, generator=g)
    rows = UNetRows(torch.tensor([5.0]), (False,) * 4 + (True,) * 2, ("entry 0", "entry 1", "negative"))
    marker = unet_rows.set(rows)
    try:
        out = _ip_attention(to_k, to_v, cond, uncond, 1.0, None, "V only", masks)(q, (4, 4))
    finally:
        unet_rows.reset(marker)
    latent = [0, 1, 0, 1, 0, 1]
    for row in range(6):
        tokens = (uncond if row >= 4 else cond)[latent[row]]
        k, v = tokens @ to_k.weight.T, tokens @ to_v.weight.T
        expected = torch.stack([torch.softmax(q[row, h] @ k[:, h * d:(h + 1) * d].T / d ** 0.5, -1)
                                @ v[:, h * d:(h + 1) * d] for h in range(heads)]) * masks[latent[row], 0, 0]
        # float32 rounding of the fused attention kernel, which differs by CPU (1.1e-6 seen on values
        # near 1); a wrong row's image or mask would be off by tenths
        torch.testing.assert_close(out[row], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("scaling", ["V only", "K+mean(V) w/ C penalty"])
@pytest.mark.parametrize("negative", [(False, True), (True, False)])
def test_uneven_sides_share_their_tokens_out_as_the_pack(scaling, negative):
    """Two composition images (8 tokens) against one negative image (4 tokens), one latent with CFG:
    the pack lays the rows' keys end to end in the batch's order and cuts them evenly, 6 tokens a
    row, so the first row takes the first 6 of the 12 tokens, the second row the last 6 (K+mean(V):
    each image's mean over its own 4 tokens, before the cut)."""
    from graphflow.models.ip_adapter import _ip_attention

    g = torch.Generator().manual_seed(13)
    heads, d, inner, per_image = 2, 8, 16, 4
    to_k, to_v = torch.nn.Linear(6, inner, bias=False), torch.nn.Linear(6, inner, bias=False)
    with torch.no_grad():
        to_k.weight.copy_(torch.randn(inner, 6, generator=g))
        to_v.weight.copy_(torch.randn(inner, 6, generator=g))
    cond, uncond = torch.randn(1, 2 * per_image, 6, generator=g), torch.randn(1, per_image, 6, generator=g)
    q = torch.randn(2, heads, 5, d, generator=g)
    weight = 0.7
    marker = unet_rows.set(UNetRows(torch.tensor([5.0]), negative, ("first", "second")))
    try:
        out = _ip_attention(to_k, to_v, cond, uncond, weight, None, scaling, image_tokens=per_image)(q)
    finally:
        unet_rows.reset(marker)
    flat = torch.cat([(uncond if side else cond)[0] for side in negative])  # 12 tokens
    w = weight * inner / 1280 if "penalty" in scaling else weight
    k, v = flat @ to_k.weight.T, flat @ to_v.weight.T
    if scaling != "V only":
        images = [v[i:i + per_image] for i in range(0, 12, per_image)]
        k, v = k * w, torch.cat([x + (w - 1) * x.mean(0) for x in images])
    for row in range(2):
        kr, vr = k[6 * row:6 * row + 6], v[6 * row:6 * row + 6]
        expected = torch.stack([torch.softmax(q[row, h] @ kr[:, h * d:(h + 1) * d].T / d ** 0.5, -1)
                                @ vr[:, h * d:(h + 1) * d] for h in range(heads)])
        torch.testing.assert_close(out[row], expected * (weight if scaling == "V only" else 1), atol=1e-6, rtol=0)


def test_batch_node_gives_each_latent_its_image(builtin_registry, models):
    """IPAdapterBatch: latent k gets image k's tokens (latent 2 of 3 the last image's), each row as
    IPAdapterAdvanced with that one image; with CFG the negative rows get their side's tokens."""
    vision = call(builtin_registry, "LoadCLIPVision", clip_name="vit_tiny.safetensors")
    model = call(builtin_registry, "LoadCheckpoint", checkpoint="sd1.safetensors")[0]
    adapter = call(builtin_registry, "IPAdapterModelLoader", ipadapter_file="ip-adapter-plus_sd15.safetensors")
    images = torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(11))
    batch = call(builtin_registry, "IPAdapterBatch", model=model, ipadapter=adapter, image=images, clip_vision=vision,
                 weight_type="ease out")
    singles = [call(builtin_registry, "IPAdapterAdvanced", model=model, ipadapter=adapter, image=images[k:k + 1],
                    clip_vision=vision, weight_type="ease out") for k in range(2)]
    g = torch.Generator().manual_seed(12)
    x, t, context = torch.randn(3, 4, 8, 8, generator=g), torch.tensor([400.0] * 3), torch.randn(3, 7, model.unet.config.context_dim, generator=g)
    with torch.no_grad():
        out = batch.unet(x, t, context)
        for row, k in ((0, 0), (1, 1), (2, 1)):
            ref = singles[k].unet(x[row:row + 1], t[:1], context[row:row + 1])
            torch.testing.assert_close(out[row:row + 1], ref, atol=1e-5, rtol=0)
        assert (singles[0].unet(x[:1], t[:1], context[:1]) - singles[1].unet(x[:1], t[:1], context[:1])).abs().max() > 1e-4


def test_combine_embeds_as_closed_forms(builtin_registry, models):
    """Several images combined: add, subtract (first minus the others' mean), average, norm average
    (over the images, each feature divided by its norm) of the CLIP features, then one set of
    tokens: the same UNet as IPAdapterEmbeds on the features combined by hand."""
    vision = call(builtin_registry, "LoadCLIPVision", clip_name="vit_tiny.safetensors")
    model = call(builtin_registry, "LoadCheckpoint", checkpoint="sd1.safetensors")[0]
    adapter = call(builtin_registry, "IPAdapterModelLoader", ipadapter_file="ip-adapter_sd15.safetensors")
    images = torch.rand(3, 32, 32, 3, generator=torch.Generator().manual_seed(13))
    f = vision.encode_image(images).image_embeds
    by_hand = {"add": f.sum(0, keepdim=True), "subtract": (f[0] - (f[1] + f[2]) / 2)[None],
               "average": f.mean(0, keepdim=True), "norm average": (f / f.norm(dim=0)).mean(0, keepdim=True)}
    g = torch.Generator().manual_seed(14)
    x, t = torch.randn(1, 4, 8, 8, generator=g), torch.tensor([300.0])
    context = torch.randn(1, 7, model.unet.config.context_dim, generator=g)
    outs = {}
    with torch.no_grad():
        for combine, features in by_hand.items():
            combined = call(builtin_registry, "IPAdapterAdvanced", model=model, ipadapter=adapter, image=images,
                            clip_vision=vision, combine_embeds=combine)
            ref = call(builtin_registry, "IPAdapterEmbeds", model=model, ipadapter=adapter, pos_embed=features)
            outs[combine] = combined.unet(x, t, context)
            torch.testing.assert_close(outs[combine], ref.unet(x, t, context), atol=1e-5, rtol=0)
    assert (outs["subtract"] - outs["average"]).abs().max() > 1e-4
    assert (outs["norm average"] - outs["average"]).abs().max() > 1e-4


# IPAdapterStyleComposition (SDXL): transformer -> (which image, which weight) as the pack's
# ipadapter_execute gives them (weight_type "style and composition", or "strong style and
# composition" with expand_style; cond_alt = {3: the composition image's tokens}); absent: untouched
STYLE_COMPOSITION_TABLE = {
    False: {3: ("composition", "weight_composition"), 6: ("style", "weight_style")},
    True: {**{i: ("style", "weight_style") for i in (0, 1, 2, 4, 5, 6, 7, 8, 9, 10)},
           3: ("composition", "weight_composition")},
}


@pytest.fixture
def sdxl_models(models):
    from dataclasses import replace

    from graphflow.testing import unet_config

    # SDXL's 11 spatial transformers (input 4, middle 1, output 6; the writers' default tiny UNet has 4)
    unet = replace(unet_config("sdxl"), channel_mult=(1, 2, 2), num_res_blocks=2, transformer_depth=(0, 1, 1))
    write_checkpoint(models / "checkpoints" / "sdxl.safetensors", "sdxl", dtype=torch.float32, unet=unet)
    write_ip_adapter(models / "ipadapter" / "ip-adapter_sdxl.safetensors", "sdxl", dtype=torch.float32, scale=3.0,
                     unet=unet)
    return models


@pytest.mark.parametrize("expand_style", [False, True])
def test_style_composition_gives_each_transformer_its_image_and_weight(builtin_registry, sdxl_models, expand_style):
    from graphflow.models.attention import attention
    from graphflow.models.ip_adapter import cross_attentions, transformer_numbers

    vision = call(builtin_registry, "LoadCLIPVision", clip_name="vit_tiny.safetensors")
    model = call(builtin_registry, "LoadCheckpoint", checkpoint="sdxl.safetensors")[0]
    adapter = call(builtin_registry, "IPAdapterModelLoader", ipadapter_file="ip-adapter_sdxl.safetensors")
    g = torch.Generator().manual_seed(6)
    images = {"style": torch.rand(1, 40, 40, 3, generator=g), "composition": torch.rand(1, 40, 40, 3, generator=g)}
    weights = {"weight_style": 0.7, "weight_composition": 1.3}
    patched = call(builtin_registry, "IPAdapterStyleComposition", model=model, ipadapter=adapter,
                   image_style=images["style"], image_composition=images["composition"], expand_style=expand_style,
                   clip_vision=vision, **weights)
    tokens = {k: adapter.tokens(adapter.features(vision.encode_image(v, crop=True))) for k, v in images.items()}
    assert (tokens["style"] - tokens["composition"]).abs().max() > 1e-3
    paths = cross_attentions(patched.unet)
    numbers, layers = transformer_numbers(paths)
    assert layers == 11
    modules = dict(patched.unet.named_modules())
    table = STYLE_COMPOSITION_TABLE[expand_style]
    for index, (path, number) in enumerate(zip(paths, numbers)):
        extra = modules[path].extra_attention
        if number not in table:
            assert extra is None, path
            continue
        image, weight = table[number]
        to_k, to_v = adapter.to_k_ip[index], adapter.to_v_ip[index]
        q = torch.randn(1, 1, 5, to_k.out_features, generator=g)
        k, v = (f(tokens[image])[:, None] for f in (to_k, to_v))
        torch.testing.assert_close(extra(q), weights[weight] * attention(q, k, v), rtol=1e-5, atol=1e-6)


def test_style_composition_norm_average_of_one_composition_image(builtin_registry, sdxl_models):
    """Two style images and one composition image, norm average: as the pack, the composition
    image is "combined" too, each feature divided by its norm over one row (its sign)."""
    from graphflow.models.attention import attention
    from graphflow.models.ip_adapter import cross_attentions, transformer_numbers

    vision = call(builtin_registry, "LoadCLIPVision", clip_name="vit_tiny.safetensors")
    model = call(builtin_registry, "LoadCheckpoint", checkpoint="sdxl.safetensors")[0]
    adapter = call(builtin_registry, "IPAdapterModelLoader", ipadapter_file="ip-adapter_sdxl.safetensors")
    g = torch.Generator().manual_seed(7)
    style, composition = torch.rand(2, 40, 40, 3, generator=g), torch.rand(1, 40, 40, 3, generator=g)
    patched = call(builtin_registry, "IPAdapterStyleComposition", model=model, ipadapter=adapter, image_style=style,
                   image_composition=composition, weight_composition=1.3, combine_embeds="norm average",
                   clip_vision=vision)
    features = adapter.features(vision.encode_image(composition, crop=True))
    tokens = adapter.tokens(torch.sign(features))
    paths = cross_attentions(patched.unet)
    numbers, _ = transformer_numbers(paths)
    index = numbers.index(3)  # the composition transformer
    to_k, to_v = adapter.to_k_ip[index], adapter.to_v_ip[index]
    q = torch.randn(1, 1, 5, to_k.out_features, generator=g)
    k, v = (f(tokens)[:, None] for f in (to_k, to_v))
    torch.testing.assert_close(dict(patched.unet.named_modules())[paths[index]].extra_attention(q),
                               1.3 * attention(q, k, v), rtol=1e-5, atol=1e-6)


def style_composition_graph(node: str, **inputs):
    g = graph("ip-adapter_sdxl.safetensors")
    g["1"]["inputs"]["ckpt_name"] = "sdxl.safetensors"
    g["10"] = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0xc02010}}
    common = {"model": ["1", 0], "ipadapter": ["6", 0], "clip_vision": ["4", 0], "start_at": 0.0, "end_at": 1.0,
              "embeds_scaling": "V only", "combine_embeds": "average"}
    g["7"] = {"class_type": node, "inputs": {**common, **inputs}}
    return g


@pytest.mark.parametrize("expand_style", [False, True])
def test_style_composition_end_to_end(builtin_registry, sdxl_models, expand_style):
    """weight_composition 0 samples the style-only path (IPAdapterAdvanced, "style transfer" or with
    expand_style "strong style transfer", on the style image) bit for bit; weight_style 0 the
    composition-only one ("composition" on the composition image); both on differ from each."""
    def both(style, composition):
        return run(builtin_registry, style_composition_graph(
            "IPAdapterStyleComposition", image_style=["5", 0], image_composition=["10", 0], weight_style=style,
            weight_composition=composition, expand_style=expand_style))

    style_only = run(builtin_registry, style_composition_graph(
        "IPAdapterAdvanced", image=["5", 0], weight=0.8,
        weight_type="strong style transfer" if expand_style else "style transfer"))
    composition_only = run(builtin_registry, style_composition_graph(
        "IPAdapterAdvanced", image=["10", 0], weight=1.2, weight_type="composition"))
    assert torch.equal(both(0.8, 0.0), style_only)
    assert torch.equal(both(0.0, 1.2), composition_only)  # expanded too: weight 0 leaves a transformer untouched
    mixed = both(0.8, 1.2)
    assert (mixed - style_only).abs().max() > 1e-5 and (mixed - composition_only).abs().max() > 1e-5


def test_style_composition_bad_inputs_are_named(builtin_registry, sdxl_models):
    vision = call(builtin_registry, "LoadCLIPVision", clip_name="vit_tiny.safetensors")
    sdxl = call(builtin_registry, "LoadCheckpoint", checkpoint="sdxl.safetensors")[0]
    sd1 = call(builtin_registry, "LoadCheckpoint", checkpoint="sd1.safetensors")[0]
    adapter = call(builtin_registry, "IPAdapterModelLoader", ipadapter_file="ip-adapter_sdxl.safetensors")
    image = torch.rand(1, 32, 32, 3)
    base = dict(model=sdxl, ipadapter=adapter, image_style=image, image_composition=image, clip_vision=vision)
    cases = [(dict(model=sd1), "model", "for SDXL models only, not sd1"),
             (dict(image_composition=torch.rand(32, 32)), "image_composition", r"IMAGE \[B, H, W, C\]"),
             (dict(image_style=torch.rand(32, 32)), "image_style", r"IMAGE \[B, H, W, C\]"),
             (dict(clip_vision=None), "clip_vision", "no CLIP vision model"),
             (dict(image_negative=torch.rand(3, 32, 32)), "image_negative", r"IMAGE \[B, H, W, C\]")]
    for change, name, message in cases:
        with pytest.raises(NodeInputError, match=message) as info:
            call(builtin_registry, "IPAdapterStyleComposition", **{**base, **change})
        assert info.value.input == name
