"""Stable Cascade: Stage C / Stage B against diffusers' StableCascadeUNet and Stage A against
diffusers' PaellaVQModel on the same tiny random weights (original file layouts, converted for
diffusers by its own single-file conversion), the sampling schedule against ComfyUI's closed
forms, and ComfyUI's API-format text-to-image graph end to end."""

import json
import math

import pytest
import torch
from diffusers.loaders.single_file_utils import convert_stable_cascade_unet_single_file_to_diffusers
from diffusers.models.unets.unet_stable_cascade import StableCascadeUNet as DiffusersCascade
from safetensors.torch import load_file, save_file

from graphflow.executor import Executor
from graphflow.models.checkpoint import load_diffusion_model, load_vae
from graphflow.models.file_kind import identify
from graphflow.models.latent_formats import SC_B, SC_PRIOR
from graphflow.models.stage_a import StageAVAE
from graphflow.models.weight_files import WeightFile
from graphflow.sampling.model_sampling import CascadeSchedule, DiscreteSchedule
from graphflow.testing import cascade_config, write_stable_cascade, write_stage_a, write_text_encoder
from graphflow.workflow import parse_workflow

TOL = 1e-4


def diffusers_unet(config):
    attn = ("SDCascadeResBlock", "SDCascadeTimestepBlock", "SDCascadeAttnBlock")
    return DiffusersCascade(
        in_channels=config.in_channels, out_channels=config.out_channels,
        timestep_ratio_embedding_dim=config.timestep_width, patch_size=config.patch_size,
        conditioning_dim=config.cond_width, block_out_channels=config.widths, num_attention_heads=config.heads,
        down_num_layers_per_block=config.down_layers, up_num_layers_per_block=config.up_layers,
        down_blocks_repeat_mappers=config.down_repeats, up_blocks_repeat_mappers=config.up_repeats,
        block_types_per_layer=tuple(attn if a else attn[:2] for a in config.attention_levels),
        clip_text_in_channels=config.clip_text_width, clip_text_pooled_in_channels=config.clip_pooled_width,
        clip_image_in_channels=config.clip_image_width, clip_seq=config.clip_seq,
        effnet_in_channels=config.effnet_channels, pixel_mapper_in_channels=config.pixel_channels,
        dropout=(0.0,) * len(config.widths), self_attn=True, timestep_conditioning_type=config.time_conds,
        switch_level=None if config.resample else (False,) * (len(config.widths) - 1)).eval()


@pytest.mark.parametrize("stage", ["c", "b"])
def test_stage_forward_equals_diffusers(tmp_path, stage):
    path = write_stable_cascade(tmp_path / f"stage_{stage}.safetensors", stage, seed=3)
    ours = load_diffusion_model(path)
    assert ours.arch == f"stable_cascade_{stage}" and ours.prediction == "eps"
    assert ours.unet.config == cascade_config(stage)  # every field read back from the shapes
    config = ours.unet.config
    theirs = diffusers_unet(config)
    state = convert_stable_cascade_unet_single_file_to_diffusers(load_file(str(path)))
    assert set(state) == set(theirs.state_dict())  # the writer's keys are the original layout diffusers converts
    theirs.load_state_dict(state)

    g = torch.Generator().manual_seed(0)
    batch, size = 2, (24, 20) if stage == "c" else (28, 20)
    x = torch.randn(batch, config.in_channels, *size, generator=g)
    r = torch.tensor([0.2, 0.9])
    text = torch.randn(batch, 77, 128, generator=g)
    pooled = torch.randn(batch, 128, generator=g)
    effnet = torch.randn(batch, 16, 6, 5, generator=g) if stage == "b" else None
    with torch.no_grad():
        mine = ours.unet(x, r, text, pooled, effnet=effnet)
        kwargs = {"clip_text": text, "clip_img": torch.zeros(batch, 1, 16)} if stage == "c" else {"effnet": effnet}
        reference = theirs(x, r, pooled[:, None], return_dict=False, **kwargs)[0]
    assert mine.shape == x.shape
    assert float(mine.std()) > 0.1
    assert float((mine - reference).abs().max()) <= TOL * float(reference.abs().max())


def test_stage_a_equals_paella_vq_model(tmp_path):
    from diffusers.pipelines.deprecated.wuerstchen.modeling_paella_vq_model import PaellaVQModel

    path = write_stage_a(tmp_path / "stage_a.safetensors", seed=4)
    vae = load_vae(path)
    assert isinstance(vae, StageAVAE) and vae.downscale == 4 and vae.latent_format is SC_B
    state = load_file(str(path))
    state["vquantizer.embedding.weight"] = state.pop("vquantizer.codebook.weight")
    theirs = PaellaVQModel(embed_dim=32, levels=2, bottleneck_blocks=2, num_vq_embeddings=64).eval()
    theirs.load_state_dict(state)

    image = torch.rand(2, 34, 42, 3, generator=torch.Generator().manual_seed(1))  # cropped to 32x40
    latent = vae.encode(image)
    with torch.no_grad():  # around the centre, as ComfyUI's VAE encode crops
        reference_latent = theirs.encode(image[:, 1:33, 1:41].permute(0, 3, 1, 2)).latents
        reference = theirs.decode(reference_latent, force_not_quantize=True).sample
    assert latent.shape == (2, 4, 8, 10)
    assert torch.allclose(latent, reference_latent, atol=1e-5)
    decoded = vae.decode(latent)
    assert decoded.shape == (2, 32, 40, 3)
    assert torch.allclose(decoded, reference.permute(0, 2, 3, 1), atol=1e-5)  # not clamped, as ComfyUI
    with pytest.raises(ValueError, match="Stage B latents"):
        vae.decode(torch.zeros(1, 16, 8, 8))


def test_stage_a_tiled_decode_and_encode_use_comfyuis_three_tilings(tmp_path):
    """ComfyUI runs Stage A through its generic VAE (downscale 4), so VAEDecodeTiled and
    VAEEncodeTiled tile it as every image VAE: three tilings averaged."""
    from graphflow.models.tiling import ENCODE_TILINGS, three_tilings

    vae = load_vae(write_stage_a(tmp_path / "stage_a.safetensors", seed=4))
    z = torch.randn(1, 4, 24, 20, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():  # latent tiles of 64 // 4 = 16 overlapping by 16 // 4 = 4
        expected = three_tilings(vae.module.decode, z, 16, 4, out_channels=3, scale=4)
    assert torch.equal(vae.decode_tiled(z, 64, 16), expected.permute(0, 2, 3, 1))
    assert not torch.equal(vae.decode_tiled(z, 64, 16), vae.decode(z))
    image = torch.rand(1, 64, 48, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = three_tilings(vae.module.encode, image.permute(0, 3, 1, 2), 32, 8, out_channels=4,
                                 scale=1 / 4, tilings=ENCODE_TILINGS)
    assert torch.equal(vae.encode_tiled(image, 32, 8), expected)


def test_stage_a_decode_is_not_clamped_as_comfyui(tmp_path):
    """ComfyUI's VAE gives Stage A the identity as process_output (no -1..1 mapping, no clamp) and
    VAEDecode / VAEDecodeTiled clamp nowhere after: values outside 0..1 reach the IMAGE as decoded
    (only the savers clip them)."""
    vae = load_vae(write_stage_a(tmp_path / "stage_a.safetensors", seed=4))
    z = torch.randn(1, 4, 12, 10, generator=torch.Generator().manual_seed(5)) * 3
    with torch.no_grad():
        raw = vae.module.decode(z).permute(0, 2, 3, 1)
    assert (raw < 0).any() and (raw > 1).any()  # the case that matters: out of range both ways
    assert torch.equal(vae.decode(z), raw)
    from nodes.vae import VAEDecode

    sizes = {"tile_size": 64, "overlap": 16, "temporal_size": 64, "temporal_overlap": 8}
    assert torch.equal(run_node(VAEDecode, samples={"samples": z}, vae=vae, tiled=False, **sizes), raw)
    tiled = run_node(VAEDecode, samples={"samples": z}, vae=vae, tiled=True, **sizes)
    assert tiled.min() < 0 and tiled.max() > 1


def comfy_sigma(t: float, shift: float) -> float:
    """ComfyUI's StableCascadeSampling.sigma, written out."""
    s = 0.008
    a = math.cos((t + s) / (1 + s) * math.pi / 2) ** 2 / math.cos(s / (1 + s) * math.pi / 2) ** 2
    if shift != 1.0:
        a = 1 / (1 + math.exp(-(math.log(a / (1 - a)) + 2 * math.log(1 / shift))))
    a = min(max(a, 1e-4), 0.9999)
    return math.sqrt((1 - a) / a)


@pytest.mark.parametrize("shift", [1.0, 2.0])
def test_cascade_table_is_computed_in_float32_as_comfyui(shift):
    """ComfyUI evaluates the cosine schedule with float32 tensors (s = tensor(0.008), t rounded to
    float32); the float64 closed form rounded afterwards differs in most entries."""
    def table(dtype):
        t = (torch.arange(1, 10001, dtype=torch.float64) / 10000).to(dtype)
        s = torch.tensor(0.008, dtype=dtype)
        a = torch.cos((t + s) / (1 + s) * math.pi * 0.5) ** 2 / torch.cos(s / (1 + s) * math.pi * 0.5) ** 2
        if shift != 1.0:
            a = ((a / (1 - a)).log() + 2 * torch.log(1.0 / torch.tensor(shift, dtype=dtype))).sigmoid()
        a = a.clamp(0.0001, 0.9999)
        return (((1 - a) / a) ** 0.5).float()

    schedule = CascadeSchedule(shift)
    assert schedule.sigmas.dtype == torch.float32 and torch.equal(schedule.sigmas, table(torch.float32))
    assert (schedule.sigmas != table(torch.float64)).sum() > 1000


@pytest.mark.parametrize("shift", [1.0, 2.0])
def test_cascade_schedule_matches_comfyui_closed_forms(shift):
    schedule = CascadeSchedule(shift)  # float32, as ComfyUI: 1 - alpha near 1 cancels to ~1e-4
    assert len(schedule.sigmas) == 10000
    for i in (0, 1, 499, 5000, 9998, 9999):
        assert math.isclose(float(schedule.sigmas[i]), comfy_sigma((i + 1) / 10000, shift), rel_tol=2e-4)
    assert math.isclose(float(schedule.sigma_max), comfy_sigma(1.0, shift), rel_tol=2e-4)
    assert math.isclose(schedule.percent_to_sigma(0.25), comfy_sigma(0.75, shift), rel_tol=2e-4)
    assert schedule.percent_to_sigma(0.0) > 1e8 and schedule.percent_to_sigma(1.0) == 0.0
    # the network's time: the unshifted cosine inverted, t = acos(sqrt(a0 / (sigma^2 + 1))) (1 + s) / (pi/2) - s
    sigma = torch.tensor([0.05, 1.0, 20.0])
    a0 = math.cos(0.008 / 1.008 * math.pi / 2) ** 2
    expected = [math.acos(math.sqrt(a0 / (s * s + 1))) / (math.pi / 2) * 1.008 - 0.008 for s in sigma.tolist()]
    assert torch.allclose(schedule.timestep(sigma), torch.tensor(expected), atol=1e-6)
    # KSampler's "simple" scheduler walks the 10000-entry table: entry 9999 - int(i * 10000 / steps)
    from graphflow.sampling.schedules import compute_sigmas

    sigmas = compute_sigmas(schedule, "simple", 20)
    expected = [comfy_sigma((10000 - int(i * 500)) / 10000, shift) for i in range(20)] + [0.0]
    assert torch.allclose(sigmas, torch.tensor(expected), rtol=2e-4)
    if shift == 1.0:  # unshifted, timestep inverts sigma
        t = torch.tensor([0.1, 0.5, 0.9])
        assert torch.allclose(schedule.timestep(schedule.sigma(t)), t, atol=1e-4)
    # eps parametrisation with sigma_data 1: c_in = 1 / sqrt(sigma^2 + 1), x0 = x - sigma eps
    x, eps = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    assert torch.allclose(schedule.c_in(torch.tensor(3.0), x), x / math.sqrt(10))
    assert torch.allclose(schedule.denoised(torch.tensor(3.0), eps, x), x - 3 * eps)


@pytest.fixture
def models(tmp_folders):
    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    write_stable_cascade(m / "diffusion_models" / "stage_c.safetensors", "c", seed=1)
    write_stable_cascade(m / "diffusion_models" / "stage_b.safetensors", "b", seed=2)
    write_stage_a(m / "vae" / "stage_a.safetensors", seed=3)
    write_text_encoder(m / "text_encoders" / "clip_g.safetensors", "clip_g", seed=4, dtype=torch.float32)
    return m


def run_graph(graph, outputs):
    from graphflow.registry import Registry

    registry = Registry().load_builtin()
    return Executor(registry).run(parse_workflow(json.loads(json.dumps(graph)), registry), outputs=outputs)


def comfy_graph(width=320, height=256):
    sampler = {"seed": 7, "steps": 2, "cfg": 4.0, "sampler_name": "euler_ancestral", "scheduler": "simple",
               "denoise": 1.0}
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "stage_c.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "UNETLoader", "inputs": {"unet_name": "stage_b.safetensors", "weight_dtype": "default"}},
        "3": {"class_type": "CLIPLoader", "inputs": {"clip_name": "clip_g.safetensors", "type": "stable_cascade",
                                                     "device": "default"}},
        "4": {"class_type": "VAELoader", "inputs": {"vae_name": "stage_a.safetensors"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox in the snow", "clip": ["3", 0]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["3", 0]}},
        "7": {"class_type": "StableCascade_EmptyLatentImage",
              "inputs": {"width": width, "height": height, "compression": 42, "batch_size": 1}},
        "8": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["5", 0], "negative": ["6", 0],
                                                   "latent_image": ["7", 0], **sampler}},
        "9": {"class_type": "StableCascade_StageB_Conditioning", "inputs": {"conditioning": ["5", 0],
                                                                            "stage_c": ["8", 0]}},
        "10": {"class_type": "StableCascade_StageB_Conditioning", "inputs": {"conditioning": ["6", 0],
                                                                             "stage_c": ["8", 0]}},
        "11": {"class_type": "KSampler", "inputs": {"model": ["2", 0], "positive": ["9", 0], "negative": ["10", 0],
                                                    "latent_image": ["7", 1], **sampler, "cfg": 1.1}},
        "12": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["4", 0]}},
        "13": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": "cascade"}},
    }


def test_comfyui_text_to_image_graph_runs(models, tmp_folders):
    result = run_graph(comfy_graph(), ["7", "8", "9", "11", "12", "13"])
    assert result.ok, result.error or result.problems
    stage_c, stage_b = result.values["7"]
    assert stage_c["samples"].shape == (1, 16, 256 // 42, 320 // 42)
    assert stage_b["samples"].shape == (1, 4, 64, 80)
    prior = result.values["8"][0]["samples"]
    assert prior.shape == (1, 16, 6, 7) and float(prior.std()) > 0.1
    [(_, options)] = result.values["9"][0]
    assert torch.equal(options["stable_cascade_prior"], prior) and options["pooled_output"].shape == (1, 128)
    latent = result.values["11"][0]["samples"]
    assert latent.shape == (1, 4, 64, 80) and torch.isfinite(latent).all()
    image = result.values["12"][0]
    assert image.shape == (1, 256, 320, 3)
    assert list(tmp_folders.outputs.glob("cascade*.png"))


def test_stage_b_sees_the_prior(models):
    """Stage B's output depends on Stage C's latent passed through the conditioning."""
    from graphflow.sampling.pipeline import sample

    model = load_diffusion_model(models / "diffusion_models" / "stage_b.safetensors")
    context, pooled = torch.randn(1, 77, 128), torch.randn(1, 128)
    latent = {"samples": torch.zeros(1, 4, 16, 16)}

    def run(prior):
        cond = [[context, {"pooled_output": pooled, "stable_cascade_prior": prior}]]
        return sample(model, 3, 2, 1.0, "euler", "simple", cond, cond, latent)["samples"]

    a, b = run(torch.zeros(1, 16, 2, 2)), run(torch.randn(1, 16, 2, 2))
    assert float((a - b).abs().max()) > 1e-3
    assert torch.equal(a, run(torch.zeros(1, 16, 2, 2)))


def test_wrong_pairings_are_named(models):
    graph = comfy_graph()
    graph["8"]["inputs"]["latent_image"] = ["7", 1]  # the Stage B latent into Stage C
    result = run_graph(graph, ["8"])
    assert not result.ok and "latent_image" in str(result.error) and "stage_c" in str(result.error)

    graph = comfy_graph()
    graph["9"]["inputs"]["stage_c"] = ["7", 1]  # a Stage B latent as the prior
    result = run_graph(graph, ["9"])
    assert not result.ok and "stage_c" in str(result.error) and "16" in str(result.error)

    graph = comfy_graph()
    graph["12"]["inputs"]["samples"] = ["8", 0]  # Stage C's latent straight into Stage A
    result = run_graph(graph, ["12"])
    assert not result.ok and "Stage B" in str(result.error)


def run_node(cls, **inputs):
    node = cls.__new__(cls)
    node.__dict__.update(inputs)
    return node.run()


def test_stage_c_vae_encode(models):
    """StableCascade_StageC_VAEEncode with the Stage C encoder (effnet_encoder.safetensors' layout):
    the latents' shapes, and the encoder equal to torchvision's EfficientNetV2-S features + the
    mapper on the same weights, on the ImageNet-normalised picture."""
    import torch.nn.functional as F
    from torchvision.models import efficientnet_v2_s

    from graphflow.registry import Registry
    from graphflow.testing import write_stage_c_encoder

    path = write_stage_c_encoder(models / "vae" / "effnet_encoder.safetensors", seed=5)
    with WeightFile(path) as f:
        assert "Stage C encoder" in identify(f.shapes).name
    encoder = load_vae(path)
    node = Registry().load_builtin().get("StableCascadeStageCVAEEncode")
    image = torch.rand(1, 200, 300, 3, generator=torch.Generator().manual_seed(2))
    stage_c, stage_b = run_node(node, image=image, vae=encoder, compression=42)
    assert stage_c["samples"].shape == (1, 16, 200 // 42, 300 // 42)
    assert stage_b["samples"].shape == (1, 4, (200 // 8) * 2, (300 // 8) * 2)

    state = load_file(str(path))
    backbone = efficientnet_v2_s().features.eval()
    backbone.load_state_dict({k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")})
    pixels = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        features = F.conv2d(backbone((pixels - mean) / std), state["mapper.0.weight"])
        reference = F.batch_norm(features, state["mapper.1.running_mean"], state["mapper.1.running_var"], eps=1e-5)
    ours = encoder.encode(pixels.permute(0, 2, 3, 1))
    assert ours.shape == (1, 16, 2, 3)
    assert torch.allclose(ours, reference, atol=1e-4 * float(reference.abs().max()))
    with pytest.raises(ValueError, match="only encodes"):
        encoder.decode(ours)
    super_resolution = Registry().load_builtin().get("StableCascadeSuperResolutionControlnet")
    hint, sr_c, sr_b = run_node(super_resolution, image=image[:, :192, :288], vae=encoder)
    assert hint.shape == (1, 192 // 32, 288 // 32, 16)
    assert sr_c["samples"].shape == (1, 16, 12, 18) and sr_b["samples"].shape == (1, 4, 96, 144)
    with pytest.raises(Exception, match="Stage C encoder"):
        run_node(node, image=image, vae=load_vae(models / "vae" / "stage_a.safetensors"), compression=42)


def test_files_are_recognised(models):
    for name, kind in (("diffusion_models/stage_c.safetensors", "Stage C"), ("diffusion_models/stage_b.safetensors",
                       "Stage B"), ("vae/stage_a.safetensors", "Stage A")):
        with WeightFile(models / name) as f:
            found = identify(f.shapes)
        assert kind in found.name and found.folder == name.split("/")[0]
    from graphflow.models.checkpoint_report import inspect_report

    report = inspect_report(models / "diffusion_models" / "stage_b.safetensors")
    assert "Stable Cascade Stage B" in report and "4-channel latent, channels [16, 32, 64]" in report
    assert SC_PRIOR.channels == 16 and SC_PRIOR.scale_factor == 1.0 and math.isclose(SC_B.scale_factor, 1 / 0.43)
    model = load_diffusion_model(models / "diffusion_models" / "stage_c.safetensors")
    assert isinstance(DiscreteSchedule.for_model(model), CascadeSchedule)
    assert DiscreteSchedule.for_model(model).shift == 2.0


def test_clip_g_encoding_as_comfyui_stable_cascade(models):
    """CLIPLoader type stable_cascade: the last layer's hidden states (no final norm) and the
    projected pooled output, prompts padded with the end token and attention masked past the
    first one (ComfyUI's StableCascadeClipG), against transformers' CLIPTextModelWithProjection."""
    from transformers import CLIPTextModelWithProjection

    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.models.tokenizer import tokenize_prompt
    from graphflow.testing import text_config

    path = models / "text_encoders" / "clip_g.safetensors"
    clip = load_text_encoders([path], "stable_cascade", device=torch.device("cpu"), dtype=torch.float32)
    context, pooled = clip.encode("a fox in the snow")
    reference = CLIPTextModelWithProjection(text_config("clip_g")).eval()
    missing, unexpected = reference.load_state_dict(load_file(str(path)), strict=False)
    assert not unexpected and all("position_ids" in k for k in missing)
    ids = torch.tensor(tokenize_prompt("a fox in the snow", 49407).ids)
    assert int((ids == 49407).sum()) > 60  # padded with the end token
    mask = (torch.arange(77)[None] <= (ids == 49407).int().argmax(dim=1)[:, None]).long()
    with torch.no_grad():
        out = reference(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert context.shape == (1, 77, 128) and pooled.shape == (1, 128)
    assert torch.allclose(context, out.hidden_states[-1], atol=1e-4)
    assert torch.allclose(pooled, out.text_embeds, atol=1e-4)
    with torch.no_grad():  # the mask matters: without it the padding positions differ
        unmasked = reference(input_ids=ids, output_hidden_states=True).hidden_states[-1]
    assert float((unmasked - context).abs().max()) > 1e-3


def test_bundled_workflow_runs(tmp_folders):
    """workflows/stable_cascade_comfyui_example.json on tiny files under its names, made small."""
    from pathlib import Path

    from graphflow.registry import Registry
    from graphflow.workflow import load_workflow

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    write_stable_cascade(m / "diffusion_models" / "stage_c_bf16.safetensors", "c", seed=1, dtype=torch.bfloat16)
    write_stable_cascade(m / "diffusion_models" / "stage_b_bf16.safetensors", "b", seed=2, dtype=torch.bfloat16)
    write_stage_a(m / "vae" / "stage_a.safetensors", seed=3)
    write_text_encoder(m / "text_encoders" / "model.safetensors", "clip_g", seed=4, dtype=torch.float32)
    wf = load_workflow(Path(__file__).parent.parent / "workflows" / "stable_cascade_comfyui_example.json")
    wf.nodes["34"].inputs.update(width=256, height=256)
    wf.nodes["3"].inputs["steps"] = wf.nodes["33"].inputs["steps"] = 2
    result = Executor(Registry().load_builtin()).run(wf)
    assert result.ok, result.error or result.problems
    assert result.values["8"][0].shape == (1, 256, 256, 3)
    assert result.outputs["9"]["images"]


@pytest.mark.parametrize("split_attention", [False, True])
def test_all_in_one_checkpoints(tmp_path, split_attention):  # split: also the older OpenCLIP projection
    """CheckpointLoaderSimple on ComfyUI's all-in-one layout: the same model, CLIP-G and Stage A as
    the separate files give, with ComfyUI's split to_q / to_k / to_v read as in_proj."""
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_stable_cascade_checkpoint

    path = write_stable_cascade_checkpoint(tmp_path / "stable_cascade_stage_b.safetensors", "b", seed=6,
                                           split_attention=split_attention, openclip_projection=split_attention)
    with WeightFile(path) as f:
        kind = identify(f.shapes)
        assert kind.name == "Stable Cascade Stage B checkpoint" and kind.folder == "checkpoints"
        assert any(".attn.to_q." in k for k in f.shapes) == split_attention
    ckpt = load_checkpoint(path, device="cpu", dtype=torch.float32)
    separate = load_diffusion_model(write_stable_cascade(tmp_path / "b.safetensors", "b", seed=6), device="cpu",
                                    dtype=torch.float32)
    assert ckpt.model.arch == "stable_cascade_b"
    for key, value in separate.unet.state_dict().items():
        assert torch.equal(ckpt.model.unet.state_dict()[key], value), key
    stage_a = load_vae(write_stage_a(tmp_path / "a.safetensors", seed=8))
    assert isinstance(ckpt.vae, StageAVAE)
    latent = torch.randn(1, 4, 6, 6)
    assert torch.allclose(ckpt.vae.decode(latent), stage_a.decode(latent))
    clip = load_text_encoders([write_text_encoder(tmp_path / "g.safetensors", "clip_g", seed=7, dtype=torch.float32)],
                              "stable_cascade", device=torch.device("cpu"), dtype=torch.float32)
    for ours, theirs in zip(ckpt.clip.encode("a red fox"), clip.encode("a red fox")):
        assert torch.allclose(ours, theirs, atol=1e-5)

    stage_c = load_checkpoint(write_stable_cascade_checkpoint(tmp_path / "c.safetensors", "c", seed=2),
                              device="cpu", dtype=torch.float32)
    assert stage_c.model.arch == "stable_cascade_c" and stage_c.vae is None and stage_c.clip is not None


def test_stable_cascade_kohya_lora_prefixes(models, tmp_path):
    """kohya's Stable Cascade LoRAs name stage C lora_prior_unet_ + its module path and CLIP-G
    lora_prior_te_ (text projection included), as ComfyUI maps them."""
    from graphflow import memory
    from graphflow.models.lora import apply_lora
    from graphflow.models.text_encoder_files import load_text_encoders

    model = load_diffusion_model(models / "diffusion_models" / "stage_c.safetensors")
    clip = load_text_encoders([models / "text_encoders" / "clip_g.safetensors"], "stable_cascade",
                              device=torch.device("cpu"), dtype=torch.float32)
    path, layer = next((n, m) for n, m in model.unet.named_modules() if isinstance(m, torch.nn.Linear))
    proj = clip.clip_g.projection.weight
    g = torch.Generator().manual_seed(1)
    tensors = {}
    for name, weight in ((f"lora_prior_unet_{path.replace('.', '_')}", layer.weight),
                         ("lora_prior_te_text_projection", proj)):
        tensors[name + ".lora_down.weight"] = torch.randn(2, weight.shape[1], generator=g)
        tensors[name + ".lora_up.weight"] = torch.randn(weight.shape[0], 2, generator=g)
    save_file(tensors, str(tmp_path / "cascade_lora.safetensors"))
    new_model, new_clip = apply_lora(model, clip, tmp_path / "cascade_lora.safetensors", 0.5, 1.0)
    delta = tensors[f"lora_prior_unet_{path.replace('.', '_')}.lora_up.weight"] @ \
        tensors[f"lora_prior_unet_{path.replace('.', '_')}.lora_down.weight"]
    got = memory.manager().weights(new_model.unet, new_model.patches)[path + ".weight"]
    torch.testing.assert_close(got.float(), layer.weight.float() + 0.5 * delta, atol=1e-2, rtol=1e-2)
    tower = new_clip.clip_g
    got = memory.manager().weights(tower.model, tower.patches)["text_projection.weight"]
    torch.testing.assert_close(got, proj + tensors["lora_prior_te_text_projection.lora_up.weight"]
                               @ tensors["lora_prior_te_text_projection.lora_down.weight"])
