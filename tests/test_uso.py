"""USO style reference for FLUX (ModelPatchLoader, USOStyleReference) on tiny random weights.

No diffusers (or transformers) reference exists for USO: the projector is checked against a
plain-torch rewrite of ComfyUI's SigLIPMultiFeatProjModel as written here, and the patched FLUX
forward against the unpatched one fed text tokens that txt_in maps onto the style tokens
exactly, which is what ComfyUI's post_input patch amounts to (style tokens first, position ids 0).
"""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.models.clip_vision import ClipVisionOutput
from graphflow.models.flux import Flux
from graphflow.models.uso import load_model_patch, uso_patch
from graphflow.models.weight_files import CheckpointError
from graphflow.testing import (T5_TINY_WIDTH, TEXT_TINY, flow_model_config, random_state, write_clip_vision,
                               write_flow_checkpoint, write_text_encoder, write_uso_projector, write_vae)
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call


def _reference_projector(state: dict, every: torch.Tensor) -> torch.Tensor:
    """ComfyUI's projector written out: per level, a linear over the tokens, SiLU, layer norm over
    the width, projection; levels high (block -2), mid (-11), low (-20) in that order."""
    out = []
    for level, layer in (("high", -2), ("mid", -11), ("low", -20)):
        w = {k[len(f"feature_embedder.{level}_"):]: v for k, v in state.items()
             if k.startswith(f"feature_embedder.{level}_")}
        x = every[:, layer].transpose(1, 2) @ w["embedding_linear.0.weight"].T + w["embedding_linear.0.bias"]
        x = x * torch.sigmoid(x)
        x = x.transpose(1, 2)
        mean, var = x.mean(-1, keepdim=True), x.var(-1, keepdim=True, unbiased=False)
        x = (x - mean) / torch.sqrt(var + 1e-5) * w["layer_norm.weight"] + w["layer_norm.bias"]
        out.append(x @ w["projection.weight"].T + w["projection.bias"])
    return torch.cat(out, dim=1)


def test_projector_matches_a_plain_rewrite(tmp_path):
    path = write_uso_projector(tmp_path / "uso.safetensors", dtype=torch.float32,
                               extra={"other.weight": torch.zeros(3)})  # ComfyUI keeps feature_embedder.* only
    patch = load_model_patch(path, device="cpu", dtype=torch.float32)
    every = torch.randn(2, 20, 16, 64, generator=torch.Generator().manual_seed(0))
    zeros = torch.zeros(2, 16, 64)
    tokens = patch.tokens(ClipVisionOutput(zeros, zeros, every[:, -2], every))
    ref = _reference_projector(load_file(str(path)), every)
    assert tokens.shape == (2, 12, 64) and ref.abs().mean() > 0.1
    torch.testing.assert_close(tokens, ref, atol=1e-5, rtol=0)
    # each level reads its own block: changing block -11 moves the mid tokens only
    moved = every.clone()
    moved[:, -11] += torch.randn(2, 16, 64, generator=torch.Generator().manual_seed(1))
    changed = (patch.tokens(ClipVisionOutput(zeros, zeros, moved[:, -2], moved)) - tokens).abs().amax(dim=(0, 2))
    assert changed[4:8].min() > 1e-3 and changed[:4].max() == 0 and changed[8:].max() == 0


def _tiny_flux() -> Flux:
    flux = Flux(flow_model_config("flux_dev"))
    flux.load_state_dict(random_state({k: tuple(v.shape) for k, v in flux.state_dict().items()}, 5, torch.float32))
    return flux.eval()


def test_flux_forward_with_style_tokens_is_text_tokens_first():
    """FLUX with the patch == FLUX fed, before the prompt, text tokens that txt_in maps onto the
    style tokens (txt_in is affine: solved by least squares), all with position ids 0."""
    from graphflow.models.lora import _shallow

    flux = _tiny_flux()
    gen = torch.Generator().manual_seed(1)
    x, context = torch.randn(2, 16, 6, 4, generator=gen), torch.randn(2, 7, T5_TINY_WIDTH, generator=gen)
    y, sigma = torch.randn(2, TEXT_TINY["clip_l"][0], generator=gen), torch.tensor([0.7, 0.3])
    style = torch.randn(1, 12, 64, generator=gen)
    patched = _shallow(flux)
    patched.post_input_patches = (uso_patch(style),)
    w, b = flux.txt_in.weight.double(), flux.txt_in.bias.double()
    solved = ((style.double() - b) @ torch.linalg.pinv(w).T).float()
    torch.testing.assert_close(flux.txt_in(solved), style, atol=1e-4, rtol=0)  # the tokens are reachable
    with torch.no_grad():
        out = patched(x, sigma, context, y, guidance=torch.tensor([3.5, 3.5]))
        ref = flux(x, sigma, torch.cat([solved.expand(2, -1, -1), context], dim=1), y, guidance=torch.tensor([3.5, 3.5]))
        plain = flux(x, sigma, context, y, guidance=torch.tensor([3.5, 3.5]))
    torch.testing.assert_close(out, ref, atol=2e-4, rtol=0)
    assert (out - plain).abs().max() > 1e-3
    assert flux.post_input_patches == ()  # the shared network is unchanged
    with pytest.raises(ValueError, match="2 reference images for a batch of 3"):
        two = _shallow(flux)
        two.post_input_patches = (uso_patch(style.expand(2, -1, -1)),)
        two(x[:1].expand(3, -1, -1, -1), sigma[:1].expand(3), context[:1].expand(3, -1, -1), y[:1].expand(3, -1))
    with pytest.raises(ValueError, match="attention mask"):
        patched(x, sigma, context, y, attention_mask=torch.zeros(2, 13, 13))


@pytest.fixture
def models(tmp_folders):
    m = tmp_folders.models
    for sub in ("clip_vision", "model_patches", "diffusion_models", "text_encoders"):
        (m / sub).mkdir(parents=True)
    # USO reads SigLIP block -20: a 20-block tiny SigLIP (16 tokens 64 wide)
    write_clip_vision(m / "clip_vision" / "sigclip_tiny.safetensors", "siglip", dtype=torch.float32, num_layers=20)
    write_clip_vision(m / "clip_vision" / "clip_tiny.safetensors", "clip", dtype=torch.float32)
    write_uso_projector(m / "model_patches" / "uso_tiny.safetensors", dtype=torch.float32)
    write_flow_checkpoint(m / "diffusion_models" / "flux.safetensors", "flux_dev", dtype=torch.float32,
                          components=("model",), prefixed=False, seed=4)
    return m


def _graph(cfg: float = 1.0, batch: int = 1) -> dict:
    return {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors",
                                                          "clip_name2": "t5xxl.safetensors", "type": "flux"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "sigclip_tiny.safetensors"}},
        "5": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0x30a0ff}},
        "6": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["4", 0], "image": ["5", 0], "crop": "center"}},
        "7": {"class_type": "ModelPatchLoader", "inputs": {"name": "uso_tiny.safetensors"}},
        "8": {"class_type": "USOStyleReference", "inputs": {"model": ["1", 0], "model_patch": ["7", 0],
                                                            "clip_vision_output": ["6", 0]}},
        "9": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 32, "height": 32, "batch_size": batch}},
        "10": {"class_type": "KSampler", "inputs": {"model": ["8", 0], "positive": ["3", 0], "negative": ["3", 0],
                                                     "latent_image": ["9", 0], "seed": 3, "steps": 2, "cfg": cfg,
                                                     "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
    }


def test_uso_graph_on_flux(builtin_registry, models):
    """ComfyUI's USO graph (CLIPVisionLoader, CLIPVisionEncode, ModelPatchLoader, USOStyleReference,
    KSampler) imports and samples a tiny FLUX; the reference image changes the result, with CFG's two
    sides and a batch of latents too."""
    write_text_encoder(models / "text_encoders" / "t5xxl.safetensors", "t5xxl", seed=1, dtype=torch.float32)
    write_text_encoder(models / "text_encoders" / "clip_l.safetensors", "clip_l", seed=2, dtype=torch.float32)

    def run(graph):
        result = Executor(builtin_registry).run(parse_workflow(json.loads(json.dumps(graph)), builtin_registry),
                                                outputs=["10"])
        assert result.ok, result.error or result.problems
        return result.values["10"][0]["samples"]

    for cfg, batch in ((1.0, 1), (2.0, 2)):
        graph = _graph(cfg, batch)
        styled = run(graph)
        graph["10"]["inputs"]["model"] = ["1", 0]
        plain = run(graph)
        assert styled.shape == plain.shape == (batch, 16, 4, 4)
        assert (styled - plain).abs().max() > 1e-4


def test_refusals(builtin_registry, models):
    write_flow_checkpoint(models / "diffusion_models" / "sd3.safetensors", "sd3_medium", dtype=torch.float32,
                          components=("model",), prefixed=False)
    flux = call(builtin_registry, "LoadDiffusionModel", unet_name="flux.safetensors", weight_dtype="default")
    sd3 = call(builtin_registry, "LoadDiffusionModel", unet_name="sd3.safetensors", weight_dtype="default")
    patch = call(builtin_registry, "LoadModelPatch", name="uso_tiny.safetensors")
    image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(2))
    siglip = call(builtin_registry, "CLIPVisionEncode", image=image, crop="center",
                  clip_vision=call(builtin_registry, "LoadCLIPVision", clip_name="sigclip_tiny.safetensors"))
    clip = call(builtin_registry, "CLIPVisionEncode", image=image, crop="center",
                clip_vision=call(builtin_registry, "LoadCLIPVision", clip_name="clip_tiny.safetensors"))
    assert siglip.all_hidden_states.shape == (1, 20, 16, 64)
    patched = call(builtin_registry, "USOStyleReference", model=flux, model_patch=patch, clip_vision_output=siglip)
    assert len(patched.unet.post_input_patches) == 1 and flux.unet.post_input_patches == ()
    with pytest.raises(NodeInputError, match="needs a FLUX model, got sd3") as info:
        call(builtin_registry, "USOStyleReference", model=sd3, model_patch=patch, clip_vision_output=siglip)
    assert info.value.input == "model"
    with pytest.raises(NodeInputError, match="hidden states of every SigLIP block") as info:
        call(builtin_registry, "USOStyleReference", model=flux, model_patch=patch, clip_vision_output=clip)
    assert info.value.input == "clip_vision_output"
    other = models / "model_patches"
    save_file({"controlnet_blocks.0.y_rms.weight": torch.ones(8), "img_in.weight": torch.ones(8, 64)},
              str(other / "qwen_cnet.safetensors"))
    save_file({"control_all_x_embedder.2-1.weight": torch.ones(8, 8)}, str(other / "zimage_cnet.safetensors"))
    write_vae(other / "a_vae.safetensors")
    for name, kind in (("qwen_cnet", "Qwen-Image DiffSynth block-wise ControlNet"),
                       ("zimage_cnet", "Z-Image Fun ControlNet"), ("a_vae", "no model patch graphflow knows")):
        with pytest.raises(NodeInputError, match=kind) as info:
            call(builtin_registry, "LoadModelPatch", name=f"{name}.safetensors")
        assert info.value.input == "name" and f"{name}.safetensors" in str(info.value)
    assert "put it in models/vae/" in str(info.value)  # the VAE: where it belongs
    with pytest.raises(CheckpointError, match="Wan MultiTalk"):
        save_file({"audio_proj.proj1.weight": torch.ones(4, 4)}, str(other / "multitalk.safetensors"))
        load_model_patch(other / "multitalk.safetensors")
