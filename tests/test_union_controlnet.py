"""Union ControlNets: SDXL ControlNet++ (xinsir's) against diffusers' ControlNetUnionModel and FLUX
union ones (InstantX's) against diffusers' FluxControlNetModel(num_mode=...), on identical tiny
random weights written by graphflow.testing in diffusers' layout (diffusers loads those files
strictly: the names are its own); then SetUnionControlNetType through the nodes and the sampler."""

import json

import pytest
import torch
from diffusers import ControlNetUnionModel, FluxControlNetModel
from safetensors.torch import load_file

from graphflow.context import NodeInputError
from graphflow.models.controlnet import ControlApplied, ControlNet, UnionTyped, load_control_model
from graphflow.models.flux import pack
from graphflow.models.union_controlnet import UNION_KEYS, UnionControlNet
from graphflow.testing import flow_model_config, write_union_controlnet
from tests.test_flow_controlnet import diffusers_flux_kwargs, flux_controlnet_config

TOL = 1e-4


def diffusers_union(path, net: UnionControlNet) -> ControlNetUnionModel:
    """diffusers' model for our tiny SDXL union (SDXL's layout: a plain first level, 64-wide heads)."""
    cfg = net.config.unet
    widths = [m * cfg.model_channels for m in cfg.channel_mult]
    theirs = ControlNetUnionModel(
        in_channels=cfg.in_channels, down_block_types=["DownBlock2D"] + ["CrossAttnDownBlock2D"] * (len(widths) - 1),
        block_out_channels=widths, layers_per_block=cfg.num_res_blocks[0], cross_attention_dim=cfg.context_dim,
        transformer_layers_per_block=list(cfg.transformer_depth), attention_head_dim=[max(1, w // 64) for w in widths],
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=cfg.adm_in_channels,
        conditioning_embedding_out_channels=net.config.hint_block,
        num_control_type=net.config.types, num_trans_channel=net.config.width, num_trans_head=8,
        num_trans_layer=net.config.layers, num_proj_channel=cfg.model_channels)
    theirs.load_state_dict(load_file(str(path)), strict=True)
    return theirs.eval()


def sdxl_inputs(cfg, batch, seed=1):
    from graphflow.models.unet import timestep_embedding

    g = torch.Generator().manual_seed(seed)
    x, hint = torch.randn(batch, 4, 8, 8, generator=g), torch.rand(batch, 3, 64, 64, generator=g)
    t = torch.tensor([999.0, 420.0])[:batch]
    context = torch.randn(batch, 5, cfg.context_dim, generator=g)
    # diffusers embeds pooled text and size ids itself: build our y the same way from the same numbers
    time_ids = torch.tensor([[64.0, 64, 0, 0, 64, 64], [32, 48, 4, 2, 64, 64]])[:batch]
    text_embeds = torch.randn(batch, cfg.adm_in_channels - 6 * 256, generator=g)
    y = torch.cat([text_embeds, timestep_embedding(time_ids.flatten(), 256).reshape(batch, -1)], dim=1)
    return x, hint, t, context, y, {"text_embeds": text_embeds, "time_ids": time_ids}


def theirs_residuals(theirs, x, hint, t, context, added, control_type, types):
    one_hot = torch.zeros(x.shape[0], types)
    one_hot[:, control_type] = 1.0
    down, mid = theirs(x, t, context, [hint], one_hot, [control_type], added_cond_kwargs=added, return_dict=False)
    return list(down) + [mid]


def flat(out):
    return out["output"] + out["middle"]


@pytest.mark.parametrize("types", [6, 8])
def test_sdxl_union_matches_diffusers(tmp_path, types):
    path = write_union_controlnet(tmp_path / "diffusion_pytorch_model_promax.safetensors", "sdxl", types=types,
                                  seed=3, dtype=torch.float32)
    net = load_control_model(path)
    assert isinstance(net, UnionControlNet) and net.config.types == types and net.config.width == 32
    theirs = diffusers_union(path, net)
    x, hint, t, context, y, added = sdxl_inputs(net.config.unet, batch=1)
    with torch.no_grad():
        by_type = {}
        for control_type in range(types):
            mine = flat(net(x, hint, t, context, y, control_type))
            expected = theirs_residuals(theirs, x, hint, t, context, added, control_type, types)
            assert len(mine) == len(expected)
            for a, b in zip(mine, expected):
                assert a.abs().mean() > 1e-3 and (a - b).abs().max() <= TOL
            by_type[control_type] = mine
        assert (by_type[0][0] - by_type[1][0]).abs().max() > 1e-3  # the type matters
        # a batch: each sample as diffusers gives it alone (its attention reads the batch as the sequence)
        x2, hint2, t2, context2, y2, added2 = sdxl_inputs(net.config.unet, batch=2, seed=2)
        mine = flat(net(x2, hint2, t2, context2, y2, 3))
        for i in range(2):
            alone = theirs_residuals(theirs, x2[i:i + 1], hint2[i:i + 1], t2[i:i + 1], context2[i:i + 1],
                                     {k: v[i:i + 1] for k, v in added2.items()}, 3, types)
            for a, b in zip(mine, alone):
                assert (a[i:i + 1] - b).abs().max() <= TOL
        # "auto": no type (a zero type vector) and the embedded hint as is, which is diffusers'
        # result with a zero type vector when its type shift is zero
        theirs.spatial_ch_projs.weight.zero_()
        theirs.spatial_ch_projs.bias.zero_()
        zeros = torch.zeros(1, types)
        down, mid = theirs(x, t, context, [hint], zeros, [0], added_cond_kwargs=added, return_dict=False)
        for a, b in zip(flat(net(x, hint, t, context, y, None)), list(down) + [mid]):
            assert (a - b).abs().max() <= TOL
    with pytest.raises(ValueError, match=f"knows {types} types"):
        net(x, hint, t, context, y, types)


def test_flux_union_matches_diffusers(tmp_path):
    cfg = flow_model_config("flux_dev")
    path = write_union_controlnet(tmp_path / "diffusion_pytorch_model.safetensors", "flux_dev", types=10, seed=4,
                                  dtype=torch.float32)
    net = load_control_model(path)
    assert net.control_config.modes == 10 and len(net.union_types) == 9
    theirs = FluxControlNetModel(**flux_controlnet_config(cfg, num_layers=1, num_single_layers=1, num_mode=10))
    theirs.load_state_dict(load_file(str(path)), strict=True)
    g = torch.Generator().manual_seed(1)
    x, hint = torch.randn(2, 16, 8, 6, generator=g), torch.randn(2, 16, 8, 6, generator=g)
    sigma, guidance = torch.tensor([0.4, 1.0]), torch.tensor([3.5, 2.0])
    context = torch.randn(2, 6, cfg.context_in_dim, generator=g)
    y = torch.randn(2, cfg.vec_in_dim, generator=g)
    kwargs = diffusers_flux_kwargs(cfg, pack(x), context, y, sigma, guidance, 4, 3)
    with torch.no_grad():
        results = {}
        for mode in (0, 3, 7, 9):
            mine = net(x, hint, sigma, context, y, guidance, mode)
            double, single = theirs.eval()(controlnet_cond=pack(hint), controlnet_mode=torch.full((2, 1), mode),
                                           return_dict=False, **kwargs)
            for a, b in zip(mine["input"] + mine["output"], list(double) + list(single)):
                assert a.abs().mean() > 0.05 and (a - b).abs().max() <= TOL
            results[mode] = mine["output"][0]
        assert (results[0] - results[3]).abs().max() > 1e-3
        # "auto": no mode token, which is diffusers' plain FluxControlNetModel on the same weights
        plain = FluxControlNetModel(**flux_controlnet_config(cfg, num_layers=1, num_single_layers=1))
        plain.load_state_dict({k: v for k, v in load_file(str(path)).items()
                               if not k.startswith("controlnet_mode_embedder")}, strict=True)
        mine = net(x, hint, sigma, context, y, guidance, None)
        double, single = plain.eval()(controlnet_cond=pack(hint), return_dict=False, **kwargs)
        for a, b in zip(mine["input"] + mine["output"], list(double) + list(single)):
            assert (a - b).abs().max() <= TOL
        with pytest.raises(ValueError, match="10 union modes"):
            net(x, hint, sigma, context, y, guidance, 10)


def test_chained_union_types_add_their_residuals(tmp_path):
    """Two types of one union net chained on a conditioning: each runs with its own type, the
    residuals add (strength-scaled); the loaded net itself stays "auto"."""
    from graphflow.models.controlnet import resize_hint

    net = load_control_model(write_union_controlnet(tmp_path / "u.safetensors", "sdxl", seed=5, dtype=torch.float32))
    x, _, t, context, y, _ = sdxl_inputs(net.config.unet, batch=1)
    image = torch.rand(1, 40, 56, 3, generator=torch.Generator().manual_seed(3))
    first = ControlApplied(UnionTyped(net, 1), image, 1.0)
    second = ControlApplied(UnionTyped(net, 3), image, 0.5, previous=first)
    assert first.net is net and (first.control_type, second.control_type) == (1, 3)
    assert ControlApplied(net, image, 1.0).control_type is None
    with torch.no_grad():
        chained = second.residuals(x, torch.tensor([1.0]), t, context, y, schedule=None)
        hint = resize_hint(image, 64, 64)
        depth, canny = net(x, hint, t, context, y, 1), net(x, hint, t, context, y, 3)
    for key in ("output", "middle"):
        for got, a, b in zip(chained[key], depth[key], canny[key]):
            torch.testing.assert_close(got, a + 0.5 * b)


@pytest.fixture
def sdxl_models(tmp_folders):
    from graphflow.testing import write_checkpoint, write_controlnet

    m = tmp_folders.models
    for sub in ("checkpoints", "controlnet"):
        (m / sub).mkdir(parents=True, exist_ok=True)
    write_checkpoint(m / "checkpoints" / "xl.safetensors", "sdxl", dtype=torch.float32)
    write_union_controlnet(m / "controlnet" / "diffusion_pytorch_model_promax.safetensors", "sdxl", types=8, seed=2,
                           dtype=torch.float32)
    write_union_controlnet(m / "controlnet" / "union6.safetensors", "sdxl", types=6, seed=3, dtype=torch.float32)
    write_controlnet(m / "controlnet" / "plain.safetensors", "sdxl", dtype=torch.float32, layout="diffusers")
    return m


def sdxl_graph(types=(), strength=1.0, net="diffusion_pytorch_model_promax.safetensors"):
    """Our workflow format: LoadControlNet -> SetUnionControlNetType -> ApplyControlNetAdvanced
    (one per type, chained) -> KSampler."""
    nodes = {
        "1": {"type": "LoadCheckpoint", "inputs": {"checkpoint": "xl.safetensors"}},
        "2": {"type": "CLIPEncode", "inputs": {"text": "a red square", "clip": ["1", "clip"]}},
        "3": {"type": "CLIPEncode", "inputs": {"text": "", "clip": ["1", "clip"]}},
        "4": {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", "vae"]}},
        "8": {"type": "LoadControlNet", "inputs": {"control_net_name": net}},
        "9": {"type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0xFF8000}},
    }
    positive, negative = ["2", 0], ["3", 0]
    for i, kind in enumerate(types):
        nodes[f"2{i}"] = {"type": "SetUnionControlNetType", "inputs": {"control_net": ["8", 0], "type": kind}}
        nodes[f"3{i}"] = {"type": "ApplyControlNetAdvanced", "inputs": {
            "positive": positive, "negative": negative, "control_net": [f"2{i}", 0], "image": ["9", 0],
            "strength": strength, "start_percent": 0.0, "end_percent": 1.0}}
        positive, negative = [f"3{i}", "positive"], [f"3{i}", "negative"]
    nodes["5"] = {"type": "KSampler", "inputs": {
        "model": ["1", "model"], "positive": positive, "negative": negative, "latent_image": ["4", 0], "seed": 1,
        "steps": 2, "cfg": 4.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}}
    return {"version": 1, "nodes": nodes}


def execute(graph, output="6"):
    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.workflow import parse_workflow

    registry = Registry().load_builtin()
    return Executor(registry).run(parse_workflow(json.loads(json.dumps(graph)), registry), outputs=[output])


def run(graph, output="6"):
    result = execute(graph, output)
    assert result.ok, result.error or result.problems
    return result.values[output][0]


def test_sdxl_union_types_through_the_sampler(sdxl_models):
    plain = run(sdxl_graph())
    depth = run(sdxl_graph(["depth"]))
    canny = run(sdxl_graph(["canny/lineart/anime_lineart/mlsd"]))
    auto = run(sdxl_graph(["auto"]))
    assert plain.shape == depth.shape == (1, 64, 64, 3)
    assert (depth - plain).abs().max() > 1e-3
    assert (depth - canny).abs().max() > 1e-3 and (auto - depth).abs().max() > 1e-3
    both = run(sdxl_graph(["depth", "canny/lineart/anime_lineart/mlsd"]))
    assert (both - depth).abs().max() > 1e-3 and (both - canny).abs().max() > 1e-3
    assert torch.equal(run(sdxl_graph(["depth"], strength=0.0)), plain)  # strength 0: exactly the plain image


def test_set_union_type_refusals(sdxl_models, builtin_registry):
    from tests.test_nodes_image_mask import call

    promax = call(builtin_registry, "LoadControlNet", control_net_name="diffusion_pytorch_model_promax.safetensors")
    typed = call(builtin_registry, "SetUnionControlNetType", control_net=promax, type="tile")
    assert typed.net is promax and typed.control_type == 6
    retyped = call(builtin_registry, "SetUnionControlNetType", control_net=typed, type="auto")
    assert retyped.net is promax and retyped.control_type is None and typed.control_type == 6
    six = call(builtin_registry, "LoadControlNet", control_net_name="union6.safetensors")
    with pytest.raises(NodeInputError, match="knows auto, openpose.*segment; not 'tile'") as error:
        call(builtin_registry, "SetUnionControlNetType", control_net=six, type="tile")
    assert error.value.input == "type"
    plain = call(builtin_registry, "LoadControlNet", control_net_name="plain.safetensors")
    assert type(plain) is ControlNet  # diffusers' layout, once taken for a T2I-Adapter by its conv_in
    # ComfyUI's type reaches a plain net's forward, which drops it: the net back unchanged
    assert call(builtin_registry, "SetUnionControlNetType", control_net=plain, type="depth") is plain
    graph = sdxl_graph(["depth"])
    graph["nodes"]["20"]["inputs"]["type"] = "sketch"
    result = execute(graph)
    assert not result.ok
    assert [(p.node_id, p.input) for p in result.problems] == [("20", "type")]
    assert "'sketch' is not one of the choices: 'auto', 'openpose'" in result.problems[0].message


@pytest.fixture
def flux_models(tmp_folders):
    from graphflow.testing import write_flow_checkpoint, write_flow_vae, write_text_encoder

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae", "controlnet"):
        (m / sub).mkdir(parents=True, exist_ok=True)
    write_flow_checkpoint(m / "diffusion_models" / "flux_dev.safetensors", "flux_dev", dtype=torch.float32,
                          components=("model",), prefixed=False, seed=4)
    write_union_controlnet(m / "controlnet" / "flux_dev_cn.safetensors", "flux_dev", types=10, seed=14,
                           dtype=torch.float32)
    write_flow_vae(m / "vae" / "vae16.safetensors", dtype=torch.float32)
    for name, seed in (("t5xxl", 1), ("clip_l", 2)):
        write_text_encoder(m / "text_encoders" / f"{name}.safetensors", name, seed=seed, dtype=torch.float32)
    return m


def flux_api_graph(kind=None, strength=1.0):
    """ComfyUI's API format, as ComfyUI saves it: ControlNetLoader -> SetUnionControlNetType ->
    ControlNetApplyAdvanced (kind None: no SetUnionControlNetType, the net's own "auto")."""
    from tests.test_flow_controlnet import flow_graph

    graph = flow_graph("flux_dev", strength, "ControlNetApplyAdvanced")
    if kind is not None:
        graph["13"] = {"class_type": "SetUnionControlNetType", "inputs": {"control_net": ["10", 0], "type": kind}}
        graph["12"]["inputs"]["control_net"] = ["13", 0]
    return graph


def test_flux_union_comfyui_api_workflow(flux_models):
    from graphflow.workflow import is_comfy_api_graph

    assert is_comfy_api_graph(flux_api_graph("depth"))
    auto = run(flux_api_graph(), "8")
    depth = run(flux_api_graph("depth"), "8")
    repaint = run(flux_api_graph("repaint"), "8")
    assert depth.shape == (1, 48, 64, 3)
    assert (depth - auto).abs().max() > 1e-3 and (depth - repaint).abs().max() > 1e-3
    assert torch.equal(run(flux_api_graph("depth", 0.0), "8"), run(flux_api_graph(None, None), "8"))


def test_full_size_sdxl_union_layout():
    """xinsir's promax config (meta tensors): every tensor diffusers' ControlNetUnionModel has gets a
    place of the same shape in ours, the layout read back from the shapes alone."""
    from graphflow.models.controlnet import controlnet_config_from_shapes, from_diffusers_layout
    from graphflow.models.union_controlnet import union_config

    with torch.device("meta"):
        theirs = ControlNetUnionModel(
            down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            block_out_channels=[320, 640, 1280], transformer_layers_per_block=[1, 2, 10],
            attention_head_dim=[5, 10, 20], cross_attention_dim=2048, use_linear_projection=True,
            addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816, conditioning_embedding_out_channels=[16, 32, 96, 256],
            num_control_type=8)
    shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    union = {k: s for k, s in shapes.items() if k.startswith(UNION_KEYS)}
    names = from_diffusers_layout(k for k in shapes if k not in union)
    config = union_config(controlnet_config_from_shapes({ours: shapes[k] for ours, k in names.items()}), union)
    assert (config.types, config.width, config.layers, config.type_embedding) == (8, 320, 1, 256)
    assert config.unet.transformer_depth == (0, 2, 10) and config.unet.transformer_depth_middle == 10
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in UnionControlNet(config).state_dict().items()}
    assert ours == {**{o: shapes[k] for o, k in names.items()}, **union}
