"""SD3 / SD3.5 MM-DiT, FLUX.1 and the 16-channel VAE against diffusers on identical weights;
header-only detection of every family at full size; flow checkpoint loading and fp8 weights.

Oracle path: `graphflow.testing` writes a random checkpoint file in the original key layout
(Stability's / BFL's / LDM's), and diffusers reads THAT FILE through its own single-file loader
(`from_single_file`, which converts the keys with its own mapping functions). A local config
directory (`config=`) stands in for the hub. If our layout or our architecture differed from the
originals, diffusers' strict conversion would fail or the outputs would differ.

One concession, FLUX: diffusers' `convert_flux_transformer_checkpoint_to_diffusers` hard-codes
the full model's width (inner_dim = 3072, mlp_ratio = 4) when it splits the single blocks' fused
linear1. The test compiles the same function with those two constants read from the checkpoint
instead (asserting the replaced text is there), so scaled-down files go through the rest of
diffusers' code unchanged.
"""

import inspect
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL as DiffusersAutoencoderKL
from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

from graphflow.models import FLUX, SD3, CheckpointError, DiffusionModel, detect_architecture
from graphflow.models.checkpoint import flow_clip_towers, load_checkpoint, load_diffusion_model, load_vae
from graphflow.models.checkpoint_report import inspect_report
from graphflow.models.flow_architecture import FlowInfo
from graphflow.models.weight_files import WeightFile
from graphflow.testing import (FLOW_FAMILIES, flow_file_shapes, flow_model_config, flow_vae_config,
                               write_flow_checkpoint, write_flow_vae)

TOL = 1e-4


def diffusers_config_dir(tmp_path, cls, **config) -> str:
    folder = tmp_path / f"{cls.__name__}_config"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"_class_name": cls.__name__, **config}))
    return str(folder)


def sd3_diffusers_config(cfg) -> dict:
    return dict(sample_size=cfg.pos_embed_max_size, patch_size=cfg.patch_size, in_channels=cfg.in_channels,
                num_layers=cfg.depth, attention_head_dim=cfg.head_dim, num_attention_heads=cfg.num_heads,
                joint_attention_dim=cfg.context_dim, caption_projection_dim=cfg.hidden_size,
                pooled_projection_dim=cfg.adm_in_channels, out_channels=cfg.out_channels,
                pos_embed_max_size=cfg.pos_embed_max_size, dual_attention_layers=list(cfg.x_self_attn_layers),
                qk_norm="rms_norm" if cfg.qk_norm else None)


def flux_diffusers_config(cfg) -> dict:
    return dict(patch_size=1, in_channels=cfg.in_channels, out_channels=cfg.out_channels, num_layers=cfg.depth,
                num_single_layers=cfg.depth_single_blocks, attention_head_dim=cfg.hidden_size // cfg.num_heads,
                num_attention_heads=cfg.num_heads, joint_attention_dim=cfg.context_in_dim,
                pooled_projection_dim=cfg.vec_in_dim, guidance_embeds=cfg.guidance_embed,
                axes_dims_rope=list(cfg.axes_dim))


def flux_conversion_any_width(name: str = "convert_flux_transformer_checkpoint_to_diffusers"):
    """diffusers' FLUX (or, by name, Chroma) conversion with the width and MLP ratio read from the checkpoint."""
    import diffusers.loaders.single_file_utils as sfu

    source = inspect.getsource(getattr(sfu, name))
    fixed = "mlp_ratio = 4.0\n    inner_dim = 3072"
    assert source.count(fixed) == 1, "diffusers' FLUX conversion changed: revisit this test's patch"
    source = source.replace(fixed, "inner_dim = checkpoint['img_in.weight'].shape[0]\n    "
                                   "mlp_ratio = checkpoint['double_blocks.0.img_mlp.0.weight'].shape[0] / inner_dim")
    namespace = dict(vars(sfu))
    exec(compile(source, sfu.__file__, "exec"), namespace)
    return namespace[name]


@pytest.fixture
def flux_any_width(monkeypatch):
    import diffusers.loaders.single_file_model as sfm

    entry = dict(sfm.SINGLE_FILE_LOADABLE_CLASSES["FluxTransformer2DModel"])
    entry["checkpoint_mapping_fn"] = flux_conversion_any_width()
    monkeypatch.setitem(sfm.SINGLE_FILE_LOADABLE_CLASSES, "FluxTransformer2DModel", entry)


# -- parity with diffusers ---------------------------------------------------------------------

# (family, file layout): bare diffusion-model-only, prefixed model-only, all-in-one
SD3_CASES = [("sd3_medium", "bare"), ("sd35_large", "prefixed"), ("sd35_medium", "all_in_one")]


def write_case(path, family, layout):
    components = ("model", "vae", "text") if layout == "all_in_one" else ("model",)
    return write_flow_checkpoint(path, family, dtype=torch.float32, components=components,
                                 prefixed=layout != "bare", seed=3)


@pytest.mark.parametrize("family,layout", SD3_CASES)
def test_mmdit_matches_diffusers(tmp_path, family, layout):
    path = write_case(tmp_path / f"{family}.safetensors", family, layout)
    cfg = flow_model_config(family)
    ours = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    assert ours.arch == "sd3" and ours.unet.config == cfg
    theirs = SD3Transformer2DModel.from_single_file(
        str(path), config=diffusers_config_dir(tmp_path, SD3Transformer2DModel, **sd3_diffusers_config(cfg)),
        local_files_only=True, torch_dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 12, 8, generator=g)  # non-square: the position-table crop must match
    sigma = torch.tensor([0.25, 0.9])
    context = torch.randn(2, 7, cfg.context_dim, generator=g)
    y = torch.randn(2, cfg.adm_in_channels, generator=g)
    with torch.no_grad():
        a = ours(x, sigma, context, y)
        b = theirs(hidden_states=x, encoder_hidden_states=context, pooled_projections=y, timestep=sigma * 1000).sample
    assert a.shape == x.shape and a.abs().mean() > 0.1
    assert (a - b).abs().max() <= TOL


@pytest.mark.parametrize("family,layout", [("flux_dev", "all_in_one"), ("flux_schnell", "bare"),
                                           ("flux_fill", "prefixed")])
def test_flux_matches_diffusers(tmp_path, flux_any_width, family, layout):
    from graphflow.models.flux import image_ids, pack

    path = write_case(tmp_path / f"{family}.safetensors", family, layout)
    cfg = flow_model_config(family)
    ours = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    assert ours.arch == "flux" and ours.unet.config == cfg and ours.guidance_embed == cfg.guidance_embed
    theirs = FluxTransformer2DModel.from_single_file(
        str(path), config=diffusers_config_dir(tmp_path, FluxTransformer2DModel, **flux_diffusers_config(cfg)),
        local_files_only=True, torch_dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 16, 8, 12, generator=g)
    concat = torch.randn(2, 80, 8, 12, generator=g) if family == "flux_fill" else None
    sigma = torch.tensor([0.3, 1.0])
    context = torch.randn(2, 6, cfg.context_in_dim, generator=g)
    y = torch.randn(2, cfg.vec_in_dim, generator=g)
    guidance = torch.tensor([3.5, 2.0]) if cfg.guidance_embed else None
    with torch.no_grad():
        a = ours(x, sigma, context, y, guidance=guidance, concat=concat)
        packed = pack(x if concat is None else torch.cat([x, concat], 1))
        # diffusers' pipelines pass timestep = sigma (its transformer scales by 1000) and guidance as is
        b = theirs(hidden_states=packed, encoder_hidden_states=context, pooled_projections=y, timestep=sigma,
                   guidance=guidance, img_ids=image_ids(4, 6, 1, "cpu")[0], txt_ids=torch.zeros(6, 3)).sample
    assert a.shape == x.shape and a.abs().mean() > 0.1
    assert (pack(a) - b).abs().max() <= TOL


def test_vae16_matches_diffusers(tmp_path):
    """BFL's ae.safetensors layout (bare LDM keys, no quant convs) read by both."""
    path = write_flow_vae(tmp_path / "ae.safetensors", dtype=torch.float32)
    ours = load_vae(path, device="cpu", dtype=torch.float32)
    assert ours.latent_format is FLUX and ours.module.config == flow_vae_config()
    cfg = ours.module.config
    config = dict(in_channels=3, out_channels=3, latent_channels=16, layers_per_block=cfg.num_res_blocks,
                  block_out_channels=[cfg.ch * m for m in cfg.ch_mult], norm_num_groups=cfg.norm_groups,
                  down_block_types=["DownEncoderBlock2D"] * len(cfg.ch_mult),
                  up_block_types=["UpDecoderBlock2D"] * len(cfg.ch_mult), use_quant_conv=False,
                  use_post_quant_conv=False, scaling_factor=FLUX.scale_factor, shift_factor=FLUX.shift_factor)
    theirs = DiffusersAutoencoderKL.from_single_file(
        str(path), config=diffusers_config_dir(tmp_path, DiffusersAutoencoderKL, **config),
        local_files_only=True, torch_dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(2)
    pixels = torch.rand(1, 3, 32, 48, generator=g) * 2 - 1
    z = torch.randn(1, 16, 4, 6, generator=g)
    with torch.no_grad():
        assert (ours.module.encode(pixels)[0] - theirs.encode(pixels).latent_dist.mode()).abs().max() <= TOL
        assert (ours.module.decode(z) - theirs.decode(z).sample).abs().max() <= TOL


# -- detection from the header -----------------------------------------------------------------

EXPECTED = {"sd3_medium": "SD3 medium", "sd35_large": "SD3.5 large", "sd35_medium": "SD3.5 medium",
            "flux_dev": "FLUX.1 dev", "flux_schnell": "FLUX.1 schnell", "flux_fill": "FLUX.1 Fill (dev)"}


@pytest.mark.parametrize("family", FLOW_FAMILIES)
@pytest.mark.parametrize("layout", ["all_in_one", "bare"])
def test_detects_full_size_families_from_shapes(family, layout):
    """The real models' key sets and shapes, built on the meta device (nothing allocated)."""
    if layout == "all_in_one":
        shapes = flow_file_shapes(family, scaled_down=False)
    else:
        shapes = flow_file_shapes(family, scaled_down=False, components=("model",), prefixed=False)
    info = detect_architecture(shapes)
    assert isinstance(info, FlowInfo) and info.family == family and info.name == EXPECTED[family]
    assert info.config == flow_model_config(family, scaled_down=False)
    if layout == "all_in_one":
        assert info.vae == flow_vae_config(scaled_down=False)
        expected = ["clip_l", "clip_g", "t5xxl"] if family.startswith("sd3") else ["clip_l", "t5xxl"]
        assert list(info.text_encoders) == expected
    else:
        assert info.vae is None and not info.text_encoders
    model_shapes = {k: s for k, s in shapes.items() if not k.startswith(("text_encoders.", "first_stage_model.", "vae."))}
    params = sum(math.prod(s) for k, s in model_shapes.items() if not k.endswith("pos_embed"))
    position_table = sum(math.prod(s) for k, s in model_shapes.items() if k.endswith("pos_embed"))
    # the published sizes (transformer weights; SD3.5 medium's "2.5B" counts its 384^2 position table)
    billions = {"sd3_medium": (params, 2.028), "sd35_large": (params, 8.057),
                "sd35_medium": (params + position_table, 2.5)}.get(family, (params, 11.9))
    assert abs(billions[0] / 1e9 - billions[1]) < 0.04, billions


def write_sparse_safetensors(path, shapes: dict, dtype="BF16") -> int:
    """A safetensors file whose header describes `shapes` with real offsets; the data region is a
    hole (sparse file), so a 30 GB file costs no disk and no memory."""
    header, offset = {}, 0
    for key, shape in shapes.items():
        size = math.prod(shape) * 2
        header[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        f.truncate(8 + len(raw) + offset)
    return 8 + len(raw) + offset


def test_inspect_names_a_full_size_file_from_its_header(tmp_path):
    path = tmp_path / "flux1-dev-all-in-one.safetensors"
    size = write_sparse_safetensors(path, flow_file_shapes("flux_dev", scaled_down=False))
    assert size > 30e9
    start = time.perf_counter()
    report = inspect_report(path)
    elapsed = time.perf_counter() - start
    assert "architecture: FLUX.1 dev [flux, flux_dev]" in report
    assert "19 double + 38 single blocks, width 3072" in report and "text encoder t5xxl" in report
    assert elapsed < 1.0, elapsed
    from graphflow.cli import main

    assert main(["inspect", str(path)]) == 0


def test_sparse_sd35_large_diffusion_model_only(tmp_path):
    path = tmp_path / "sd3.5_large.safetensors"
    write_sparse_safetensors(path, flow_file_shapes("sd35_large", scaled_down=False, components=("model",),
                                                    prefixed=False))
    report = inspect_report(path)
    assert "SD3.5 large" in report and "depth 38, width 2432, 38 heads" in report and "vae: none" in report


def test_damaged_flow_model_says_what_is_wrong():
    shapes = flow_file_shapes("flux_dev", components=("model",), prefixed=False)
    del shapes["txt_in.weight"]
    with pytest.raises(CheckpointError, match="FLUX keys .* incomplete.*txt_in"):
        detect_architecture(shapes)


# -- loading -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def flux_all_in_one(tmp_path_factory):
    return write_flow_checkpoint(tmp_path_factory.mktemp("flow") / "flux1-dev-aio.safetensors", "flux_dev")


def test_sd3_all_in_one_loads_model_and_vae(tmp_path):
    path = write_flow_checkpoint(tmp_path / "sd3.5_large.safetensors", "sd35_large")
    ckpt = load_checkpoint(path, device="cpu", text_encoders=False)
    assert ckpt.info.family == "sd35_large" and ckpt.info.vae_prefix == "first_stage_model."
    assert ckpt.model.latent_format is SD3 and ckpt.vae.latent_format is SD3 and ckpt.vae.module.config.z_channels == 16
    with WeightFile(path) as f:
        expected = f.get("model.diffusion_model.joint_blocks.1.context_block.attn.qkv.weight").float()
    assert torch.equal(ckpt.model.unet.joint_blocks[1].context_block.attn.qkv.weight, expected)
    assert ckpt.model.unet.joint_blocks[1].context_block.pre_only  # the last text block only feeds k, v
    with WeightFile(path) as f:  # both CLIP towers, each with the projection SD3 pools through
        towers = flow_clip_towers(f, ckpt.info, "cpu", torch.float32)
    assert sorted(towers) == ["clip_g", "clip_l"]
    assert [t.projection.weight.shape for t in (towers["clip_l"], towers["clip_g"])] == [(64, 64), (128, 128)]


def test_all_in_one_loads_model_and_vae(flux_all_in_one):
    ckpt = load_checkpoint(flux_all_in_one, device="cpu", text_encoders=False)
    assert isinstance(ckpt.model, DiffusionModel) and ckpt.model.arch == "flux" and ckpt.model.prediction == "flow"
    assert ckpt.model.latent_format is FLUX and ckpt.vae.latent_format is FLUX and ckpt.clip is None
    with WeightFile(flux_all_in_one) as f:  # the weights are the file's (fp16 file -> fp32 model)
        expected = f.get("model.diffusion_model.double_blocks.0.img_attn.qkv.weight").float()
        vae_expected = f.get("vae.decoder.conv_in.weight").float()
    assert torch.equal(ckpt.model.unet.double_blocks[0].img_attn.qkv.weight, expected)
    assert torch.equal(ckpt.vae.module.decoder.conv_in.weight, vae_expected)


def test_text_encoders_in_all_in_one_file(flux_all_in_one, tmp_path):
    """CLIP-L loads from text_encoders.clip_l.transformer. and equals transformers on the same
    weights; the checkpoint loader builds FLUX's CLIP (CLIP-L + T5-XXL) from the same file."""
    from transformers import CLIPTextModelWithProjection

    from graphflow.testing import text_config

    with WeightFile(flux_all_in_one) as f:
        info = detect_architecture(f.shapes)
        towers = flow_clip_towers(f, info, "cpu", torch.float32)
        prefix = "text_encoders.clip_l.transformer."
        state = {k[len(prefix):]: f.get(k, dtype=torch.float32) for k in f.shapes if k.startswith(prefix)}
    reference = CLIPTextModelWithProjection(text_config("clip_l")).eval()
    reference.load_state_dict(state, strict=False)
    ids = torch.tensor([[49406, 320, 1125, 539, 49407] + [49407] * 3])
    with torch.no_grad():
        ours = towers["clip_l"].model(ids, output_hidden_states=True)
        theirs = reference(ids, output_hidden_states=True)
    assert torch.allclose(ours.hidden_states[-1], theirs.hidden_states[-1], atol=1e-5)
    clip = load_checkpoint(flux_all_in_one, device="cpu").clip
    assert clip.arch == "flux" and clip.clip_l is not None and clip.t5 is not None and clip.clip_g is None
    assert torch.equal(clip.clip_l.model.text_model.embeddings.token_embedding.weight,
                       towers["clip_l"].model.text_model.embeddings.token_embedding.weight)


def test_diffusion_model_contract(flux_all_in_one, tmp_path):
    dev = load_diffusion_model(flux_all_in_one, device="cpu")
    assert (dev.guidance_embed, dev.shift_dynamic, dev.sampling_shift, dev.base_shift, dev.max_shift) == (
        True, True, 1.15, 0.5, 1.15)
    assert dev.in_channels == 16 and dev.adm_channels == 64 and not dev.inpaint and not dev.fill
    x, sigma = torch.randn(1, 16, 7, 9), torch.tensor([0.6])  # odd sizes are padded and cropped back
    context, y = torch.randn(1, 5, 192), torch.randn(1, 64)
    assert dev(x, sigma, context, y, guidance=torch.tensor([3.5])).shape == x.shape
    with torch.no_grad():  # without guidance the embedding is skipped (ComfyUI's model), and the strength matters
        plain = dev(x, sigma, context, y)
        assert not torch.allclose(plain, dev(x, sigma, context, y, guidance=torch.tensor([3.5])))
        assert not torch.allclose(plain, dev(x, sigma, context, y, guidance=torch.tensor([0.0])))
        assert not torch.allclose(dev(x, sigma, context, y, guidance=torch.tensor([3.5])),
                                  dev(x, sigma, context, y, guidance=torch.tensor([1.0])))
    schnell = load_diffusion_model(write_flow_checkpoint(tmp_path / "s.safetensors", "flux_schnell",
                                                         components=("model",), prefixed=False), device="cpu")
    assert (schnell.guidance_embed, schnell.shift_dynamic, schnell.sampling_shift) == (False, False, 1.0)
    sd3 = load_diffusion_model(write_flow_checkpoint(tmp_path / "m.safetensors", "sd3_medium",
                                                     components=("model",)), device="cpu")
    assert (sd3.arch, sd3.sampling_shift, sd3.shift_dynamic, sd3.latent_format) == ("sd3", 3.0, False, SD3)
    assert sd3.encode_adm({}, 64, 64).shape == (1, 192)
    fill = load_diffusion_model(write_flow_checkpoint(tmp_path / "f.safetensors", "flux_fill",
                                                      components=("model",)), device="cpu")
    assert fill.fill and fill.in_channels == 96
    with pytest.raises(ValueError, match="takes 96 latent channels"):
        fill(torch.randn(1, 16, 4, 4), sigma, context, y, guidance=torch.tensor([30.0]))


@pytest.mark.parametrize("weight_dtype", ["fp8_e4m3fn", "fp8_e5m2"])
def test_fp8_weights_stay_fp8_and_compute_upcast(tmp_path, weight_dtype):
    path = write_flow_checkpoint(tmp_path / "flux.safetensors", "flux_dev", components=("model",),
                                 prefixed=False, dtype=torch.bfloat16)
    full = load_diffusion_model(path, device="cpu", dtype=torch.bfloat16)
    fp8 = load_diffusion_model(path, device="cpu", dtype=torch.bfloat16, weight_dtype=weight_dtype)
    storage = getattr(torch, weight_dtype.replace("fp8", "float8"))
    linear = fp8.unet.double_blocks[0].img_attn.qkv
    assert linear.weight.dtype == storage and linear.bias.dtype == torch.bfloat16 and fp8.dtype == torch.bfloat16
    bytes_ = lambda m: sum(p.numel() * p.element_size() for p in m.unet.parameters())  # noqa: E731
    assert bytes_(fp8) < 0.6 * bytes_(full)
    g = torch.Generator().manual_seed(0)
    args = (torch.randn(1, 16, 8, 8, generator=g).bfloat16(), torch.tensor([0.5]),
            torch.randn(1, 5, 192, generator=g).bfloat16(), torch.randn(1, 64, generator=g).bfloat16())
    with torch.no_grad():
        a = full(*args, guidance=torch.tensor([3.5])).float()
        b = fp8(*args, guidance=torch.tensor([3.5])).float()
    rel = (a - b).norm() / a.norm()
    assert 0 < rel < (0.1 if weight_dtype == "fp8_e4m3fn" else 0.2), rel  # quantised, yet the same function
    # a file already stored in fp8 keeps fp8 with weight_dtype "default"
    from safetensors.torch import load_file, save_file

    state = load_file(str(path))
    state["img_in.weight"] = state["img_in.weight"].to(storage)
    save_file(state, str(tmp_path / "stored_fp8.safetensors"))
    stored = load_diffusion_model(tmp_path / "stored_fp8.safetensors", device="cpu", dtype=torch.float32)
    assert stored.unet.img_in.weight.dtype == storage and stored.dtype == torch.float32
    fp8.to(dtype=torch.float32)  # a new compute dtype leaves the fp8 storage alone
    assert linear.weight.dtype == storage and linear.bias.dtype == torch.float32 and fp8.dtype == torch.float32
    with pytest.raises(CheckpointError, match="weight_dtype must be one of"):
        load_diffusion_model(path, device="cpu", weight_dtype="int4")


RSS_SCRIPT = """
import ctypes, gc, json, sys
import torch
from graphflow.models.checkpoint import load_diffusion_model

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))

load_diffusion_model(sys.argv[1], device="cpu", dtype=torch.float32)  # warm-up: imports, allocator
results = []
for path, dtype, weight_dtype in ((sys.argv[1], torch.float32, "default"), (sys.argv[2], torch.float32, "default"),
                                  (sys.argv[2], torch.bfloat16, "fp8_e4m3fn")):
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap pages back to the system: not reused unseen
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status("VmRSS")
    model = load_diffusion_model(path, device="cpu", dtype=dtype, weight_dtype=weight_dtype)
    peak = status("VmHWM")
    sum(float(p.float().sum()) for p in model.unet.parameters())
    size = sum(p.numel() * p.element_size() for p in model.unet.parameters())
    results.append({"load_peak": (peak - base) / size, "model": size})
    del model
print(json.dumps(results))
"""


def test_loading_holds_one_copy(tmp_path):
    """fp32 file -> fp32 (used in place), bf16 file -> fp32 and bf16 file -> fp8 (converted tensor
    by tensor): the load peak stays within 1.1x of the weights kept."""
    from safetensors.torch import save_file

    from graphflow.models.flux import Flux, FluxConfig
    from graphflow.testing import random_state

    # many mid-size tensors, as the real model has: the transient is one tensor, small beside the whole
    config = FluxConfig(hidden_size=256, num_heads=2, depth=4, depth_single_blocks=8, axes_dim=(16, 56, 56),
                        vec_in_dim=64, context_in_dim=192)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Flux(config).state_dict().items()}
    paths = []
    for name, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        paths.append(tmp_path / f"{name}.safetensors")
        save_file(random_state(shapes, 0, dtype), str(paths[-1]))
    # At full size every tensor is far above glibc's 32 MB mmap ceiling: each read buffer is its own
    # mapping, unmapped when freed. This small model's tensors would share the heap instead, where
    # freed buffers leave holes (fragmentation, not copies); the threshold puts them in the regime
    # of the real sizes.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, *map(str, paths)], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1], env=env)
    results = json.loads(out.stdout.strip().splitlines()[-1])
    for result in results:
        assert result["model"] > 15e6
        assert result["load_peak"] < 1.1, result


# -- nodes -------------------------------------------------------------------------------------

def call(registry, node_type, **inputs):
    cls = registry.get(node_type)
    values = cls.widget_model.model_validate(inputs).model_dump()
    node = cls.__new__(cls)
    node.__dict__.update(values)
    return node.run()


def test_unet_loader_reads_both_folders_and_comfy_names(builtin_registry, tmp_folders):
    from graphflow.workflow import parse_workflow

    (tmp_folders.models / "unet").mkdir()
    (tmp_folders.models / "diffusion_models").mkdir()
    (tmp_folders.models / "vae").mkdir()
    write_flow_checkpoint(tmp_folders.models / "unet" / "flux1-schnell.safetensors", "flux_schnell",
                          components=("model",), prefixed=False)
    write_flow_checkpoint(tmp_folders.models / "diffusion_models" / "sd3.5_medium.safetensors", "sd35_medium",
                          components=("model",), prefixed=False)
    write_flow_vae(tmp_folders.models / "vae" / "ae.safetensors")
    cls = builtin_registry.get("LoadDiffusionModel")
    assert cls.input_specs["unet_name"].widget.options() == ["flux1-schnell.safetensors", "sd3.5_medium.safetensors"]
    model = call(builtin_registry, "LoadDiffusionModel", unet_name="flux1-schnell.safetensors",
                    weight_dtype="fp8_e4m3fn_fast")
    assert model.arch == "flux" and model.unet.img_in.weight.dtype == torch.float8_e4m3fn
    model = call(builtin_registry, "LoadDiffusionModel", unet_name="sd3.5_medium.safetensors")
    assert model.arch == "sd3" and model.unet.config.x_self_attn_layers == (0, 1)
    vae = call(builtin_registry, "LoadVAE", vae_name="ae.safetensors")
    assert vae.latent_format is FLUX
    # ComfyUI's names import onto ours
    wf = parse_workflow({"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-schnell.safetensors",
                                                                       "weight_dtype": "default"}}},
                        builtin_registry)
    assert wf.nodes["1"].type == "LoadDiffusionModel" and wf.nodes["1"].inputs["weight_dtype"] == "default"


def test_split_text_encoder_files_are_in_transformers_layouts(tmp_path):
    """The files write_flow_text_encoder makes (for the text-encoder loaders' tests) load strictly
    into transformers' own classes: T5EncoderModel (embed_tokens tied to shared) and CLIP."""
    from safetensors.torch import load_file
    from transformers import CLIPTextModelWithProjection, T5EncoderModel

    from graphflow.testing import t5_config, text_config, write_flow_text_encoder

    t5 = T5EncoderModel(t5_config())
    missing, unexpected = t5.load_state_dict(load_file(str(write_flow_text_encoder(tmp_path / "t5xxl.safetensors",
                                                                                   "t5xxl"))), strict=False)
    assert missing == ["encoder.embed_tokens.weight"] and unexpected == []
    assert torch.equal(t5.encoder.embed_tokens.weight, t5.shared.weight)
    for name in ("clip_l", "clip_g"):
        clip = CLIPTextModelWithProjection(text_config(name))
        state = load_file(str(write_flow_text_encoder(tmp_path / f"{name}.safetensors", name)))
        clip.load_state_dict(state, strict=True)


def test_tiny_split_clip_files_are_read_as_the_tower_they_were_written_as(tmp_path):
    # A tiny projected CLIP-L is narrower than CLIP-L's 768, which alone would read as CLIP-G:
    # the file names its tower, and FLUX's DualCLIPLoader gets CLIP-L in the CLIP-L slot.
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_flow_text_encoder

    paths = [write_flow_text_encoder(tmp_path / "clip_l.safetensors", "clip_l"),
             write_flow_text_encoder(tmp_path / "t5xxl.safetensors", "t5xxl")]
    encoder = load_text_encoders(paths, "flux", device=torch.device("cpu"), dtype=torch.float32)
    assert encoder.clip_l is not None and encoder.clip_g is None and encoder.t5 is not None
    sd3 = load_text_encoders([paths[0], write_flow_text_encoder(tmp_path / "clip_g.safetensors", "clip_g")], "sd3",
                             device=torch.device("cpu"), dtype=torch.float32)
    assert sd3.clip_l is not None and sd3.clip_g is not None
