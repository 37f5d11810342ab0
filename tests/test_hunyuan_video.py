"""HunyuanVideo 1.0: the transformer against diffusers' HunyuanVideoTransformer3DModel on identical
tiny random weights (Tencent's names, as ComfyUI's file holds them, converted by diffusers' own
single-file converter; its hard-coded 3072-wide split of single_blocks.N.linear1 is done here for
the tiny width); detection, loading and ComfyUI's sampling settings (discrete flow shift 7,
multiplier 1000; FluxGuidance's distilled guidance, 6.0 by default; the HunyuanVideo latent).

The VAE (ComfyUI's LDM layout, converted here to diffusers' names) against diffusers'
AutoencoderKLHunyuanVideo. Where they differ: diffusers masks the mid-block attention causally frame
by frame, ComfyUI attends over every frame; graphflow follows ComfyUI, and is checked against
diffusers without that mask (one-frame latents agree either way).
"""

import json
import re

import pytest
import torch
from diffusers import AutoencoderKLHunyuanVideo, HunyuanVideoTransformer3DModel
from diffusers.loaders.single_file_utils import convert_hunyuan_video_transformer_to_diffusers

from graphflow.models.hunyuan_video import HunyuanVideo, hunyuan_video_config_from_state_dict
from graphflow.testing import HUNYUAN_VIDEO_TINY_TEXT_DIM, hunyuan_video_config, hunyuan_video_state
from tests.test_hunyuan_video_text import reference_tokenizer  # noqa: F401 (fixture)

TOL = 1e-4
TEXT = HUNYUAN_VIDEO_TINY_TEXT_DIM
POOLED = hunyuan_video_config().vec_in_dim


def to_diffusers(state, dim):
    rest, split = dict(state), {}
    for k in [k for k in state if ".linear1." in k]:  # q, k, v, MLP rows
        q, kk, v, mlp = rest.pop(k).split([dim, dim, dim, state[k].shape[0] - 3 * dim])
        base, kind = k.replace("single_blocks", "single_transformer_blocks").split(".linear1.")
        split.update({f"{base}.attn.to_q.{kind}": q, f"{base}.attn.to_k.{kind}": kk, f"{base}.attn.to_v.{kind}": v,
                      f"{base}.proj_mlp.{kind}": mlp})
    return {**convert_hunyuan_video_transformer_to_diffusers(rest), **split}


def diffusers_hyv(state):
    c = hunyuan_video_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()})
    theirs = HunyuanVideoTransformer3DModel(
        in_channels=c.in_channels, out_channels=c.out_channels, num_attention_heads=c.num_heads,
        attention_head_dim=c.head_dim, num_layers=c.depth, num_single_layers=c.depth_single_blocks,
        num_refiner_layers=c.refiner_depth, text_embed_dim=c.context_in_dim, pooled_projection_dim=c.vec_in_dim,
        rope_axes_dim=c.axes_dim).eval()
    theirs.load_state_dict(to_diffusers(state, c.hidden_size), strict=True)
    return theirs


def diffusers_velocity(theirs, x, sigma, context, y, guidance, mask=None):
    """diffusers' transformer told the timestep and guidance x 1000, as its pipeline does."""
    mask = torch.ones(context.shape[:2], dtype=torch.long) if mask is None else mask
    with torch.no_grad():
        return theirs(x, sigma * 1000, context, mask, y, guidance=guidance * 1000, return_dict=False)[0]


@pytest.fixture(scope="module")
def hyv_pair():
    state = hunyuan_video_state(seed=3)
    ours = HunyuanVideo(hunyuan_video_config()).eval()
    ours.load_state_dict(state, strict=True)
    return ours, diffusers_hyv(state)


def test_config_from_shapes():
    shapes = {k: tuple(v.shape) for k, v in hunyuan_video_state().items()}
    assert hunyuan_video_config_from_state_dict(shapes) == hunyuan_video_config()
    assert "txt_in.individual_token_refiner.blocks.1.self_attn_qkv.weight" in shapes
    assert shapes["img_in.proj.weight"] == (64, 16, 1, 2, 2)


def test_full_size_defaults():
    """The defaults are HunyuanVideo 1.0's: diffusers' default HunyuanVideoTransformer3DModel has the same
    tensors once converted (12.8B parameters); the config read back from them is the default one."""
    with torch.device("meta"):
        ours, theirs = HunyuanVideo(hunyuan_video_config(scaled_down=False)), HunyuanVideoTransformer3DModel()
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    converted = to_diffusers({k: torch.empty(s, device="meta") for k, s in shapes.items()}, 3072)
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape)
                                                                  for k, v in theirs.state_dict().items()}
    assert 12.8e9 < sum(p.numel() for p in ours.parameters()) < 12.9e9
    cfg = hunyuan_video_config_from_state_dict(shapes)
    assert cfg == hunyuan_video_config(scaled_down=False) and cfg.axes_dim == (16, 56, 56) and cfg.theta == 256


@pytest.mark.parametrize("frames, size", [(3, (6, 8)), (1, (4, 4)), (2, (8, 6))])
def test_matches_diffusers(hyv_pair, frames, size):
    """A batch of two (own sigmas, pooled vectors and guidance), any number of latent frames."""
    ours, theirs = hyv_pair
    g = torch.Generator().manual_seed(frames)
    x, context = torch.randn(2, 16, frames, *size, generator=g), torch.randn(2, 5, TEXT, generator=g)
    y, sigma, guidance = torch.randn(2, POOLED, generator=g), torch.tensor([0.8, 0.25]), torch.tensor([6.0, 1.0])
    with torch.no_grad():
        got = ours(x, sigma, context, y, guidance=guidance)
    want = diffusers_velocity(theirs, x, sigma, context, y, guidance)
    assert got.shape == x.shape and float(want.abs().max()) > 0.1
    assert (got - want).abs().max() < TOL
    with torch.no_grad():  # the guidance is embedded: another value, another velocity
        assert (ours(x, sigma, context, y, guidance=guidance + 2) - got).abs().max() > 1e-3


def test_odd_latent_is_padded_and_cropped(hyv_pair):
    """A 7 x 9 latent is padded circularly to 8 x 10 (ComfyUI's PatchEmbed) and the output cropped back."""
    ours, theirs = hyv_pair
    g = torch.Generator().manual_seed(3)
    x, context = torch.randn(2, 16, 2, 7, 9, generator=g), torch.randn(1, 3, TEXT, generator=g)
    y, sigma, guidance = torch.randn(1, POOLED, generator=g), torch.tensor([.5]), torch.tensor([6.0])
    with torch.no_grad():
        got = ours(x, sigma, context, y, guidance=guidance)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1, 0, 0), mode="circular")
    want = diffusers_velocity(theirs, padded, sigma.expand(2), context.expand(2, -1, -1), y.expand(2, -1),
                              guidance.expand(2))[..., :7, :9]
    assert got.shape == x.shape and (got - want).abs().max() < TOL


def test_text_mask(hyv_pair):
    """Texts of different lengths in one padded batch: text_mask (1 keep) gives what diffusers'
    encoder_attention_mask gives (the refiner's masked mean, masked keys), and each sample what it
    gives alone."""
    ours, theirs = hyv_pair
    g = torch.Generator().manual_seed(4)
    x, context = torch.randn(2, 16, 2, 4, 4, generator=g), torch.randn(2, 6, TEXT, generator=g)
    y, sigma, guidance = torch.randn(2, POOLED, generator=g), torch.tensor([0.7, 0.4]), torch.tensor([6.0, 6.0])
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3])
    with torch.no_grad():
        got = ours(x, sigma, context, y, guidance=guidance, text_mask=mask)
        alone = ours(x[1:], sigma[1:], context[1:, :3], y[1:], guidance=guidance[1:])
    want = diffusers_velocity(theirs, x, sigma, context, y, guidance, mask)
    assert (got - want).abs().max() < TOL and (got[1:] - alone).abs().max() < TOL


def test_bad_inputs_are_refused(hyv_pair):
    ours, _ = hyv_pair
    with pytest.raises(ValueError, match=f"{TEXT}-wide text states.*DualCLIPLoader, type hunyuan_video"):
        ours(torch.zeros(1, 16, 1, 4, 4), torch.tensor([0.5]), torch.zeros(1, 3, 4096))
    with pytest.raises(ValueError, match=r"video latents \[B, 16, frames, h, w\]"):
        ours(torch.zeros(1, 16, 4, 4), torch.tensor([0.5]), torch.zeros(1, 3, TEXT))
    with pytest.raises(ValueError, match="ControlNets"):
        ours(torch.zeros(1, 16, 1, 4, 4), torch.tensor([0.5]), torch.zeros(1, 3, TEXT), control={"input": []})


# -- detection, sampling settings (what every family does: tests/test_flow_families.py) ----------

def comfy_names(key: str) -> str:
    """Tencent's name -> ComfyUI's own module name (its HunyuanVideo.process_unet_state_dict's replacements)."""
    for a, b in (("txt_in.t_embedder.mlp.0.", "txt_in.t_embedder.in_layer."),
                 ("txt_in.t_embedder.mlp.2.", "txt_in.t_embedder.out_layer."),
                 ("txt_in.c_embedder.linear_1.", "txt_in.c_embedder.in_layer."),
                 ("txt_in.c_embedder.linear_2.", "txt_in.c_embedder.out_layer."), ("_mod.linear.", "_mod.lin."),
                 ("_attn_qkv.", "_attn.qkv."), ("mlp.fc1.", "mlp.0."), ("mlp.fc2.", "mlp.2."),
                 ("_attn_q_norm.weight", "_attn.norm.query_norm.scale"),
                 ("_attn_k_norm.weight", "_attn.norm.key_norm.scale"), (".q_norm.weight", ".norm.query_norm.scale"),
                 (".k_norm.weight", ".norm.key_norm.scale"), ("_attn_proj.", "_attn.proj."),
                 (".modulation.linear.", ".modulation.lin."), ("_in.mlp.2.", "_in.out_layer."),
                 ("_in.mlp.0.", "_in.in_layer.")):
        key = key.replace(a, b)
    return key


def test_file_in_comfyui_module_names(tmp_path):
    """A file ComfyUI saved (its own FLUX-like module names under model.diffusion_model.: img_attn.qkv,
    img_mod.lin, time_in.in_layer, ...) is detected and loads the same weights; HunyuanVideo 1.5's
    keys are refused by name."""
    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.flow_architecture import detect_flow_model
    from graphflow.models.weight_files import CheckpointError

    state = hunyuan_video_state(seed=4)
    renamed = {"model.diffusion_model." + comfy_names(k): v for k, v in state.items()}
    assert "model.diffusion_model.double_blocks.0.img_attn.norm.query_norm.scale" in renamed
    assert "model.diffusion_model.time_in.in_layer.weight" in renamed
    save_file(renamed, str(tmp_path / "comfy.safetensors"))
    model = load_diffusion_model(tmp_path / "comfy.safetensors", device="cpu", dtype=torch.float32)
    assert model.arch == "hunyuan_video" and model.unet.config == hunyuan_video_config()
    assert all(torch.equal(model.unet.state_dict()[k], v) for k, v in state.items())
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    with pytest.raises(CheckpointError, match="HunyuanVideo 1.5"):
        detect_flow_model({**shapes, "byt5_in.fc1.weight": (8, 8)})
    from graphflow.models.file_kind import identify

    assert identify({**shapes, "byt5_in.fc1.weight": (8, 8)}).name.startswith("HunyuanVideo 1.5 / HunyuanImage 2.1")


def test_sampling_defaults():
    """ComfyUI's HunyuanVideo latent (scale 0.476986) previews as ComfyUI fits it; a conditioning
    without FluxGuidance is given guidance 6.0 (its extra_conds' default)."""
    from graphflow.models.diffusion_model import DiffusionModel
    from graphflow.sampling.flow_sampling import flow_vectors

    with torch.device("meta"):
        net = HunyuanVideo(hunyuan_video_config())
    model = DiffusionModel(net, "hunyuan_video", "flow")
    fmt = model.latent_format
    assert fmt.scale_factor == 0.476986
    assert fmt.rgb_factors[0] == (-0.0395, -0.0331, 0.0445) and fmt.rgb_bias == (0.0259, -0.0192, -0.0761)
    assert fmt.preview(torch.randn(1, 16, 3, 5)).shape == (1, 3, 5, 3)  # one frame of a video latent
    y, guidance = flow_vectors(model, {}, 2)
    assert y.shape == (2, POOLED) and not y.any() and guidance.tolist() == [6.0, 6.0]
    assert flow_vectors(model, {"guidance": 3.0}, 1)[1].tolist() == [3.0]


# -- sampling through the nodes --------------------------------------------------------------------

def test_ksampler_with_fluxguidance_and_modelsamplingsd3_matches_diffusers(tmp_folders):
    """UNETLoader -> ModelSamplingSD3 5 -> KSampler (euler, simple, 2 steps, cfg 1) on
    EmptyHunyuanLatentVideo (9 frames: 3 latent frames), FluxGuidance 4.5 on a conditioning built
    directly (text states + CLIP-L's pooled vector): Euler steps of diffusers' transformer on the same
    noise (sigmas 1, 5 * 0.5 / (1 + 4 * 0.5), 0), the guidance embedded x 1000."""
    from safetensors.torch import load_file

    from graphflow.models.latent_formats import HUNYUAN_VIDEO
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import write_hunyuan_video
    from tests.test_nodes_image_mask import call

    (tmp_folders.models / "diffusion_models").mkdir()
    path = write_hunyuan_video(tmp_folders.models / "diffusion_models" / "hunyuan_video_t2v_720p_bf16.safetensors",
                               seed=7, dtype=torch.float32, prefixed=True)
    reg = Registry().load_builtin()
    model = call(reg, "LoadDiffusionModel", unet_name="hunyuan_video_t2v_720p_bf16.safetensors",
                 weight_dtype="default")
    model = call(reg, "ModelSamplingSD3", model=model, shift=5.0)
    latent = call(reg, "EmptyHunyuanLatentVideo", width=48, height=32, length=9, batch_size=1)
    g = torch.Generator().manual_seed(8)
    cond, pooled = torch.randn(1, 5, TEXT, generator=g), torch.randn(1, POOLED, generator=g)
    positive = call(reg, "FluxGuidance", conditioning=[(cond, {"pooled_output": pooled})], guidance=4.5)
    out = call(reg, "KSampler", model=model, seed=9, steps=2, cfg=1.0, sampler_name="euler", scheduler="simple",
               positive=positive, negative=[(torch.zeros(1, 5, TEXT), {})], latent_image=latent,
               denoise=1.0)["samples"]
    assert out.shape == (1, 16, 3, 4, 6)

    theirs = diffusers_hyv({k.removeprefix("model.diffusion_model."): v for k, v in load_file(str(path)).items()})
    x = initial_noise(torch.zeros(1, 16, 3, 4, 6), 9)
    sigmas = [1.0, 5 * 0.5 / (1 + 4 * 0.5), 0.0]
    for sigma, following in zip(sigmas, sigmas[1:]):
        v = diffusers_velocity(theirs, x, torch.tensor([sigma]), cond, pooled, torch.tensor([4.5]))
        x = x + (following - sigma) * v
    assert float(x.abs().mean()) > 0.05
    ours = HUNYUAN_VIDEO.process_in(out.float())
    assert float((ours - x).abs().max()) < 1e-4 * float(x.abs().max())


# -- the VAE -----------------------------------------------------------------------------------------

def vae_to_diffusers(state, levels: int):
    """ComfyUI's LDM names -> diffusers' AutoencoderKLHunyuanVideo names (up.N is up_blocks.levels-1-N;
    the mid attention's 1x1x1 convs are Linear)."""
    out = {}
    for k, v in state.items():
        n = re.sub(r"^encoder\.down\.(\d+)\.block\.", r"encoder.down_blocks.\1.resnets.", k)
        n = re.sub(r"^encoder\.down\.(\d+)\.downsample\.", r"encoder.down_blocks.\1.downsamplers.0.", n)
        n = re.sub(r"^decoder\.up\.(\d+)\.block\.", lambda m: f"decoder.up_blocks.{levels - 1 - int(m[1])}.resnets.", n)
        n = re.sub(r"^decoder\.up\.(\d+)\.upsample\.",
                   lambda m: f"decoder.up_blocks.{levels - 1 - int(m[1])}.upsamplers.0.", n)
        n = n.replace(".nin_shortcut.", ".conv_shortcut.").replace("mid.block_1.", "mid_block.resnets.0.")
        n = n.replace("mid.block_2.", "mid_block.resnets.1.").replace("norm_out.", "conv_norm_out.")
        if ".mid.attn_1." in n:
            n = n.replace("mid.attn_1.", "mid_block.attentions.0.").replace(".norm.", ".group_norm.")
            for a, b in ((".q.", ".to_q."), (".k.", ".to_k."), (".v.", ".to_v."), (".proj_out.", ".to_out.0.")):
                n = n.replace(a, b)
            v = v.reshape(v.shape[:2]) if v.ndim == 5 else v
        out[n] = v
    return out


@pytest.fixture
def diffusers_vae(monkeypatch):
    """diffusers' VAE on write_hunyuan_video_vae(seed=4)'s weights, its mid attention unmasked (ComfyUI's)."""
    import diffusers.models.autoencoders.autoencoder_kl_hunyuan_video as module

    from graphflow.testing import hunyuan_video_vae_config, hunyuan_video_vae_state

    cfg = hunyuan_video_vae_config()
    theirs = AutoencoderKLHunyuanVideo(block_out_channels=tuple(cfg.ch * m for m in cfg.ch_mult),
                                       layers_per_block=cfg.num_res_blocks).eval()
    theirs.load_state_dict(vae_to_diffusers(hunyuan_video_vae_state(seed=4), len(cfg.ch_mult)), strict=True)
    causal = module.prepare_causal_attention_mask
    monkeypatch.setattr(module, "prepare_causal_attention_mask",
                        lambda *a, **k: torch.zeros_like(causal(*a, **k)))
    return theirs, causal


def test_vae_loader_decodes_and_encodes_as_diffusers(tmp_folders, diffusers_vae, monkeypatch):
    """VAELoader reads hunyuan_video_vae_bf16.safetensors (ComfyUI's layout); VAEDecode of a video latent
    (3 latent frames -> 9 pictures, a batch of two videos) equals diffusers' AutoencoderKLHunyuanVideo
    without the causal mid-attention mask (with it: only the first frame agrees); VAEEncode of 9 frames
    gives the latent mean [1, 16, 3, h/8, w/8]; a one-frame latent agrees with diffusers' own."""
    import diffusers.models.autoencoders.autoencoder_kl_hunyuan_video as module

    from graphflow.models.file_kind import identify
    from graphflow.models.hunyuan_video_vae import HunyuanVideoVAE
    from graphflow.models.weight_files import WeightFile
    from graphflow.registry import Registry
    from graphflow.testing import hunyuan_video_vae_config, write_hunyuan_video_vae
    from tests.test_nodes_image_mask import call

    theirs, causal = diffusers_vae
    (tmp_folders.models / "vae").mkdir()
    path = write_hunyuan_video_vae(tmp_folders.models / "vae" / "hunyuan_video_vae_bf16.safetensors", seed=4,
                                   dtype=torch.float32)
    with WeightFile(path) as f:
        assert identify(f.shapes).name == "HunyuanVideo video VAE"
    reg = Registry().load_builtin()
    vae = call(reg, "LoadVAE", vae_name="hunyuan_video_vae_bf16.safetensors")
    assert isinstance(vae, HunyuanVideoVAE) and vae.module.config == hunyuan_video_vae_config()
    assert vae.latent_format.name == "hunyuan_video" and (vae.temporal_compression, vae.downscale) == (4, 8)
    z = torch.randn(2, 16, 3, 3, 5, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = ((theirs.decode(z).sample + 1) / 2).clamp(0, 1).permute(0, 2, 3, 4, 1).reshape(18, 24, 40, 3)
    images = call(reg, "VAEDecode", samples={"samples": z}, vae=vae)
    assert images.shape == (18, 24, 40, 3) and float(want.std()) > 0.01
    assert (images - want).abs().max() < TOL
    video = torch.rand(9, 24, 40, 3, generator=torch.Generator().manual_seed(6))
    latent = call(reg, "VAEEncode", pixels=video, vae=vae)["samples"]
    with torch.no_grad():
        mean = theirs.encode(video.permute(3, 0, 1, 2)[None] * 2 - 1).latent_dist.mean
    assert latent.shape == (1, 16, 3, 3, 5) and (latent - mean).abs().max() < TOL
    monkeypatch.setattr(module, "prepare_causal_attention_mask", causal)  # diffusers' own, causal
    with torch.no_grad():
        masked = ((theirs.decode(z).sample + 1) / 2).clamp(0, 1).permute(0, 2, 3, 4, 1).reshape(18, 24, 40, 3)
        one = ((theirs.decode(z[:, :, :1]).sample + 1) / 2).clamp(0, 1).permute(0, 2, 3, 4, 1).reshape(2, 24, 40, 3)
    assert (images - masked).abs().max() > 1e-3
    assert (call(reg, "VAEDecode", samples={"samples": z[:, :, :1]}, vae=vae) - one).abs().max() < TOL


def test_checkpoint_with_its_vae(tmp_path):
    """An all-in-one file (the model under model.diffusion_model., the VAE under vae., as ComfyUI's
    CheckpointSave writes them): CheckpointLoaderSimple gives both, the VAE the file's; file kind checkpoint."""
    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.file_kind import identify
    from graphflow.models.hunyuan_video_vae import HunyuanVideoVAE
    from graphflow.models.weight_files import WeightFile
    from graphflow.testing import hunyuan_video_vae_state

    vae_state = hunyuan_video_vae_state(seed=2)
    save_file({**{"model.diffusion_model." + k: v for k, v in hunyuan_video_state().items()},
               **{"vae." + k: v for k, v in vae_state.items()}}, str(tmp_path / "all.safetensors"))
    ckpt = load_checkpoint(tmp_path / "all.safetensors", device="cpu", dtype=torch.float32)
    assert isinstance(ckpt.model.unet, HunyuanVideo) and isinstance(ckpt.vae, HunyuanVideoVAE) and ckpt.clip is None
    assert all(torch.equal(ckpt.vae.module.state_dict()[k], v) for k, v in vae_state.items())
    assert not any("hunyuan_video_vae" in n for n in ckpt.info.notes)
    with WeightFile(tmp_path / "all.safetensors") as f:
        assert identify(f.shapes).name == "HunyuanVideo 1.0 checkpoint"


def test_vae_decode_tiled(tmp_path):
    """VAEDecodeTiled with ComfyUI's defaults (512 px, 64 frames) on a small video is the plain decode;
    smaller tiles (16 px, 8 frames: 2 latent rows / frames per tile) cut in space and time."""
    from graphflow.models.checkpoint import load_vae
    from graphflow.testing import write_hunyuan_video_vae

    vae = load_vae(write_hunyuan_video_vae(tmp_path / "v.safetensors", dtype=torch.float32), device="cpu",
                   dtype=torch.float32)
    z = torch.randn(1, 16, 5, 4, 4, generator=torch.Generator().manual_seed(5))
    plain = vae.decode(z)
    assert torch.equal(vae.decode_tiled(z), plain) and plain.shape == (17, 32, 32, 3)
    tiled = vae.decode_tiled(z, 16, 8, 8, 4)
    assert tiled.shape == plain.shape and torch.isfinite(tiled).all() and tiled.std() > 0.01
    assert float((tiled - plain).abs().max()) > 1e-3  # cut: the tiles see less of the video
    video = torch.rand(9, 16, 16, 3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(vae.encode_tiled(video), vae.encode(video))
    assert vae.encode_tiled(video, 16, 8, 8, 4).shape == vae.encode(video).shape == (1, 16, 3, 2, 2)


# -- LoRAs -----------------------------------------------------------------------------------------

def test_lora_in_diffusers_layout_matches_diffusers(tmp_path):
    """A PEFT LoRA on every Linear of diffusers' HunyuanVideoTransformer3DModel (`transformer.` + its names,
    q / k / v apart), applied to our model, gives diffusers' output with the adapter."""
    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.lora import apply_lora
    from graphflow.testing import write_hunyuan_video
    from tests.test_flow_lora import random_peft_lora

    model = load_diffusion_model(write_hunyuan_video(tmp_path / "m.safetensors", dtype=torch.float32), device="cpu",
                                 dtype=torch.float32)
    theirs = diffusers_hyv(hunyuan_video_state())
    lora = random_peft_lora(theirs, seed=5)
    assert "transformer.single_transformer_blocks.1.proj_mlp.lora_A.weight" in lora
    assert "transformer.context_embedder.token_refiner.refiner_blocks.0.attn.to_k.lora_B.weight" in lora
    save_file(lora, str(tmp_path / "hyv_peft.safetensors"))
    theirs.load_lora_adapter(dict(lora), prefix="transformer", adapter_name="test")
    theirs.set_adapters(["test"], weights=[0.7])
    patched, _ = apply_lora(model, None, tmp_path / "hyv_peft.safetensors", 0.7, 0.0)
    g = torch.Generator().manual_seed(1)
    x, context = torch.randn(1, 16, 2, 4, 4, generator=g), torch.randn(1, 5, TEXT, generator=g)
    y, sigma, guidance = torch.randn(1, POOLED, generator=g), torch.tensor([.6]), torch.tensor([6.0])
    with torch.no_grad():
        plain, got = model(x, sigma, context, y, guidance=guidance), patched(x, sigma, context, y, guidance=guidance)
    want = diffusers_velocity(theirs, x, sigma, context, y, guidance)
    assert float((got - plain).abs().max()) > 1e-2  # the LoRA does something
    assert float((got - want).abs().max()) < TOL * float(want.abs().max())


@pytest.mark.parametrize("layout", ["tencent", "comfyui"])
def test_lora_in_tencent_and_comfyui_names(tmp_path, layout):
    """diffusion-pipe's LoRAs (`transformer.` + Tencent's names, our module paths) and ComfyUI's own
    (`diffusion_model.` + its FLUX-like names: img_mod.lin, img_mlp.0, time_in.in_layer, txt_in.t_embedder.
    in_layer, ...) patch the weights they name: W + strength * up @ down."""
    from safetensors.torch import save_file

    from graphflow import memory
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.lora import apply_lora
    from graphflow.testing import write_hunyuan_video

    model = load_diffusion_model(write_hunyuan_video(tmp_path / "m.safetensors", dtype=torch.float32), device="cpu",
                                 dtype=torch.float32)
    comfy = {"double_blocks.1.img_mod.linear": "double_blocks.1.img_mod.lin",
             "double_blocks.0.txt_mlp.fc2": "double_blocks.0.txt_mlp.2",
             "double_blocks.0.img_attn_qkv": "double_blocks.0.img_attn.qkv",
             "single_blocks.1.modulation.linear": "single_blocks.1.modulation.lin",
             "single_blocks.0.linear1": "single_blocks.0.linear1", "time_in.mlp.0": "time_in.in_layer",
             "guidance_in.mlp.2": "guidance_in.out_layer", "txt_in.t_embedder.mlp.0": "txt_in.t_embedder.in_layer",
             "txt_in.c_embedder.linear_2": "txt_in.c_embedder.out_layer",
             "txt_in.individual_token_refiner.blocks.1.mlp.fc1": "txt_in.individual_token_refiner.blocks.1.mlp.0",
             "txt_in.individual_token_refiner.blocks.0.self_attn_qkv":
                 "txt_in.individual_token_refiner.blocks.0.self_attn.qkv"}
    weights = dict(model.unet.named_parameters())
    g, lora, want = torch.Generator().manual_seed(3), {}, {}
    for path, comfy_path in comfy.items():
        w = weights[path + ".weight"]
        down, up = torch.randn(2, w.shape[1], generator=g), torch.randn(w.shape[0], 2, generator=g)
        key = f"transformer.{path}" if layout == "tencent" else f"diffusion_model.{comfy_path}"
        lora.update({f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up})
        want[path + ".weight"] = w.detach() + 0.5 * up @ down
    save_file(lora, str(tmp_path / "l.safetensors"))
    patched, _ = apply_lora(model, None, tmp_path / "l.safetensors", 0.5, 0.0)
    got = memory.manager().weights(patched.unet, patched.patches)  # what it runs with
    assert len(patched.patches) == len(comfy)
    for k, v in want.items():
        torch.testing.assert_close(got[k], v, msg=k)


# -- image to video ----------------------------------------------------------------------------------

def test_token_replace_matches_diffusers(monkeypatch):
    """guiding_frame_index 0 (HunyuanImageToVideo "v2 (replace)"): the first latent frame's image tokens
    modulated by timestep 0's embedding, as diffusers' image_condition_type "token_replace" does in every
    block; ComfyUI also modulates them so in the final layer, where diffusers uses the step's vector
    (graphflow follows ComfyUI: checked with diffusers' norm_out given the first frame's vector there).
    On a model without guidance embedding (ComfyUI adds the guidance to the first frame's vector too,
    diffusers not); a batch of two with their own sigmas; without guiding_frame_index the output differs."""
    state = {k: v for k, v in hunyuan_video_state(seed=6).items() if not k.startswith("guidance_in.")}
    cfg = hunyuan_video_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()})
    assert not cfg.guidance_embed
    ours = HunyuanVideo(cfg).eval()
    ours.load_state_dict(state, strict=True)
    theirs = HunyuanVideoTransformer3DModel(
        num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim, num_layers=cfg.depth,
        num_single_layers=cfg.depth_single_blocks, text_embed_dim=cfg.context_in_dim,
        pooled_projection_dim=cfg.vec_in_dim, rope_axes_dim=cfg.axes_dim, guidance_embeds=False,
        image_condition_type="token_replace").eval()
    theirs.load_state_dict(to_diffusers(state, cfg.hidden_size), strict=True)
    g = torch.Generator().manual_seed(7)
    x, context = torch.randn(2, 16, 3, 4, 6, generator=g), torch.randn(2, 5, TEXT, generator=g)
    y, sigma = torch.randn(2, POOLED, generator=g), torch.tensor([0.9, 0.4])
    with torch.no_grad():
        got = ours(x, sigma, context, y, guiding_frame_index=torch.zeros(2))
        plain = ours(x, sigma, context, y)
        native = theirs(x, sigma * 1000, context, torch.ones(2, 5, dtype=torch.long), y, return_dict=False)[0]
        first = theirs.time_text_embed(torch.zeros(2), y)[1]  # diffusers' token_replace_emb
    norm_out = theirs.norm_out.forward
    monkeypatch.setattr(theirs.norm_out, "forward", lambda h, temb: torch.cat(
        [norm_out(h[:, :6], first), norm_out(h[:, 6:], temb)], dim=1))  # 2 x 3 patches in the first frame
    with torch.no_grad():
        want = theirs(x, sigma * 1000, context, torch.ones(2, 5, dtype=torch.long), y, return_dict=False)[0]
    assert (got - want).abs().max() < TOL and (got - plain).abs().max() > 1e-3
    assert (got - native)[:, :, 1:].abs().max() < TOL and (got - native)[:, :, 0].abs().max() > 1e-3


def hyv_i2v_file(path, in_channels: int, seed: int = 11):
    """A tiny HunyuanVideo image-to-video model: img_in takes the latent + `in_channels - 16` extra channels."""
    from safetensors.torch import save_file

    from graphflow.testing import random_state

    state = hunyuan_video_state(seed=seed)
    state["img_in.proj.weight"] = random_state({"w": (64, in_channels, 1, 2, 2)}, seed, torch.float32)["w"]
    save_file(state, str(path))
    return path


@pytest.mark.parametrize("in_channels", [33, 32])
def test_image_to_video_concat(tmp_folders, in_channels):
    """HunyuanImageToVideo "v1 (concat)" -> KSampler (euler, 1 step) on an image-to-video model (33 input
    channels: ComfyUI's HunyuanVideoI2V, [latent, image latent, 1 - mask]; 32: HunyuanVideoSkyreelsI2V,
    [latent, image latent]): the model sees the start image's latent (model space, zero-padded frames)
    and the inverted mask (1 on its latent frame) after the noisy latent; built here by hand."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.latent_formats import HUNYUAN_VIDEO
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import write_hunyuan_video_vae
    from tests.test_nodes_image_mask import call

    (tmp_folders.models / "diffusion_models").mkdir()
    (tmp_folders.models / "vae").mkdir()
    hyv_i2v_file(tmp_folders.models / "diffusion_models" / "i2v.safetensors", in_channels)
    write_hunyuan_video_vae(tmp_folders.models / "vae" / "hyv_vae.safetensors", dtype=torch.float32)
    reg = Registry().load_builtin()
    model = call(reg, "LoadDiffusionModel", unet_name="i2v.safetensors", weight_dtype="default")
    assert model.in_channels == in_channels and model.unet.config.out_channels == 16
    vae = call(reg, "LoadVAE", vae_name="hyv_vae.safetensors")
    g = torch.Generator().manual_seed(8)
    cond, pooled = torch.randn(1, 4, TEXT, generator=g), torch.randn(1, POOLED, generator=g)
    image = torch.rand(1, 20, 36, 3, generator=g)
    positive, latent = call(reg, "HunyuanImageToVideo", positive=[(cond, {"pooled_output": pooled})], vae=vae,
                            width=32, height=16, length=9, batch_size=1, guidance_type="v1 (concat)",
                            start_image=image)
    options = positive[0][1]
    assert latent["samples"].shape == (1, 16, 3, 2, 4) and not latent["samples"].any()
    assert options["concat_latent_image"].shape == (1, 16, 1, 2, 4) and options["concat_mask"][0, 0, :, 0, 0].tolist() \
        == [0.0, 1.0, 1.0]
    out = call(reg, "KSampler", model=model, seed=9, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple",
               positive=positive, negative=[(torch.zeros(1, 4, TEXT), {})], latent_image=latent,
               denoise=1.0)["samples"]
    x = initial_noise(torch.zeros(1, 16, 3, 2, 4), 9)
    image_latent = torch.nn.functional.pad(HUNYUAN_VIDEO.process_in(options["concat_latent_image"]), (0, 0, 0, 0, 0, 2))
    extra = [image_latent] + ([torch.tensor([1.0, 0, 0]).view(1, 1, 3, 1, 1).expand(1, 1, 3, 2, 4)]
                              if in_channels == 33 else [])
    net = load_diffusion_model(tmp_folders.models / "diffusion_models" / "i2v.safetensors", device="cpu",
                               dtype=torch.float32)
    with torch.no_grad():
        v = net(torch.cat([x, *extra], dim=1), torch.tensor([1.0]), cond, pooled, guidance=torch.tensor([6.0]))
    want = x - v
    assert float((HUNYUAN_VIDEO.process_in(out) - want).abs().max()) < 1e-4 * float(want.abs().max())


def test_image_to_video_replace(tmp_folders):
    """HunyuanImageToVideo "v2 (replace)": the start image's latent in the first latent frame, a noise mask
    keeping it (0 there), guiding_frame_index 0 in the positive conditioning, which the sampler passes to
    the model (its first frame's modulation changes the result); the kept frame comes back unchanged."""
    from graphflow.registry import Registry
    from graphflow.testing import write_hunyuan_video, write_hunyuan_video_vae
    from tests.test_nodes_image_mask import call

    (tmp_folders.models / "diffusion_models").mkdir()
    (tmp_folders.models / "vae").mkdir()
    write_hunyuan_video(tmp_folders.models / "diffusion_models" / "v2.safetensors", dtype=torch.float32)
    write_hunyuan_video_vae(tmp_folders.models / "vae" / "hyv_vae.safetensors", dtype=torch.float32)
    reg = Registry().load_builtin()
    model = call(reg, "LoadDiffusionModel", unet_name="v2.safetensors", weight_dtype="default")
    vae = call(reg, "LoadVAE", vae_name="hyv_vae.safetensors")
    g = torch.Generator().manual_seed(8)
    cond, pooled = torch.randn(1, 4, TEXT, generator=g), torch.randn(1, POOLED, generator=g)
    image = torch.rand(1, 16, 32, 3, generator=g)
    positive, latent = call(reg, "HunyuanImageToVideo", positive=[(cond, {"pooled_output": pooled})], vae=vae,
                            width=32, height=16, length=9, batch_size=1, guidance_type="v2 (replace)",
                            start_image=image)
    assert positive[0][1]["guiding_frame_index"] == 0 and "concat_latent_image" not in positive[0][1]
    assert latent["noise_mask"][0, 0, :, 0, 0].tolist() == [0.0, 1.0, 1.0]
    assert torch.equal(latent["samples"][:, :, :1], vae.encode(image)) and not latent["samples"][:, :, 1:].any()
    sample = dict(steps=2, cfg=1.0, sampler_name="euler", scheduler="simple", seed=9, denoise=1.0,
                  negative=[(torch.zeros(1, 4, TEXT), {})], latent_image=latent, model=model)
    out = call(reg, "KSampler", positive=positive, **sample)["samples"]
    plain = call(reg, "KSampler", positive=[(cond, {"pooled_output": pooled})], **sample)["samples"]
    assert torch.allclose(out[:, :, :1], latent["samples"][:, :, :1], atol=1e-5)
    assert float((out - plain)[:, :, 1:].abs().max()) > 1e-4
    with pytest.raises(Exception, match="custom"):
        call(reg, "HunyuanImageToVideo", positive=positive, vae=vae, width=32, height=16, length=9, batch_size=1,
             guidance_type="custom", start_image=image)


def test_text_mask_from_the_conditioning():
    """A conditioning's "attention_mask" [B, T] (ComfyUI's hunyuan_video text encoder gives one when its
    text is padded) reaches the model as its text mask: KSampler's denoiser gives what the model gives
    with text_mask; a mask of another length is refused."""
    from graphflow.models.diffusion_model import DiffusionModel
    from graphflow.sampling.guidance import prepare_conds

    net = HunyuanVideo(hunyuan_video_config()).eval()
    net.load_state_dict(hunyuan_video_state(seed=2), strict=True)
    model = DiffusionModel(net, "hunyuan_video", "flow")
    g = torch.Generator().manual_seed(3)
    x, context, pooled = torch.randn(1, 16, 2, 4, 4, generator=g), torch.randn(1, 6, TEXT, generator=g), \
        torch.randn(1, POOLED, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0]])
    (cond,) = prepare_conds([(context, {"pooled_output": pooled, "attention_mask": mask})], model, x.shape, "cpu")
    assert cond.text_mask.tolist() == mask.float().tolist() and cond.attention_mask is None
    from graphflow.sampling.flow_sampling import FlowDenoiser

    with torch.no_grad():
        got = FlowDenoiser(model)(x, torch.tensor([0.5]), cond.context, cond.y, guidance=cond.guidance,
                                  text_mask=cond.text_mask)
        v = net(x, torch.tensor([0.5]), context[:, :3], pooled, guidance=torch.tensor([6.0]))
    assert (got - (x - 0.5 * v)).abs().max() < TOL
    with pytest.raises(ValueError, match=r"text mask \[B, 6\]"):
        prepare_conds([(context, {"attention_mask": torch.ones(1, 4)})], model, x.shape, "cpu")


# -- ComfyUI's HunyuanVideo graph, prompt to video (workflows/hunyuan_video_t2v.json) --------------

@pytest.fixture
def hyv_models(tmp_folders):
    """The example workflow's files, tiny, under their real names (the text encoder plain in float32
    under the fp8 file's name, so that the numbers compare exactly)."""
    from graphflow.testing import write_hunyuan_video, write_hunyuan_video_vae, write_llava_llama3, write_text_encoder

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir(exist_ok=True)
    write_hunyuan_video(m / "diffusion_models" / "hunyuan_video_t2v_720p_bf16.safetensors", seed=5, dtype=torch.float32)
    write_llava_llama3(m / "text_encoders" / "llava_llama3_fp8_scaled.safetensors", dtype=torch.float32)
    write_text_encoder(m / "text_encoders" / "clip_l.safetensors", "clip_l", dtype=torch.float32)
    write_hunyuan_video_vae(m / "vae" / "hunyuan_video_vae_bf16.safetensors", dtype=torch.float32)
    return tmp_folders


def test_example_workflow_matches_diffusers(hyv_models, reference_tokenizer):
    """workflows/hunyuan_video_t2v.json but for its size, length and steps: DualCLIPLoader's prompt
    states and pooled vector are diffusers' HunyuanVideoPipeline.encode_prompt's (its padding cut), and
    SamplerCustomAdvanced's two Euler steps (shift 7: sigmas 1, 7 * 0.5 / (1 + 6 * 0.5), 0; FluxGuidance
    6, no CFG) equal diffusers' transformer; the video is saved."""
    from safetensors.torch import load_file

    from graphflow.executor import Executor
    from graphflow.models.latent_formats import HUNYUAN_VIDEO
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from tests.test_hunyuan_video_text import _diffusers_pipe
    from tests.test_workflows import workflow

    wf = workflow("hunyuan_video_t2v", **{"45__width": 48, "45__height": 32, "45__length": 5, "17__steps": 2})
    result = Executor(Registry().load_builtin()).run(wf)
    assert result.ok, json.dumps(result.error, default=str)[:2000]
    frames = result.values["73"][0]
    assert frames.shape == (5, 32, 48, 3) and float(frames.std()) > 0.01
    assert result.outputs["74"]["images"][0]["filename"].startswith("hunyuan_video_")

    text = hyv_models.models / "text_encoders"
    pipe = _diffusers_pipe(reference_tokenizer, (text / "llava_llama3_fp8_scaled.safetensors",
                                                 text / "clip_l.safetensors"))
    with torch.no_grad():
        embeds, pooled, mask = pipe.encode_prompt(wf.nodes["44"].inputs["text"], device=torch.device("cpu"),
                                                  dtype=torch.float32)
    embeds = embeds[:, :int(mask.sum())]
    [(context, options)] = result.values["44"][0]
    assert context.shape == embeds.shape and float((context - embeds).abs().max()) < 2e-5
    assert float((options["pooled_output"] - pooled).abs().max()) < 2e-5

    theirs = diffusers_hyv(load_file(str(hyv_models.models / "diffusion_models" /
                                         "hunyuan_video_t2v_720p_bf16.safetensors")))
    x = initial_noise(torch.zeros(1, 16, 2, 4, 6), wf.nodes["25"].inputs["noise_seed"])
    sigmas = [1.0, 7 * 0.5 / (1 + 6 * 0.5), 0.0]
    for sigma, following in zip(sigmas, sigmas[1:]):
        v = diffusers_velocity(theirs, x, torch.tensor([sigma]), embeds, pooled, torch.tensor([6.0]))
        x = x + (following - sigma) * v
    assert float(x.abs().mean()) > 0.05
    ours = HUNYUAN_VIDEO.process_in(result.values["13"][0]["samples"].float())
    assert float((ours - x).abs().max()) < 1e-4 * float(x.abs().max())
