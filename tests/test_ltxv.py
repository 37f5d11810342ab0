"""LTX-Video against diffusers on identical tiny random weights.

Oracle path: random weights in Lightricks' single-file layout (`model.diffusion_model.*`,
`vae.*`) go through diffusers' own single-file converters
(`convert_ltx_transformer_checkpoint_to_diffusers`, ...) into diffusers' models, loaded strictly;
our models load the same tensors as they are. A different layout or architecture fails the
strict load or the comparison.
"""

import functools
import json
import math

import pytest
import torch
from diffusers import LTXVideoTransformer3DModel
from diffusers.loaders.single_file_utils import convert_ltx_transformer_checkpoint_to_diffusers

from graphflow.models.ltxv import LTXV, LTXVConfig, ltxv_config_from_state_dict
from tests.test_nodes_image_mask import call

TOL = 1e-4


@functools.lru_cache(maxsize=1)
def registry():
    from graphflow.registry import Registry

    return Registry().load_builtin()


def random_state(module: torch.nn.Module, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) * 0.3 for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def transformer_pair():
    cfg = LTXVConfig(in_channels=8, hidden_size=32, num_heads=4, depth=2, cross_attention_dim=32,
                     caption_channels=24, mlp_hidden=128)
    ours = LTXV(cfg).eval()
    state = random_state(ours, 0)
    ours.load_state_dict(state)
    theirs = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
        num_layers=2, caption_channels=24).eval()
    converted = convert_ltx_transformer_checkpoint_to_diffusers(
        {f"model.diffusion_model.{k}": v.clone() for k, v in state.items()})
    theirs.load_state_dict(converted, strict=True)
    return cfg, ours, theirs, state


@pytest.mark.parametrize("frame_rate", [25.0, 12.5])
def test_transformer_matches_diffusers(transformer_pair, frame_rate):
    cfg, ours, theirs, _ = transformer_pair
    gen = torch.Generator().manual_seed(1)
    b, f, h, w = 2, 3, 2, 4
    x = torch.randn(b, 8, f, h, w, generator=gen)
    context = torch.randn(b, 5, 24, generator=gen)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    sigma = torch.tensor([0.9, 0.3])
    with torch.no_grad():
        got = ours(x, sigma, context, attention_mask=mask, frame_rate=frame_rate)
        tokens = x.flatten(2).transpose(1, 2)
        want = theirs(tokens, context, sigma * 1000, mask, num_frames=f, height=h, width=w,
                      rope_interpolation_scale=(8 / frame_rate, 32, 32), return_dict=False)[0]
    want = want.transpose(1, 2).reshape(x.shape)
    assert (got - want).abs().max() < TOL
    assert got.abs().max() > 0.1  # not trivially zero


def test_frame_rate_moves_only_time_positions(transformer_pair):
    _, ours, _, _ = transformer_pair
    gen = torch.Generator().manual_seed(2)
    x, context = torch.randn(1, 8, 3, 2, 2, generator=gen), torch.randn(1, 4, 24, generator=gen)
    one_frame = x[:, :, :1]
    with torch.no_grad():
        a, b = (ours(x, torch.tensor([0.5]), context, frame_rate=r) for r in (25.0, 10.0))
        c, d = (ours(one_frame, torch.tensor([0.5]), context, frame_rate=r) for r in (25.0, 10.0))
    assert (a - b).abs().max() > 1e-3  # later frames sit elsewhere in time
    assert (c - d).abs().max() < 1e-6  # a single frame sits at time 0 whatever the rate


def test_per_token_sigma_equals_batched_sigma(transformer_pair):
    _, ours, _, _ = transformer_pair
    gen = torch.Generator().manual_seed(3)
    x, context = torch.randn(1, 8, 2, 2, 2, generator=gen), torch.randn(1, 4, 24, generator=gen)
    with torch.no_grad():
        whole = ours(x, torch.tensor([0.7]), context)
        per_token = ours(x, torch.full((1, 8), 0.7), context)
    # outputs reach |28|, where float32's spacing is 4e-6: the two paths round differently by a few steps
    torch.testing.assert_close(per_token, whole, rtol=2e-6, atol=1e-5)


def test_config_from_shapes(transformer_pair):
    cfg, _, _, state = transformer_pair
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert ltxv_config_from_state_dict(shapes, num_heads=4) == cfg


# -- the video VAE ------------------------------------------------------------------------------

from diffusers import AutoencoderKLLTXVideo  # noqa: E402
from diffusers.loaders.single_file_utils import convert_ltx_vae_checkpoint_to_diffusers  # noqa: E402

from graphflow.models.ltxv_vae import LTXVideoVAE, LTXVVAEConfig, ltxv_vae_config_from_state_dict  # noqa: E402

TINY_VAE = LTXVVAEConfig(
    encoder_blocks=(("res_x", 1), ("compress_all", 0), ("res_x_y", 16), ("res_x", 1), ("compress_all", 0),
                    ("res_x_y", 24), ("res_x", 1), ("compress_all", 0), ("res_x", 1), ("res_x", 1)),
    decoder_blocks=(("res_x", 1), ("res_x", 1), ("compress_all", 0), ("res_x", 1), ("res_x_y", 16),
                    ("compress_all", 0), ("res_x", 1), ("res_x_y", 8), ("compress_all", 0), ("res_x", 1)),
    encoder_channels=8, decoder_channels=24, latent_channels=6)


def vae_state(cfg: LTXVVAEConfig, seed: int) -> dict:
    """Random weights in Lightricks' layout, with the statistics the file carries."""
    state = random_state(LTXVideoVAE(cfg), seed)
    gen = torch.Generator().manual_seed(seed + 1)
    c = cfg.latent_channels
    state["per_channel_statistics.mean-of-means"] = torch.randn(c, generator=gen) * 0.2
    state["per_channel_statistics.std-of-means"] = torch.rand(c, generator=gen) + 0.5
    state["per_channel_statistics.channel"] = torch.arange(c).float()
    state["per_channel_statistics.mean-of-stds"] = torch.rand(c, generator=gen)
    return state


@pytest.fixture(scope="module")
def vae_pair():
    state = vae_state(TINY_VAE, 10)
    ours = LTXVideoVAE(TINY_VAE).eval()
    ours.load_state_dict(state)
    theirs = AutoencoderKLLTXVideo(
        latent_channels=6, block_out_channels=(8, 16, 24, 24), decoder_block_out_channels=(8, 16, 24, 24),
        layers_per_block=(1, 1, 1, 1, 1), decoder_layers_per_block=(1, 1, 1, 1, 1)).eval()
    converted = convert_ltx_vae_checkpoint_to_diffusers({f"vae.{k}": v.clone() for k, v in state.items()})
    theirs.load_state_dict(converted, strict=True)
    return ours, theirs, state


def test_vae_config_from_shapes(vae_pair):
    _, _, state = vae_pair
    assert ltxv_vae_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()}) == TINY_VAE


def test_vae_encode_matches_diffusers(vae_pair):
    ours, theirs, _ = vae_pair
    x = torch.rand(1, 3, 9, 64, 96, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        got = ours.encode(x)
        mean = theirs.encode(x).latent_dist.mode()
        want = (mean - theirs.latents_mean[:, None, None, None]) / theirs.latents_std[:, None, None, None]
    assert got.shape == (1, 6, 2, 2, 3)
    assert (got - want).abs().max() < TOL


def test_vae_decode_matches_diffusers(vae_pair):
    ours, theirs, _ = vae_pair
    z = torch.randn(2, 6, 2, 2, 3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        got = ours.decode(z)
        raw = z * theirs.latents_std[:, None, None, None] + theirs.latents_mean[:, None, None, None]
        want = theirs.decode(raw).sample
    assert got.shape == (2, 3, 9, 64, 96)
    assert (got - want).abs().max() < TOL


def test_vae_socket_frames_are_an_image_batch(vae_pair):
    from graphflow.models.ltxv_vae import LTXVVAE

    ours, _, _ = vae_pair
    vae = LTXVVAE(ours)
    frames = torch.rand(11, 70, 96, 3, generator=torch.Generator().manual_seed(6))
    latent = vae.encode(frames)  # 11 frames -> the first 9; 70 rows -> 64, centred
    assert latent.shape == (1, 6, 2, 2, 3)
    with torch.no_grad():
        want = ours.encode(frames[:9, 3:67].permute(3, 0, 1, 2)[None] * 2 - 1)
    assert (latent - want).abs().max() < 1e-5
    images = vae.decode(torch.cat([latent, latent]))
    assert images.shape == (18, 64, 96, 3) and 0 <= images.min() and images.max() <= 1
    assert (images[:9] - images[9:]).abs().max() < 1e-6
    with pytest.raises(ValueError, match=r"video latents \[B, 6, frames, h, w\]"):
        vae.decode(torch.zeros(1, 6, 4, 4))


# -- the scheduler and the shift against their closed forms --------------------------------------

def ltxv_closed_form(steps, max_shift, base_shift, stretch, terminal, tokens):
    """ComfyUI's LTXVScheduler written out in float64."""
    import math as m
    mu = tokens * (max_shift - base_shift) / 3072 + base_shift - 1024 * (max_shift - base_shift) / 3072
    sig = [m.exp(mu) / (m.exp(mu) + 1 / t - 1) if t > 0 else 0.0 for t in [1 - k / steps for k in range(steps + 1)]]
    if stretch:
        last = 1 - [s for s in sig if s != 0][-1]
        sig = [1 - (1 - s) * (1 - terminal) / last if s != 0 else 0.0 for s in sig]
    return torch.tensor(sig, dtype=torch.float64), mu


@pytest.mark.parametrize("steps,stretch,terminal,frames",
                         [(20, True, 0.1, 13), (7, False, 0.1, 2), (5, True, 0.3, None)])
def test_ltxv_scheduler_closed_form(steps, stretch, terminal, frames):
    latent = None if frames is None else {"samples": torch.zeros(1, 128, frames, 16, 24)}
    tokens = 4096 if frames is None else frames * 16 * 24
    got = call(registry(), "LTXVScheduler", steps=steps, max_shift=2.05, base_shift=0.95, stretch=stretch,
               terminal=terminal, latent=latent)
    want, _ = ltxv_closed_form(steps, 2.05, 0.95, stretch, terminal, tokens)
    assert got.shape == (steps + 1,) and got[-1] == 0
    assert torch.allclose(got.double(), want, atol=1e-6)
    if stretch:
        assert abs(float(got[-2]) - terminal) < 1e-6


def test_model_sampling_ltxv_shift():
    from graphflow.models.diffusion_model import DiffusionModel
    from graphflow.sampling.flow_sampling import model_sampling_for
    from graphflow.testing import ltxv_configs

    with torch.device("meta"):
        net = LTXV(ltxv_configs()[0])
    model = DiffusionModel(net, "ltxv", "flow")
    assert model_sampling_for(model).shift == pytest.approx(2.37)  # ComfyUI's LTXV sampling_settings
    latent = {"samples": torch.zeros(1, 128, 4, 8, 12)}
    patched = call(registry(), "ModelSamplingLTXV", model=model, max_shift=2.05, base_shift=0.95, latent=latent)
    _, mu = ltxv_closed_form(1, 2.05, 0.95, False, 0.1, 4 * 8 * 12)
    schedule = model_sampling_for(patched)
    assert schedule.shift == pytest.approx(mu) and schedule.kind == "flux"
    t = torch.tensor([0.3, 0.8])
    assert torch.allclose(schedule.sigma(t), math.exp(mu) / (math.exp(mu) + 1 / t - 1))
    with pytest.raises(Exception, match="expected a LATENT"):
        call(registry(), "ModelSamplingLTXV", model=model, max_shift=2.05, base_shift=0.95,
             latent={"noise_mask": torch.zeros(1, 4, 8, 8)})


# -- a ComfyUI graph end to end ------------------------------------------------------------------

@pytest.fixture
def ltxv_models(tmp_folders):
    from graphflow.testing import write_flow_text_encoder, write_ltxv_checkpoint

    m = tmp_folders.models
    for sub in ("checkpoints", "text_encoders"):
        (m / sub).mkdir()
    write_ltxv_checkpoint(m / "checkpoints" / "ltx-video-2b-v0.9.safetensors", dtype=torch.float32, seed=3)
    write_flow_text_encoder(m / "text_encoders" / "t5xxl_fp16.safetensors", "t5xxl", dtype=torch.float32, seed=1)
    return tmp_folders


def ltxv_graph(cfg_scale: float, frame_rate: float) -> dict:
    """ComfyUI's LTX-Video text-to-video example in API format (shrunk: 64x64, 9 frames, 2 steps)."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "ltx-video-2b-v0.9.safetensors"}},
        "2": {"class_type": "CLIPLoader", "inputs": {"clip_name": "t5xxl_fp16.safetensors", "type": "ltxv",
                                                     "device": "default"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a boat on a lake at dawn", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["2", 0]}},
        "5": {"class_type": "LTXVConditioning", "inputs": {"positive": ["3", 0], "negative": ["4", 0],
                                                           "frame_rate": frame_rate}},
        "6": {"class_type": "EmptyLTXVLatentVideo", "inputs": {"width": 64, "height": 64, "length": 9,
                                                               "batch_size": 1}},
        "7": {"class_type": "LTXVScheduler", "inputs": {"steps": 2, "max_shift": 2.05, "base_shift": 0.95,
                                                        "stretch": True, "terminal": 0.1, "latent": ["6", 0]}},
        "8": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "9": {"class_type": "SamplerCustom", "inputs": {"model": ["1", 0], "add_noise": True, "noise_seed": 7,
                                                        "cfg": cfg_scale, "positive": ["5", 0], "negative": ["5", 1],
                                                        "sampler": ["8", 0], "sigmas": ["7", 0],
                                                        "latent_image": ["6", 0]}},
        "10": {"class_type": "VAEDecode", "inputs": {"samples": ["9", 0], "vae": ["1", 2]}},
        "11": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["10", 0], "filename_prefix": "ltxv",
                                                            "fps": frame_rate, "lossless": False, "quality": 80,
                                                            "method": "default"}},
    }


def oracle(models):
    """(diffusers' transformer on the checkpoint's weights, prompt -> transformers' T5 output)."""
    from safetensors.torch import load_file
    from transformers import T5EncoderModel, T5TokenizerFast

    from graphflow.models.t5 import TOKENIZER_FILE
    from graphflow.testing import ltxv_configs, t5_config

    state = load_file(str(models.models / "checkpoints" / "ltx-video-2b-v0.9.safetensors"))
    cfg = ltxv_configs()[0]
    theirs = LTXVideoTransformer3DModel(
        in_channels=128, out_channels=128, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        cross_attention_dim=cfg.cross_attention_dim, num_layers=cfg.depth, caption_channels=cfg.caption_channels).eval()
    theirs.load_state_dict(convert_ltx_transformer_checkpoint_to_diffusers(
        {k: v for k, v in state.items() if k.startswith("model.diffusion_model.")}), strict=True)
    t5 = T5EncoderModel(t5_config()).eval()
    t5.load_state_dict(load_file(str(models.models / "text_encoders" / "t5xxl_fp16.safetensors")), strict=False)
    tokenizer = T5TokenizerFast(tokenizer_file=str(TOKENIZER_FILE))

    def text(prompt):
        with torch.no_grad():
            return t5(torch.tensor([tokenizer(prompt).input_ids])).last_hidden_state

    return theirs, text


def diffusers_velocity(theirs, x, timestep, context, rate):
    """timestep [1] or per token [1, F*H*W] (x1000), x [1, 128, F, H, W]."""
    tokens = x.flatten(2).transpose(1, 2)
    with torch.no_grad():
        v = theirs(tokens, context, timestep, None, num_frames=x.shape[2], height=x.shape[3], width=x.shape[4],
                   rope_interpolation_scale=(8 / rate, 32, 32), return_dict=False)[0]
    return v.transpose(1, 2).reshape(x.shape)


def test_ltxv_comfyui_graph_runs_and_matches_diffusers(ltxv_models):
    from graphflow.executor import Executor
    from graphflow.sampling.noise import initial_noise
    from graphflow.workflow import parse_workflow

    cfg_scale, frame_rate = 3.0, 24.0
    reg = registry()
    result = Executor(reg).run(parse_workflow(json.loads(json.dumps(ltxv_graph(cfg_scale, frame_rate))), reg),
                               outputs=["11", "7"])
    assert result.ok, json.dumps(result.error, default=str)[:3000]
    assert len(list(ltxv_models.outputs.rglob("ltxv*.webp"))) == 1
    frames = result.values["10"][0]
    assert frames.shape == (9, 64, 64, 3) and float(frames.std()) > 0.01

    # the schedule: 2 steps stretched to end at the terminal 0.1
    sigmas = result.values["7"][0]
    assert torch.allclose(sigmas, torch.tensor([1.0, 0.1, 0.0]), atol=1e-6)

    # the oracle: diffusers' transformer on the file's weights (through its own converter), T5
    # from transformers on the prompt's ids, two Euler steps with CFG from the same noise
    theirs, text = oracle(ltxv_models)
    cond, uncond = text("a boat on a lake at dawn"), text("blurry")

    def velocity(x, sigma, context, rate):
        return diffusers_velocity(theirs, x, torch.tensor([sigma * 1000.0]), context, rate)

    def two_steps(rate):
        x = initial_noise(torch.zeros(1, 128, 2, 2, 2), 7)
        for sigma, sigma_next in ((1.0, 0.1), (0.1, 0.0)):
            v_cond, v_uncond = velocity(x, sigma, cond, rate), velocity(x, sigma, uncond, rate)
            x = x + (v_uncond + cfg_scale * (v_cond - v_uncond)) * (sigma_next - sigma)
        return x

    x = two_steps(frame_rate)
    ours = result.values["9"][0]["samples"]
    assert ours.shape == (1, 128, 2, 2, 2)
    assert float((ours - x).abs().max()) < 1e-4 * float(x.abs().max())
    # the frame rate reached the model: at ComfyUI's default 25 the result differs
    assert float((ours - two_steps(25.0)).abs().max()) > 1e-2 * float(x.abs().max())


def test_video_latents_refused_where_they_do_not_fit(ltxv_models):
    """A mask of other frames than the latent's: a clear error. An image latent in LTX-Video's
    sampler is one frame, and a noise mask of fewer dims one video of its entries as frames, as
    ComfyUI's fix_empty_latent_channels / reshape_mask make them."""
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.sampling.pipeline import sample

    ckpt = load_checkpoint(ltxv_models.models / "checkpoints" / "ltx-video-2b-v0.9.safetensors", device="cpu",
                           dtype=torch.float32)
    cond = [(torch.zeros(1, 3, ckpt.model.unet.config.caption_channels), {})]
    video = sample(ckpt.model, 0, 1, 1.0, "euler", "simple", cond, cond, {"samples": torch.zeros(1, 128, 1, 2, 2)})
    image = sample(ckpt.model, 0, 1, 1.0, "euler", "simple", cond, cond, {"samples": torch.zeros(1, 128, 2, 2)})
    assert torch.equal(image["samples"], video["samples"])
    start = torch.randn(1, 128, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    five = sample(ckpt.model, 0, 2, 1.0, "euler", "simple", cond, cond,
                  {"samples": start, "noise_mask": mask.reshape(1, 1, 1, 2, 2)})
    three = sample(ckpt.model, 0, 2, 1.0, "euler", "simple", cond, cond,
                   {"samples": start, "noise_mask": mask.reshape(1, 2, 2)})
    assert torch.equal(three["samples"], five["samples"])
    torch.testing.assert_close(five["samples"][..., 0, 1], start[..., 0, 1])  # the known pixels kept
    with pytest.raises(ValueError, match=r"one per latent frame \[1, H, W\], got shape \(1, 3, 2, 2\)"):
        mask = [(cond[0][0], {"mask": torch.ones(3, 2, 2)})]  # 3 mask frames for 1 latent frame
        sample(ckpt.model, 0, 1, 1.0, "euler", "simple", mask, cond, {"samples": torch.zeros(1, 128, 1, 2, 2)})
    area = [(cond[0][0], {"area": (1, 1, 0, 0)})]  # an image area: every frame (tests/test_video_areas.py)
    out = sample(ckpt.model, 0, 1, 1.0, "euler", "simple", area, cond, {"samples": torch.zeros(1, 128, 1, 2, 2)})
    assert out["samples"].shape == (1, 128, 1, 2, 2)
    out = sample(ckpt.model, 0, 1, 1.0, "euler", "simple", cond, cond, {"samples": torch.zeros(1, 128, 1, 2, 2)})
    assert out["samples"].shape == (1, 128, 1, 2, 2)


def test_ltxv_image_to_video_graph_matches_diffusers(ltxv_models):
    """LTXVImgToVideo: the picture is the first latent frame, kept by the noise mask; the model
    is told timestep 0 for its tokens and the step's for the others (diffusers' per-token
    timesteps as the oracle), the known frame set to the clean latent before each call."""
    from PIL import Image

    from graphflow.executor import Executor
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.sampling.noise import initial_noise
    from graphflow.workflow import parse_workflow

    picture = (torch.rand(64, 80, 3, generator=torch.Generator().manual_seed(9)) * 255).byte().numpy()
    Image.fromarray(picture).save(ltxv_models.inputs / "start.png")
    graph = ltxv_graph(3.0, 25.0)
    graph["12"] = {"class_type": "LoadImage", "inputs": {"image": "start.png"}}
    graph["13"] = {"class_type": "LTXVImgToVideo", "inputs": {
        "positive": ["3", 0], "negative": ["4", 0], "vae": ["1", 2], "image": ["12", 0], "width": 64, "height": 64,
        "length": 9, "batch_size": 1, "strength": 1.0}}
    graph["5"]["inputs"].update(positive=["13", 0], negative=["13", 1])
    graph["9"]["inputs"]["latent_image"] = ["13", 2]
    reg = registry()
    result = Executor(reg).run(parse_workflow(json.loads(json.dumps(graph)), reg), outputs=["11"])
    assert result.ok, json.dumps(result.error, default=str)[:3000]

    start = result.values["13"][2]
    assert start["noise_mask"].shape == (1, 1, 2, 1, 1)
    assert start["noise_mask"].flatten().tolist() == [0.0, 1.0]
    vae = load_checkpoint(ltxv_models.models / "checkpoints" / "ltx-video-2b-v0.9.safetensors", device="cpu",
                          dtype=torch.float32).vae
    cropped = torch.from_numpy(picture[:, 8:72]).float()[None] / 255  # centre crop of 80 -> 64 columns
    latent = start["samples"]
    assert torch.allclose(latent[:, :, :1], vae.encode(cropped), atol=1e-5) and latent[:, :, 1:].abs().max() == 0

    theirs, text = oracle(ltxv_models)
    cond, uncond = text("a boat on a lake at dawn"), text("blurry")
    mask = torch.tensor([0.0, 1.0]).reshape(1, 1, 2, 1, 1).expand(1, 128, 2, 2, 2)
    x = initial_noise(latent, 7)  # sigma 1: the latent has weight 0
    for sigma, sigma_next in ((1.0, 0.1), (0.1, 0.0)):
        x_in = x * mask + latent * (1 - mask)
        timestep = (mask[:, 0] * sigma * 1000.0).flatten(1)
        v_cond = diffusers_velocity(theirs, x_in, timestep, cond, 25.0)
        v_uncond = diffusers_velocity(theirs, x_in, timestep, uncond, 25.0)
        denoised = x_in - sigma * (v_uncond + 3.0 * (v_cond - v_uncond))
        denoised = denoised * mask + latent * (1 - mask)
        x = x + (x - denoised) / sigma * (sigma_next - sigma)
    ours = result.values["9"][0]["samples"]
    assert float((ours - x).abs().max()) < 1e-4 * float(x.abs().max())
    assert torch.allclose(ours[:, :, :1], latent[:, :, :1], atol=1e-5)  # the picture stays the first frame
    assert result.values["10"][0].shape == (9, 64, 64, 3)


def test_full_size_defaults_are_lightricks_2b_v090():
    """Our default configs, in Lightricks' layout and through diffusers' converters, fit diffusers'
    default (2B v0.9.0) models key for key and shape for shape; the header alone is detected."""
    from graphflow.models.flow_architecture import detect_flow_model
    from graphflow.models.ltxv_vae import LTXVideoVAE, LTXVVAEConfig

    with torch.device("meta"):
        model, vae = LTXV(LTXVConfig()), LTXVideoVAE(LTXVVAEConfig())
        their_model, their_vae = LTXVideoTransformer3DModel(), AutoencoderKLLTXVideo()
    shapes = {f"model.diffusion_model.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    shapes.update({f"vae.{k}": tuple(v.shape) for k, v in vae.state_dict().items()})
    pairs = ((model.state_dict(), their_model, convert_ltx_transformer_checkpoint_to_diffusers,
              "model.diffusion_model."),
             (vae.state_dict(), their_vae, convert_ltx_vae_checkpoint_to_diffusers, "vae."))
    for ours_state, theirs, convert, prefix in pairs:
        converted = convert({prefix + k: v for k, v in ours_state.items()})
        want = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
        assert {k: tuple(v.shape) for k, v in converted.items()} == want
    info = detect_flow_model(shapes)
    assert info.arch == "ltxv" and info.config == LTXVConfig() and info.vae == LTXVVAEConfig()
    assert info.vae.downscale == 32 and info.vae.frames_per_latent == 8
    assert sum(v.numel() for v in model.state_dict().values()) == pytest.approx(1.92e9, rel=0.01)


def test_latent_upscale_nodes_resize_video_latents_frame_by_frame():
    # as ComfyUI's common_upscale (values: tests/test_parity_latents.py)
    video = {"samples": torch.zeros(1, 128, 2, 2, 2)}
    out = call(registry(), "LatentUpscale", samples=video, upscale_method="nearest-exact", width=64, height=64,
               crop="disabled")
    assert out["samples"].shape == (1, 128, 2, 8, 8)
    out = call(registry(), "LatentUpscaleBy", samples=video, upscale_method="nearest-exact", scale_by=2.0)
    assert out["samples"].shape == (1, 128, 2, 4, 4)


def test_causal_temporal_positioning_from_the_file_matches_diffusers_coordinates(tmp_path):
    """A file whose config metadata sets causal_temporal_positioning (later Lightricks releases)
    puts latent frame f at pixel frame 8f - 7 (0 for the first): diffusers' transformer given
    those coordinates (video_coords, seconds and pixels) is the oracle."""
    from safetensors.torch import load_file

    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.testing import ltxv_configs, write_ltxv_checkpoint

    path = write_ltxv_checkpoint(tmp_path / "ltxv.safetensors", dtype=torch.float32,
                                 transformer_metadata={"causal_temporal_positioning": True, "num_attention_heads": 32})
    model = load_checkpoint(path, device="cpu", dtype=torch.float32).model
    assert model.unet.config.causal_temporal_positioning
    cfg = ltxv_configs()[0]
    theirs = LTXVideoTransformer3DModel(
        in_channels=128, out_channels=128, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        cross_attention_dim=cfg.cross_attention_dim, num_layers=cfg.depth, caption_channels=cfg.caption_channels).eval()
    theirs.load_state_dict(convert_ltx_transformer_checkpoint_to_diffusers(
        {k: v for k, v in load_file(str(path)).items() if k.startswith("model.diffusion_model.")}), strict=True)
    gen = torch.Generator().manual_seed(8)
    x, context = torch.randn(1, 128, 3, 2, 2, generator=gen), torch.randn(1, 4, cfg.caption_channels, generator=gen)
    f, h, w = torch.meshgrid(torch.arange(3), torch.arange(2), torch.arange(2), indexing="ij")
    coords = torch.stack([(8 * f - 7).clamp(min=0) / 24.0, 32.0 * h, 32.0 * w]).reshape(1, 3, -1).float()
    with torch.no_grad():
        got = model(x, torch.tensor([0.6]), context, frame_rate=24.0)
        want = theirs(x.flatten(2).transpose(1, 2), context, torch.tensor([600.0]), None, video_coords=coords,
                      return_dict=False)[0].transpose(1, 2).reshape(x.shape)
        plain = load_checkpoint(write_ltxv_checkpoint(tmp_path / "plain.safetensors", dtype=torch.float32),
                                device="cpu", dtype=torch.float32).model(x, torch.tensor([0.6]), context, frame_rate=24.0)
    assert (got - want).abs().max() < TOL
    assert (got - plain).abs().max() > 1e-3  # the positions matter


@pytest.mark.parametrize("steps,terminal", [(20, 0.1), (30, 0.05), (50, 0.3)])
def test_ltxv_scheduler_stretch_rounds_as_comfyui(steps, terminal):
    """The stretch to `terminal` in ComfyUI's float32 operation order, to the last bit: 1 - sigma
    divided by the scale factor (1 - last nonzero sigma) / (1 - terminal), a float32 number."""
    from graphflow.sampling.flow_sampling import ltxv_shift
    from graphflow.sampling.schedules import ltxv_sigmas
    mu = ltxv_shift(4096)
    plain = ltxv_sigmas(steps, mu, stretch=False)
    rest = 1.0 - plain[:-1]
    scale = rest[-1] / (1.0 - terminal)
    want = torch.cat([1.0 - rest / scale, plain[-1:]])
    assert torch.equal(ltxv_sigmas(steps, mu, stretch=True, terminal=terminal), want)
