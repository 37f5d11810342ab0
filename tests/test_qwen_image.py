"""Qwen-Image: the MM-DiT against diffusers' QwenImageTransformer2DModel on identical tiny random
weights (ComfyUI's key layout is diffusers' names, so the same tensors load into both, strictly);
the VAE (qwen_image_vae: a Wan 2.1 VAE in Wan's original layout) against diffusers'
AutoencoderKLQwenImage through diffusers' Wan converter; detection, loading and ComfyUI's sampling
settings (ModelType.FLUX: ModelSamplingFlux shift 1.15; Wan 2.1's latent, one frame).

Where ComfyUI and diffusers differ: an odd number of patch rows (or columns) h is centred at
r - h // 2 by ComfyUI and one lower by diffusers' scale_rope; graphflow follows ComfyUI, and is
checked there against diffusers' transformer given ComfyUI's positions (built with diffusers' own
rope_params).
"""

import json

import pytest
import torch
from diffusers import AutoencoderKLQwenImage, QwenImageTransformer2DModel
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

from graphflow.models.qwen_image import QwenImage, qwen_image_config_from_state_dict
from graphflow.testing import QWEN_IMAGE_TINY_JOINT_DIM, qwen_image_config, qwen_image_state
from tests.test_qwen_text import reference_tokenizer  # noqa: F401 (fixture)

TOL = 1e-4
JOINT = QWEN_IMAGE_TINY_JOINT_DIM


def diffusers_qwen(state):
    c = qwen_image_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()})
    theirs = QwenImageTransformer2DModel(patch_size=c.patch_size, in_channels=c.in_channels,
                                         out_channels=c.out_channels, num_layers=c.num_layers,
                                         attention_head_dim=c.head_dim, num_attention_heads=c.num_heads,
                                         joint_attention_dim=c.joint_attention_dim, axes_dims_rope=c.axes_dims).eval()
    theirs.load_state_dict(state, strict=True)
    return theirs


def comfy_positions(theirs):
    """diffusers' rotary module, but with ComfyUI's centring of image patches (r - h // 2), from its
    own rope_params."""
    pe = theirs.pos_embed

    def forward(video_fhw, device=None, max_txt_seq_len=None):
        _, h, w = video_fhw[0] if isinstance(video_fhw, list) else video_fhw
        r, c = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
        axes = (torch.zeros(h * w, dtype=torch.long), r.flatten(), c.flatten())
        vid = torch.cat([pe.rope_params(a, d, pe.theta) for a, d in zip(axes, pe.axes_dim)], dim=1)
        start = max(h // 2, w // 2)
        t = torch.arange(start, start + int(max_txt_seq_len))
        txt = torch.cat([pe.rope_params(t, d, pe.theta) for d in pe.axes_dim], dim=1)
        return vid, txt

    return forward


def diffusers_velocity(theirs, x, sigma, context, mask=None):
    """diffusers' transformer on a [B, 16, H, W] latent (H, W even), packed and unpacked as its pipeline does."""
    b, c, H, W = x.shape
    packed = x.reshape(b, c, H // 2, 2, W // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, H * W // 4, 4 * c)
    with torch.no_grad():
        out = theirs(packed, context, mask, sigma, img_shapes=[(1, H // 2, W // 2)] * b, return_dict=False)[0]
    return out.reshape(b, H // 2, W // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, H, W)


@pytest.fixture(scope="module")
def qwen_pair():
    state = qwen_image_state(seed=3)
    ours = QwenImage(qwen_image_config()).eval()
    ours.load_state_dict(state, strict=True)
    return ours, diffusers_qwen(state)


def test_config_from_shapes():
    shapes = {k: tuple(v.shape) for k, v in qwen_image_state().items()}
    assert qwen_image_config_from_state_dict(shapes) == qwen_image_config()
    assert qwen_image_config().axes_dims == (4, 14, 14)


def test_full_size_defaults():
    """The defaults are Qwen-Image's: diffusers' default QwenImageTransformer2DModel has the same
    shapes (20.4B parameters); the config read back from them is the default one."""
    with torch.device("meta"):
        ours, theirs = QwenImage(qwen_image_config(scaled_down=False)), QwenImageTransformer2DModel()
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert 20.4e9 < sum(p.numel() for p in ours.parameters()) < 20.5e9
    assert shapes["img_in.weight"] == (3072, 64) and shapes["txt_in.weight"] == (3072, 3584)
    cfg = qwen_image_config_from_state_dict(shapes)
    assert cfg == qwen_image_config(scaled_down=False) and cfg.axes_dims == (16, 56, 56) and cfg.num_layers == 60


@pytest.mark.parametrize("size", [(8, 12), (4, 4)])
def test_matches_diffusers(qwen_pair, size):
    """A batch of two (own sigmas), even patch counts: positions agree with diffusers' scale_rope."""
    ours, theirs = qwen_pair
    g = torch.Generator().manual_seed(1)
    x, context = torch.randn(2, 16, *size, generator=g), torch.randn(2, 5, JOINT, generator=g)
    sigma = torch.tensor([0.8, 0.25])
    with torch.no_grad():
        got = ours(x, sigma, context)
    want = diffusers_velocity(theirs, x, sigma, context)
    assert got.shape == x.shape and float(want.abs().max()) > 0.1
    assert (got - want).abs().max() < TOL


def test_comfyui_centring_for_odd_patch_counts(qwen_pair, monkeypatch):
    """10 x 6 latent: 5 x 3 patches. ComfyUI centres them at -2..2 / -1..1 (diffusers' at -3..1 /
    -2..0): ours equals diffusers' transformer given ComfyUI's positions, and differs from its own."""
    ours, theirs = qwen_pair
    g = torch.Generator().manual_seed(2)
    x, context = torch.randn(2, 16, 10, 6, generator=g), torch.randn(2, 4, JOINT, generator=g)
    sigma = torch.tensor([0.6, 0.6])
    native = diffusers_velocity(theirs, x, sigma, context)
    with torch.no_grad():
        got = ours(x, sigma, context)
    monkeypatch.setattr(theirs.pos_embed, "forward", comfy_positions(theirs))
    assert (diffusers_velocity(theirs, x[..., :8, :4], sigma, context)  # the patched rope is diffusers' on even counts
            - QwenImage.forward(ours, x[..., :8, :4], sigma, context).detach()).abs().max() < TOL
    want = diffusers_velocity(theirs, x, sigma, context)
    assert (got - want).abs().max() < TOL
    assert (got - native).abs().max() > 1e-3


def test_odd_latent_is_padded_and_cropped(qwen_pair, monkeypatch):
    """A 7 x 9 latent is padded circularly to 8 x 10 (ComfyUI's pad_to_patch_size) and cropped back."""
    ours, theirs = qwen_pair
    monkeypatch.setattr(theirs.pos_embed, "forward", comfy_positions(theirs))  # 4 x 5 patches: 5 is odd
    g = torch.Generator().manual_seed(3)
    x, context, sigma = torch.randn(2, 16, 7, 9, generator=g), torch.randn(1, 3, JOINT, generator=g), torch.tensor([.5])
    with torch.no_grad():
        got = ours(x, sigma, context)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1), mode="circular")
    want = diffusers_velocity(theirs, padded, sigma.expand(2), context.expand(2, -1, -1))[..., :7, :9]
    assert got.shape == x.shape and (got - want).abs().max() < TOL


def test_text_mask_and_one_frame_latents(qwen_pair):
    """Texts of different lengths in one padded batch: text_mask (1 keep) gives what diffusers'
    encoder_hidden_states_mask gives, and each sample what it gives alone; ComfyUI's one-frame
    latent [B, 16, 1, h, w] gives the same as the image latent."""
    ours, theirs = qwen_pair
    g = torch.Generator().manual_seed(4)
    x, context = torch.randn(2, 16, 8, 8, generator=g), torch.randn(2, 6, JOINT, generator=g)
    sigma = torch.tensor([0.7, 0.4])
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
    with torch.no_grad():
        got = ours(x, sigma, context, text_mask=mask)
        alone = ours(x[1:], sigma[1:], context[1:, :3])
        frames = ours(x[:, :, None], sigma, context, text_mask=mask)
    want = diffusers_velocity(theirs, x, sigma, context, mask)
    assert (got - want).abs().max() < TOL and (got[1:] - alone).abs().max() < TOL
    assert frames.shape == (2, 16, 1, 8, 8) and torch.equal(frames[:, :, 0], got)


def test_bad_inputs_are_refused(qwen_pair):
    ours, _ = qwen_pair
    with pytest.raises(ValueError, match=f"{JOINT}-wide text states.*type qwen_image"):
        ours(torch.zeros(1, 16, 4, 4), torch.tensor([0.5]), torch.zeros(1, 3, 4096))
    with pytest.raises(ValueError, match="16-channel"):
        ours(torch.zeros(1, 4, 4, 4), torch.tensor([0.5]), torch.zeros(1, 3, JOINT))
    with pytest.raises(ValueError, match="one frame"):
        ours(torch.zeros(1, 16, 2, 4, 4), torch.tensor([0.5]), torch.zeros(1, 3, JOINT))


# -- sampling settings (what every family does: tests/test_flow_families.py) -----------------------

def test_modelsamplingauraflow():
    """ModelSamplingAuraFlow (3.1 in ComfyUI's template) on Qwen-Image (ModelSamplingFlux mu 1.15 by
    default): discrete flow, multiplier 1, so the network is still told sigma."""
    from graphflow.models.diffusion_model import DiffusionModel
    from graphflow.registry import Registry
    from graphflow.sampling.flow_sampling import FlowDenoiser, model_sampling_for
    from tests.test_nodes_image_mask import call

    with torch.device("meta"):
        net = QwenImage(qwen_image_config())
    model = DiffusionModel(net, "qwen_image", "flow")
    aura = call(Registry().load_builtin(), "ModelSamplingAuraFlow", model=model, shift=3.1)
    s = model_sampling_for(aura)
    assert (s.kind, s.shift, s.multiplier) == ("shift", 3.1, 1.0)
    assert FlowDenoiser(aura, s).timestep_scale == 1.0


# -- the VAE: qwen_image_vae is a Wan 2.1 VAE ----------------------------------------------------

def test_vae_loader_decodes_and_encodes_as_diffusers(tmp_folders):
    """VAELoader reads qwen_image_vae.safetensors (Wan's original layout); VAEDecode of Qwen-Image's
    image latents [B, 16, h, w] (each a one-frame video, as ComfyUI) and of KSampler's one-frame
    [B, 16, 1, h, w] equal diffusers' AutoencoderKLQwenImage; VAEEncode of an image its latent mean."""
    from safetensors.torch import load_file

    from graphflow.models.wan_vae import WanVAE
    from graphflow.registry import Registry
    from graphflow.testing import write_wan_vae
    from tests.test_nodes_image_mask import call

    (tmp_folders.models / "vae").mkdir()
    path = write_wan_vae(tmp_folders.models / "vae" / "qwen_image_vae.safetensors", dtype=torch.float32)
    theirs = AutoencoderKLQwenImage(base_dim=8, z_dim=16).eval()
    theirs.load_state_dict(convert_wan_vae_to_diffusers(load_file(str(path))), strict=True)
    reg = Registry().load_builtin()
    vae = call(reg, "LoadVAE", vae_name="qwen_image_vae.safetensors")
    assert isinstance(vae, WanVAE) and vae.latent_format.name == "wan21"
    z = torch.randn(2, 16, 3, 5, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = ((theirs.decode(z[:, :, None]).sample[:, :, 0] + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)
    images = call(reg, "VAEDecode", samples={"samples": z}, vae=vae)
    assert images.shape == (2, 24, 40, 3) and float(want.std()) > 0.01
    assert (images - want).abs().max() < TOL
    frames = call(reg, "VAEDecode", samples={"samples": z[:, :, None]}, vae=vae)
    assert (frames - want).abs().max() < TOL
    image = torch.rand(1, 24, 40, 3, generator=torch.Generator().manual_seed(6))
    latent = call(reg, "VAEEncode", pixels=image, vae=vae)["samples"]
    with torch.no_grad():
        mean = theirs.encode(image.permute(0, 3, 1, 2)[:, :, None] * 2 - 1).latent_dist.mean
    assert latent.shape == (1, 16, 1, 3, 5) and (latent - mean).abs().max() < TOL


# -- sampling through the nodes --------------------------------------------------------------------

def test_ksampler_with_modelsamplingauraflow_matches_diffusers(tmp_folders):
    """UNETLoader -> ModelSamplingAuraFlow 3.1 -> KSampler (euler, simple, 2 steps, cfg 2.5) on
    EmptySD3LatentImage, with a conditioning and a shorter negative built directly: the latent is
    sampled as one frame (ComfyUI's [1, 16, 1, h, w]) and equals Euler steps of diffusers'
    transformer on the same noise (sigmas 1, 3.1 * 0.5 / (1 + 2.1 * 0.5), 0)."""
    from safetensors.torch import load_file

    from graphflow.models.latent_formats import WAN21
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import write_qwen_image
    from tests.test_nodes_image_mask import call

    (tmp_folders.models / "diffusion_models").mkdir()
    path = write_qwen_image(tmp_folders.models / "diffusion_models" / "qwen_image_bf16.safetensors",
                            seed=7, dtype=torch.float32, prefixed=True)
    reg = Registry().load_builtin()
    model = call(reg, "LoadDiffusionModel", unet_name="qwen_image_bf16.safetensors", weight_dtype="default")
    model = call(reg, "ModelSamplingAuraFlow", model=model, shift=3.1)
    latent = call(reg, "EmptySD3Latent", width=96, height=64, batch_size=1)
    g = torch.Generator().manual_seed(8)
    cond, uncond = torch.randn(1, 5, JOINT, generator=g), torch.randn(1, 2, JOINT, generator=g)
    cfg = 2.5
    out = call(reg, "KSampler", model=model, seed=9, steps=2, cfg=cfg, sampler_name="euler", scheduler="simple",
               positive=[(cond, {})], negative=[(uncond, {})], latent_image=latent, denoise=1.0)["samples"]
    assert out.shape == (1, 16, 1, 8, 12)

    theirs = diffusers_qwen({k.removeprefix("model.diffusion_model."): v for k, v in load_file(str(path)).items()})
    x = initial_noise(torch.zeros(1, 16, 1, 8, 12), 9)[:, :, 0]
    sigmas = [1.0, 3.1 * 0.5 / (1 + 2.1 * 0.5), 0.0]
    for sigma, following in zip(sigmas, sigmas[1:]):
        s = torch.tensor([sigma])
        v_cond, v_uncond = (diffusers_velocity(theirs, x, s, c) for c in (cond, uncond))
        x = x + (following - sigma) * (v_uncond + cfg * (v_cond - v_uncond))
    assert float(x.abs().mean()) > 0.05
    ours = WAN21.process_in(out[:, :, 0].float())
    assert float((ours - x).abs().max()) < 1e-4 * float(x.abs().max())


# -- LoRAs (ComfyUI's and kohya's names: tests/test_flow_families.py) ----------------------------

def test_lora_in_diffusers_layout_matches_diffusers(tmp_path):
    """A PEFT LoRA on every Linear of diffusers' QwenImageTransformer2DModel (`transformer.` + its
    names: ai-toolkit's, diffusers' own), applied to our model, gives diffusers' output with the
    adapter (our module paths are diffusers' names)."""
    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.lora import apply_lora
    from graphflow.testing import write_qwen_image
    from tests.test_flow_lora import random_peft_lora

    model = load_diffusion_model(write_qwen_image(tmp_path / "m.safetensors", dtype=torch.float32), device="cpu",
                                 dtype=torch.float32)
    theirs = diffusers_qwen(qwen_image_state())
    lora = random_peft_lora(theirs, seed=5)
    assert "transformer.transformer_blocks.1.attn.add_k_proj.lora_A.weight" in lora
    assert "transformer.transformer_blocks.0.img_mlp.net.0.proj.lora_B.weight" in lora
    save_file(lora, str(tmp_path / "qwen_peft.safetensors"))
    theirs.load_lora_adapter(dict(lora), prefix="transformer", adapter_name="test")
    theirs.set_adapters(["test"], weights=[0.7])
    patched, _ = apply_lora(model, None, tmp_path / "qwen_peft.safetensors", 0.7, 0.0)
    g = torch.Generator().manual_seed(1)
    x, context, sigma = torch.randn(1, 16, 4, 8, generator=g), torch.randn(1, 5, JOINT, generator=g), torch.tensor([.6])
    with torch.no_grad():
        plain, got = model(x, sigma, context), patched(x, sigma, context)
    want = diffusers_velocity(theirs, x, sigma, context)
    assert float((got - plain).abs().max()) > 1e-2  # the LoRA does something
    assert float((got - want).abs().max()) < TOL * float(want.abs().max())


def test_ksampler_batch_of_two(tmp_folders):
    """EmptySD3LatentImage batch 2: [2, 16, 1, h, w] sampled; the first image equals the one sampled
    alone (ComfyUI's noise: one stream over the batch), the second differs."""
    from graphflow.registry import Registry
    from graphflow.testing import write_qwen_image
    from tests.test_nodes_image_mask import call

    (tmp_folders.models / "diffusion_models").mkdir()
    write_qwen_image(tmp_folders.models / "diffusion_models" / "q.safetensors", dtype=torch.float32)
    reg = Registry().load_builtin()
    model = call(reg, "LoadDiffusionModel", unet_name="q.safetensors", weight_dtype="default")
    cond = [(torch.randn(1, 4, JOINT, generator=torch.Generator().manual_seed(1)), {})]
    outs = [call(reg, "KSampler", model=model, seed=3, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple",
                 positive=cond, negative=cond, denoise=1.0,
                 latent_image=call(reg, "EmptySD3Latent", width=64, height=32, batch_size=n))["samples"]
            for n in (1, 2)]
    assert outs[1].shape == (2, 16, 1, 4, 8)
    assert torch.allclose(outs[1][:1], outs[0], atol=1e-5) and not torch.allclose(outs[1][0], outs[1][1])


# -- ComfyUI's Qwen-Image graph, prompt to picture (workflows/qwen_image.json) ----------------------

@pytest.fixture
def qwen_models(tmp_folders, tmp_path):
    """The example workflow's files, tiny, under their real names: the diffusion model, the text
    encoder plain (for the numeric check) and in ComfyUI's scaled fp8 (the workflow's file), the VAE."""
    from graphflow.testing import write_qwen25vl, write_qwen_image, write_scaled_fp8, write_wan_vae

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir(exist_ok=True)
    write_qwen_image(m / "diffusion_models" / "qwen_image_fp8_e4m3fn.safetensors", seed=5, dtype=torch.float32)
    plain = write_qwen25vl(m / "text_encoders" / "qwen_2.5_vl_7b.safetensors", vision=False)
    write_scaled_fp8(plain, m / "text_encoders" / "qwen_2.5_vl_7b_fp8_scaled.safetensors", prefixes=("model.",))
    write_wan_vae(m / "vae" / "qwen_image_vae.safetensors", dtype=torch.float32)
    return tmp_folders


def test_example_workflow_matches_diffusers(qwen_models, reference_tokenizer):
    """workflows/qwen_image.json but for its size, steps and (plain) text encoder file: the prompt
    and the empty negative are diffusers' QwenImagePipeline embeddings, and two Euler CFG steps
    (ModelSamplingAuraFlow 3.1: sigmas 1, 3.1 * 0.5 / (1 + 2.1 * 0.5), 0) equal diffusers' transformer."""
    from safetensors.torch import load_file

    from graphflow.executor import Executor
    from graphflow.models.latent_formats import WAN21
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from tests.test_qwen_text import diffusers_prompt_embeds
    from tests.test_workflows import workflow

    wf = workflow("qwen_image", **{"6__width": 64, "6__height": 64, "7__steps": 2,
                                   "2__clip_name": "qwen_2.5_vl_7b.safetensors"})
    result = Executor(Registry().load_builtin()).run(wf)
    assert result.ok, json.dumps(result.error, default=str)[:2000]
    image = result.values["9"][0]
    assert image.shape == (1, 64, 64, 3) and float(image.std()) > 0.01
    assert result.outputs["10"]["images"][0]["filename"].startswith("qwen_image_")

    text_file = qwen_models.models / "text_encoders" / "qwen_2.5_vl_7b.safetensors"
    states = [diffusers_prompt_embeds(text_file, reference_tokenizer, wf.nodes[n].inputs["text"]) for n in ("4", "5")]
    for node, want in zip(("4", "5"), states):
        [(got, _)] = result.values[node][0]
        assert got.shape == want.shape and float((got - want).abs().max()) < 2e-5

    theirs = diffusers_qwen(load_file(str(qwen_models.models / "diffusion_models" /
                                          "qwen_image_fp8_e4m3fn.safetensors")))
    cfg = wf.nodes["7"].inputs["cfg"]
    x = initial_noise(torch.zeros(1, 16, 1, 8, 8), wf.nodes["7"].inputs["seed"])[:, :, 0]
    sigmas = [1.0, 3.1 * 0.5 / (1 + 2.1 * 0.5), 0.0]
    for sigma, following in zip(sigmas, sigmas[1:]):
        v_cond, v_uncond = (diffusers_velocity(theirs, x, torch.tensor([sigma]), c) for c in states)
        x = x + (following - sigma) * (v_uncond + cfg * (v_cond - v_uncond))
    ours = WAN21.process_in(result.values["7"][0]["samples"][:, :, 0].float())
    assert float(x.abs().mean()) > 0.05
    assert float((ours - x).abs().max()) < 1e-4 * float(x.abs().max())


def test_example_workflow_as_saved(qwen_models):
    """The workflow's own files (the scaled fp8 text encoder) at a small size: the prompt, the
    negative prompt and the shift each change the picture."""
    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from tests.test_workflows import workflow

    registry = Registry().load_builtin()

    def picture(**more):
        result = Executor(registry).run(workflow("qwen_image", **{"6__width": 64, "6__height": 32, "7__steps": 2},
                                                 **more))
        assert result.ok, json.dumps(result.error, default=str)[:2000]
        return result.values["9"][0]

    image = picture()
    assert image.shape == (1, 32, 64, 3) and float(image.std()) > 0.01
    assert not torch.equal(picture(**{"4__text": "a red cube"}), image)
    assert not torch.equal(picture(**{"5__text": "blurry"}), image)
    assert not torch.equal(picture(**{"3__shift": 1.0}), image)
