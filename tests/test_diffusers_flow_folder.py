"""diffusers-format SD3 / SD3.5 / FLUX.1 folders (DiffusersLoader with transformer/): tiny random
SD3Transformer2DModel, FluxTransformer2DModel, AutoencoderKL, CLIPTextModel(WithProjection) and
T5EncoderModel saved with save_pretrained (once whole, once in shards), loaded through our node and
compared with diffusers' / transformers' own forward on the same weights."""

import json

import pytest
import torch

from graphflow.context import NodeInputError
from graphflow.testing import T5_TINY_WIDTH, t5_config
from tests.test_diffusers_folder import _close, diffusers_dir  # noqa: F401 (a fixture)
from tests.test_nodes_image_mask import call

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

CLIP_L, CLIP_G = 64, 128  # the tiny towers' widths (graphflow.testing's)
SHARD = "40KB"  # small enough that every component but the smallest comes in several shards


def _clip(hidden, act, projection):
    config = transformers.CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=2 * hidden,
                                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                                         hidden_act=act, projection_dim=hidden, bos_token_id=49406,
                                         eos_token_id=49407, pad_token_id=1)
    cls = transformers.CLIPTextModelWithProjection if projection else transformers.CLIPTextModel
    return cls(config).eval()


def _components(family: str, t5: bool = True) -> dict:
    """{subfolder: model} of a tiny folder: sd3 (SD3 medium: no QK-norm, heads of 32, which the
    weights cannot show), sd35 (RMS QK-norm, MMDiT-X attn2 in block 0), flux_dev, flux_schnell."""
    torch.manual_seed(0)
    flux = family.startswith("flux")
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(32, 32),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1,
        norm_num_groups=8, use_quant_conv=False, use_post_quant_conv=False,
        scaling_factor=0.3611 if flux else 1.5305, shift_factor=0.1159 if flux else 0.0609)
    if flux:
        transformer = diffusers.FluxTransformer2DModel(
            patch_size=1, in_channels=64, num_layers=1, num_single_layers=2, attention_head_dim=32,
            num_attention_heads=2, joint_attention_dim=T5_TINY_WIDTH, pooled_projection_dim=CLIP_L,
            guidance_embeds=family == "flux_dev", axes_dims_rope=(4, 14, 14))
        parts = {"transformer": transformer, "vae": vae, "text_encoder": _clip(CLIP_L, "quick_gelu", False),
                 "text_encoder_2": transformers.T5EncoderModel(t5_config()).eval()}
    else:
        large = family == "sd35"
        transformer = diffusers.SD3Transformer2DModel(
            sample_size=8, patch_size=2, in_channels=16, out_channels=16, num_layers=2, attention_head_dim=32,
            num_attention_heads=4, joint_attention_dim=T5_TINY_WIDTH, caption_projection_dim=128,
            pooled_projection_dim=CLIP_L + CLIP_G, pos_embed_max_size=16,
            qk_norm="rms_norm" if large else None, dual_attention_layers=(0,) if large else ())
        parts = {"transformer": transformer, "vae": vae, "text_encoder": _clip(CLIP_L, "quick_gelu", True),
                 "text_encoder_2": _clip(CLIP_G, "gelu", True)}
        if t5:
            parts["text_encoder_3"] = transformers.T5EncoderModel(t5_config()).eval()
    return {k: v.eval() for k, v in parts.items()}


def write_folder(root, family: str, sharded: bool = False, t5: bool = True) -> dict:
    parts = _components(family, t5)
    root.mkdir(parents=True)
    index = {"_class_name": "FluxPipeline" if family.startswith("flux") else "StableDiffusion3Pipeline"}
    for sub, model in parts.items():
        if sharded:
            model.save_pretrained(root / sub, max_shard_size=SHARD)
        else:
            model.save_pretrained(root / sub)
        index[sub] = ["diffusers" if sub in ("transformer", "vae") else "transformers", type(model).__name__]
    if not t5:
        index["text_encoder_3"] = [None, None]
    if family.startswith("flux"):
        dynamic = family == "flux_dev"
        scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0 if dynamic else 1.0,
                                                              use_dynamic_shifting=dynamic)
    else:
        scheduler = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.save_pretrained(root / "scheduler")
    index["scheduler"] = ["diffusers", "FlowMatchEulerDiscreteScheduler"]
    (root / "model_index.json").write_text(json.dumps(index))
    return parts


def _load(path):
    from graphflow.models.diffusers_folder import load_diffusers

    return load_diffusers(path, device="cpu", dtype=torch.float32)


@pytest.mark.parametrize("family", ["sd3", "sd35"])
def test_sd3_folder_matches_diffusers_and_transformers(diffusers_dir, family):
    parts = write_folder(diffusers_dir / family, family, sharded=family == "sd35")
    ckpt = _load(diffusers_dir / family)
    assert ckpt.model.arch == "sd3" and ckpt.model.prediction == "flow"
    assert ckpt.model.unet.config.num_heads == 4  # from config.json: SD3 medium's weights can't show it
    assert ckpt.model.sampling_shift == 3.0 and not ckpt.model.shift_dynamic
    g = torch.Generator().manual_seed(1)
    x, sigma = torch.randn(2, 16, 8, 12, generator=g), torch.tensor([0.3, 0.9])
    context, pooled = torch.randn(2, 7, T5_TINY_WIDTH, generator=g), torch.randn(2, CLIP_L + CLIP_G, generator=g)
    with torch.no_grad():
        theirs = parts["transformer"](hidden_states=x, encoder_hidden_states=context, pooled_projections=pooled,
                                      timestep=sigma * 1000).sample
        _close(ckpt.model.unet(x, sigma, context, pooled), theirs)
    _check_vae(ckpt, parts["vae"], 1.5305, 0.0609)
    _check_text(ckpt, parts, {"clip_l": "text_encoder", "clip_g": "text_encoder_2", "t5": "text_encoder_3"})
    from graphflow.models.diffusers_folder import _read_flow, read_folder

    for part, slot in (("text_encoder:t5xxl", "t5"), ("text_encoder:clip_g", "clip_g")):  # memory-manager read-back
        alone = _read_flow(read_folder(diffusers_dir / family), "cpu", torch.float32, None, {part})
        assert alone.model is None and alone.vae is None and getattr(alone.clip, slot) is not None
        assert [n for n in ("clip_l", "clip_g", "t5") if getattr(alone.clip, n) is not None] == [slot]


def test_flux_dev_folder_matches_diffusers_and_transformers(diffusers_dir):
    from diffusers import FluxPipeline

    parts = write_folder(diffusers_dir / "flux", "flux_dev", sharded=True)
    for sub in ("transformer", "text_encoder_2"):  # FLUX's big parts, in shards as released
        index = next((diffusers_dir / "flux" / sub).glob("*.safetensors.index.json"))
        assert len(set(json.loads(index.read_text())["weight_map"].values())) > 1
    ckpt = _load(diffusers_dir / "flux")
    assert ckpt.model.arch == "flux" and ckpt.model.guidance_embed
    assert ckpt.model.shift_dynamic and (ckpt.model.base_shift, ckpt.model.max_shift) == (0.5, 1.15)
    assert ckpt.model.unet.config.axes_dim == (4, 14, 14)
    g = torch.Generator().manual_seed(1)
    x, sigma = torch.randn(2, 16, 8, 12, generator=g), torch.tensor([0.3, 0.9])
    context, pooled = torch.randn(2, 7, T5_TINY_WIDTH, generator=g), torch.randn(2, CLIP_L, generator=g)
    guidance = torch.tensor([3.5, 2.0])
    with torch.no_grad():
        packed = FluxPipeline._pack_latents(x, 2, 16, 8, 12)
        ids = FluxPipeline._prepare_latent_image_ids(2, 4, 6, x.device, x.dtype)
        out = parts["transformer"](hidden_states=packed, encoder_hidden_states=context, pooled_projections=pooled,
                                   timestep=sigma, img_ids=ids, txt_ids=torch.zeros(7, 3), guidance=guidance).sample
        theirs = FluxPipeline._unpack_latents(out, 64, 96, 8)  # the pipeline's unpacking takes pixel sizes
        _close(ckpt.model.unet(x, sigma, context, pooled, guidance=guidance), theirs)
    _check_vae(ckpt, parts["vae"], 0.3611, 0.1159)
    _check_text(ckpt, parts, {"clip_l": "text_encoder", "t5": "text_encoder_2"})


def _check_vae(ckpt, vae, scale, shift):
    g = torch.Generator().manual_seed(2)
    z = torch.randn(1, 16, 6, 5, generator=g)
    with torch.no_grad():
        _close(ckpt.vae.module.decode(z), vae.decode(z).sample)
        pixels = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
        _close(ckpt.vae.module.encode(pixels)[0], vae.encode(pixels).latent_dist.mean)
    assert (ckpt.vae.latent_format.scale_factor, ckpt.vae.latent_format.shift_factor) == (scale, shift)
    assert ckpt.model.latent_format == ckpt.vae.latent_format


def _check_text(ckpt, parts, slots):
    ids = torch.tensor([[49406, 320, 1125, 2368, 49407] + [49407] * 4])
    with torch.no_grad():
        for slot, sub in slots.items():
            ours, theirs = getattr(ckpt.clip, slot), parts[sub]
            if slot == "t5":
                t5_ids = [[71, 1131, 5, 1] + [0] * 3]
                _close(ours.run(t5_ids), theirs(torch.tensor(t5_ids)).last_hidden_state)
                continue
            a, b = ours.model(ids, output_hidden_states=True), theirs(ids, output_hidden_states=True)
            for ha, hb in zip(a.hidden_states, b.hidden_states, strict=True):
                _close(ha, hb)
            if hasattr(b, "text_embeds"):
                _close(a.text_embeds, b.text_embeds)
            else:
                _close(a.pooler_output, b.pooler_output)


def _txt2img(registry, name, cfg):
    model, clip, vae = call(registry, "LoadDiffusers", model_path=name)
    positive = call(registry, "CLIPEncode", clip=clip, text="a red cube")
    negative = call(registry, "CLIPEncode", clip=clip, text="")
    latent = call(registry, "EmptySD3Latent", width=64, height=48, batch_size=1)
    samples = call(registry, "KSampler", model=model, positive=positive, negative=negative, latent_image=latent,
                   seed=3, steps=2, cfg=cfg, sampler_name="euler", scheduler="simple", denoise=1.0)
    return call(registry, "VAEDecode", samples=samples, vae=vae)


@pytest.mark.parametrize("family", ["sd3", "flux_dev", "flux_schnell"])
def test_txt2img_graph_runs_and_shards_change_nothing(builtin_registry, diffusers_dir, family):
    write_folder(diffusers_dir / "whole", family)
    write_folder(diffusers_dir / "sharded", family, sharded=True)
    cfg = 4.0 if family == "sd3" else 1.0
    whole, sharded = _txt2img(builtin_registry, "whole", cfg), _txt2img(builtin_registry, "sharded", cfg)
    assert whole.shape == (1, 12, 16, 3) and torch.isfinite(whole).all()  # the tiny VAE upsamples twice
    assert whole.std() > 0.01
    assert torch.equal(whole, sharded)


def test_sd3_without_t5_loads_with_a_note(diffusers_dir):
    from graphflow.models.diffusers_folder import folder_report

    write_folder(diffusers_dir / "no-t5", "sd3", t5=False)
    ckpt = _load(diffusers_dir / "no-t5")
    assert ckpt.clip.t5 is None and ckpt.clip.clip_g is not None
    context, pooled = ckpt.clip.encode("a cube")
    assert context.shape == (1, 77, T5_TINY_WIDTH) and pooled.shape == (1, CLIP_L + CLIP_G)
    assert context[..., :CLIP_L].abs().max() > 0 and context[..., CLIP_L:].abs().max() > 0  # both towers
    assert "no text_encoder_3/ (t5xxl): the text tokens are CLIP-L's and CLIP-G's alone" in folder_report(
        diffusers_dir / "no-t5")


def test_bad_flow_folders_are_refused_naming_the_part(builtin_registry, diffusers_dir):
    write_folder(diffusers_dir / "flux", "flux_schnell", sharded=True)
    index = next((diffusers_dir / "flux" / "text_encoder_2").glob("*.index.json"))
    shard = sorted(set(json.loads(index.read_text())["weight_map"].values()))[-1]
    (diffusers_dir / "flux" / "text_encoder_2" / shard).unlink()
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "LoadDiffusers", model_path="flux")
    assert e.value.input == "model_path" and f"shard {shard} is missing" in str(e.value)

    write_folder(diffusers_dir / "no-vae", "sd3")
    for file in (diffusers_dir / "no-vae" / "vae").iterdir():
        file.unlink()
    (diffusers_dir / "no-vae" / "vae").rmdir()
    with pytest.raises(NodeInputError, match=r"vae/ is missing \(model_index.json lists it\); expected "
                                             r"vae/diffusion_pytorch_model.safetensors"):
        call(builtin_registry, "LoadDiffusers", model_path="no-vae")

    other = diffusers_dir / "other"
    (other / "transformer").mkdir(parents=True)
    (other / "model_index.json").write_text("{}")
    (other / "transformer" / "config.json").write_text(json.dumps({"_class_name": "HunyuanDiT2DModel"}))
    with pytest.raises(NodeInputError, match="'HunyuanDiT2DModel' is not a transformer graphflow loads; expected "
                                             "SD3Transformer2DModel or FluxTransformer2DModel"):
        call(builtin_registry, "LoadDiffusers", model_path="other")


def test_inspect_describes_flow_folders(tmp_folders, diffusers_dir, capsys):
    from graphflow import cli

    write_folder(diffusers_dir / "flux", "flux_dev", sharded=True)
    assert cli.main(["inspect", str(diffusers_dir / "flux")]) == 0
    out = capsys.readouterr().out
    assert "diffusers folder, FLUX.1 dev (FluxTransformer2DModel)" in out
    assert "sampling shift dynamic (resolution-dependent), base_shift 0.5, max_shift 1.15" in out
    assert "transformer: transformer/diffusion_pytorch_model.safetensors.index.json, " in out
    assert " shards (64 wide, 2 heads)" in out
    assert "latent scale 0.3611, shift 0.1159" in out and "text encoder t5xxl: text_encoder_2/" in out
    write_folder(diffusers_dir / "sd3", "sd3")
    assert cli.main(["inspect", "sd3", "--models-dir", str(diffusers_dir.parent)]) == 0
    out = capsys.readouterr().out
    assert "SD3 medium (SD3Transformer2DModel)" in out and "sampling shift 3.0" in out


def test_a_transformer_file_alone_is_named_as_part_of_a_folder(diffusers_dir):
    from graphflow.models.file_kind import identify
    from graphflow.models.weight_files import WeightFile

    write_folder(diffusers_dir / "flux", "flux_schnell", sharded=True)
    write_folder(diffusers_dir / "sd3", "sd3")
    from graphflow.models.file_check import model_file_problem

    for path in [diffusers_dir / "flux" / "transformer" / "diffusion_pytorch_model.safetensors.index.json",
                 diffusers_dir / "sd3" / "transformer" / "diffusion_pytorch_model.safetensors"]:
        with WeightFile(path) as f:
            kind = identify(f.shapes)
        family = "FLUX.1" if "flux" in str(path) else "SD3 / SD3.5"
        assert kind.name == f"{family} transformer in diffusers' layout (part of a diffusers folder)", path.name
        # what validation says of it given to LoadDiffusionModel
        assert model_file_problem("diffusion_models", path) == (
            f"{path.name} is not a file for models/diffusion_models/. This looks like a {kind.name}: put it in "
            f"models/diffusers/ and use `LoadDiffusers` on the whole folder (model_index.json, transformer/, vae/, "
            f"text_encoder*/).")


def test_a_sharded_set_loads_wherever_a_file_does(tmp_path):
    """One mechanism: WeightFile reads a *.safetensors.index.json as the file it was split from."""
    from graphflow.models.weight_files import WeightFile

    model = _clip(CLIP_G, "gelu", True)
    model.save_pretrained(tmp_path / "whole")
    model.save_pretrained(tmp_path / "split", max_shard_size="60KB")
    with WeightFile(tmp_path / "whole" / "model.safetensors") as whole, \
            WeightFile(tmp_path / "split" / "model.safetensors.index.json") as split:
        assert len(split.shards) > 2 and split.shapes == whole.shapes and split.dtypes == whole.dtypes
        for key in whole.shapes:
            assert torch.equal(split.get(key, dtype=torch.float16), whole.get(key, dtype=torch.float16))


def test_a_text_encoder_loader_takes_a_sharded_t5(builtin_registry, tmp_folders):
    """A T5-XXL as text_encoder_2/ of a FLUX folder holds it, put in models/text_encoders/."""
    model = transformers.T5EncoderModel(t5_config()).eval()
    model.save_pretrained(tmp_folders.models / "text_encoders" / "t5", max_shard_size=SHARD)
    name = "t5/model.safetensors.index.json"
    assert name in builtin_registry.get("LoadTextEncoder").input_specs["clip_name"].widget.options()
    from graphflow.models.file_check import model_file_problem

    assert model_file_problem("text_encoders", tmp_folders.models / "text_encoders" / name) is None  # validation
    clip = call(builtin_registry, "LoadTextEncoder", clip_name=name, type="sd3")
    ids = [[71, 1131, 5, 1]]
    with torch.no_grad():
        _close(clip.t5.run(ids), model(torch.tensor(ids)).last_hidden_state)
    cls = builtin_registry.get("LoadTextEncoder")
    before = cls.fingerprint(clip_name=name, type="sd3")
    shard = sorted((tmp_folders.models / "text_encoders" / "t5").glob("*-00001-of-*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes() + b" ")  # a shard re-downloaded: the cached CLIP is stale
    assert cls.fingerprint(clip_name=name, type="sd3") != before
