"""Our UNet against diffusers on identical weights.

The oracle path is honest end to end: our module's state dict is written in the LDM checkpoint
layout ('model.diffusion_model.' + key), diffusers' own single-file code turns an LDM-style
model config (the dict its yaml loader would give, built here, no hub) into a diffusers config
(`create_unet_diffusers_config_from_ldm`) and converts the weights (`convert_ldm_unet_checkpoint`).
If our key layout or architecture differed from the original LDM one, either the conversion
would leave diffusers weights unset (strict load fails) or the outputs would differ.
"""

import copy

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, create_unet_diffusers_config_from_ldm

from graphflow.models import SD1, SDXL, DiffusionModel, UNet, UNetConfig, unet_config_from_state_dict

PREFIX = "model.diffusion_model."

# Scaled-down versions of each family: same structure (levels, attention placement, head
# convention, linear/conv projections, vector conditioning), small widths.
TINY = {
    "sd1": UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=1, transformer_depth=(1, 1),
                      context_dim=768, num_heads=8, num_head_channels=-1),
    "sd1_inpaint": UNetConfig(in_channels=9, model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1,
                              transformer_depth=(1, 1, 0), context_dim=768, num_heads=8, num_head_channels=-1),
    "sd2": UNetConfig(model_channels=64, channel_mult=(1, 2, 2), num_res_blocks=1, transformer_depth=(1, 1, 0),
                      context_dim=1024, num_heads=-1, num_head_channels=64, use_linear_in_transformer=True),
    "sdxl": UNetConfig(model_channels=64, channel_mult=(1, 2, 2), num_res_blocks=2, transformer_depth=(0, 1, 2),
                       transformer_depth_middle=2, context_dim=2048, num_heads=-1, num_head_channels=64,
                       use_linear_in_transformer=True, adm_in_channels=32 + 6 * 256),
    "sdxl_inpaint": UNetConfig(in_channels=9, model_channels=64, channel_mult=(1, 2), num_res_blocks=1,
                               transformer_depth=(0, 2), transformer_depth_middle=2, context_dim=2048,
                               num_heads=-1, num_head_channels=64, use_linear_in_transformer=True,
                               adm_in_channels=32 + 6 * 256),
    "sdxl_refiner": UNetConfig(model_channels=64, channel_mult=(1, 2, 2, 2), num_res_blocks=1,
                               transformer_depth=(0, 2, 2, 0), transformer_depth_middle=2, context_dim=1280,
                               num_heads=-1, num_head_channels=64, use_linear_in_transformer=True,
                               adm_in_channels=32 + 5 * 256),
}

# The originals, full size (built on the meta device only: shapes, no memory).
FULL = {
    "sd1": UNetConfig(),
    "sd1_inpaint": UNetConfig(in_channels=9),
    "sd2": UNetConfig(transformer_depth=(1, 1, 1, 0), context_dim=1024, num_heads=-1, num_head_channels=64,
                      use_linear_in_transformer=True),
    "sdxl": UNetConfig(channel_mult=(1, 2, 4), transformer_depth=(0, 2, 10), transformer_depth_middle=10,
                       context_dim=2048, num_heads=-1, num_head_channels=64, use_linear_in_transformer=True,
                       adm_in_channels=2816),
    "sdxl_refiner": UNetConfig(model_channels=384, channel_mult=(1, 2, 4, 4), transformer_depth=(0, 4, 4, 0),
                               transformer_depth_middle=4, context_dim=1280, num_heads=-1, num_head_channels=64,
                               use_linear_in_transformer=True, adm_in_channels=2560),
}


def ldm_original_config(cfg: UNetConfig) -> dict:
    """The model part of an LDM/SGM yaml config describing `cfg` (what diffusers reads)."""
    unet = {
        "in_channels": cfg.in_channels, "out_channels": cfg.out_channels,
        "model_channels": cfg.model_channels, "channel_mult": list(cfg.channel_mult),
        "num_res_blocks": cfg.num_res_blocks[0], "attention_resolutions": list(cfg.attention_resolutions),
        "transformer_depth": list(cfg.transformer_depth), "context_dim": cfg.context_dim,
        "use_linear_in_transformer": cfg.use_linear_in_transformer,
    }
    used = {d for d in cfg.transformer_depth if d} | {cfg.transformer_depth_middle}
    if len(used) == 1:  # SD1/SD2 yamls give one int (diffusers then uses it for the middle block too)
        unet["transformer_depth"] = used.pop()
    if cfg.num_head_channels == -1:
        unet["num_heads"] = cfg.num_heads
    else:
        unet["num_head_channels"] = cfg.num_head_channels
    if cfg.adm_in_channels:
        unet.update(num_classes="sequential", adm_in_channels=cfg.adm_in_channels)
    return {"model": {"params": {"unet_config": {"params": unet},
                                 "first_stage_config": {"params": {"ddconfig": {"ch_mult": [1, 2, 4, 4]}}}}}}


def to_diffusers_unet(unet: UNet, config_only: bool = False):
    """(diffusers UNet2DConditionModel, converted state dict) for our UNet via diffusers' converter."""
    checkpoint = {PREFIX + k: v for k, v in unet.state_dict().items()}
    config = create_unet_diffusers_config_from_ldm(ldm_original_config(unet.config), checkpoint)
    converted = convert_ldm_unet_checkpoint(checkpoint, config)
    if config_only:
        return config, converted
    model = UNet2DConditionModel(**config)
    model.load_state_dict(converted, strict=True)
    return model.eval(), converted


def random_unet(cfg: UNetConfig, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    unet = UNet(cfg)
    with torch.no_grad():  # LDM zero-inits some output convs; randomise everything so all weights matter
        for p in unet.parameters():
            p.copy_(torch.randn_like(p) * (0.5 / max(1, p[0].numel()) ** 0.5) + (0.1 if p.dim() == 1 else 0))
    return unet.eval()


def arch_of(name: str) -> str:
    return name.replace("_inpaint", "")


@pytest.mark.parametrize("name", list(TINY))
def test_unet_matches_diffusers(name):
    cfg = TINY[name]
    ours = random_unet(cfg)
    theirs, _ = to_diffusers_unet(ours)
    b, h, w = 2, 16, 24
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, cfg.in_channels, h, w, generator=g)
    t = torch.tensor([999.0, 261.5])
    context = torch.randn(b, 7, cfg.context_dim, generator=g)

    y, added = None, None
    if cfg.adm_in_channels:
        model = DiffusionModel(ours, arch_of(name))
        pooled = torch.randn(b, 32, generator=g)
        opts = {"pooled_output": pooled, "width": 1024, "height": 768, "crop_w": 16, "crop_h": 48,
                "target_width": 896, "target_height": 640, "aesthetic_score": 5.5}
        y = model.encode_adm(opts, width_px=8 * w, height_px=8 * h)
        # diffusers' SDXL pipelines: time_ids = original_size + crops_coords_top_left + target_size (or score)
        if name == "sdxl_refiner":
            time_ids = [768, 1024, 48, 16, 5.5]
        else:
            time_ids = [768, 1024, 48, 16, 640, 896]
        added = {"text_embeds": pooled, "time_ids": torch.tensor([time_ids] * b, dtype=torch.float32)}

    with torch.no_grad():
        out = ours(x, t, context, y)
        ref = theirs(x, t, encoder_hidden_states=context, added_cond_kwargs=added).sample
    assert out.shape == (b, cfg.out_channels, h, w)
    assert ref.abs().mean() > 0.05  # a live network, not a vacuous comparison
    assert (out - ref).abs().max().item() <= 1e-4


def test_sdxl_size_conditioning_changes_the_output():
    ours = random_unet(TINY["sdxl"])
    model = DiffusionModel(ours, "sdxl")
    x, t, ctx = torch.randn(1, 4, 8, 8), torch.tensor([500.0]), torch.randn(1, 3, 2048)
    y_default = model.encode_adm({}, 512, 512)
    y_big = model.encode_adm({"width": 1024, "height": 1024}, 512, 512)
    assert y_default.shape == (1, 32 + 6 * 256)
    assert torch.equal(y_default[:, :32], torch.zeros(1, 32))  # no pooled output -> zeros
    with torch.no_grad():
        assert (ours(x, t, ctx, y_default) - ours(x, t, ctx, y_big)).abs().max() > 1e-3


def test_refiner_aesthetic_score_defaults():
    model = DiffusionModel(random_unet(TINY["sdxl_refiner"]), "sdxl_refiner")
    from graphflow.models.unet import timestep_embedding
    pos = model.encode_adm({}, 512, 512)
    neg = model.encode_adm({}, 512, 512, negative=True)
    assert torch.allclose(pos[:, -256:], timestep_embedding(torch.tensor([6.0]), 256))
    assert torch.allclose(neg[:, -256:], timestep_embedding(torch.tensor([2.5]), 256))


@pytest.mark.parametrize("name", list(FULL))
def test_full_size_layout_matches_diffusers(name):
    """Full-size keys and shapes (meta tensors): diffusers' converter must fill every parameter of
    the diffusers model with a tensor of the right shape, and leave nothing over."""
    with torch.device("meta"):
        ours = UNet(FULL[name])
    config, converted = to_diffusers_unet(ours, config_only=True)
    with torch.device("meta"):
        theirs = UNet2DConditionModel(**config)
    expected = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected
    assert sum(p.numel() for p in ours.parameters()) == sum(expected_shape.numel() for expected_shape in
                                                            (torch.Size(s) for s in expected.values()))


@pytest.mark.parametrize("configs", [TINY, FULL], ids=["tiny", "full"])
def test_config_round_trips_through_shapes(configs):
    for name, cfg in configs.items():
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in UNet(cfg).state_dict().items()}
        assert unet_config_from_state_dict(shapes) == cfg, name


def test_config_inference_keeps_per_block_depths_and_groups():
    # a distilled SDXL (SSD-1B style): depths differ inside a level; single-ResBlock middle
    cfg = UNetConfig(model_channels=32, channel_mult=(1, 2), num_res_blocks=2, transformer_depth=(1, 2),
                     transformer_depth_input=(1, 0, 2, 1), transformer_depth_output=(2, 0, 1, 1, 0, 0),
                     transformer_depth_middle=0, context_dim=64, num_heads=-1, num_head_channels=64,
                     use_linear_in_transformer=True, norm_groups=8)
    unet = UNet(cfg)
    assert "middle_block.1.in_layers.0.weight" not in unet.state_dict()
    shapes = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    assert unet_config_from_state_dict(shapes, norm_groups=8) == cfg
    with torch.no_grad():
        assert unet(torch.randn(1, 4, 8, 8), torch.tensor([3.0]), torch.randn(1, 2, 64)).shape == (1, 4, 8, 8)


def test_state_dict_loads_back_with_prefix_stripped():
    unet = random_unet(TINY["sdxl"], seed=3)
    checkpoint = {PREFIX + k: v for k, v in unet.state_dict().items()}
    checkpoint["first_stage_model.decoder.conv_in.weight"] = torch.zeros(1)  # other parts of a checkpoint
    fresh = UNet(unet_config_from_state_dict({k[len(PREFIX):]: v.shape for k, v in checkpoint.items()
                                              if k.startswith(PREFIX)}))
    fresh.load_state_dict({k[len(PREFIX):]: v for k, v in checkpoint.items() if k.startswith(PREFIX)})
    for k, v in unet.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)


def test_half_precision_forward_runs_and_tracks_fp32():
    unet = random_unet(TINY["sd2"])
    x, t, ctx = torch.randn(1, 4, 8, 8), torch.tensor([10.0]), torch.randn(1, 3, 1024)
    with torch.no_grad():
        ref = unet(x, t, ctx)
        out = copy.deepcopy(unet).to(torch.bfloat16)(x, t, ctx)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_diffusion_model_properties_and_schedule():
    inpaint = DiffusionModel(random_unet(TINY["sd1_inpaint"]), "sd1", prediction="v")
    assert inpaint.inpaint and inpaint.in_channels == 9 and inpaint.adm_channels == 0
    assert inpaint.latent_format is SD1 and inpaint.encode_adm({}, 64, 64) is None
    sdxl = DiffusionModel(random_unet(TINY["sdxl"]), "sdxl")
    assert not sdxl.inpaint and sdxl.latent_format is SDXL and sdxl.adm_channels == 32 + 1536
    other = random_unet(TINY["sdxl"], seed=9)
    patched = sdxl.with_unet(other)
    assert patched.unet is other and sdxl.unet is not other and patched.latent_format is sdxl.latent_format
    with pytest.raises(ValueError, match="prediction"):
        DiffusionModel(other, "sdxl", prediction="flow")

    acp = sdxl.beta_schedule.alphas_cumprod()
    ref = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear").alphas_cumprod
    assert torch.allclose(acp.float(), ref, atol=1e-6)
    sigmas = ((1 - acp) / acp).sqrt()
    assert abs(sigmas[0].item() - 0.029167) < 1e-5 and abs(sigmas[-1].item() - 14.614641) < 1e-4


def test_missing_y_is_a_clear_error():
    with pytest.raises(ValueError, match="vector conditioning"):
        random_unet(TINY["sdxl"])(torch.randn(1, 4, 8, 8), torch.tensor([1.0]), torch.randn(1, 2, 2048))


@pytest.mark.parametrize("name", ["sd1_inpaint", "sdxl_refiner"])
def test_sizes_not_multiples_of_64_match_diffusers(name):
    """Any multiple of 8 pixels runs, as in ComfyUI: 72x40 px (latent 9x5) halves to 5x3, 3x2, 2x1
    in a 4-level UNet, and each upsampling must meet its skip connection's size, not double."""
    cfg = TINY[name]
    ours = random_unet(cfg)
    theirs, _ = to_diffusers_unet(ours)
    g = torch.Generator().manual_seed(2)
    for h, w in [(9, 5), (13, 65 // 8)]:
        x = torch.randn(1, cfg.in_channels, h, w, generator=g)
        t = torch.tensor([500.0])
        context = torch.randn(1, 4, cfg.context_dim, generator=g)
        y, added = None, None
        if cfg.adm_in_channels:
            pooled = torch.randn(1, 32, generator=g)
            y = DiffusionModel(ours, arch_of(name)).encode_adm({"pooled_output": pooled, "aesthetic_score": 6.0},
                                                               width_px=8 * w, height_px=8 * h)
            added = {"text_embeds": pooled, "time_ids": torch.tensor([[8.0 * h, 8.0 * w, 0, 0, 6.0]])}
        with torch.no_grad():
            out = ours(x, t, context, y)
            ref = theirs(x, t, encoder_hidden_states=context, added_cond_kwargs=added).sample
        assert out.shape == (1, cfg.out_channels, h, w)
        assert ref.abs().mean() > 0.05
        assert (out - ref).abs().max().item() <= 1e-4, (h, w)
