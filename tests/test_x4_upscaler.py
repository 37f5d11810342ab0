"""Stability's x4 upscaler (x4-upscaler-ema.safetensors, ComfyUI's SD_4XUpscale_Conditioning).

Oracles: diffusers' UNet2DConditionModel and AutoencoderKL built by diffusers' own single-file code
from our LDM-layout weights (as tests/test_unet.py and tests/test_vae.py do), and one denoising step
of StableDiffusionUpscalePipeline's arithmetic done with diffusers' schedulers: the low-res
image noised by the low_res_scheduler its single-file loader builds (DDPM, scaled_linear
0.0001..0.02), concatenated to the unscaled latent, the noise level as class label, v turned
into x0 by a DDPM step of the x4 model's own schedule. The same model from a diffusers folder
(StableDiffusionUpscalePipeline.save_pretrained) through LoadDiffusers, against the folder's own
UNet, VAE and schedulers.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from PIL import Image

from graphflow.cli import main
from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.models import DiffusionModel
from graphflow.models.architecture import detect_architecture
from graphflow.models.checkpoint import load_checkpoint
from graphflow.models.latent_formats import SD_X4
from graphflow.models.vae import VAE
from graphflow.models.weight_files import WeightFile
from graphflow.models.x4_upscaler import MAX_NOISE_LEVEL, noise_level
from graphflow.sampling.noise import initial_noise
from graphflow.testing import write_checkpoint, write_x4_upscaler_checkpoint, x4_upscaler_configs
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call
from tests.test_unet import PREFIX, ldm_original_config, random_unet
from tests.test_vae import random_vae, to_diffusers_vae

SEED = 11


def low_res_scheduler() -> DDPMScheduler:
    """The upscale pipeline's low_res_scheduler as diffusers' single-file loader configures it."""
    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="scaled_linear",
                         clip_sample=True, prediction_type="epsilon", variance_type="fixed_small")


def model_scheduler() -> DDPMScheduler:
    """The x4 model's own schedule (its scheduler_config: scaled_linear 0.0001..0.02, v-prediction)."""
    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="scaled_linear",
                         clip_sample=False, prediction_type="v_prediction")


def to_diffusers_unet(unet):
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, create_unet_diffusers_config_from_ldm

    checkpoint = {PREFIX + k: v.float() for k, v in unet.state_dict().items()}
    original = ldm_original_config(unet.config)  # the x4-upscaling.yaml's extra keys:
    original["model"]["params"]["unet_config"]["params"].update(
        num_classes=unet.config.num_classes, disable_self_attentions=list(unet.config.disable_self_attentions))
    config = create_unet_diffusers_config_from_ldm(original, checkpoint)
    model = UNet2DConditionModel(**config)
    model.load_state_dict(convert_ldm_unet_checkpoint(checkpoint, config), strict=True)
    return model.eval()


def test_unet_matches_diffusers():
    """Class-label table (diffusers' num_class_embeds, class_embed_type None) and the upper levels'
    text-reading first attention (only_cross_attention), on diffusers' own conversion."""
    cfg, _ = x4_upscaler_configs()
    ours = random_unet(cfg)
    with torch.no_grad():  # labels far enough apart to matter at this tiny scale
        ours.label_emb.weight.normal_(0, 1)
    theirs = to_diffusers_unet(ours)
    assert theirs.config.num_class_embeds == 1000 and theirs.config.class_embed_type is None
    assert list(theirs.config.only_cross_attention) == [True, True, False]
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 7, 16, 24, generator=g)
    t = torch.tensor([999.0, 321.0])
    context = torch.randn(2, 5, cfg.context_dim, generator=g)
    labels = torch.tensor([0, 70])
    with torch.no_grad():
        out = ours(x, t, context, labels)
        ref = theirs(x, t, encoder_hidden_states=context, class_labels=labels).sample
        other = ours(x, t, context, torch.tensor([350, 70]))
    assert ref.abs().mean() > 0.05
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
    assert (out - other)[0].abs().max() > 1e-3 and torch.equal(out[1], other[1])  # the label matters, per sample


def test_vae_decode_matches_diffusers():
    """A 3-level VAE (4x down) with the upscaler's scaling factor: our VAE socket decodes a raw
    latent as diffusers' AutoencoderKL does the model-space latent divided by its scaling_factor."""
    _, cfg = x4_upscaler_configs()
    assert cfg.downscale == 4
    module = random_vae(cfg)
    theirs, _ = to_diffusers_vae(module)
    theirs.register_to_config(scaling_factor=0.08333)
    latent = torch.randn(1, 4, 12, 10, generator=torch.Generator().manual_seed(2))  # model space
    ours = VAE(module, SD_X4).decode(SD_X4.process_out(latent))
    with torch.no_grad():
        ref = theirs.decode(latent / theirs.config.scaling_factor).sample
    assert ours.shape == (1, 48, 40, 3)
    expected = ((ref.permute(0, 2, 3, 1) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=0)


def test_checkpoint_detected_loaded_and_inspected(tmp_path, capsys):
    path = write_x4_upscaler_checkpoint(tmp_path / "x4-upscaler-ema.safetensors")
    with WeightFile(path) as f:
        info = detect_architecture(f.shapes, f.metadata, get_tensor=f.get)
    assert info.upscaler and info.arch == "sd2" and info.prediction == "v"
    assert info.unet.in_channels == 7 and info.unet.num_classes == 1000 and info.unet.num_heads == 8
    assert info.unet.disable_self_attentions[1:] == (True, False)  # level 0 has no attention to tell
    assert info.vae.downscale == 4 and info.latent_format.scale_factor == 0.08333
    loaded = load_checkpoint(path, device="cpu", dtype=torch.float32)
    assert loaded.model.upscaler and loaded.model.prediction == "v"
    assert loaded.model.beta_schedule.linear_start == 0.0001 and loaded.model.beta_schedule.linear_end == 0.02
    assert loaded.clip is not None and loaded.vae.downscale == 4
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "SD2.x x4 upscaler (v-prediction)" in out and "1000 noise-level labels" in out and "downscale 4" in out
    assert "low-res image augmentation" in out and "other keys" not in out  # every key accounted for
    # a plain SD2 file is no upscaler, and keeps SD's schedule
    plain = load_checkpoint(write_checkpoint(tmp_path / "sd2.safetensors", "sd2"), device="cpu", text_encoders=False)
    assert not plain.info.upscaler and not plain.model.upscaler and plain.model.beta_schedule.linear_start == 0.00085


def _image(h: int, w: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([xx, yy, 0.5 + 0.4 * torch.sin(6 * xx * yy)], -1)[None]


def test_conditioning_node_sizes_and_options(builtin_registry):
    """ComfyUI's node: the picture goes to -1..1 at (size x scale_ratio) / 4, bilinear; the empty
    latent is at that size too; both conditionings carry it and the noise augmentation."""
    image = _image(16, 24)
    cond = [(torch.zeros(1, 3, 8), {"strength": 1.0})]
    positive, negative, latent = call(builtin_registry, "X4UpscaleConditioning", images=image, positive=cond,
                                      negative=cond, scale_ratio=2.0, noise_augmentation=0.25)
    assert latent["samples"].shape == (1, 4, 8, 12) and not latent["samples"].any()
    expected = F.interpolate(image.movedim(-1, 1) * 2 - 1, size=(8, 12), mode="bilinear")
    for side in (positive, negative):
        torch.testing.assert_close(side[0][1]["concat_image"], expected)
        assert side[0][1]["noise_augmentation"] == 0.25 and side[0][1]["strength"] == 1.0
    assert "concat_image" not in cond[0][1]  # the input is not changed
    _, _, same = call(builtin_registry, "X4UpscaleConditioning", images=image, positive=cond, negative=cond)
    assert same["samples"].shape == (1, 4, 16, 24)  # scale 4: the latent is the picture's size
    assert noise_level(0.2) == 70 and noise_level(1.0) == MAX_NOISE_LEVEL == 350
    with pytest.raises(NodeInputError, match="at least 4x4") as info:
        call(builtin_registry, "X4UpscaleConditioning", images=image, positive=cond, negative=cond, scale_ratio=0.1)
    assert info.value.input == "scale_ratio"


def _graph(noise_augmentation: float = 0.2, steps: int = 1, ckpt: str = "x4-upscaler-ema.safetensors") -> dict:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "low_res.png"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a sharp photo", "clip": ["1", 1]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["1", 1]}},
        "5": {"class_type": "SD_4XUpscale_Conditioning",
              "inputs": {"images": ["2", 0], "positive": ["3", 0], "negative": ["4", 0], "scale_ratio": 4.0,
                         "noise_augmentation": noise_augmentation}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["5", 0], "negative": ["5", 1],
                                                   "latent_image": ["5", 2], "seed": SEED, "steps": steps, "cfg": 3.0,
                                                   "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
        "7": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["1", 2]}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "x4"}},
    }


@pytest.fixture
def x4_folders(tmp_folders):
    (tmp_folders.models / "checkpoints").mkdir(parents=True)
    write_x4_upscaler_checkpoint(tmp_folders.models / "checkpoints" / "x4-upscaler-ema.safetensors")
    pixels = (_image(16, 24)[0].numpy() * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(tmp_folders.inputs / "low_res.png")
    return tmp_folders


def _run(registry, graph):
    result = Executor(registry).run(parse_workflow(graph, registry))
    return result


def test_one_step_matches_diffusers(builtin_registry, x4_folders):
    """The ComfyUI graph's one euler step from pure noise is x0 of the v prediction under CFG; the
    same computed with diffusers: DDPM-noised low-res image (seed - 10 noise, level 70),
    concatenated to the latent, the level as class label, DDPM step of the model's schedule."""
    result = _run(builtin_registry, _graph())
    assert result.ok, result.error
    positive, negative, empty = result.values["5"]
    out = result.values["6"][0]["samples"]
    image = result.values["7"][0]
    assert empty["samples"].shape == (1, 4, 16, 24) and out.shape == (1, 4, 16, 24)
    assert image.shape == (1, 64, 96, 3)  # 4x the 24x16 picture

    loaded = load_checkpoint(x4_folders.models / "checkpoints" / "x4-upscaler-ema.safetensors", device="cpu",
                             dtype=torch.float32)
    unet = to_diffusers_unet(loaded.model.unet)
    low_res = positive[0][1]["concat_image"]
    level = torch.tensor([round(350 * 0.2)])
    aug_noise = torch.randn(low_res.shape, generator=torch.Generator().manual_seed(SEED - 10))
    low_res = low_res_scheduler().add_noise(low_res, aug_noise, level)
    noise = initial_noise(empty["samples"], SEED)
    x_in = torch.cat([noise, low_res], dim=1)
    t = torch.tensor([999])
    with torch.no_grad():
        v_pos, v_neg = (unet(x_in, t, encoder_hidden_states=side[0][0], class_labels=level).sample
                        for side in (positive, negative))
    v = v_neg + 3.0 * (v_pos - v_neg)
    x0 = model_scheduler().step(v, 999, noise * 1.0).pred_original_sample
    assert x0.abs().mean() > 0.05
    torch.testing.assert_close(out * SD_X4.scale_factor, x0, atol=2e-4, rtol=1e-4)


def test_graph_end_to_end(builtin_registry, x4_folders):
    """Image in, 4x image out; the picture and the noise augmentation both reach the model, and
    the augmentation noise is seeded."""
    def run(**kwargs):
        result = _run(builtin_registry, _graph(steps=2, **kwargs))
        assert result.ok, result.error
        return result.values["7"][0]

    plain = run(noise_augmentation=0.0)
    assert plain.shape == (1, 64, 96, 3) and plain.isfinite().all()
    augmented = run(noise_augmentation=0.5)
    assert (augmented - plain).abs().max() > 1e-4
    assert torch.equal(run(noise_augmentation=0.5), augmented)
    Image.fromarray(np.zeros((16, 24, 3), np.uint8)).save(x4_folders.inputs / "low_res.png")
    assert (run(noise_augmentation=0.0) - plain).abs().max() > 1e-4
    assert list((x4_folders.outputs).glob("x4*.png"))


def test_upscale_conditioning_refused_by_another_model(builtin_registry, x4_folders):
    write_checkpoint(x4_folders.models / "checkpoints" / "sd2.safetensors", "sd2")
    result = _run(builtin_registry, _graph(ckpt="sd2.safetensors"))
    assert not result.ok
    assert result.error["node_type"] == "KSampler" and result.error["input"] == "positive"
    assert "comes from SD_4XUpscale_Conditioning" in result.error["message"]
    assert "the model is SD2.x" in result.error["message"]


def test_upscaler_without_image_runs_on_zeros():
    """As ComfyUI: no SD_4XUpscale_Conditioning, the image channels are zeros and the label 0."""
    cfg, _ = x4_upscaler_configs()
    model = DiffusionModel(random_unet(cfg), "sd2", "v")
    assert model.upscaler and model.beta_schedule.linear_end == 0.02
    assert model.encode_adm({}, 64, 64).tolist() == [0]
    from graphflow.sampling.pipeline import x4_concat

    assert not x4_concat({}, (2, 4, 8, 8), "cpu", 0).any()


def test_noise_level_label_stays_whole_in_half_precision():
    """Labels above 256 are not all representable in bf16: they reach the table as integers."""
    from graphflow.sampling.model_sampling import ModelDenoiser

    cfg, _ = x4_upscaler_configs()
    model = DiffusionModel(random_unet(cfg).to(torch.bfloat16), "sd2", "v")
    level = model.encode_adm({"noise_augmentation": 0.751}, 64, 64)  # round(262.85) = 263, odd
    assert level.tolist() == [263] and not level.is_floating_point()
    seen = []
    model.unet.label_emb.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    with torch.no_grad():
        ModelDenoiser(model)(torch.randn(1, 4, 8, 8), torch.tensor([1.0]), torch.randn(1, 3, cfg.context_dim), y=level,
                             concat=torch.zeros(1, 3, 8, 8))
    assert seen[0].tolist() == [263]


def write_x4_folder(root, max_noise_level: int = 350):
    """A tiny random stable-diffusion-x4-upscaler as StableDiffusionUpscalePipeline.save_pretrained
    writes it: unet/ (7 input channels, 1000 class labels, upper levels' first attention reading
    the text), vae/ downsampling by 4 (scaling_factor 0.08333), the SD2 text encoder, scheduler/
    (v-prediction) and low_res_scheduler/ on 0.0001..0.02, max_noise_level in model_index.json."""
    import diffusers

    from tests.test_diffusers_folder import _text

    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=7, out_channels=4, block_out_channels=(32, 64, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        only_cross_attention=(True, True, False), cross_attention_dim=32, attention_head_dim=8,
        use_linear_projection=True, num_class_embeds=1000, norm_num_groups=8).eval()
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 32),
                                  down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                                  layers_per_block=1, norm_num_groups=8, scaling_factor=0.08333).eval()
    schedule = dict(beta_start=0.0001, beta_end=0.02, beta_schedule="scaled_linear")
    pipe = diffusers.StableDiffusionUpscalePipeline(
        vae=vae, text_encoder=_text(32, "gelu", layers=23), tokenizer=None, unet=unet,
        low_res_scheduler=diffusers.DDPMScheduler(**schedule),
        scheduler=diffusers.DDIMScheduler(**schedule, prediction_type="v_prediction"), max_noise_level=max_noise_level)
    pipe.save_pretrained(root)
    return pipe


def test_diffusers_folder_loads_as_the_x4_upscaler(builtin_registry, tmp_folders):
    """LoadDiffusers on the pipeline's folder: the UNet (label table as class_embedding) and the VAE
    equal diffusers' on the same weights; v-prediction, scale 0.08333 and the x4 schedule, which
    is the folder's scheduler's and low_res_scheduler's."""
    from graphflow.models.diffusers_folder import folder_report, load_diffusers

    root = tmp_folders.models / "diffusers" / "x4"
    pipe = write_x4_folder(root)
    ckpt = load_diffusers(root, device="cpu", dtype=torch.float32)
    model = ckpt.model
    assert model.upscaler and model.prediction == "v" and ckpt.vae.latent_format.scale_factor == 0.08333
    for scheduler in (pipe.scheduler, pipe.low_res_scheduler):
        torch.testing.assert_close(model.beta_schedule.alphas_cumprod().float(), scheduler.alphas_cumprod)
    assert not [n for n in ckpt.info.notes if "schedule" in n or "noise level" in n]
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(2, 7, 8, 8, generator=g), torch.tensor([10.0, 700.0])
    context, labels = torch.randn(2, 5, 32, generator=g), torch.tensor([0, 350])
    with torch.no_grad():
        theirs = pipe.unet(x, t, context, class_labels=labels).sample
        torch.testing.assert_close(model.unet(x, t, context, y=labels), theirs, atol=1e-4, rtol=1e-4)
        assert (pipe.unet(x, t, context, class_labels=labels.flip(0)).sample - theirs).abs().max() > 1e-3
        latent = torch.randn(1, 4, 4, 4, generator=g)
        picture = ckpt.vae.module.decode(latent)
        assert picture.shape == (1, 3, 16, 16)  # 4x
        torch.testing.assert_close(picture, pipe.vae.decode(latent).sample, atol=1e-4, rtol=1e-4)
    assert "x4: diffusers folder, SD2.x x4 upscaler" in folder_report(root)
    write_x4_folder(root, max_noise_level=250)  # another augmentation than graphflow's: said
    assert any("max_noise_level 250 ignored" in n for n in load_diffusers(root, device="cpu").info.notes)


def test_x4_folder_one_step_matches_the_pipelines_arithmetic(builtin_registry, x4_folders):
    """The ComfyUI graph with DiffusersLoader: as test_one_step_matches_diffusers, with the
    folder's own diffusers UNet and schedulers as the oracle."""
    from diffusers import DDIMScheduler, DDPMScheduler

    root = x4_folders.models / "diffusers" / "x4"
    pipe = write_x4_folder(root)
    graph = _graph()
    graph["1"] = {"class_type": "DiffusersLoader", "inputs": {"model_path": "x4"}}
    result = _run(builtin_registry, graph)
    assert result.ok, result.error
    positive, negative, empty = result.values["5"]
    out = result.values["6"][0]["samples"]
    assert result.values["7"][0].shape == (1, 64, 96, 3)  # 4x the 24x16 picture
    level = torch.tensor([round(350 * 0.2)])
    low_res = positive[0][1]["concat_image"]
    aug_noise = torch.randn(low_res.shape, generator=torch.Generator().manual_seed(SEED - 10))
    low_res = DDPMScheduler.from_pretrained(root / "low_res_scheduler").add_noise(low_res, aug_noise, level)
    noise = initial_noise(empty["samples"], SEED)
    x_in = torch.cat([noise, low_res], dim=1)
    with torch.no_grad():
        v_pos, v_neg = (pipe.unet(x_in, torch.tensor([999]), encoder_hidden_states=side[0][0], class_labels=level).sample
                        for side in (positive, negative))
    v = v_neg + 3.0 * (v_pos - v_neg)
    scheduler = DDIMScheduler.from_pretrained(root / "scheduler")
    abar = scheduler.alphas_cumprod[999]
    x0 = abar.sqrt() * noise - (1 - abar).sqrt() * v  # v-prediction's x0 at t = 999 (sample ~ noise)
    assert x0.abs().mean() > 0.05
    torch.testing.assert_close(out * 0.08333, x0, atol=2e-4, rtol=1e-4)
