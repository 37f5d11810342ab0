"""ControlNet: our model against diffusers' ControlNetModel on identical random weights (our
original-layout file converted by diffusers' own single-file code), the UNet's control hook
against diffusers' UNet2DConditionModel given the same residuals, Control-LoRA building, and
the loader's refusals."""

import pytest
import torch
from diffusers import ControlNetModel
from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint, create_unet_diffusers_config_from_ldm
from safetensors.torch import save_file

from graphflow.models.controlnet import ControlNet, ControlNetConfig, load_control_model, load_controlnet, resize_hint
from graphflow.models.weight_files import CheckpointError
from tests.test_unet import FULL, TINY, ldm_original_config, random_unet, to_diffusers_unet


def random_controlnet(arch: str, seed: int = 0) -> ControlNet:
    torch.manual_seed(seed)
    net = ControlNet(ControlNetConfig(unet=TINY[arch]))
    with torch.no_grad():  # everything random (zero convs included) so every weight matters
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * (0.5 / max(1, p[0].numel()) ** 0.5) + (0.1 if p.dim() == 1 else 0))
    return net.eval()


def write_controlnet(path, net: ControlNet, prefix: str = "control_model.", dtype=torch.float32):
    save_file({prefix + k: v.to(dtype).contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def diffusers_controlnet(path, cfg, checkpoint=None, meta=False) -> ControlNetModel:
    from safetensors.torch import load_file

    checkpoint = checkpoint if checkpoint is not None else load_file(str(path))
    original = ldm_original_config(cfg)
    original["model"]["params"]["control_stage_config"] = {
        "params": {**original["model"]["params"]["unet_config"]["params"], "hint_channels": 3}}
    # diffusers 0.42's create_controlnet_diffusers_config_from_ldm calls the UNet config helper
    # without the checkpoint (a TypeError); this is its body, with the checkpoint passed
    unet = create_unet_diffusers_config_from_ldm(original, checkpoint)
    config = {"conditioning_channels": 3, **{k: unet[k] for k in (
        "in_channels", "down_block_types", "block_out_channels", "layers_per_block", "cross_attention_dim",
        "attention_head_dim", "use_linear_projection", "class_embed_type", "addition_embed_type",
        "addition_time_embed_dim", "projection_class_embeddings_input_dim", "transformer_layers_per_block")}}
    converted = convert_controlnet_checkpoint(checkpoint, config)
    if cfg.adm_in_channels:  # diffusers' ControlNet key map has no entry for SDXL's label_emb
        for ours, theirs in (("0.0", "linear_1"), ("0.2", "linear_2")):
            for p in ("weight", "bias"):
                converted[f"add_embedding.{theirs}.{p}"] = checkpoint[f"control_model.label_emb.{ours}.{p}"]
    if meta:
        return config, converted
    model = ControlNetModel(**config)
    model.load_state_dict(converted, strict=True)
    return model.eval()


def inputs(cfg, batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, 8, 8, generator=g)
    hint = torch.rand(batch, 3, 64, 64, generator=g)
    t = torch.tensor([999.0, 420.0])[:batch]
    context = torch.randn(batch, 5, cfg.context_dim, generator=g)
    y = torch.randn(batch, cfg.adm_in_channels, generator=g) if cfg.adm_in_channels else None
    return x, hint, t, context, y


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sdxl"])
def test_controlnet_matches_diffusers(arch, tmp_path):
    ours = random_controlnet(arch)
    path = write_controlnet(tmp_path / "cn.safetensors", ours)
    loaded = load_controlnet(path)
    assert loaded.config == ours.config
    theirs = diffusers_controlnet(path, ours.config.unet)
    x, hint, t, context, y = inputs(ours.config.unet)
    with torch.no_grad():
        mine = loaded(x, hint, t, context, y)
        extra = {}
        if y is not None:  # SDXL: diffusers splits y into pooled text embeds and size ids
            pooled = ours.config.unet.adm_in_channels - 6 * 256
            from graphflow.models.unet import timestep_embedding
            # rebuild y from time ids the way diffusers embeds them, so both get the same vector
            time_ids = torch.tensor([[64.0, 64, 0, 0, 64, 64], [32, 48, 4, 2, 64, 64]])
            text_embeds = torch.randn(2, pooled)
            y = torch.cat([text_embeds, timestep_embedding(time_ids.flatten(), 256).reshape(2, -1)], dim=1)
            mine = loaded(x, hint, t, context, y)
            extra = {"added_cond_kwargs": {"text_embeds": text_embeds, "time_ids": time_ids}}
        down, mid = theirs(x, t, context, hint, conditioning_scale=1.0, return_dict=False, **extra)
    assert len(mine["output"]) == len(down)
    for a, b in zip(mine["output"], down):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(mine["middle"][0], mid, atol=2e-5, rtol=1e-4)


def test_unet_control_hook_matches_diffusers():
    """Residuals go where diffusers puts down_block_additional_residuals / mid_block_additional_residual."""
    cfg = TINY["sd1"]
    unet = random_unet(cfg)
    theirs, _ = to_diffusers_unet(unet)
    net = random_controlnet("sd1")
    x, hint, t, context, _ = inputs(cfg)
    with torch.no_grad():
        control = net(x, hint, t, context)
        mine = unet(x, t, context, control=control)
        ref = theirs(x, t, context, down_block_additional_residuals=tuple(control["output"]),
                     mid_block_additional_residual=control["middle"][0]).sample
        plain = unet(x, t, context)
    torch.testing.assert_close(mine, ref, atol=1e-4, rtol=1e-4)
    assert (mine - plain).abs().max() > 1e-2  # the residuals matter
    zero = {k: [r * 0.0 for r in v] for k, v in control.items()}
    assert torch.equal(unet(x, t, context, control=zero), plain)  # strength 0 is bit-equal


def test_unprefixed_and_pickled_files_load(tmp_path):
    net = random_controlnet("sd1")
    bare = write_controlnet(tmp_path / "bare.safetensors", net, prefix="")
    torch.save({"control_model." + k: v for k, v in net.state_dict().items()}, tmp_path / "cn.pth")
    x, hint, t, context, _ = inputs(net.config.unet)
    with torch.no_grad():
        ref = net(x, hint, t, context)["middle"][0]
        for path in (bare, tmp_path / "cn.pth"):
            torch.testing.assert_close(load_controlnet(path)(x, hint, t, context)["middle"][0], ref)


def test_control_lora_builds_from_the_base_unet(tmp_path):
    """A Control-LoRA: low-rank differences to the base UNet's encoder plus full hint/zero-conv tensors."""
    cfg = TINY["sd2"]
    base = random_unet(cfg)
    full = random_controlnet("sd2", seed=3)
    g = torch.Generator().manual_seed(5)
    state, expected = {"lora_controlnet": torch.tensor([])}, {}
    base_state = base.state_dict()
    for k, v in full.state_dict().items():
        if k in base_state and v.ndim >= 2:  # encoder matrices and convs: base + up @ down
            up = torch.randn(v.shape[0], 2, generator=g) * 0.1
            down = torch.randn(2, v[0].numel(), generator=g) * 0.1
            stem = k.removesuffix(".weight")
            state[stem + ".up"], state[stem + ".down"] = up, down
            expected[k] = base_state[k] + (up @ down).reshape(v.shape)
        elif k in base_state and k.startswith("input_blocks.1."):
            expected[k] = base_state[k]  # not in the file: taken from the base
        else:
            state[k] = v
            expected[k] = v
    path = tmp_path / "control-lora.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    # as ComfyUI's ControlLora, it is built on the model it is bound to when sampling starts, a base
    # given to the loader or not
    from graphflow.models.controlnet import ControlLoraFile

    lazy = load_controlnet(path, base=random_unet(cfg, seed=7))
    assert isinstance(lazy, ControlLoraFile) and isinstance(load_controlnet(path), ControlLoraFile)
    with pytest.raises(ValueError, match="control-lora.safetensors is a Control-LoRA: it is built on the sampled"):
        lazy.control(None, None)
    bound = lazy.bind(base)
    assert lazy.bind(base) is bound  # once per model
    for k, v in expected.items():
        torch.testing.assert_close(bound.state_dict()[k], v, msg=k)
    other = random_unet(cfg, seed=11)
    rebuilt = lazy.bind(other)
    k = next(k for k in expected if k.startswith("input_blocks.1.") and k not in state)
    assert rebuilt is not bound and torch.equal(rebuilt.state_dict()[k], other.state_dict()[k])


def test_loader_refuses_wrong_and_damaged_files(tmp_path):
    from graphflow.testing import write_lora

    lora = tmp_path / "some-lora.safetensors"
    write_lora(lora, "sd1")
    with pytest.raises(CheckpointError, match=r"some-lora.safetensors is not a ControlNet.*input_hint_block.*a LoRA"):
        load_controlnet(lora)
    good = write_controlnet(tmp_path / "cn.safetensors", random_controlnet("sd1"))
    cut = tmp_path / "truncated.safetensors"
    cut.write_bytes(good.read_bytes()[:good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.safetensors.*truncated or corrupt"):
        load_controlnet(cut)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    torch.save({"control_model.x": Evil()}, evil)
    with pytest.raises(CheckpointError, match="evil.pth was refused by PyTorch.s restricted unpickler"):
        load_controlnet(evil)


def test_hint_resized_like_comfyui():
    image = torch.zeros(1, 30, 60, 3)
    image[:, :, 15:45] = 1.0  # the centre square of a 2:1 image
    hint = resize_hint(image, 64, 64)  # centre crop to 1:1, then nearest-exact
    assert hint.shape == (1, 3, 64, 64)
    assert hint.min() == 1.0


def test_hint_crop_cuts_the_same_rounded_margin_from_both_sides():
    """ComfyUI's crop="center" cuts round(excess / 2) from each side: an 11-wide, 4-high picture
    made square loses round(3.5) = 4 columns each side (Python rounds half to even), keeping
    columns 4..6 (3 wide), not a 4-wide window."""
    columns = torch.arange(11.0).reshape(1, 1, 11, 1).expand(1, 4, 11, 3)
    hint = resize_hint(columns, 8, 8)
    assert sorted(hint[0, 0].unique().tolist()) == [4.0, 5.0, 6.0]
    # nearest-exact from 3 columns to 8: source column floor((j + 0.5) * 3 / 8)
    assert hint[0, 0, 0].tolist() == [4.0, 4.0, 4.0, 5.0, 5.0, 6.0, 6.0, 6.0]


def test_t2i_adapter_matches_diffusers(tmp_path):
    """Our original-layout file against diffusers' T2IAdapter given the same weights (diffusers'
    keys renamed to the original layout; our loader's strict load checks every key is used)."""
    from diffusers import T2IAdapter as DiffusersT2IAdapter

    from graphflow.models.controlnet import load_control_model
    from graphflow.models.t2i_adapter import T2IAdapter, T2IAdapterConfig, from_diffusers_layout

    theirs = DiffusersT2IAdapter(in_channels=3, channels=[32, 64, 64], num_res_blocks=2, downscale_factor=8,
                                 adapter_type="full_adapter").eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn_like(p) * (0.5 / max(1, p[0].numel()) ** 0.5) + (0.1 if p.dim() == 1 else 0))
    original = from_diffusers_layout(theirs.state_dict())  # diffusers -> original key names
    assert "body.2.in_conv.weight" in original and "body.3.block2.weight" in original
    path = tmp_path / "t2iadapter_test.safetensors"
    save_file({k: v.contiguous() for k, v in original.items()}, str(path))
    ours = load_control_model(path)
    assert isinstance(ours, T2IAdapter)
    assert ours.config == T2IAdapterConfig(channels=(32, 64, 64), blocks_per_level=2)
    hint = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mine, ref = ours(hint), theirs(hint)
    assert len(mine) == len(ref) == 3
    for a, b in zip(mine, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_t2i_features_go_where_diffusers_puts_them():
    """UNet control "input" at the end of each level == diffusers' down_intrablock_additional_residuals."""
    from graphflow.models.unet import UNetConfig

    cfg = UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=2, transformer_depth=(1, 1),
                     context_dim=768, num_heads=8, num_head_channels=-1)
    unet = random_unet(cfg)
    theirs, _ = to_diffusers_unet(unet)
    g = torch.Generator().manual_seed(2)
    x, t, context = torch.randn(1, 4, 8, 8, generator=g), torch.tensor([500.0]), torch.randn(1, 3, 768, generator=g)
    features = [torch.randn(1, 32, 8, 8, generator=g), torch.randn(1, 64, 4, 4, generator=g)]
    with torch.no_grad():
        mine = unet(x, t, context, control={"input": [None, None, features[0], None, None, features[1]]})
        ref = theirs(x, t, context, down_intrablock_additional_residuals=list(features)).sample
    torch.testing.assert_close(mine, ref, atol=1e-4, rtol=1e-4)


def test_stacked_controls_add_and_respect_their_sigma_range():
    from graphflow.models.controlnet import ControlApplied
    from graphflow.sampling.model_sampling import DiscreteSchedule

    schedule = DiscreteSchedule.from_betas()
    a, b = random_controlnet("sd1", seed=1), random_controlnet("sd1", seed=2)
    x, _, t, context, _ = inputs(TINY["sd1"], batch=1)
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(3))
    first = ControlApplied(a, image, 0.5)
    late = ControlApplied(b, image, 2.0, start_percent=0.5, end_percent=1.0, previous=first)
    high, low = schedule.sigmas[-1].reshape(1), schedule.sigmas[10].reshape(1)
    hint = resize_hint(image, 64, 64)
    with torch.no_grad():
        ra, rb = a(x, hint, t, context), b(x, hint, t, context)
        early = late.residuals(x, high, t, context, None, schedule)  # only the first is active at sigma max
        both = late.residuals(x, low, t, context, None, schedule)
    for k in ("output", "middle"):
        for got, ref in zip(early[k], ra[k]):
            torch.testing.assert_close(got, ref * 0.5)
        for got, r1, r2 in zip(both[k], ra[k], rb[k]):
            torch.testing.assert_close(got, r1 * 0.5 + r2 * 2.0)
    # 50 % of sampling is the sigma at timestep 499.5 (ComfyUI's percent_to_sigma)
    start, end = late.sigma_range(schedule)
    assert end == 0.0 and start == pytest.approx(float(schedule.sigma(499.5)))


def test_strength_zero_through_the_sampler_is_bit_equal(tmp_path):
    """Not the nodes' shortcut: a control at strength 0 runs, its zero residuals are added, and the
    sampled latent equals the plain one bit for bit."""
    from graphflow.models.controlnet import ControlApplied
    from graphflow.sampling.pipeline import sample
    from graphflow.testing import write_checkpoint
    from graphflow.models.checkpoint import load_checkpoint

    write_checkpoint(tmp_path / "tiny.safetensors", "sd1")
    model = load_checkpoint(tmp_path / "tiny.safetensors").model
    cfg = model.unet.config
    net = ControlNet(ControlNetConfig(unet=cfg))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    g = torch.Generator().manual_seed(0)
    context = torch.randn(1, 77, cfg.context_dim, generator=g)
    image = torch.rand(1, 64, 64, 3, generator=g)
    latent = {"samples": torch.zeros(2, 4, 8, 8)}
    control = ControlApplied(net, image, 0.0)
    run = lambda pos, neg: sample(model, 1, 3, 4.0, "euler", "normal", pos, neg, latent)["samples"]
    plain = run([(context, {})], [(context * 0, {})])
    zero = run([(context, {"control": control})], [(context * 0, {"control": control})])
    assert torch.equal(zero, plain)
    control.strength = 1.0
    assert (run([(context, {"control": control})], [(context * 0, {"control": control})]) - plain).abs().max() > 1e-3


def test_difference_controlnet_adds_the_base_weights(tmp_path):
    """A "diff" ControlNet (key `difference`): encoder tensors are differences to the base UNet."""
    cfg = TINY["sd1"]
    base = random_unet(cfg, seed=4)
    full = random_controlnet("sd1", seed=5)
    base_state = base.state_dict()
    state = {"difference": torch.tensor([1.0])}
    for k, v in full.state_dict().items():
        state["control_model." + k] = v - base_state[k] if k in base_state else v
    path = tmp_path / "diff.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(CheckpointError, match="diff.safetensors stores its weights as differences"):
        load_controlnet(path)
    got = load_controlnet(path, base=base).state_dict()
    for k, v in full.state_dict().items():
        torch.testing.assert_close(got[k], v, msg=k)


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sdxl"])
def test_full_size_layout_matches_diffusers(arch):
    """Full-size keys and shapes (meta tensors) as lllyasviel's / SDXL ControlNet files have them:
    diffusers' converter fills every parameter of its ControlNetModel with the right shape, and
    our config read back from the shapes is the one the net was built from."""
    from graphflow.models.controlnet import controlnet_config_from_shapes

    with torch.device("meta"):
        ours = ControlNet(ControlNetConfig(unet=FULL[arch]))
    checkpoint = {"control_model." + k: v for k, v in ours.state_dict().items()}
    config, converted = diffusers_controlnet(None, FULL[arch], checkpoint, meta=True)
    with torch.device("meta"):
        theirs = ControlNetModel(**config)
    expected = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert controlnet_config_from_shapes(shapes) == ours.config


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_diffusers_layout_file_loads_and_matches_diffusers(arch, tmp_path):
    """A diffusers-layout file (diffusion_pytorch_model.safetensors, as downloaded): the
    state dict diffusers' own conversion made from our random net, saved as is, loads back to
    the same weights and gives diffusers' residuals."""
    ours = random_controlnet(arch, seed=4)
    original = write_controlnet(tmp_path / "cn.safetensors", ours)
    config, converted = diffusers_controlnet(original, ours.config.unet, meta=True)
    path = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file({k: v.contiguous() for k, v in converted.items()}, str(path))
    loaded = load_controlnet(path)
    assert loaded.config == ours.config
    for k, v in ours.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    theirs = ControlNetModel(**config)
    theirs.load_state_dict(converted, strict=True)
    x, hint, t, context, y = inputs(ours.config.unet)
    extra = {}
    if y is not None:
        from graphflow.models.unet import timestep_embedding

        time_ids = torch.tensor([[64.0, 64, 0, 0, 64, 64], [32, 48, 4, 2, 64, 64]])
        text_embeds = torch.randn(2, ours.config.unet.adm_in_channels - 6 * 256)
        y = torch.cat([text_embeds, timestep_embedding(time_ids.flatten(), 256).reshape(2, -1)], dim=1)
        extra = {"added_cond_kwargs": {"text_embeds": text_embeds, "time_ids": time_ids}}
    with torch.no_grad():
        mine = loaded(x, hint, t, context, y)
        down, mid = theirs.eval()(x, t, context, hint, conditioning_scale=1.0, return_dict=False, **extra)
    for a, b in zip(mine["output"] + mine["middle"], list(down) + [mid]):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    damaged = {k: v for k, v in converted.items() if not k.startswith("controlnet_mid_block")}
    damaged["down_blocks.0.surprise.weight"] = torch.zeros(1)
    save_file({k: v.contiguous() for k, v in damaged.items()}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match="bad.safetensors.*surprise"):
        load_controlnet(tmp_path / "bad.safetensors")


def random_diffusers_adapter(seed, **config):
    from diffusers import T2IAdapter as DiffusersT2IAdapter

    torch.manual_seed(seed)
    theirs = DiffusersT2IAdapter(**config).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn_like(p) * (0.5 / max(1, p[0].numel()) ** 0.5) + (0.1 if p.dim() == 1 else 0))
    return theirs


def test_sdxl_t2i_adapter_matches_diffusers_and_lands_where_diffusers_puts_it(tmp_path):
    """A full_adapter_xl file in diffusers' layout (TencentARC's SDXL adapters): features equal to
    diffusers' T2IAdapter, and the UNet given them through control() equal to diffusers' UNet given
    them as down_intrablock_additional_residuals (SDXL-like levels: no attention in the first)."""
    from graphflow.models.t2i_adapter import T2IAdapter
    from graphflow.models.unet import UNetConfig

    theirs = random_diffusers_adapter(3, in_channels=3, channels=[32, 64, 64, 64], num_res_blocks=2,
                                      downscale_factor=16, adapter_type="full_adapter_xl")
    path = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file({k: v.contiguous() for k, v in theirs.state_dict().items()}, str(path))
    ours = load_control_model(path)
    assert isinstance(ours, T2IAdapter) and ours.config.downscale == 16 and ours.config.down_levels == (2,)
    hint = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mine, ref = ours(hint), theirs(hint)
    assert len(mine) == len(ref) == 4
    for a, b in zip(mine, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)

    cfg = UNetConfig(model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2, transformer_depth=(0, 1, 1),
                     context_dim=768, num_heads=8, num_head_channels=-1)
    unet = random_unet(cfg)
    diffusers_unet, _ = to_diffusers_unet(unet)

    class Applied:
        def hint(self, h, w, batch, device, dtype):
            return hint

    g = torch.Generator().manual_seed(2)
    x, t, context = torch.randn(1, 4, 8, 8, generator=g), torch.tensor([500.0]), torch.randn(1, 3, 768, generator=g)
    with torch.no_grad():
        control = ours.control(Applied(), x, t, context, None, cfg)
        assert [i for i, f in enumerate(control["input"]) if f is not None] == [3, 5, 8]
        assert len(control["middle"]) == 1
        out = unet(x, t, context, control=control)
        expected = diffusers_unet(x, t, context, down_intrablock_additional_residuals=list(ref)).sample
        plain = unet(x, t, context)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)
    assert (out - plain).abs().max() > 1e-3


@pytest.mark.parametrize("layout", ["diffusers", "original"])
def test_light_t2i_adapter_matches_diffusers(tmp_path, layout):
    from graphflow.models.t2i_adapter import LightAdapter

    theirs = random_diffusers_adapter(4, in_channels=3, channels=[32, 64, 64], num_res_blocks=2,
                                      downscale_factor=8, adapter_type="light_adapter")
    state = theirs.state_dict()
    if layout == "original":  # ComfyUI's Adapter_light names: body.{level}.body.{block}
        state = {k.removeprefix("adapter.").replace(".resnets.", ".body."): v for k, v in state.items()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "light.safetensors"))
    ours = load_control_model(tmp_path / "light.safetensors")
    assert isinstance(ours, LightAdapter) and ours.config.channels == (32, 64, 64, 64)
    hint = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mine, ref = ours(hint), theirs(hint)
    assert len(mine) == len(ref) == 4
    for a, b in zip(mine, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_writer_diffusers_layout_is_diffusers_own(arch, tmp_path):
    """graphflow.testing's diffusers-layout ControlNet has exactly the names and tensors diffusers'
    own conversion gives for the original-layout file of the same seed."""
    from safetensors.torch import load_file

    from graphflow.testing import write_controlnet as write_random_controlnet

    a = write_random_controlnet(tmp_path / "a.safetensors", arch, seed=5, dtype=torch.float32)
    b = write_random_controlnet(tmp_path / "b.safetensors", arch, seed=5, dtype=torch.float32, layout="diffusers")
    original = load_controlnet(a)
    _, converted = diffusers_controlnet(a, original.config.unet, meta=True)
    written = load_file(str(b))
    assert set(written) == set(converted)
    assert all(torch.equal(written[k], v) for k, v in converted.items())
    expected = original.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in load_controlnet(b).state_dict().items())


@pytest.mark.parametrize("kind,adapter_type,downscale,channels", [
    ("full", "full_adapter", 8, [32, 64, 64]), ("xl", "full_adapter_xl", 16, [32, 64, 64, 64]),
    ("light", "light_adapter", 8, [32, 64, 64])])
def test_t2i_writer_layouts(kind, adapter_type, downscale, channels, tmp_path):
    from diffusers import T2IAdapter as DiffusersT2IAdapter
    from safetensors.torch import load_file

    from graphflow.testing import write_t2i_adapter

    ours_channels = channels + [channels[-1]] if kind == "light" else channels
    a = write_t2i_adapter(tmp_path / "a.safetensors", kind, "original", ours_channels, seed=1, dtype=torch.float32)
    b = write_t2i_adapter(tmp_path / "b.safetensors", kind, "diffusers", ours_channels, seed=1, dtype=torch.float32)
    na, nb = load_control_model(a), load_control_model(b)
    assert na.config == nb.config
    assert all(torch.equal(v, nb.state_dict()[k]) for k, v in na.state_dict().items())
    theirs = DiffusersT2IAdapter(in_channels=3, channels=channels, num_res_blocks=2, downscale_factor=downscale,
                                 adapter_type=adapter_type)
    theirs.load_state_dict(load_file(str(b)), strict=True)  # diffusers' own names and shapes


def test_hint_batch_fits_each_conditioning_chunk_as_comfyui_broadcasts_it():
    """The positive's and negative's rows run as one batch: each chunk gets the hints cycled or
    cut to its own size (ComfyUI's broadcast_image_to), not the hints cycled over the whole batch."""
    from graphflow.models.controlnet import ControlApplied
    from graphflow.sampling.guidance import UNetRows, unet_rows

    def hints(n_images, batch, chunks):
        image = torch.arange(float(n_images)).reshape(-1, 1, 1, 1).expand(n_images, 8, 8, 3)
        applied = ControlApplied(None, image, 1.0)
        token = unet_rows.set(UNetRows(torch.ones(1), (False,) * batch, (None,) * chunks))
        try:
            return applied.hint(8, 8, batch, "cpu", torch.float32)[:, 0, 0, 0].tolist()
        finally:
            unet_rows.reset(token)

    assert hints(3, 4, chunks=2) == [0, 1, 0, 1]  # 3 hints for 2 latents: the first 2, per chunk
    assert hints(2, 6, chunks=2) == [0, 1, 0, 0, 1, 0]  # 2 hints for 3 latents: cycled to 3, per chunk
    assert hints(2, 6, chunks=1) == [0, 1, 0, 1, 0, 1]
    assert hints(1, 4, chunks=2) == [0, 0, 0, 0]
    assert hints(4, 4, chunks=2) == [0, 1, 2, 3]  # as many hints as rows: as they are (ComfyUI's shortcut)


def test_stacked_controls_with_residual_lists_of_other_lengths_keep_the_extra_places():
    """ComfyUI's control_merge sums place by place and keeps the places only the longer list has
    (a T2I-Adapter's few features chained with a ControlNet's per-block residuals, say)."""
    from graphflow.models.controlnet import ControlApplied

    class Fixed:  # a "net" whose residuals are given
        def __init__(self, residuals):
            self.residuals = residuals

        def control(self, applied, *args, **kwargs):
            return {k: [None if r is None else r.clone() for r in v] for k, v in self.residuals.items()}

    one = torch.ones(1, 1, 2, 2)
    short = Fixed({"input": [one, None], "middle": [one]})
    long = Fixed({"input": [one, one * 2, one * 3], "output": [one * 5]})
    image = torch.zeros(1, 8, 8, 3)
    first = ControlApplied(short, image, 2.0)
    chained = ControlApplied(long, image, 1.0, previous=first)
    out = chained.residuals(torch.zeros(1, 4, 2, 2), torch.ones(1), torch.ones(1), None, None, None)
    assert [r[0, 0, 0, 0].item() for r in out["input"]] == [2 + 1, 2, 3]
    assert [r[0, 0, 0, 0].item() for r in out["middle"]] == [2]
    assert [r[0, 0, 0, 0].item() for r in out["output"]] == [5]
    first_longer = ControlApplied(short, image, 2.0, previous=ControlApplied(Fixed({"input": [one]}), image, 1.0))
    out = first_longer.residuals(torch.zeros(1, 4, 2, 2), torch.ones(1), torch.ones(1), None, None, None)
    assert out["input"][0][0, 0, 0, 0].item() == 3 and out["input"][1] is None and len(out["input"]) == 2


def test_shuffle_controlnet_averages_its_residuals_over_the_image(tmp_path):
    """ComfyUI's global_average_pooling, chosen by the file name (…_shuffle, …_shuffle_fp16): each
    residual becomes its per-channel spatial mean everywhere, then strength scales it."""
    from graphflow.models.controlnet import ControlApplied

    net = random_controlnet("sd1")
    plain = load_controlnet(write_controlnet(tmp_path / "control_v11e_sd15.safetensors", net))
    shuffle = load_controlnet(write_controlnet(tmp_path / "control_v11e_sd15_shuffle_fp16.safetensors", net))
    assert not plain.global_average_pooling and shuffle.global_average_pooling
    x, _, t, context, _ = inputs(TINY["sd1"], batch=1)
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = ControlApplied(plain, image, 1.0).residuals(x, torch.ones(1), t, context, None, None)
        got = ControlApplied(shuffle, image, 0.5).residuals(x, torch.ones(1), t, context, None, None)
    for k in ("output", "middle"):
        for r, g in zip(ref[k], got[k]):
            mean = r.mean(dim=(2, 3), keepdim=True)
            torch.testing.assert_close(g, (mean * 0.5).expand_as(r))


def test_t2i_adapter_at_sizes_off_its_grid_as_comfyui():
    """ComfyUI rounds the hint's pixel size up to whole unshuffle cells and leaves out features
    whose map misses the UNet's size there (the adapter pools 9 rows to 4, the UNet's stride-2
    conv makes 5): at a 72x64 image an SD1 adapter guides the first level only."""
    from graphflow.models.t2i_adapter import T2IAdapter, T2IAdapterConfig
    from graphflow.models.unet import UNetConfig

    cfg = UNetConfig(model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1, transformer_depth=(1, 1, 1),
                     context_dim=768, num_heads=8, num_head_channels=-1)
    torch.manual_seed(0)
    adapter = T2IAdapter(T2IAdapterConfig(channels=(32, 64, 64), blocks_per_level=1)).eval()
    asked = []

    class Applied:
        def hint(self, h, w, batch, device, dtype):
            asked.append((h, w))
            return torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(1))

    g = torch.Generator().manual_seed(2)
    x, t, context = torch.randn(1, 4, 9, 8, generator=g), torch.tensor([500.0]), torch.randn(1, 3, 768, generator=g)
    with torch.no_grad():
        control = adapter.control(Applied(), x, t, context, None, cfg)
        features = adapter(Applied().hint(72, 64, 1, "cpu", torch.float32))
    assert asked[0] == (72, 64)
    assert [tuple(f.shape[-2:]) for f in features] == [(9, 8), (4, 4), (2, 2)]  # UNet: 9x8, 5x4, 3x2
    assert [i for i, f in enumerate(control["input"]) if f is not None] == [1]
    torch.testing.assert_close(control["input"][1], features[0])
    unet = random_unet(cfg)
    with torch.no_grad():
        assert unet(x, t, context, control=control).shape == x.shape  # runs, as ComfyUI's does

    # an SDXL adapter (16x unshuffle) at a 72-pixel side asks for ceil(72 / 16) * 16 = 80 pixels
    xl = T2IAdapter(T2IAdapterConfig(channels=(32, 64, 64), blocks_per_level=1, downscale=16, down_levels=(2,))).eval()
    asked.clear()
    with torch.no_grad():
        xl.control(Applied(), x, t, context, None, cfg)
    assert asked == [(80, 64)]
