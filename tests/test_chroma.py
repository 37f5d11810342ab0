"""Chroma: the model against diffusers' ChromaTransformer2DModel on the same file (read by
diffusers' own single-file loader and key conversion), with and without a text mask; detection;
the "chroma" text encoder against transformers' T5; a ComfyUI-format workflow end to end with one
sampler step checked against diffusers; LoRAs against diffusers + PEFT; Skip Layer Guidance.

diffusers' `convert_chroma_transformer_checkpoint_to_diffusers` hard-codes the full model's width
(inner_dim 3072, mlp_ratio 4) as its FLUX one does; the test compiles it with both read from the
checkpoint (test_flow_models.flux_conversion_any_width), so tiny files go through the rest of
diffusers' code unchanged.
"""

import json
import math

import pytest
import torch
from diffusers import ChromaTransformer2DModel

from graphflow.models.checkpoint import load_diffusion_model
from graphflow.models.flux import image_ids, pack, unpack
from graphflow.testing import chroma_config, write_chroma
from tests.test_flow_models import diffusers_config_dir, flux_conversion_any_width

TOL = 1e-4


@pytest.fixture
def chroma_any_width(monkeypatch):
    import diffusers.loaders.single_file_model as sfm

    entry = dict(sfm.SINGLE_FILE_LOADABLE_CLASSES["ChromaTransformer2DModel"])
    entry["checkpoint_mapping_fn"] = flux_conversion_any_width("convert_chroma_transformer_checkpoint_to_diffusers")
    monkeypatch.setitem(sfm.SINGLE_FILE_LOADABLE_CLASSES, "ChromaTransformer2DModel", entry)


def chroma_diffusers(tmp_path, path, cfg) -> ChromaTransformer2DModel:
    config = dict(patch_size=1, in_channels=cfg.in_channels, num_layers=cfg.depth,
                  num_single_layers=cfg.depth_single_blocks, attention_head_dim=cfg.hidden_size // cfg.num_heads,
                  num_attention_heads=cfg.num_heads, joint_attention_dim=cfg.context_in_dim,
                  axes_dims_rope=list(cfg.axes_dim), approximator_num_channels=cfg.approximator_in_dim,
                  approximator_hidden_dim=cfg.approximator_hidden, approximator_layers=cfg.approximator_layers)
    return ChromaTransformer2DModel.from_single_file(
        str(path), config=diffusers_config_dir(tmp_path, ChromaTransformer2DModel, **config),
        local_files_only=True, torch_dtype=torch.float32).eval()


def diffusers_velocity(theirs, x, sigma, context, text_mask=None):
    """diffusers' transformer on image-shaped latents, as ChromaPipeline calls it (timestep = sigma)."""
    b, _, h, w = x.shape
    img_ids = image_ids(h // 2, w // 2, 1, "cpu")[0]
    mask = None
    if text_mask is not None:  # the pipeline's _prepare_attention_mask: text keep-mask, then the image tokens
        mask = torch.cat([text_mask.bool(), torch.ones(b, img_ids.shape[0], dtype=torch.bool)], dim=1)
    with torch.no_grad():
        out = theirs(hidden_states=pack(x), encoder_hidden_states=context, timestep=sigma, img_ids=img_ids,
                     txt_ids=torch.zeros(context.shape[1], 3), attention_mask=mask, return_dict=False)[0]
    return unpack(out, h, w)


@pytest.mark.parametrize("prefixed", [False, True])
def test_chroma_matches_diffusers(tmp_path, chroma_any_width, prefixed):
    path = write_chroma(tmp_path / "chroma.safetensors", dtype=torch.float32, prefixed=prefixed, seed=3)
    cfg = chroma_config()
    ours = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    assert ours.arch == "chroma" and ours.unet.config == cfg and not ours.guidance_embed
    theirs = chroma_diffusers(tmp_path, path, cfg)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 16, 8, 12, generator=g)
    sigma = torch.tensor([0.3, 1.0])
    context = torch.randn(2, 7, cfg.context_in_dim, generator=g)
    # Chroma's padding rule: the prompt's tokens and one pad stay, the other pads are masked
    text_mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0]])
    with torch.no_grad():
        plain = ours(x, sigma, context)
        masked = ours(x, sigma, context, text_mask=text_mask)
    expected_plain = diffusers_velocity(theirs, x, sigma, context)
    expected_masked = diffusers_velocity(theirs, x, sigma, context, text_mask)
    assert (plain - expected_plain).abs().max() < TOL * expected_plain.abs().max()
    assert (masked - expected_masked).abs().max() < TOL * expected_masked.abs().max()
    assert (masked - plain).abs().max() > 1e-3  # the mask does change the output
    # a masked-out token's content is irrelevant
    scrambled = context.clone()
    scrambled[0, 5:] = torch.randn(2, cfg.context_in_dim, generator=g)
    with torch.no_grad():
        assert torch.allclose(ours(x, sigma, scrambled, text_mask=text_mask)[0], masked[0], atol=1e-5)


# -- detection ---------------------------------------------------------------------------------

def test_chroma_detected_from_header_at_full_size():
    from graphflow.models.chroma import Chroma, ChromaConfig
    from graphflow.models.file_kind import identify
    from graphflow.models.flow_architecture import detect_flow_model

    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Chroma(ChromaConfig()).state_dict().items()}
    assert "distilled_guidance_layer.norms.4.scale" in shapes and "img_in.weight" in shapes
    assert not any(k.endswith("_mod.lin.weight") or k.startswith(("time_in.", "guidance_in.")) for k in shapes)
    assert 8.0e9 < sum(torch.Size(s).numel() for s in shapes.values()) < 9.0e9  # Chroma's 8.9B
    for prefix in ("", "model.diffusion_model."):
        info = detect_flow_model({prefix + k: s for k, s in shapes.items()})
        assert (info.arch, info.family, info.name, info.prefix) == ("chroma", "chroma", "Chroma", prefix)
        assert info.config == ChromaConfig() and info.config.modulations == 344  # ComfyUI's mod_index_length
        assert info.latent_channels == 16
        kind = identify({prefix + k: s for k, s in shapes.items()})
        assert (kind.name, kind.folder, kind.loader) == ("Chroma diffusion model", "diffusion_models",
                                                         "LoadDiffusionModel")


def test_graphflow_inspect_names_chroma(tmp_path, capsys):
    from graphflow.cli import main

    path = write_chroma(tmp_path / "chroma-unlocked-v50.safetensors")
    assert main(["inspect", str(path)]) in (0, None)
    out = capsys.readouterr().out
    assert "architecture: Chroma [chroma, chroma]" in out
    assert "2 double + 2 single blocks" in out and "CLIPLoader, type chroma" in out


# -- a ComfyUI graph end to end ----------------------------------------------------------------

@pytest.fixture
def chroma_models(tmp_folders):
    from graphflow.testing import write_flow_text_encoder, write_flow_vae

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    write_chroma(m / "diffusion_models" / "chroma-unlocked-v50.safetensors", dtype=torch.float32, seed=5)
    write_flow_text_encoder(m / "text_encoders" / "t5xxl_fp16.safetensors", "t5xxl", dtype=torch.float32, seed=1)
    write_flow_vae(m / "vae" / "ae.safetensors", dtype=torch.float32)
    return tmp_folders


def chroma_graph(cfg_scale: float, denoise: float) -> dict:
    """ComfyUI's Chroma example workflow in API format (shrunk)."""
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "chroma-unlocked-v50.safetensors",
                                                     "weight_dtype": "default"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5xxl_fp16.safetensors", "type": "chroma",
                                                     "device": "default"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox in the snow", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["2", 0]}},
        "5": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 96, "height": 64, "batch_size": 1}},
        "6": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["3", 0], "negative": ["4", 0],
                                                   "latent_image": ["5", 0], "seed": 11, "steps": 1, "cfg": cfg_scale,
                                                   "sampler_name": "euler", "scheduler": "simple",
                                                   "denoise": denoise}},
        "7": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["6", 0], "vae": ["7", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "chroma"}},
    }


def test_chroma_comfyui_graph_runs_and_one_step_matches_diffusers(chroma_models, tmp_path, chroma_any_width):
    from transformers import T5EncoderModel, T5TokenizerFast

    from graphflow.executor import Executor
    from graphflow.models import FLUX
    from graphflow.models.t5 import TOKENIZER_FILE
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import t5_config
    from graphflow.workflow import parse_workflow

    cfg_scale = 4.0
    registry = Registry().load_builtin()
    graph = chroma_graph(cfg_scale, denoise=0.5)
    result = Executor(registry).run(parse_workflow(json.loads(json.dumps(graph)), registry), outputs=["9", "3", "4"])
    assert result.ok, json.dumps(result.error, default=str)[:3000]
    saved = list(chroma_models.outputs.rglob("chroma*.png"))
    assert len(saved) == 1
    image = result.values["8"][0]
    assert image.shape == (1, 64, 96, 3) and float(image.std()) > 0.01

    # the text side: T5 alone on the prompt's pieces and </s>, no padding, no pooled vector
    [(cond, cond_options)], [(uncond, uncond_options)] = result.values["3"][0], result.values["4"][0]
    assert "pooled_output" not in cond_options and "pooled_output" not in uncond_options
    ids = T5TokenizerFast(tokenizer_file=str(TOKENIZER_FILE))("a red fox in the snow").input_ids
    assert ids[-1] == 1 and cond.shape == (1, len(ids), t5_config().d_model) and uncond.shape[1] == 1
    t5 = T5EncoderModel(t5_config()).eval()
    from safetensors.torch import load_file
    t5.load_state_dict(load_file(str(chroma_models.models / "text_encoders" / "t5xxl_fp16.safetensors")), strict=False)
    with torch.no_grad():
        expected_cond = t5(torch.tensor([ids])).last_hidden_state
        expected_uncond = t5(torch.tensor([[1]])).last_hidden_state
    assert torch.allclose(cond.float(), expected_cond, atol=1e-4)
    assert torch.allclose(uncond.float(), expected_uncond, atol=1e-4)

    # one euler step to sigma 0 lands on the CFG-combined denoised latent. denoise 0.5 of 1 step:
    # the 2-step "simple" schedule's second sigma, t = 0.5 under ModelSamplingFlux's mu 1.15
    sigma = torch.tensor([1.0 / (1.0 + math.exp(-1.15))])
    noise = initial_noise(torch.zeros(1, 16, 8, 12), 11)
    x = sigma * noise  # + (1 - sigma) * 0: ComfyUI leaves an all-zero latent unshifted (no process_in)
    theirs = chroma_diffusers(tmp_path, chroma_models.models / "diffusion_models" / "chroma-unlocked-v50.safetensors",
                              chroma_config())
    v_cond = diffusers_velocity(theirs, x, sigma, expected_cond)
    v_uncond = diffusers_velocity(theirs, x, sigma, expected_uncond)
    expected = x - sigma * (v_uncond + cfg_scale * (v_cond - v_uncond))
    ours = FLUX.process_in(result.values["6"][0]["samples"].float())
    assert float((expected - x).abs().mean()) > 0.05  # the model moved the latent
    assert float((ours - expected).abs().max()) < 1e-4 * float(expected.abs().max())


def test_chroma_all_in_one_checkpoint_and_text_encoder_rules(tmp_path):
    from safetensors.torch import load_file, save_file

    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.models.weight_files import CheckpointError
    from graphflow.testing import write_flow_text_encoder, write_flow_vae

    parts = {"": write_chroma(tmp_path / "m.safetensors", prefixed=True, dtype=torch.float32),
             "vae.": write_flow_vae(tmp_path / "v.safetensors", dtype=torch.float32),
             "text_encoders.t5xxl.transformer.": write_flow_text_encoder(tmp_path / "t5.safetensors", "t5xxl",
                                                                         dtype=torch.float32)}
    save_file({prefix + k: v for prefix, path in parts.items() for k, v in load_file(str(path)).items()},
              str(tmp_path / "chroma_aio.safetensors"))
    loaded = load_checkpoint(tmp_path / "chroma_aio.safetensors")
    assert loaded.model.arch == "chroma" and loaded.clip.arch == "chroma" and loaded.vae is not None
    standalone = load_text_encoders([parts["text_encoders.t5xxl.transformer."]], "chroma")
    context, pooled = standalone.encode("a cat")
    assert pooled is None and torch.allclose(context, loaded.clip.encode("a cat")[0])
    # T5TokenizerOptions' min_padding 1: Chroma's one pad token after </s>, unmasked in T5 as in
    # ComfyUI (so the prompt's own encodings change too)
    padded, _ = standalone.with_t5_padding(1, 0).encode("a cat")
    assert padded.shape[1] == context.shape[1] + 1
    assert not torch.allclose(padded[:, :-1], context, atol=1e-5)
    with pytest.raises(CheckpointError, match="Chroma needs a T5-XXL file alone"):
        load_text_encoders([write_flow_text_encoder(tmp_path / "clip_l.safetensors", "clip_l")], "chroma")


def test_chroma_flux_guidance(tmp_path):
    """No pooled vector; FluxGuidance's guidance reaches the approximator, 0 by default (ComfyUI's
    sampling defaults, ModelSamplingFlux mu 1.15: tests/test_flow_families.py)."""
    from graphflow.sampling.flow_sampling import flow_vectors

    model = load_diffusion_model(write_chroma(tmp_path / "c.safetensors"), device="cpu", dtype=torch.float32)
    assert flow_vectors(model, {}, 2) == (None, None)  # no pooled vector; the model's guidance 0
    y, guidance = flow_vectors(model, {"guidance": 2.5}, 2)  # FluxGuidance, as ComfyUI's Chroma takes it
    assert y is None and guidance.tolist() == [2.5, 2.5]
    x, sigma, context = torch.randn(1, 16, 4, 4), torch.tensor([0.5]), torch.randn(1, 3, chroma_config().context_in_dim)
    with torch.no_grad():
        assert not torch.allclose(model(x, sigma, context, guidance=guidance[:1]), model(x, sigma, context))
        assert torch.equal(model(x, sigma, context, guidance=torch.zeros(1)), model(x, sigma, context))


def test_chroma_lora_in_diffusers_layout_matches_diffusers(tmp_path, chroma_any_width):
    """A LoRA in diffusers' `transformer.` names (ai-toolkit's) over every Linear of diffusers'
    Chroma, the approximator's too, against diffusers + PEFT on the same weights."""
    from safetensors.torch import save_file

    from graphflow.models.lora import apply_lora
    from tests.test_flow_lora import random_peft_lora

    path = write_chroma(tmp_path / "chroma.safetensors", dtype=torch.float32, seed=3)
    cfg = chroma_config()
    ours = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    theirs = chroma_diffusers(tmp_path, path, cfg)
    g = torch.Generator().manual_seed(1)
    x, sigma = torch.randn(1, 16, 4, 6, generator=g), torch.tensor([0.6])
    context = torch.randn(1, 5, cfg.context_in_dim, generator=g)
    with torch.no_grad():
        plain = ours(x, sigma, context)
    lora = random_peft_lora(theirs, seed=5)
    assert "transformer.distilled_guidance_layer.layers.1.linear_2.lora_A.weight" in lora
    assert "transformer.single_transformer_blocks.0.proj_mlp.lora_A.weight" in lora
    save_file(lora, str(tmp_path / "lora.safetensors"))
    theirs.load_lora_adapter(dict(lora), prefix="transformer", adapter_name="test")
    theirs.set_adapters(["test"], weights=[0.7])
    patched, _ = apply_lora(ours, None, tmp_path / "lora.safetensors", 0.7, 0.0)
    with torch.no_grad():
        ours_out = patched(x, sigma, context)
    expected = diffusers_velocity(theirs, x, sigma, context)
    assert (ours_out - plain).abs().max() > 1e-2
    assert (ours_out - expected).abs().max() <= TOL * expected.abs().max()


def test_chroma_lora_in_comfyui_layout_equals_merged_weights(tmp_path):
    """ComfyUI's own LoRA names (`diffusion_model.` + BFL's module paths) reach Chroma's modules:
    the output equals the model with W + strength * up @ down merged by hand."""
    from safetensors.torch import save_file

    from graphflow.models.lora import apply_lora

    path = write_chroma(tmp_path / "chroma.safetensors", dtype=torch.float32, seed=3)
    ours = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    merged = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    g, lora = torch.Generator().manual_seed(2), {}
    for name in ("double_blocks.1.txt_attn.qkv", "single_blocks.0.linear1", "distilled_guidance_layer.out_proj"):
        weight = merged.unet.get_submodule(name).weight
        down, up = torch.randn(2, weight.shape[1], generator=g) * 0.2, torch.randn(weight.shape[0], 2, generator=g) * 0.2
        lora[f"diffusion_model.{name}.lora_down.weight"], lora[f"diffusion_model.{name}.lora_up.weight"] = down, up
        with torch.no_grad():
            weight += 0.7 * up @ down
    save_file(lora, str(tmp_path / "lora.safetensors"))
    patched, _ = apply_lora(ours, None, tmp_path / "lora.safetensors", 0.7, 0.0)
    x, sigma, context = torch.randn(1, 16, 4, 6, generator=g), torch.tensor([0.6]), torch.randn(1, 5, 192, generator=g)
    with torch.no_grad():
        a, b, plain = patched(x, sigma, context), merged.unet(x, sigma, context), ours(x, sigma, context)
    assert (a - plain).abs().max() > 1e-2 and torch.allclose(a, b, atol=1e-5)


def test_chroma_prompt_weights_pull_towards_pads(tmp_path):
    """(word:w) with the chroma text encoder: empty + (z - empty) * w at the word's tokens, the
    empty reference being <pad>s alone (ComfyUI's PixArt/Chroma T5 drops </s> from it)."""
    from safetensors.torch import load_file
    from transformers import T5EncoderModel, T5TokenizerFast

    from graphflow.models.t5 import TOKENIZER_FILE
    from graphflow.models.text_encoder_files import load_text_encoders
    from graphflow.testing import t5_config, write_flow_text_encoder

    path = write_flow_text_encoder(tmp_path / "t5.safetensors", "t5xxl", dtype=torch.float32)
    clip = load_text_encoders([path], "chroma", device="cpu", dtype=torch.float32)
    context, _ = clip.encode("a (red:1.5) fox")
    t5 = T5EncoderModel(t5_config()).eval()
    t5.load_state_dict(load_file(str(path)), strict=False)
    tokenizer = T5TokenizerFast(tokenizer_file=str(TOKENIZER_FILE))
    ids = tokenizer("a red fox").input_ids
    red = tokenizer("red", add_special_tokens=False).input_ids
    assert ids == tokenizer("a", add_special_tokens=False).input_ids + red + tokenizer("fox").input_ids
    with torch.no_grad():
        z = t5(torch.tensor([ids])).last_hidden_state
        empty = t5(torch.tensor([[0] * len(ids)])).last_hidden_state
    weights = torch.ones(len(ids))
    start = len(tokenizer("a", add_special_tokens=False).input_ids)
    weights[start:start + len(red)] = 1.5
    expected = torch.where(weights[None, :, None] != 1, empty + (z - empty) * weights[None, :, None], z)
    assert torch.allclose(context, expected, atol=1e-4)


def test_chroma_example_workflow(chroma_models):
    """workflows/chroma.json as saved but for its size and steps: the negative prompt counts (cfg 4),
    and T5TokenizerOptions' one pad token changes the picture."""
    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from tests.test_workflows import workflow

    registry = Registry().load_builtin()
    sets = {"6__width": 96, "6__height": 64, "7__steps": 2}

    def run(**more):
        result = Executor(registry).run(workflow("chroma", **sets, **more))
        assert result.ok, json.dumps(result.error, default=str)[:2000]
        return result

    result = run()
    image = result.values["9"][0]
    assert image.shape == (1, 64, 96, 3) and float(image.std()) > 0.01
    assert result.outputs["10"]["images"][0]["filename"].startswith("chroma_")
    assert not torch.equal(run(**{"5__text": "a red cube"}).values["9"][0], image)
    assert not torch.equal(run(**{"3__min_padding": 0}).values["9"][0], image)


def test_skip_layer_guidance_skips_chroma_blocks(tmp_path):
    """SkipLayerGuidanceDiT's block swap reaches Chroma's blocks (they run through `forward`): with
    every block skipped the output is the final layer on the embedded latent alone."""
    from graphflow.sampling.skip_layer_guidance import skipped_blocks

    model = load_diffusion_model(write_chroma(tmp_path / "c.safetensors"), device="cpu", dtype=torch.float32)
    net, cfg = model.unet, chroma_config()
    g = torch.Generator().manual_seed(4)
    x, sigma, context = torch.randn(1, 16, 4, 4, generator=g), torch.tensor([0.4]), torch.randn(1, 3, 192, generator=g)
    with torch.no_grad():
        plain = net(x, sigma, context)
        with skipped_blocks(net, [1], [0]):
            some = net(x, sigma, context)
        with skipped_blocks(net, list(range(cfg.depth)), list(range(cfg.depth_single_blocks))):
            none = net(x, sigma, context)
        mods = net.modulation_vectors(sigma, torch.zeros(1), torch.float32)
        bare = unpack(net.final_layer.modulated(net.img_in(pack(x)), mods[:, -2:-1], mods[:, -1:]), 4, 4)
        assert torch.equal(net(x, sigma, context), plain)  # restored
    assert not torch.allclose(some, plain) and torch.allclose(none, bare, atol=1e-6)
