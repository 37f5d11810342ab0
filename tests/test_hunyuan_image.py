"""HunyuanImage 2.1: the transformer against diffusers' HunyuanImageTransformer2DModel on identical
tiny random weights (Tencent's names, as ComfyUI's file holds them, converted by diffusers' HunyuanVideo
single-file converter plus the names HunyuanImage adds: byt5_in, time_r_in, time_guidance_embed;
diffusers' byT5 projection is 2048 wide, so the tiny one is swapped in); detection, loading and
ComfyUI's sampling settings (discrete flow shift 5, multiplier 1000; the distilled file's guidance 6.0
by default; the HunyuanImage21 latent); the byT5 states of a conditioning's "conditioning_byt5small"
reach the model. The 32x VAE (ComfyUI's names, converted to diffusers') against diffusers'
AutoencoderKLHunyuanImage. ComfyUI's graph (workflows/hunyuan_image.json) from prompt to picture, and with
the refiner stage (workflows/hunyuan_image_refiner.json).
"""

import json
import re

import pytest
import torch
from diffusers import AutoencoderKLHunyuanImage, HunyuanImageTransformer2DModel
from diffusers.loaders.single_file_utils import convert_hunyuan_video_transformer_to_diffusers
from diffusers.models.transformers.transformer_hunyuanimage import HunyuanImageByT5TextProjection

from graphflow.models.hunyuan_image import HunyuanImage, hunyuan_image_config_from_state_dict
from graphflow.testing import (HUNYUAN_IMAGE_TINY_BYT5_DIM, HUNYUAN_IMAGE_TINY_TEXT_DIM, hunyuan_image_config,
                               hunyuan_image_state)

from test_hunyuan_image_text import byt5_tokenizer, files, pipeline, reference_tokenizer  # noqa: F401 (fixtures)

TOL = 1e-4
TEXT, BYT5 = HUNYUAN_IMAGE_TINY_TEXT_DIM, HUNYUAN_IMAGE_TINY_BYT5_DIM


def to_diffusers(state, dim):
    rest, out = dict(state), {}
    for k in [k for k in state if ".linear1." in k]:  # q, k, v, MLP rows (diffusers' converter assumes 3072)
        q, kk, v, mlp = rest.pop(k).split([dim, dim, dim, state[k].shape[0] - 3 * dim])
        base, kind = k.replace("single_blocks", "single_transformer_blocks").split(".linear1.")
        out.update({f"{base}.attn.to_q.{kind}": q, f"{base}.attn.to_k.{kind}": kk, f"{base}.attn.to_v.{kind}": v,
                    f"{base}.proj_mlp.{kind}": mlp})
    names = {"layernorm": "norm", "fc1": "linear_1", "fc2": "linear_2", "fc3": "linear_3"}
    for k in [k for k in rest if k.startswith("byt5_in.")]:
        _, name, kind = k.split(".")
        out[f"context_embedder_2.{names[name]}.{kind}"] = rest.pop(k)
    for k in [k for k in rest if k.startswith("time_r_in.")]:
        out[re.sub(r"time_r_in\.mlp\.(\d)", lambda m: f"time_guidance_embed.timestep_embedder_r.linear_"
                   f"{1 if m[1] == '0' else 2}", k)] = rest.pop(k)
    converted = convert_hunyuan_video_transformer_to_diffusers(rest)
    return {**{re.sub(r"^time_text_embed\.", "time_guidance_embed.", k): v for k, v in converted.items()}, **out}


def diffusers_hyi(state):
    c = hunyuan_image_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()})
    theirs = HunyuanImageTransformer2DModel(
        in_channels=c.in_channels, out_channels=c.out_channels, num_attention_heads=c.num_heads,
        attention_head_dim=c.head_dim, num_layers=c.depth, num_single_layers=c.depth_single_blocks,
        num_refiner_layers=c.refiner_depth, patch_size=c.patch_size, guidance_embeds=c.guidance_embed,
        text_embed_dim=c.context_in_dim, text_embed_2_dim=c.byt5_dim or None, rope_axes_dim=c.axes_dim,
        use_meanflow=c.meanflow).eval()
    if c.byt5_dim:
        theirs.context_embedder_2 = HunyuanImageByT5TextProjection(c.byt5_dim, c.byt5_hidden, c.hidden_size)
    theirs.load_state_dict(to_diffusers(state, c.hidden_size), strict=True)
    return theirs


def diffusers_velocity(theirs, x, sigma, context, byt5=None, guidance=None, sigma_next=None, mask=None):
    """diffusers' transformer told the timesteps and guidance x 1000, as its pipeline does."""
    mask = torch.ones(context.shape[:2], dtype=torch.long) if mask is None else mask
    extra = {} if byt5 is None else dict(encoder_hidden_states_2=byt5,
                                         encoder_attention_mask_2=torch.ones(byt5.shape[:2], dtype=torch.long))
    with torch.no_grad():
        return theirs(x, sigma * 1000, context, mask, timestep_r=None if sigma_next is None else sigma_next * 1000,
                      guidance=None if guidance is None else guidance * 1000, return_dict=False, **extra)[0]


@pytest.fixture(scope="module", params=[False, True], ids=["base", "distilled"])
def hyi_pair(request):
    state = hunyuan_image_state(seed=3, distilled=request.param)
    ours = HunyuanImage(hunyuan_image_config(distilled=request.param)).eval()
    ours.load_state_dict(state, strict=True)
    return ours, diffusers_hyi(state)


def test_config_from_shapes():
    for distilled in (False, True):
        shapes = {k: tuple(v.shape) for k, v in hunyuan_image_state(distilled=distilled).items()}
        assert hunyuan_image_config_from_state_dict(shapes) == hunyuan_image_config(distilled=distilled)
    assert shapes["img_in.proj.weight"] == (64, 64, 1, 1) and shapes["byt5_in.fc1.weight"] == (48, BYT5)
    assert "time_r_in.mlp.0.weight" in shapes and "guidance_in.mlp.2.weight" in shapes and "vector_in.in_layer.weight" \
        not in shapes


def test_full_size_defaults():
    """The defaults are HunyuanImage 2.1's: diffusers' default HunyuanImageTransformer2DModel (with byT5's
    1472-wide input) has the same tensors once converted; the config read back is the default one."""
    with torch.device("meta"):
        ours = HunyuanImage(hunyuan_image_config(scaled_down=False))
        theirs = HunyuanImageTransformer2DModel(text_embed_2_dim=1472)
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    converted = to_diffusers({k: torch.empty(s, device="meta") for k, s in shapes.items()}, 3584)
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape)
                                                                  for k, v in theirs.state_dict().items()}
    assert 17.0e9 < sum(p.numel() for p in ours.parameters()) < 17.5e9
    cfg = hunyuan_image_config_from_state_dict(shapes)
    assert cfg == hunyuan_image_config(scaled_down=False) and cfg.axes_dim == (64, 64) and cfg.byt5_dim == 1472


@pytest.mark.parametrize("size, glyphs", [((5, 6), True), ((4, 4), False)])
def test_matches_diffusers(hyi_pair, size, glyphs):
    """A batch of two (own sigmas, guidance and next sigmas for the distilled model), with and without
    byT5 glyph states (appended after the text tokens; diffusers puts them first)."""
    ours, theirs = hyi_pair
    distilled = ours.config.meanflow
    g = torch.Generator().manual_seed(size[0])
    x, context = torch.randn(2, 64, *size, generator=g), torch.randn(2, 5, TEXT, generator=g)
    byt5 = torch.randn(2, 3, BYT5, generator=g) if glyphs else None
    sigma = torch.tensor([0.8, 0.25])
    guidance, sigma_next = (torch.tensor([3.5, 6.0]), torch.tensor([0.6, 0.1])) if distilled else (None, None)
    with torch.no_grad():
        got = ours(x, sigma, context, guidance=guidance, txt_byt5=byt5, sigma_next=sigma_next)
    want = diffusers_velocity(theirs, x, sigma, context, byt5, guidance, sigma_next)
    assert got.shape == x.shape and float(want.abs().max()) > 0.1
    assert (got - want).abs().max() < TOL
    if glyphs:  # the glyph branch counts
        with torch.no_grad():
            assert (ours(x, sigma, context, guidance=guidance, sigma_next=sigma_next) - got).abs().max() > 1e-3
    if distilled:  # guidance and the next sigma are embedded
        with torch.no_grad():
            assert (ours(x, sigma, context, guidance=guidance + 2, txt_byt5=byt5, sigma_next=sigma_next)
                    - got).abs().max() > 1e-3
            assert (ours(x, sigma, context, guidance=guidance, txt_byt5=byt5) - got).abs().max() > 1e-3


def test_text_mask(hyi_pair):
    """Texts of different lengths in one padded batch: text_mask (1 keep) gives what diffusers'
    encoder_attention_mask gives, glyph states and all, and each sample what it gives alone."""
    ours, theirs = hyi_pair
    g = torch.Generator().manual_seed(4)
    x, context = torch.randn(2, 64, 3, 4, generator=g), torch.randn(2, 6, TEXT, generator=g)
    byt5, sigma = torch.randn(2, 2, BYT5, generator=g), torch.tensor([0.7, 0.4])
    extra = dict(guidance=torch.tensor([6.0, 6.0]), sigma_next=torch.tensor([0.5, 0.2])) if ours.config.meanflow \
        else {}
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
    with torch.no_grad():
        got = ours(x, sigma, context, text_mask=mask, txt_byt5=byt5, **extra)
        alone = ours(x[1:], sigma[1:], context[1:, :3], txt_byt5=byt5[1:], **{k: v[1:] for k, v in extra.items()})
    want = diffusers_velocity(theirs, x, sigma, context, byt5, mask=mask, **extra)
    assert (got - want).abs().max() < TOL and (got[1:] - alone).abs().max() < TOL


def test_bad_inputs_are_refused():
    ours = HunyuanImage(hunyuan_image_config()).eval()
    with pytest.raises(ValueError, match=f"{TEXT}-wide text states.*type hunyuan_image"):
        ours(torch.zeros(1, 64, 4, 4), torch.tensor([0.5]), torch.zeros(1, 3, 3584))
    with pytest.raises(ValueError, match=r"image latents \[B, 64, h, w\]"):
        ours(torch.zeros(1, 16, 1, 4, 4), torch.tensor([0.5]), torch.zeros(1, 3, TEXT))
    with pytest.raises(ValueError, match=f"{BYT5}-wide byT5 glyph states"):
        ours(torch.zeros(1, 64, 4, 4), torch.tensor([0.5]), torch.zeros(1, 3, TEXT), txt_byt5=torch.zeros(1, 2, 1472))
    with pytest.raises(ValueError, match="ControlNets"):
        ours(torch.zeros(1, 64, 4, 4), torch.tensor([0.5]), torch.zeros(1, 3, TEXT), control={"input": []})


# -- detection, loading, sampling settings -------------------------------------------------------

@pytest.mark.parametrize("prefixed, distilled", [(True, True)])  # the base file: tests/test_flow_families.py
def test_detected_and_loaded(tmp_path, prefixed, distilled):
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.models.file_kind import identify
    from graphflow.models.flow_architecture import detect_flow_model
    from graphflow.models.weight_files import WeightFile
    from graphflow.testing import write_hunyuan_image

    path = write_hunyuan_image(tmp_path / "hunyuanimage2.1_bf16.safetensors", prefixed=prefixed, distilled=distilled,
                               dtype=torch.float32)
    with WeightFile(path) as f:
        info = detect_flow_model(f.shapes)
        kind = identify(f.shapes)
    family = "hunyuan_image_distilled" if distilled else "hunyuan_image"
    assert (info.arch, info.family, info.prefix) == ("hunyuan_image", family,
                                                     "model.diffusion_model." if prefixed else "")
    assert info.config == hunyuan_image_config(distilled=distilled) and info.vae is None
    assert info.latent_format.name == "hunyuan_image21" and info.latent_format.channels == 64
    assert any("DualCLIPLoader, type hunyuan_image" in n for n in info.notes)
    assert any("hunyuan_image_2.1_vae_fp16.safetensors" in n for n in info.notes)
    assert kind.folder == "diffusion_models" and kind.name == "HunyuanImage 2.1 diffusion model"
    report = inspect_report(path)
    assert f"{info.name} [hunyuan_image, {family}]" in report
    assert "2 double + 2 single blocks" in report and f"byT5 glyph width {BYT5}" in report
    assert ("MeanFlow" in report) == distilled
    model = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    assert model.arch == "hunyuan_image" and model.is_flow and not model.is_video and not model.masked_timesteps
    assert model.adm_channels == 0 and model.in_channels == 64 and model.guidance_embed == distilled
    assert isinstance(model.unet, HunyuanImage)
    state = hunyuan_image_state(distilled=distilled)
    assert all(torch.equal(model.unet.state_dict()[k], v) for k, v in state.items())


def test_file_in_comfyui_module_names(tmp_path):
    """A file ComfyUI saved (its own module names under model.diffusion_model.: img_attn.qkv, time_in.in_layer,
    time_r_in.in_layer, ...) loads the same weights; HunyuanVideo 1.5's keys are refused by name."""
    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.file_kind import identify
    from graphflow.models.flow_architecture import detect_flow_model
    from graphflow.models.weight_files import CheckpointError
    from tests.test_hunyuan_video import comfy_names

    state = hunyuan_image_state(seed=4, distilled=True)
    renamed = {"model.diffusion_model." + comfy_names(k).replace("time_r_in.mlp.0.", "time_r_in.in_layer.")
               .replace("time_r_in.mlp.2.", "time_r_in.out_layer."): v for k, v in state.items()}
    assert "model.diffusion_model.time_r_in.in_layer.weight" in renamed
    assert "model.diffusion_model.byt5_in.fc1.weight" in renamed
    save_file(renamed, str(tmp_path / "comfy.safetensors"))
    model = load_diffusion_model(tmp_path / "comfy.safetensors", device="cpu", dtype=torch.float32)
    assert model.arch == "hunyuan_image" and model.unet.config == hunyuan_image_config(distilled=True)
    assert all(torch.equal(model.unet.state_dict()[k], v) for k, v in state.items())
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    for video15 in ({**shapes, "vision_in.proj.0.weight": (8, 8)}, {**shapes, "img_in.proj.weight": (64, 64, 1, 1, 1)}):
        with pytest.raises(CheckpointError, match="HunyuanVideo 1.5"):
            detect_flow_model(video15)
        assert identify(video15).name == "HunyuanVideo 1.5 (not supported) diffusion model"


def test_sampling_defaults():
    """ComfyUI's HunyuanImage21: ModelType.FLOW, shift 5.0 (multiplier 1000), the HunyuanImage21 latent
    (64 channels, scale 0.75289), bf16 or fp32 only; no pooled vector; the distilled file's guidance
    6.0 when no FluxGuidance sets one (extra_conds' default), the base model none."""
    from graphflow.models.checkpoint import flow_placement
    from graphflow.models.diffusion_model import DiffusionModel
    from graphflow.sampling.flow_sampling import FlowDenoiser, flow_vectors, model_sampling_for

    with torch.device("meta"):
        base, distilled = (DiffusionModel(HunyuanImage(hunyuan_image_config(distilled=d)), "hunyuan_image", "flow")
                           for d in (False, True))
    assert base.latent_format.name == "hunyuan_image21" and base.latent_format.scale_factor == 0.75289
    assert base.sampling_shift == 5.0 and base.adm_channels == 0
    assert base.latent_format.preview(torch.randn(1, 64, 3, 5)).shape == (1, 3, 5, 3)
    schedule = model_sampling_for(base)
    assert (schedule.kind, schedule.shift, schedule.multiplier) == ("shift", 5.0, 1000.0)
    t = torch.arange(1, 1001) / 1000
    assert torch.allclose(schedule.sigmas, 5 * t / (1 + 4 * t))
    assert FlowDenoiser(base, schedule).timestep_scale == 1.0
    assert flow_vectors(base, {"guidance": 3.0}, 2) == (None, None)
    y, guidance = flow_vectors(distilled, {}, 2)
    assert y is None and guidance.tolist() == [6.0, 6.0]
    assert flow_vectors(distilled, {"guidance": 3.25}, 1)[1].tolist() == [3.25]
    assert flow_placement("cpu", None, "hunyuan_image")[1] != torch.float16


def test_byt5_states_reach_the_model():
    """A conditioning's "conditioning_byt5small" becomes the entry's byt5_states (repeated to the batch);
    prompts with and without glyphs (or of other lengths) never share a model call; a malformed one is refused."""
    from graphflow.sampling.guidance import _can_batch, prepare_conds

    class Model:
        arch, prediction, is_video, adm_channels, guidance_embed, dtype = ("hunyuan_image", "flow", False, 0, False,
                                                                           torch.float32)

    x = torch.zeros(2, 64, 4, 4)
    glyphs = torch.randn(1, 3, BYT5)
    with_glyphs, without = (prepare_conds([(torch.zeros(1, 5, TEXT), options)], Model(), x.shape, "cpu")[0]
                            for options in ({"conditioning_byt5small": glyphs}, {}))
    assert with_glyphs.byt5_states.shape == (2, 3, BYT5) and torch.equal(with_glyphs.byt5_states[1], glyphs[0])
    assert without.byt5_states is None and with_glyphs.y is None and with_glyphs.guidance is None
    assert not _can_batch((x, None, None, with_glyphs), (x, None, None, without))
    with pytest.raises(ValueError, match="conditioning_byt5small must be byT5's states"):
        prepare_conds([(torch.zeros(1, 5, TEXT), {"conditioning_byt5small": torch.zeros(3, BYT5)})], Model(),
                      x.shape, "cpu")


# -- sampling through the nodes --------------------------------------------------------------------

def test_ksampler_matches_diffusers(tmp_folders):
    """UNETLoader -> KSampler (euler, simple, 2 steps, cfg 2.5) on EmptyHunyuanImageLatent (96 x 64 px:
    a 3 x 2 latent), the positive prompt with glyph states (conditioning_byt5small), the negative
    without: classifier-free guidance over Euler steps of diffusers' transformer on the same noise
    (sigmas 1, 5 * 0.5 / (1 + 4 * 0.5), 0)."""
    from safetensors.torch import load_file

    from graphflow.models.latent_formats import HUNYUAN_IMAGE21
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import write_hunyuan_image
    from tests.test_nodes_image_mask import call

    (tmp_folders.models / "diffusion_models").mkdir()
    path = write_hunyuan_image(tmp_folders.models / "diffusion_models" / "hunyuanimage2.1_bf16.safetensors", seed=7,
                               dtype=torch.float32, prefixed=True)
    reg = Registry().load_builtin()
    model = call(reg, "LoadDiffusionModel", unet_name="hunyuanimage2.1_bf16.safetensors", weight_dtype="default")
    latent = call(reg, "EmptyHunyuanImageLatent", width=96, height=64, batch_size=1)
    assert latent["samples"].shape == (1, 64, 2, 3)
    g = torch.Generator().manual_seed(8)
    cond, glyphs, uncond = (torch.randn(1, 5, TEXT, generator=g), torch.randn(1, 4, BYT5, generator=g),
                            torch.randn(1, 3, TEXT, generator=g))
    out = call(reg, "KSampler", model=model, seed=9, steps=2, cfg=2.5, sampler_name="euler", scheduler="simple",
               positive=[(cond, {"conditioning_byt5small": glyphs})], negative=[(uncond, {})], latent_image=latent,
               denoise=1.0)["samples"]
    assert out.shape == (1, 64, 2, 3)

    theirs = diffusers_hyi({k.removeprefix("model.diffusion_model."): v for k, v in load_file(str(path)).items()})
    x = initial_noise(torch.zeros(1, 64, 2, 3), 9)
    sigmas = [1.0, 5 * 0.5 / (1 + 4 * 0.5), 0.0]
    for sigma, following in zip(sigmas, sigmas[1:]):
        s = torch.tensor([sigma])
        positive, negative = diffusers_velocity(theirs, x, s, cond, glyphs), diffusers_velocity(theirs, x, s, uncond)
        x = x + (following - sigma) * (negative + 2.5 * (positive - negative))
    assert float(x.abs().mean()) > 0.05
    ours = HUNYUAN_IMAGE21.process_in(out.float())
    assert float((ours - x).abs().max()) < 1e-4 * float(x.abs().max())


def test_distilled_ksampler_embeds_guidance_and_next_sigma(tmp_folders):
    """The distilled file (hunyuanimage2.1_distilled): KSampler (euler, 3 steps, cfg 1) with FluxGuidance
    3.25 equals Euler steps of diffusers' transformer told the guidance and, MeanFlow, the next step's
    sigma (ComfyUI's time_r_in: the sigma after the step's in the run's sigmas), x 1000."""
    from safetensors.torch import load_file

    from graphflow.models.latent_formats import HUNYUAN_IMAGE21
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import write_hunyuan_image
    from tests.test_nodes_image_mask import call

    (tmp_folders.models / "diffusion_models").mkdir()
    path = write_hunyuan_image(tmp_folders.models / "diffusion_models" / "hunyuanimage2.1_distilled_bf16.safetensors",
                               seed=11, dtype=torch.float32, distilled=True)
    reg = Registry().load_builtin()
    model = call(reg, "LoadDiffusionModel", unet_name="hunyuanimage2.1_distilled_bf16.safetensors",
                 weight_dtype="default")
    latent = call(reg, "EmptyHunyuanImageLatent", width=64, height=96, batch_size=1)
    g = torch.Generator().manual_seed(12)
    cond, glyphs = torch.randn(1, 4, TEXT, generator=g), torch.randn(1, 2, BYT5, generator=g)
    positive = call(reg, "FluxGuidance", conditioning=[(cond, {"conditioning_byt5small": glyphs})], guidance=3.25)
    out = call(reg, "KSampler", model=model, seed=13, steps=3, cfg=1.0, sampler_name="euler", scheduler="simple",
               positive=positive, negative=[(torch.zeros(1, 4, TEXT), {})], latent_image=latent,
               denoise=1.0)["samples"]
    theirs = diffusers_hyi(load_file(str(path)))
    x = initial_noise(torch.zeros(1, 64, 3, 2), 13)
    sigmas = [1.0] + [5 * t / (1 + 4 * t) for t in (0.667, 0.334)] + [0.0]  # simple: timesteps 1000, 667, 334
    for sigma, following in zip(sigmas, sigmas[1:]):
        v = diffusers_velocity(theirs, x, torch.tensor([sigma]), cond, glyphs, torch.tensor([3.25]),
                               torch.tensor([following]))
        x = x + (following - sigma) * v
    ours = HUNYUAN_IMAGE21.process_in(out.float())
    assert float(x.abs().mean()) > 0.05 and float((ours - x).abs().max()) < 1e-4 * float(x.abs().max())


def test_fp8_and_native_size(tmp_path):
    """weight_dtype fp8_e4m3fn stores the byT5 branch's Linear weights in fp8 too, with outputs close to
    the full-precision model's; the editor's native size is 2048 (saving, reading back after a drop and
    the other fp8 weights: tests/test_flow_families.py)."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.native_size import native_size
    from graphflow.testing import write_hunyuan_image

    path = write_hunyuan_image(tmp_path / "m.safetensors", dtype=torch.float32)
    model = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    assert native_size(path)["native_size"] == [2048, 2048]
    fp8 = load_diffusion_model(path, device="cpu", dtype=torch.float32, weight_dtype="fp8_e4m3fn")
    assert fp8.unet.byt5_in.fc1.weight.dtype == torch.float8_e4m3fn
    g = torch.Generator().manual_seed(2)
    x, context = torch.randn(1, 64, 2, 2, generator=g), torch.randn(1, 3, TEXT, generator=g)
    with torch.no_grad():
        a, b = model(x, torch.tensor([0.5]), context), fp8(x, torch.tensor([0.5]), context)
    assert 0 < float((a - b).abs().max()) < 0.1 * float(a.abs().max())


# -- the VAE -----------------------------------------------------------------------------------------

def vae_to_diffusers(state, cfg):
    """ComfyUI's names -> diffusers' AutoencoderKLHunyuanImage names (each side's stages flattened into one
    list of res blocks and resamplings; the mid attention's q, k, v, proj_out -> to_q, to_k, to_v, proj)."""
    flat = {}
    for side, part, per in (("encoder", "down", cfg.num_res_blocks), ("decoder", "up", cfg.num_res_blocks + 1)):
        n = 0
        for i in range(len(cfg.block_out_channels)):
            for j in range(per):
                flat[f"{side}.{part}.{i}.block.{j}."], n = f"{side}.{part}_blocks.{n}.", n + 1
            if i < cfg.levels:
                flat[f"{side}.{part}.{i}.{part}sample."], n = f"{side}.{part}_blocks.{n}.", n + 1
    return _vae_renamed(state, flat, ((".q.", ".to_q."), (".k.", ".to_k."), (".v.", ".to_v."), (".proj_out.", ".proj.")))


def _vae_renamed(state, flat, attention):
    """state with each `flat` prefix renamed, the mid block's names diffusers', and its attention's
    projections renamed by the (ours, theirs) pairs in `attention`."""
    out = {}
    for k, v in state.items():
        new = next((b + k[len(a):] for a, b in flat.items() if k.startswith(a)), k)
        new = new.replace("mid.block_1.", "mid_block.resnets.0.").replace("mid.block_2.", "mid_block.resnets.1.")
        if ".mid.attn_1." in new:
            new = new.replace("mid.attn_1.", "mid_block.attentions.0.")
            for a, b in attention:
                new = new.replace(a, b)
        out[new] = v
    return out


def test_vae_loader_decodes_and_encodes_as_diffusers(tmp_folders):
    """VAELoader reads hunyuan_image_2.1_vae_fp16.safetensors (ComfyUI's layout, 64 latent channels, 32x);
    VAEDecode of a batch of two latents and VAEEncode (the posterior mean) equal diffusers'
    AutoencoderKLHunyuanImage on the same weights; VAEDecodeTiled's defaults on a small latent too."""
    from graphflow.models.file_kind import identify
    from graphflow.models.hunyuan_image_vae import HunyuanImageVAEModel
    from graphflow.models.weight_files import WeightFile
    from graphflow.registry import Registry
    from graphflow.testing import hunyuan_image_vae_config, hunyuan_image_vae_state, write_hunyuan_image_vae
    from tests.test_nodes_image_mask import call

    cfg = hunyuan_image_vae_config()
    theirs = AutoencoderKLHunyuanImage(in_channels=3, out_channels=3, latent_channels=64,
                                       block_out_channels=cfg.block_out_channels, layers_per_block=cfg.num_res_blocks,
                                       spatial_compression_ratio=32, sample_size=512).eval()
    theirs.load_state_dict(vae_to_diffusers(hunyuan_image_vae_state(seed=4), cfg), strict=True)
    (tmp_folders.models / "vae").mkdir()
    path = write_hunyuan_image_vae(tmp_folders.models / "vae" / "hunyuan_image_2.1_vae_fp16.safetensors", seed=4,
                                   dtype=torch.float32)
    with WeightFile(path) as f:
        assert identify(f.shapes).name == "HunyuanImage 2.1 VAE (32x, 64 channels)"
    reg = Registry().load_builtin()
    vae = call(reg, "LoadVAE", vae_name="hunyuan_image_2.1_vae_fp16.safetensors")
    assert isinstance(vae.module, HunyuanImageVAEModel) and vae.module.config == cfg
    assert vae.latent_format.name == "hunyuan_image21" and (vae.downscale, vae.latent_channels) == (32, 64)
    z = torch.randn(2, 64, 2, 3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = ((theirs.decode(z).sample + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)
    images = call(reg, "VAEDecode", samples={"samples": z}, vae=vae)
    assert images.shape == (2, 64, 96, 3) and float(want.std()) > 0.01
    assert (images - want).abs().max() < TOL
    assert (call(reg, "VAEDecode", samples={"samples": z}, vae=vae, tiled=True) - want).abs().max() < TOL
    pixels = torch.rand(1, 64, 96, 3, generator=torch.Generator().manual_seed(6))
    latent = call(reg, "VAEEncode", pixels=pixels, vae=vae)["samples"]
    with torch.no_grad():
        mean = theirs.encode(pixels.permute(0, 3, 1, 2) * 2 - 1).latent_dist.mean
    assert latent.shape == (1, 64, 2, 3) and (latent - mean).abs().max() < TOL


# -- LoRAs -----------------------------------------------------------------------------------------

def test_lora_in_diffusers_layout_matches_diffusers(tmp_path):
    """A PEFT LoRA on every Linear of diffusers' HunyuanImageTransformer2DModel (`transformer.` + its names:
    q / k / v apart, byT5's context_embedder_2, the MeanFlow and guidance embedders), applied to our
    distilled model, gives diffusers' output with the adapter."""
    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.lora import apply_lora
    from graphflow.testing import write_hunyuan_image
    from tests.test_flow_lora import random_peft_lora

    model = load_diffusion_model(write_hunyuan_image(tmp_path / "m.safetensors", dtype=torch.float32, distilled=True),
                                 device="cpu", dtype=torch.float32)
    theirs = diffusers_hyi(hunyuan_image_state(distilled=True))
    lora = {k: v for k, v in random_peft_lora(theirs, seed=5).items() if ".x_embedder." not in k}
    assert "transformer.context_embedder_2.linear_3.lora_A.weight" in lora
    assert "transformer.time_guidance_embed.timestep_embedder_r.linear_1.lora_B.weight" in lora
    assert "transformer.single_transformer_blocks.1.proj_mlp.lora_A.weight" in lora
    save_file(lora, str(tmp_path / "hyi_peft.safetensors"))
    theirs.load_lora_adapter(dict(lora), prefix="transformer", adapter_name="test")
    theirs.set_adapters(["test"], weights=[0.7])
    patched, _ = apply_lora(model, None, tmp_path / "hyi_peft.safetensors", 0.7, 0.0)
    # fused: each double block's image and text q / k / v, each single block's q / k / v / MLP, the refiner's q / k / v
    assert len(patched.patches) == len(lora) // 2 - (2 * 4 + 2 * 3 + 2 * 2)
    g = torch.Generator().manual_seed(1)
    x, context, byt5 = (torch.randn(1, 64, 3, 4, generator=g), torch.randn(1, 5, TEXT, generator=g),
                        torch.randn(1, 2, BYT5, generator=g))
    extra = dict(guidance=torch.tensor([4.0]), sigma_next=torch.tensor([0.3]))
    with torch.no_grad():
        plain = model(x, torch.tensor([.6]), context, txt_byt5=byt5, **extra)
        got = patched(x, torch.tensor([.6]), context, txt_byt5=byt5, **extra)
    want = diffusers_velocity(theirs, x, torch.tensor([.6]), context, byt5, **extra)
    assert float((got - plain).abs().max()) > 1e-2  # the LoRA does something
    assert float((got - want).abs().max()) < TOL * float(want.abs().max())


def test_checkpoint_with_its_vae(tmp_path):
    """An all-in-one file (the model under model.diffusion_model., the VAE under vae., as ComfyUI's
    CheckpointSave writes them): CheckpointLoaderSimple gives both, the VAE the file's; file kind checkpoint."""
    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.file_kind import identify
    from graphflow.models.hunyuan_image_vae import HunyuanImageVAEModel
    from graphflow.models.weight_files import WeightFile
    from graphflow.testing import hunyuan_image_vae_config, hunyuan_image_vae_state

    vae_state = hunyuan_image_vae_state(seed=2)
    save_file({**{"model.diffusion_model." + k: v for k, v in hunyuan_image_state().items()},
               **{"vae." + k: v for k, v in vae_state.items()}}, str(tmp_path / "all.safetensors"))
    ckpt = load_checkpoint(tmp_path / "all.safetensors", device="cpu", dtype=torch.float32)
    assert isinstance(ckpt.model.unet, HunyuanImage) and ckpt.clip is None
    assert isinstance(ckpt.vae.module, HunyuanImageVAEModel) and ckpt.vae.module.config == hunyuan_image_vae_config()
    assert ckpt.vae.latent_format.name == "hunyuan_image21" and ckpt.info.vae_prefix == "vae."
    assert all(torch.equal(ckpt.vae.module.state_dict()[k], v) for k, v in vae_state.items())
    assert not any("hunyuan_image_2.1_vae" in n for n in ckpt.info.notes)
    with WeightFile(tmp_path / "all.safetensors") as f:
        assert identify(f.shapes).name == "HunyuanImage 2.1 checkpoint"


# -- the refiner -------------------------------------------------------------------------------------

def test_refiner_matches_diffusers():
    """The refiner (3-D 1x1x1 patches of 128 channels, rotary frame / row / column, guidance-distilled, no
    byt5_in): a batch of two against diffusers' transformer with the refiner's configuration; the full-size
    defaults have diffusers' tensors."""
    state = hunyuan_image_state(seed=5, refiner=True)
    cfg = hunyuan_image_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()})
    assert cfg == hunyuan_image_config(refiner=True) and cfg.refiner and cfg.axes_dim == (4, 14, 14)
    ours = HunyuanImage(cfg).eval()
    ours.load_state_dict(state, strict=True)
    theirs = diffusers_hyi(state)
    g = torch.Generator().manual_seed(6)
    x, context = torch.randn(2, 128, 1, 3, 5, generator=g), torch.randn(2, 4, TEXT, generator=g)
    sigma, guidance = torch.tensor([0.7, 0.2]), torch.tensor([6.0, 3.0])
    with torch.no_grad():
        got = ours(x, sigma, context, guidance=guidance)
    want = diffusers_velocity(theirs, x, sigma, context, guidance=guidance)
    assert got.shape == (2, 64, 1, 3, 5) and float(want.abs().max()) > 0.1 and (got - want).abs().max() < TOL
    with torch.device("meta"):
        full = HunyuanImage(hunyuan_image_config(scaled_down=False, refiner=True))
        reference = HunyuanImageTransformer2DModel(in_channels=128, out_channels=64, num_attention_heads=26,
                                                   patch_size=(1, 1, 1), guidance_embeds=True, use_meanflow=True,
                                                   rope_axes_dim=(16, 56, 56))
    shapes = {k: tuple(v.shape) for k, v in full.state_dict().items()}
    converted = to_diffusers({k: torch.empty(s, device="meta") for k, s in shapes.items()}, 3328)
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape)
                                                                  for k, v in reference.state_dict().items()}
    assert hunyuan_image_config_from_state_dict(shapes) == hunyuan_image_config(scaled_down=False, refiner=True)


def test_refiner_latent_format_pairs_frames_as_diffusers():
    """HunyuanImage21Refiner: the raw latent scaled, its first frame repeated and frames paired into the
    channels, as diffusers' refiner pipeline (_reorder_image_tokens x its VAE's scaling factor) and back."""
    from diffusers.pipelines.hunyuan_image.pipeline_hunyuanimage_refiner import HunyuanImageRefinerPipeline as P

    from graphflow.models.latent_formats import HUNYUAN_IMAGE21_REFINER as fmt

    for frames in (1, 3):
        z = torch.randn(2, 32, frames, 3, 4)
        packed = fmt.process_in(z)
        assert packed.shape == (2, 64, (frames + 1) // 2, 3, 4)
        assert torch.allclose(packed, P._reorder_image_tokens(z) * 1.03682)
        assert torch.allclose(fmt.process_out(packed), z, atol=1e-6)
        assert torch.allclose(P._restore_image_tokens_order(packed) / 1.03682, z, atol=1e-6)
    assert fmt.preview(torch.randn(1, 64, 1, 3, 5)).shape == (1, 3, 5, 3)


def refiner_vae_to_diffusers(state, cfg):
    """ComfyUI's names -> diffusers' AutoencoderKLHunyuanImageRefiner names (stage N's blocks and resampling
    under down_blocks.N / up_blocks.N; the mid attention's q, k, v -> to_q, to_k, to_v)."""
    flat = {}
    for side, part, per in (("encoder", "down", cfg.num_res_blocks), ("decoder", "up", cfg.num_res_blocks + 1)):
        for i in range(len(cfg.block_out_channels)):
            flat.update({f"{side}.{part}.{i}.block.{j}.": f"{side}.{part}_blocks.{i}.resnets.{j}." for j in range(per)})
            flat[f"{side}.{part}.{i}.{part}sample."] = f"{side}.{part}_blocks.{i}.{part}samplers.0."
    return _vae_renamed(state, flat, ((".q.", ".to_q."), (".k.", ".to_k."), (".v.", ".to_v.")))


def test_refiner_pass_matches_diffusers(tmp_folders):
    """The refiner pass as ComfyUI wires it: VAELoader (hunyuan_image_refiner_vae: file kind, one-frame
    latents) -> VAEEncode of a picture (diffusers' AutoencoderKLHunyuanImageRefiner's mean) ->
    HunyuanRefinerLatent (noise_augmentation 0.1) -> KSampler on UNETLoader's refiner (euler, simple, 2
    steps, cfg 1; shift 4) -> VAEDecode: Euler steps of diffusers' transformer on [x, the image's paired
    latent x 0.75 + 0.1 x noise seeded by seed - 10], guidance 6.0 x 1000 and no timestep_r, decoded
    by diffusers' VAE after _restore_image_tokens_order."""
    from diffusers import AutoencoderKLHunyuanImageRefiner
    from diffusers.pipelines.hunyuan_image.pipeline_hunyuanimage_refiner import HunyuanImageRefinerPipeline as P
    from safetensors.torch import load_file

    from graphflow.models.file_kind import identify
    from graphflow.models.flow_architecture import detect_flow_model
    from graphflow.models.weight_files import WeightFile
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import (hunyuan_image_refiner_vae_config, hunyuan_image_refiner_vae_state,
                                   write_hunyuan_image, write_hunyuan_image_refiner_vae)
    from tests.test_nodes_image_mask import call

    (tmp_folders.models / "diffusion_models").mkdir()
    (tmp_folders.models / "vae").mkdir()
    unet = write_hunyuan_image(tmp_folders.models / "diffusion_models" / "hunyuanimage2.1_refiner_bf16.safetensors",
                               seed=8, dtype=torch.float32, refiner=True)
    vae_path = write_hunyuan_image_refiner_vae(tmp_folders.models / "vae" / "hunyuan_image_refiner_vae_fp16.safetensors",
                                               seed=9, dtype=torch.float32)
    with WeightFile(unet) as f:
        info, kind = detect_flow_model(f.shapes), identify(f.shapes)
    assert (info.family, info.latent_format.name) == ("hunyuan_image_refiner", "hunyuan_image21_refiner")
    assert kind.name == "HunyuanImage 2.1 refiner diffusion model"
    assert any("hunyuan_image_refiner_vae_fp16.safetensors" in n for n in info.notes)
    with WeightFile(vae_path) as f:
        assert identify(f.shapes).name.startswith("HunyuanImage 2.1 refiner VAE")

    reg = Registry().load_builtin()
    model = call(reg, "LoadDiffusionModel", unet_name="hunyuanimage2.1_refiner_bf16.safetensors",
                 weight_dtype="default")
    assert model.is_video and model.sampling_shift == 4.0 and model.in_channels == 128 and model.guidance_embed
    vae = call(reg, "LoadVAE", vae_name="hunyuan_image_refiner_vae_fp16.safetensors")
    assert vae.module.config == hunyuan_image_refiner_vae_config() and (vae.downscale, vae.latent_channels) == (16, 32)
    cfg = hunyuan_image_refiner_vae_config()
    theirs_vae = AutoencoderKLHunyuanImageRefiner(in_channels=3, out_channels=3, latent_channels=32,
                                                  block_out_channels=cfg.block_out_channels,
                                                  layers_per_block=cfg.num_res_blocks).eval()
    theirs_vae.load_state_dict(refiner_vae_to_diffusers(hunyuan_image_refiner_vae_state(seed=9), cfg), strict=True)

    picture = torch.rand(1, 32, 48, 3, generator=torch.Generator().manual_seed(10))
    encoded = call(reg, "VAEEncode", pixels=picture, vae=vae)
    with torch.no_grad():
        mean = theirs_vae.encode(picture.permute(0, 3, 1, 2)[:, :, None] * 2 - 1).latent_dist.mean
    assert encoded["samples"].shape == (1, 32, 1, 2, 3) and (encoded["samples"] - mean).abs().max() < TOL

    g = torch.Generator().manual_seed(11)
    cond = torch.randn(1, 4, TEXT, generator=g)
    positive, negative, latent = call(reg, "HunyuanRefinerLatent", positive=[(cond, {})],
                                      negative=[(torch.zeros(1, 4, TEXT), {})], latent=encoded, noise_augmentation=0.1)
    assert latent["samples"].shape == (1, 32, 1, 2, 3) and not latent["samples"].any()
    assert positive[0][1]["noise_augmentation"] == 0.1 and negative[0][1]["concat_latent_image"] is encoded["samples"]
    out = call(reg, "KSampler", model=model, seed=12, steps=2, cfg=1.0, sampler_name="euler", scheduler="simple",
               positive=positive, negative=negative, latent_image=latent, denoise=1.0)["samples"]
    images = call(reg, "VAEDecode", samples={"samples": out}, vae=vae)

    theirs = diffusers_hyi(load_file(str(unet)))
    image = P._reorder_image_tokens(mean) * 1.03682
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(12 - 10))
    concat = 0.1 * noise + 0.75 * image
    x = initial_noise(torch.zeros(1, 64, 1, 2, 3), 12)
    sigmas = [1.0, 4 * 0.5 / (1 + 3 * 0.5), 0.0]
    for sigma, following in zip(sigmas, sigmas[1:]):
        v = diffusers_velocity(theirs, torch.cat([x, concat], dim=1), torch.tensor([sigma]), cond,
                               guidance=torch.tensor([6.0]))
        x = x + (following - sigma) * v
    want = P._restore_image_tokens_order(x) / 1.03682
    assert out.shape == (1, 32, 1, 2, 3) and float(want.abs().mean()) > 0.05
    assert float((out - want).abs().max()) < 1e-4 * float(want.abs().max())
    with torch.no_grad():
        pixels = ((theirs_vae.decode(want).sample[:, :, 0] + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)
    assert images.shape == (1, 32, 48, 3) and (images - pixels).abs().max() < 1e-3


# -- ComfyUI's HunyuanImage 2.1 graph, prompt to picture (workflows/hunyuan_image.json) ----------------

def test_example_workflow_matches_diffusers(tmp_folders, files, pipeline):
    """workflows/hunyuan_image.json as saved but for its size and steps (64 x 64, 2 steps), on tiny files
    under its file names: the prompt's Qwen2.5-VL states and its quoted text's byT5 states are diffusers'
    HunyuanImagePipeline's, the empty negative has no glyph states, and two Euler CFG steps (shift 5:
    sigmas 1, 5 * 0.5 / (1 + 4 * 0.5), 0) of diffusers' transformer on the same noise give the sampled
    latent, which VAEDecode turns into the 64 x 64 picture SaveImage writes."""
    import shutil

    from safetensors.torch import load_file

    from graphflow.executor import Executor
    from graphflow.models.hunyuan_image_text import BYT5_KEY, quoted_text
    from graphflow.models.latent_formats import HUNYUAN_IMAGE21
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import write_hunyuan_image, write_hunyuan_image_vae
    from tests.test_workflows import workflow

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir(exist_ok=True)
    path = write_hunyuan_image(m / "diffusion_models" / "hunyuanimage2.1_bf16.safetensors", seed=13,
                               dtype=torch.float32)
    for file in files:
        shutil.copy(file, m / "text_encoders" / file.name)
    write_hunyuan_image_vae(m / "vae" / "hunyuan_image_2.1_vae_fp16.safetensors", seed=14, dtype=torch.float32)
    wf = workflow("hunyuan_image", **{"5__width": 64, "5__height": 64, "6__steps": 2})
    result = Executor(Registry().load_builtin()).run(wf)
    assert result.ok, json.dumps(result.error, default=str)[:2000]
    image = result.values["8"][0]
    assert image.shape == (1, 64, 64, 3) and float(image.std()) > 0.01
    assert result.outputs["9"]["images"][0]["filename"].startswith("hunyuan_image_")

    def masked(embeds_and_mask):
        embeds, mask = embeds_and_mask
        return embeds[:, mask[0].bool()]

    cpu, prompt = torch.device("cpu"), wf.nodes["3"].inputs["text"]
    with torch.no_grad():
        text, empty = (masked(pipeline._get_qwen_prompt_embeds(pipeline.tokenizer, pipeline.text_encoder, p,
                                                               device=cpu, dtype=torch.float32)) for p in (prompt, ""))
        glyphs = masked(pipeline._get_byt5_prompt_embeds(pipeline.tokenizer_2, pipeline.text_encoder_2,
                                                         quoted_text(prompt), device=cpu, dtype=torch.float32))
    [(positive, positive_options)], [(negative, negative_options)] = result.values["3"][0], result.values["4"][0]
    assert positive.shape == text.shape and float((positive - text).abs().max()) < 2e-5
    assert negative.shape == empty.shape and float((negative - empty).abs().max()) < 2e-5
    assert float((positive_options[BYT5_KEY] - glyphs).abs().max()) < 2e-5 and BYT5_KEY not in negative_options

    theirs = diffusers_hyi(load_file(str(path)))
    cfg, x = wf.nodes["6"].inputs["cfg"], initial_noise(torch.zeros(1, 64, 2, 2), wf.nodes["6"].inputs["seed"])
    sigmas = [1.0, 5 * 0.5 / (1 + 4 * 0.5), 0.0]
    for sigma, following in zip(sigmas, sigmas[1:]):
        s = torch.tensor([sigma])
        v_cond, v_uncond = diffusers_velocity(theirs, x, s, text, glyphs), diffusers_velocity(theirs, x, s, empty)
        x = x + (following - sigma) * (v_uncond + cfg * (v_cond - v_uncond))
    ours = HUNYUAN_IMAGE21.process_in(result.values["6"][0]["samples"].float())
    assert float(x.abs().mean()) > 0.05
    assert float((ours - x).abs().max()) < 1e-4 * float(x.abs().max())


def test_refiner_workflow_matches_diffusers(tmp_folders, files, pipeline):
    """workflows/hunyuan_image_refiner.json (the base graph, then ComfyUI's refiner stage) as saved but for
    its size and steps (64 x 64, 2 steps each), on tiny files under its file names: the base picture
    (VAEDecode, 32x VAE) is VAEEncoded by the refiner VAE (diffusers' AutoencoderKLHunyuanImageRefiner's
    mean); the refiner prompt, in the refiner's own template, gives diffusers' refiner-template states (cut
    at 36); HunyuanRefinerLatent + KSampler (cfg 1, shift 4) equal Euler steps of diffusers' refiner
    transformer on the same noise and concat input [x, paired latent x 0.75 + 0.1 x noise seeded by seed -
    10], guidance 6.0; the saved picture is the refiner VAE's decode of that latent."""
    import shutil

    from diffusers import AutoencoderKLHunyuanImageRefiner
    from diffusers.pipelines.hunyuan_image.pipeline_hunyuanimage_refiner import HunyuanImageRefinerPipeline as P
    from safetensors.torch import load_file

    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import (hunyuan_image_refiner_vae_config, hunyuan_image_refiner_vae_state,
                                   write_hunyuan_image, write_hunyuan_image_refiner_vae, write_hunyuan_image_vae)
    from tests.test_workflows import workflow

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir(exist_ok=True)
    write_hunyuan_image(m / "diffusion_models" / "hunyuanimage2.1_bf16.safetensors", seed=13, dtype=torch.float32)
    refiner = write_hunyuan_image(m / "diffusion_models" / "hunyuanimage2.1_refiner_bf16.safetensors", seed=15,
                                  dtype=torch.float32, refiner=True)
    for file in files:
        shutil.copy(file, m / "text_encoders" / file.name)
    write_hunyuan_image_vae(m / "vae" / "hunyuan_image_2.1_vae_fp16.safetensors", seed=14, dtype=torch.float32)
    write_hunyuan_image_refiner_vae(m / "vae" / "hunyuan_image_refiner_vae_fp16.safetensors", seed=16,
                                    dtype=torch.float32)
    wf = workflow("hunyuan_image_refiner", **{"5__width": 64, "5__height": 64, "6__steps": 2, "16__steps": 2})
    refine = wf.nodes["16"].inputs
    assert (refine["sampler_name"], refine["scheduler"], refine["cfg"]) == ("euler", "simple", 1.0)
    assert wf.nodes["15"].inputs["noise_augmentation"] == 0.1
    result = Executor(Registry().load_builtin()).run(wf)
    assert result.ok, json.dumps(result.error, default=str)[:2000]
    base, final = result.values["8"][0], result.values["17"][0]
    assert base.shape == final.shape == (1, 64, 64, 3) and float(final.std()) > 0.01
    assert result.outputs["18"]["images"][0]["filename"].startswith("hunyuan_image_refiner_")
    assert result.outputs["9"]["images"][0]["filename"].startswith("hunyuan_image_base_")

    # the refiner prompt: its own template, as diffusers' HunyuanImageRefinerPipeline wraps the prompt
    reference = P(scheduler=None, vae=None, text_encoder=None, tokenizer=None, transformer=None)
    template, drop = reference.prompt_template_encode, reference.prompt_template_encode_start_idx
    user = wf.nodes["3"].inputs["text"]
    assert wf.nodes["12"].inputs["text"] == template.format(user)
    assert wf.nodes["13"].inputs["text"] == template.format("")
    with torch.no_grad():
        embeds, mask = pipeline._get_qwen_prompt_embeds(pipeline.tokenizer, pipeline.text_encoder, user,
                                                        device=torch.device("cpu"), dtype=torch.float32,
                                                        template=template, drop_idx=drop)
    text = embeds[:, mask[0].bool()]
    [(positive, _)] = result.values["12"][0]
    assert positive.shape == text.shape and float((positive - text).abs().max()) < 2e-5

    # the base picture into the refiner VAE
    cfg = hunyuan_image_refiner_vae_config()
    theirs_vae = AutoencoderKLHunyuanImageRefiner(in_channels=3, out_channels=3, latent_channels=32,
                                                  block_out_channels=cfg.block_out_channels,
                                                  layers_per_block=cfg.num_res_blocks).eval()
    theirs_vae.load_state_dict(refiner_vae_to_diffusers(hunyuan_image_refiner_vae_state(seed=16), cfg), strict=True)
    with torch.no_grad():
        mean = theirs_vae.encode(base.permute(0, 3, 1, 2)[:, :, None] * 2 - 1).latent_dist.mean
    assert (result.values["14"][0]["samples"] - mean).abs().max() < TOL

    # the refiner's Euler steps (shift 4: sigmas 1, 4 * 0.5 / (1 + 3 * 0.5), 0), guidance 6.0, no timestep_r
    theirs = diffusers_hyi(load_file(str(refiner)))
    seed = refine["seed"]
    image = P._reorder_image_tokens(mean) * 1.03682
    concat = 0.1 * torch.randn(image.shape, generator=torch.Generator().manual_seed(seed - 10)) + 0.75 * image
    x = initial_noise(torch.zeros(1, 64, 1, 4, 4), seed)
    sigmas = [1.0, 4 * 0.5 / (1 + 3 * 0.5), 0.0]
    for sigma, following in zip(sigmas, sigmas[1:]):
        v = diffusers_velocity(theirs, torch.cat([x, concat], dim=1), torch.tensor([sigma]), text,
                               guidance=torch.tensor([6.0]))
        x = x + (following - sigma) * v
    want = P._restore_image_tokens_order(x) / 1.03682
    out = result.values["16"][0]["samples"].float()
    assert out.shape == (1, 32, 1, 4, 4) and float(want.abs().mean()) > 0.05
    assert float((out - want).abs().max()) < 1e-4 * float(want.abs().max())
    with torch.no_grad():
        pixels = ((theirs_vae.decode(want).sample[:, :, 0] + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)
    assert (final - pixels).abs().max() < 1e-3 and (final - base).abs().max() > 0.01
