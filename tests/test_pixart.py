"""PixArt-α / Σ: the transformer against diffusers' PixArtTransformer2DModel on the same random
weights (diffusers' own module loading the diffusers-layout file), with and without a T5
attention mask; the original and diffusers layouts load alike; detection and `graphflow
inspect`; the "pixart" text encoder; a ComfyUI-format workflow end to end with its one sampler
step checked against diffusers and transformers' T5."""

import json
import math

import pytest
import torch
from diffusers import PixArtTransformer2DModel
from safetensors.torch import load_file

from graphflow.models.checkpoint import load_diffusion_model
from graphflow.testing import T5_TINY_WIDTH, pixart_config, write_pixart

TOL = 1e-4


def diffusers_pixart(path, variant: str) -> PixArtTransformer2DModel:
    """diffusers' module with our tiny config (trained size 64 latent pixels: interpolation 1),
    loading a diffusers-layout file strictly: the file's names are diffusers' own."""
    cfg = pixart_config(variant)
    model = PixArtTransformer2DModel(num_attention_heads=cfg.num_heads, attention_head_dim=cfg.hidden_size // cfg.num_heads,
                                     in_channels=4, out_channels=8, num_layers=cfg.depth,
                                     cross_attention_dim=cfg.hidden_size, sample_size=64,
                                     caption_channels=T5_TINY_WIDTH, use_additional_conditions=variant == "alpha")
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval()


def diffusers_eps(model, x, t, context, size=None, mask=None):
    added = None
    if size is not None:
        added = {"resolution": size[:, :2], "aspect_ratio": size[:, 2:]}
    with torch.no_grad():
        out = model(x, context, timestep=t, added_cond_kwargs=added, encoder_attention_mask=mask, return_dict=False)[0]
    return out[:, :4]  # learned sigma: eps first


@pytest.mark.parametrize("variant", ["alpha", "sigma"])
def test_pixart_matches_diffusers_in_both_layouts(tmp_path, variant):
    original = write_pixart(tmp_path / "orig.safetensors", variant, "original", seed=3, dtype=torch.float32)
    split = write_pixart(tmp_path / "diff.safetensors", variant, "diffusers", seed=3, dtype=torch.float32)
    ours = load_diffusion_model(original, device="cpu", dtype=torch.float32)
    assert ours.arch == "pixart" and ours.prediction == "eps" and ours.unet.config == pixart_config(variant)
    assert ours.latent_format.name == ("sd1" if variant == "alpha" else "sdxl")
    from_diffusers = load_diffusion_model(split, device="cpu", dtype=torch.float32)
    assert all(torch.equal(a, b) for a, b in zip(ours.unet.state_dict().values(), from_diffusers.unet.state_dict().values()))
    theirs = diffusers_pixart(split, variant)

    g = torch.Generator().manual_seed(0)
    context = torch.randn(2, 7, T5_TINY_WIDTH, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
    t = torch.tensor([999.0, 321.0])
    for h, w in ((64, 64), (48, 80)):  # the trained size, and another of the same mean side
        x = torch.randn(2, 4, h, w, generator=g)
        size = torch.tensor([[h * 8.0, w * 8.0, h / w], [1024.0, 768.0, 0.75]])
        with torch.no_grad():
            got = ours.unet(x, t, context, size if variant == "alpha" else None)
            got_masked = ours.unet(x, t, context, size if variant == "alpha" else None, attention_mask=mask)
        expected = diffusers_eps(theirs, x, t, context, size if variant == "alpha" else None)
        expected_masked = diffusers_eps(theirs, x, t, context, size if variant == "alpha" else None, mask)
        assert got.shape == (2, 4, h, w)
        assert float((got - expected).abs().max()) < TOL * float(expected.abs().max())
        assert float((got_masked - expected_masked).abs().max()) < TOL * float(expected.abs().max())
        assert float((got_masked[0] - got[0]).abs().max()) > 1e-3  # the mask mattered
        assert float((got_masked[1] - got[1]).abs().max()) < 1e-5  # an all-ones mask is no mask
    if variant == "alpha":  # the size conditioning reaches the output; None: the latent's own size
        x = torch.randn(1, 4, 32, 48, generator=g)
        with torch.no_grad():
            own = ours.unet(x, t[:1], context[:1], torch.tensor([[256.0, 384.0, 32 / 48]]))
            assert torch.allclose(ours.unet(x, t[:1], context[:1], None), own, atol=1e-6)
            assert float((ours.unet(x, t[:1], context[:1], torch.tensor([[1024.0, 1024.0, 1.0]])) - own).abs().max()) > 1e-3


def test_pixart_detected_and_inspected(tmp_path, capsys):
    from graphflow.cli import main
    from graphflow.models.configs import pixart_config_from_state_dict
    from graphflow.models.file_kind import find_pixart, identify
    from graphflow.models.pixart import PixArt
    from graphflow.models.weight_files import CheckpointError, WeightFile

    with torch.device("meta"):  # the full-size α, by names and shapes alone
        shapes = {k: tuple(v.shape) for k, v in PixArt(pixart_config("alpha", scaled_down=False)).state_dict().items()}
    shapes["pos_embed"] = (1, 4096, 1152)
    for prefix in ("", "model.diffusion_model."):
        found = find_pixart({prefix + k: s for k, s in shapes.items()})
        assert found == ("pixart_alpha", "original", prefix)
        kind = identify({prefix + k: s for k, s in shapes.items()})
        assert (kind.name, kind.folder, kind.loader) == ("PixArt-α diffusion model", "diffusion_models",
                                                         "LoadDiffusionModel")
    cfg = pixart_config_from_state_dict(shapes)
    assert (cfg.depth, cfg.hidden_size, cfg.num_heads, cfg.pe_interpolation, cfg.micro_condition) == (28, 1152, 16, 2.0, True)

    path = write_pixart(tmp_path / "PixArt-Sigma-XL-2-1024-MS.safetensors", "sigma", "diffusers")
    assert main(["inspect", str(path)]) in (0, None)
    out = capsys.readouterr().out
    assert "PixArt-Σ diffusion model (diffusers' PixArtTransformer2DModel layout)" in out
    assert "2 blocks, width 144, 2 heads" in out and "CLIPLoader, type pixart" in out and "SDXL VAE" in out

    from safetensors.torch import save_file
    state = load_file(str(write_pixart(tmp_path / "a.safetensors", "alpha", dtype=torch.float32)))
    torch.save({"state_dict": state}, tmp_path / "PixArt-XL-2-1024-MS.pth")  # as PixArt's own .pth files come
    from_pth = load_diffusion_model(tmp_path / "PixArt-XL-2-1024-MS.pth", device="cpu", dtype=torch.float32)
    assert from_pth.arch == "pixart" and torch.equal(from_pth.unet.t_block[1].weight, state["t_block.1.weight"])
    state["blocks.0.attn.sr.weight"] = torch.zeros(144, 1, 2, 2)  # Σ's KV token compression
    save_file(state, str(tmp_path / "kv.safetensors"))
    with pytest.raises(CheckpointError, match="KV-compressed self-attention"):
        load_diffusion_model(tmp_path / "kv.safetensors", device="cpu")
    with WeightFile(tmp_path / "kv.safetensors") as f:
        assert find_pixart(f.shapes)[0] == "pixart_alpha"


# -- a ComfyUI graph end to end ----------------------------------------------------------------

@pytest.fixture
def pixart_models(tmp_folders):
    from graphflow.testing import write_flow_text_encoder, write_vae

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    write_pixart(m / "diffusion_models" / "PixArt-XL-2-1024-MS.safetensors", "alpha", dtype=torch.float32, seed=5)
    write_flow_text_encoder(m / "text_encoders" / "t5xxl_fp16.safetensors", "t5xxl", dtype=torch.float32, seed=1)
    write_vae(m / "vae" / "sd-vae-ft-ema.safetensors", dtype=torch.float32)
    return tmp_folders


def pixart_graph(cfg_scale: float) -> dict:
    """ComfyUI's PixArt-α example workflow in API format (shrunk): α's size conditioning on the
    positive prompt, a plain CLIP Text Encode negative."""
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "PixArt-XL-2-1024-MS.safetensors",
                                                     "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5xxl_fp16.safetensors", "type": "pixart",
                                                     "device": "default"}},
        "3": {"class_type": "CLIPTextEncodePixArtAlpha", "inputs": {"width": 1024, "height": 768,
                                                                    "text": "a red fox in the snow", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["2", 0]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 256, "height": 256, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["3", 0], "negative": ["4", 0],
                                                   "latent_image": ["5", 0], "seed": 11, "steps": 1, "cfg": cfg_scale,
                                                   "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "7": {"class_type": "VAELoader", "inputs": {"vae_name": "sd-vae-ft-ema.safetensors"}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["7", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "pixart"}},
    }


def test_pixart_comfyui_graph_runs_and_one_step_matches_diffusers(pixart_models, tmp_path):
    from transformers import T5EncoderModel, T5TokenizerFast

    from graphflow.executor import Executor
    from graphflow.models import SD1
    from graphflow.models.t5 import TOKENIZER_FILE
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import t5_config
    from graphflow.workflow import parse_workflow

    cfg_scale = 4.5
    registry = Registry().load_builtin()
    graph = pixart_graph(cfg_scale)
    result = Executor(registry).run(parse_workflow(json.loads(json.dumps(graph)), registry), outputs=["9", "3", "4"])
    assert result.ok, json.dumps(result.error, default=str)[:3000]
    assert len(list(pixart_models.outputs.rglob("pixart*.png"))) == 1
    image = result.values["8"][0]
    assert image.shape == (1, 256, 256, 3) and float(image.std()) > 0.01

    # the text side: T5 alone on the prompt's pieces and </s>, unpadded, no pooled vector
    [(cond, cond_options)], [(uncond, uncond_options)] = result.values["3"][0], result.values["4"][0]
    assert cond_options == {"width": 1024, "height": 768} and uncond_options == {}
    tokenizer = T5TokenizerFast(tokenizer_file=str(TOKENIZER_FILE))
    ids, neg_ids = tokenizer("a red fox in the snow").input_ids, tokenizer("blurry").input_ids
    assert cond.shape == (1, len(ids), T5_TINY_WIDTH) and uncond.shape == (1, len(neg_ids), T5_TINY_WIDTH)
    t5 = T5EncoderModel(t5_config()).eval()
    t5.load_state_dict(load_file(str(pixart_models.models / "text_encoders" / "t5xxl_fp16.safetensors")), strict=False)
    with torch.no_grad():
        expected_cond = t5(torch.tensor([ids])).last_hidden_state
        expected_uncond = t5(torch.tensor([neg_ids])).last_hidden_state
    assert torch.allclose(cond.float(), expected_cond, atol=1e-4)
    assert torch.allclose(uncond.float(), expected_uncond, atol=1e-4)

    # one euler step from the top of the DDPM schedule (linear betas 0.0001..0.02) to 0 lands on
    # the CFG-combined x0 = x - sigma * eps; the network sees x / sqrt(1 + sigma^2) at t = 999
    alpha_bar = torch.cumprod(1 - torch.linspace(0.0001, 0.02, 1000, dtype=torch.float64), 0)[-1]
    sigma = float(((1 - alpha_bar) / alpha_bar) ** 0.5)
    noise = initial_noise(torch.zeros(1, 4, 32, 32), 11)
    x = noise * math.sqrt(1 + sigma ** 2)  # ComfyUI's EPS noise scaling at full denoise
    split = write_pixart(tmp_path / "diffusers.safetensors", "alpha", "diffusers", dtype=torch.float32, seed=5)
    theirs = diffusers_pixart(split, "alpha")
    t = torch.tensor([999.0])
    eps_cond = diffusers_eps(theirs, noise, t, expected_cond, torch.tensor([[768.0, 1024.0, 0.75]]))
    eps_uncond = diffusers_eps(theirs, noise, t, expected_uncond, torch.tensor([[256.0, 256.0, 1.0]]))
    expected = x - sigma * (eps_uncond + cfg_scale * (eps_cond - eps_uncond))
    ours = SD1.process_in(result.values["6"][0]["samples"].float())
    assert float((ours - expected).abs().max()) < 1e-4 * float(expected.abs().max())


def test_pixart_text_encoder_rules(tmp_path):
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.models.weight_files import CheckpointError
    from graphflow.testing import write_flow_text_encoder

    t5 = write_flow_text_encoder(tmp_path / "t5.safetensors", "t5xxl", dtype=torch.float32)
    clip = load_text_encoders([t5], "pixart")
    context, pooled = clip.encode("a cat (sitting:1.3)")
    assert clip.arch == "pixart" and pooled is None and context.shape[-1] == T5_TINY_WIDTH
    # a weight pulls towards <pad>s alone (ComfyUI's PixArt T5 empties have no </s>), as Chroma's
    chroma, _ = load_text_encoders([t5], "chroma").encode("a cat (sitting:1.3)")
    assert torch.allclose(context, chroma)
    with pytest.raises(CheckpointError, match="PixArt needs a T5-XXL file alone"):
        load_text_encoders([write_flow_text_encoder(tmp_path / "clip_l.safetensors", "clip_l")], "pixart")


def test_pixart_sigma_graph_ignores_size_conditioning(pixart_models):
    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.workflow import parse_workflow

    write_pixart(pixart_models.models / "diffusion_models" / "PixArt-Sigma-XL-2-1024-MS.safetensors", "sigma",
                 dtype=torch.float32, seed=6)
    registry = Registry().load_builtin()
    samples = []
    for positive in ({"class_type": "CLIPTextEncodePixArtAlpha", "inputs": {"width": 1024, "height": 768,
                                                                            "text": "a red fox", "clip": ["2", 0]}},
                     {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["2", 0]}}):
        graph = pixart_graph(4.5)
        graph["1"]["inputs"]["unet_name"] = "PixArt-Sigma-XL-2-1024-MS.safetensors"
        graph["3"] = positive
        result = Executor(registry).run(parse_workflow(graph, registry), outputs=["9"])
        assert result.ok, json.dumps(result.error, default=str)[:3000]
        samples.append(result.values["6"][0]["samples"])
    assert float(samples[0].std()) > 0.05 and torch.equal(samples[0], samples[1])
    bad = pixart_graph(4.5)
    bad["3"]["inputs"]["width"] = 0
    result = Executor(registry).run(parse_workflow(bad, registry), outputs=["9"])
    error = json.dumps(result.error, default=str)
    assert not result.ok and "width" in error and "must be a positive size" in error


def test_pixart_alpha_height_zero_gives_comfyuis_zero_aspect_ratio(tmp_path, builtin_registry):
    """ComfyUI accepts height 0 (its minimum): size (0, width), aspect ratio 0 / width = 0."""
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import write_flow_text_encoder
    from test_nodes_image_mask import call

    clip = load_text_encoders([write_flow_text_encoder(tmp_path / "t5.safetensors", "t5xxl", dtype=torch.float32)],
                              "pixart")
    [(_, options)] = call(builtin_registry, "CLIPTextEncodePixArtAlpha", width=512, height=0, text="a fox", clip=clip)
    assert options == {"width": 512, "height": 0}
    model = load_diffusion_model(write_pixart(tmp_path / "alpha.safetensors", "alpha", dtype=torch.float32),
                                 device="cpu", dtype=torch.float32)
    assert model.encode_adm(options, 256, 256).tolist() == [[0.0, 512.0, 0.0]]
