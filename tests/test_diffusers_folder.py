"""diffusers-format model folders (DiffusersLoader): tiny random UNet2DConditionModel,
AutoencoderKL and CLIPTextModel(WithProjection) saved with save_pretrained, loaded through our
node and compared with diffusers' / transformers' own forward on the same weights."""

import json

import pytest
import torch

from graphflow.context import NodeInputError
from tests.test_nodes_image_mask import call

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

SIZE = 256  # SDXL's size/crop embedding width


def _text(hidden, act, projection=False, layers=2):
    config = transformers.CLIPTextConfig(vocab_size=49408, hidden_size=hidden, intermediate_size=2 * hidden,
                                         num_hidden_layers=layers, num_attention_heads=2, max_position_embeddings=77,
                                         hidden_act=act, projection_dim=hidden, bos_token_id=49406,
                                         eos_token_id=49407, pad_token_id=1)
    cls = transformers.CLIPTextModelWithProjection if projection else transformers.CLIPTextModel
    return cls(config).eval()


def write_folder(root, family: str, prediction: str = "epsilon", zsnr: bool = False):
    """A diffusers folder of tiny random models: sd1 (per-level head count, conv proj, 8 GroupNorm
    groups) or sdxl (64 ... 16-wide heads over levels, linear proj, two towers, text_time)."""
    torch.manual_seed(0)
    common = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1)
    if family == "sd1":
        towers = {"text_encoder": _text(32, "quick_gelu")}
        unet = diffusers.UNet2DConditionModel(
            **common, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32, attention_head_dim=2,
            norm_num_groups=8)
    elif family == "sd2":  # diffusers' SD2 text encoder is ViT-H cut after its 23rd layer
        towers = {"text_encoder": _text(32, "gelu", layers=23)}
        unet = diffusers.UNet2DConditionModel(
            **common, down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
            attention_head_dim=(2, 4), use_linear_projection=True)
    else:  # sdxl, sdxl_refiner (text_encoder_2 alone, five size/crop/aesthetic numbers)
        towers = {"text_encoder": _text(32, "quick_gelu"), "text_encoder_2": _text(48, "gelu", projection=True)}
        if family == "sdxl_refiner":
            del towers["text_encoder"]
        unet = diffusers.UNet2DConditionModel(
            **common, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=48 + 32 * ("text_encoder" in towers),
            attention_head_dim=(2, 4), transformer_layers_per_block=(1, 2), use_linear_projection=True,
            addition_embed_type="text_time", addition_time_embed_dim=SIZE,
            projection_class_embeddings_input_dim=48 + (4 + len(towers)) * SIZE)
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32),
                                  down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, norm_num_groups=8,
                                  scaling_factor=0.13025 if family == "sdxl" else 0.18215)
    scheduler = diffusers.DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                        prediction_type=prediction, rescale_betas_zero_snr=zsnr)
    root.mkdir(parents=True)
    unet.eval().save_pretrained(root / "unet")
    vae.eval().save_pretrained(root / "vae")
    for name, model in towers.items():
        model.save_pretrained(root / name)
    scheduler.save_pretrained(root / "scheduler")
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return unet, vae, towers


@pytest.fixture
def diffusers_dir(tmp_folders):
    folder = tmp_folders.models / "diffusers"
    folder.mkdir(parents=True)
    return folder


def _close(ours, theirs, tol=1e-4):
    assert ours.shape == theirs.shape
    assert (ours.float() - theirs.float()).abs().max().item() <= tol * max(1.0, theirs.abs().max().item())


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl", "sdxl_refiner"])
def test_folder_matches_diffusers_and_transformers(builtin_registry, diffusers_dir, family):
    from graphflow.models.unet import timestep_embedding

    unet, vae, towers = write_folder(diffusers_dir / f"tiny-{family}", family)
    assert call(builtin_registry, "LoadDiffusers", model_path=f"tiny-{family}") is not None
    from graphflow.models.diffusers_folder import _read, load_diffusers, read_folder

    ckpt = load_diffusers(diffusers_dir / f"tiny-{family}", device="cpu", dtype=torch.float32)
    assert ckpt.model.arch == family and ckpt.model.prediction == "eps"
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(2, 4, 8, 8, generator=g), torch.tensor([10.0, 700.0])
    context = torch.randn(2, 5, unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        if family.startswith("sdxl"):
            numbers = [64.0, 64, 0, 0, 64, 64] if family == "sdxl" else [64.0, 64, 0, 0, 6.0]
            pooled, time_ids = torch.randn(2, 48, generator=g), torch.tensor([numbers] * 2)
            y = torch.cat([pooled, timestep_embedding(time_ids.flatten(), SIZE).reshape(2, -1)], dim=1)
            theirs = unet(x, t, context, added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}).sample
            ours = ckpt.model.unet(x, t, context, y=y)
        else:
            theirs, ours = unet(x, t, context).sample, ckpt.model.unet(x, t, context)
        _close(ours, theirs)

        pixels = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
        posterior = vae.encode(pixels).latent_dist
        mean, logvar = ckpt.vae.module.encode(pixels)
        _close(mean, posterior.mean)
        _close(logvar, posterior.logvar)
        _close(ckpt.vae.module.decode(mean), vae.decode(posterior.mean).sample)
        assert ckpt.vae.latent_format.scale_factor == vae.config.scaling_factor

        ids = torch.tensor([[49406, 320, 1125, 49407] + [49407] * 3])
        names = {"sd1": ["clip_l"], "sd2": ["clip_h"], "sdxl": ["clip_l", "clip_g"], "sdxl_refiner": ["clip_g"]}[family]
        assert [t.name for t in ckpt.clip.towers] == names
        for tower, model in zip(ckpt.clip.towers, towers.values()):
            a = tower.model(ids, output_hidden_states=True)
            b = model(ids, output_hidden_states=True)
            for ha, hb in zip(a.hidden_states, b.hidden_states):
                _close(ha, hb)
            _close(a.last_hidden_state, b.last_hidden_state)
            if hasattr(b, "text_embeds"):
                _close(a.text_embeds, b.text_embeds)
        for name in names:  # the memory manager reads a dropped tower back alone
            alone = _read(read_folder(diffusers_dir / f"tiny-{family}"), "cpu", torch.float32, None,
                          {f"text_encoder:{name}"})
            assert alone.model is None and alone.vae is None and [t.name for t in alone.clip.towers] == [name]
        if family == "sd2":  # by default the prompt embedding is diffusers' (the last layer, normed)
            cond, _ = ckpt.clip.towers[0].run(ids.tolist(), ckpt.clip.clip_skip, True)
            _close(cond, towers["text_encoder"](ids).last_hidden_state)


def test_scheduler_config_sets_v_prediction_and_zero_terminal_snr(diffusers_dir):
    from graphflow.models.diffusers_folder import folder_report, load_diffusers

    write_folder(diffusers_dir / "v", "sd1", prediction="v_prediction", zsnr=True)
    ckpt = load_diffusers(diffusers_dir / "v", device="cpu", dtype=torch.float32)
    assert ckpt.model.prediction == "v" and ckpt.model.zsnr
    assert ckpt.info.prediction_source == "scheduler/scheduler_config.json"
    report = folder_report(diffusers_dir / "v")
    assert "SD1.x" in report and "prediction: v" in report and "zero-terminal SNR" in report


def test_tiny_txt2img_graph_runs(builtin_registry, diffusers_dir):
    write_folder(diffusers_dir / "tiny", "sdxl")
    model, clip, vae = call(builtin_registry, "LoadDiffusers", model_path="tiny")
    positive = call(builtin_registry, "CLIPEncode", clip=clip, text="a red cube")
    negative = call(builtin_registry, "CLIPEncode", clip=clip, text="")
    latent = call(builtin_registry, "EmptyLatent", width=64, height=64, batch_size=1)
    samples = call(builtin_registry, "KSampler", model=model, positive=positive, negative=negative,
                   latent_image=latent, seed=3, steps=2, cfg=4.0, sampler_name="euler", scheduler="normal",
                   denoise=1.0)
    image = call(builtin_registry, "VAEDecode", samples=samples, vae=vae)
    assert image.shape == (1, 16, 16, 3) and torch.isfinite(image).all()  # the tiny VAE upsamples twice


def test_bad_folders_are_refused_naming_the_input(builtin_registry, diffusers_dir):
    empty = diffusers_dir / "no-unet"
    (empty / "vae").mkdir(parents=True)
    (empty / "model_index.json").write_text("{}")
    with pytest.raises(NodeInputError) as e:
        call(builtin_registry, "LoadDiffusers", model_path="no-unet")
    assert e.value.input == "model_path" and "expected unet/" in str(e.value)

    flux = diffusers_dir / "flux"
    (flux / "transformer").mkdir(parents=True)
    (flux / "model_index.json").write_text("{}")
    with pytest.raises(NodeInputError, match="transformer/"):
        call(builtin_registry, "LoadDiffusers", model_path="flux")

    other = diffusers_dir / "other"
    (other / "unet").mkdir(parents=True)
    (other / "model_index.json").write_text("{}")
    (other / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 768}))
    from safetensors.torch import save_file

    save_file({"some.weight": torch.zeros(2)}, str(other / "unet" / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(NodeInputError, match="no place in graphflow's UNet"):
        call(builtin_registry, "LoadDiffusers", model_path="other")

    assert builtin_registry.get("LoadDiffusers").input_specs["model_path"].widget.options() == ["flux", "no-unet",
                                                                                              "other"]


def test_inspect_describes_a_diffusers_folder(tmp_folders, diffusers_dir, capsys):
    from graphflow import cli

    write_folder(diffusers_dir / "xl", "sdxl")
    assert cli.main(["inspect", str(diffusers_dir / "xl")]) == 0
    out = capsys.readouterr().out
    assert "diffusers folder, SDXL base" in out and "prediction: eps" in out
    assert "text encoder clip_g: text_encoder_2/model.safetensors" in out and "latent scale 0.13025" in out
    assert cli.main(["inspect", "xl", "--models-dir", str(diffusers_dir.parent)]) == 0  # by name
    plain = diffusers_dir.parent / "plain"
    plain.mkdir()
    assert cli.main(["inspect", str(plain)]) == cli.EXIT_FILE
    assert "not a diffusers model folder: expected unet/ (SD1/SD2/SDXL) or transformer/" in capsys.readouterr().err
