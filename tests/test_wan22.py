"""Wan 2.2 on tiny random files: the 14B T2V template (two Wan 2.1-architecture experts, high noise
then low noise, through two KSamplerAdvanced) and the TI2V 5B (48 latent channels, the Wan 2.2 VAE,
Wan22ImageToVideoLatent's kept start frame told to the model as per-frame timesteps).

Oracles: diffusers' WanTransformer3DModel on the same weights (through diffusers' converter; for
the 5B its per-token timesteps, as diffusers' Wan 2.2 pipeline's expand_timesteps gives them) and
transformers' UMT5 states, stepped by hand with Euler and CFG on ComfyUI's sigmas (shift 8).
"""

import json
from pathlib import Path

import pytest
import torch

from tests.test_wan import diffusers_transformer, reference_text, reference_umt5, registry

SIGMA_MID = 8 * 0.5 / (1 + 7 * 0.5)  # "simple", 2 steps: t = 1, 0.5 through shift 8


def shifted(steps):
    """ComfyUI's "simple" sigmas for shift 8: t = 1, (n-1)/n, ... then 0."""
    return [8 * t / (1 + 7 * t) for t in (1 - i / steps for i in range(steps))] + [0.0]


def run(graph):
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    reg = registry()
    result = Executor(reg).run(parse_workflow(graph, reg))
    assert result.ok, json.dumps([result.error, result.problems], default=str)[:3000]
    return result


# -- Wan 2.2 14B: two experts ---------------------------------------------------------------------

@pytest.fixture
def wan22_14b_models(tmp_folders):
    from graphflow.testing import write_umt5, write_wan, write_wan_vae

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    write_wan(m / "diffusion_models" / "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", seed=3, dtype=torch.float32)
    write_wan(m / "diffusion_models" / "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors", seed=4, dtype=torch.float32)
    write_umt5(m / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors", seed=1, dtype=torch.float32)
    write_wan_vae(m / "vae" / "wan_2.1_vae.safetensors", dtype=torch.float32)
    return tmp_folders


def test_wan22_14b_t2v_workflow_equals_the_two_halves_by_hand(wan22_14b_models):
    """workflows/wan22_14b_t2v.json (ComfyUI's Wan 2.2 14B T2V template: two UNETLoaders, each
    through ModelSamplingSD3 shift 8; KSamplerAdvanced on the high-noise expert for the first steps,
    returning its leftover noise, then one on the low-noise expert, adding none, for the rest) but
    for its size and steps (4, split at 2): the latent equals 2 Euler CFG steps of diffusers' high-noise
    transformer then 2 of the low-noise one, and differs from running the low-noise expert alone."""
    from safetensors.torch import load_file

    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import wan_config

    m = wan22_14b_models.models
    nodes = json.loads((Path(__file__).parent.parent / "workflows" / "wan22_14b_t2v.json").read_text())
    graph = json.loads(json.dumps(nodes))
    graph["59"]["inputs"].update(width=32, height=32, length=5)
    graph["57"]["inputs"].update(steps=4, end_at_step=2)
    graph["58"]["inputs"].update(steps=4, start_at_step=2)
    result = run(graph)
    assert result.values["8"][0].shape == (5, 32, 32, 3)
    assert len(list(wan22_14b_models.outputs.rglob("wan22_t2v*.mp4"))) == 1

    experts = [diffusers_transformer(wan_config(), load_file(str(m / "diffusion_models" / f"wan2.2_t2v_{name}_14B_fp8"
                                                                                              "_scaled.safetensors")))
               for name in ("high_noise", "low_noise")]
    umt5, tokenizer = reference_umt5(m / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    cond, uncond = (reference_text(umt5, tokenizer, nodes[n]["inputs"]["text"])[0] for n in ("6", "7"))
    cfg_scale = nodes["57"]["inputs"]["cfg"]
    sigmas = shifted(4)

    def sample(expert_of_step):
        x = initial_noise(torch.zeros(1, 16, 2, 4, 4), nodes["57"]["inputs"]["noise_seed"])
        for i in range(4):
            s = torch.tensor([sigmas[i]])
            with torch.no_grad():
                v_cond, v_uncond = (expert_of_step(i)(x, s * 1000, c, return_dict=False)[0] for c in (cond, uncond))
            x = x + (v_uncond + cfg_scale * (v_cond - v_uncond)) * (sigmas[i + 1] - sigmas[i])
        return WAN21.process_out(x)

    ours = result.values["58"][0]["samples"]
    want = sample(lambda i: experts[0] if i < 2 else experts[1])
    assert ours.shape == (1, 16, 2, 4, 4)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())
    low_only = sample(lambda i: experts[1])
    assert float((ours - low_only).abs().max()) > 1e-2 * float(want.abs().max())  # the high-noise expert counts


def test_wan22_i2v_expert_samples_wan_image_to_video_without_clip_vision(tmp_path):
    """A Wan 2.2 I2V A14B expert: 36 channels in (WanImageToVideo's mask and start latent) but no
    CLIP vision projection (img_emb): detected as such, and KSampler on WanImageToVideo's
    conditioning equals two Euler CFG steps of diffusers' transformer (no image tokens) on
    [x, 1 - mask x4, the image latent in model space]."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.flow_architecture import detect_flow_model
    from graphflow.models.latent_formats import WAN21
    from graphflow.models.weight_files import WeightFile
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import wan_config, wan_state, write_wan
    from tests.test_nodes_image_mask import call

    path = write_wan(tmp_path / "wan2.2_i2v_high_noise_14B_fp16.safetensors", seed=8, in_channels=36,
                     dtype=torch.float32)
    with WeightFile(path) as f:
        info = detect_flow_model(f.shapes)
    assert info.family == "wan22_i2v" and not info.config.i2v and info.latent_format is WAN21
    model = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    theirs = diffusers_transformer(wan_config(in_channels=36), wan_state(seed=8, in_channels=36))
    gen = torch.Generator().manual_seed(9)
    context = [torch.randn(1, 9, 32, generator=gen) for _ in range(2)]
    image_latent = torch.randn(1, 16, 2, 4, 4, generator=gen)
    mask = torch.ones(1, 1, 2, 4, 4)
    mask[:, :, :1] = 0.0
    options = {"concat_latent_image": image_latent, "concat_mask": mask}
    latent = call(registry(), "KSampler", model=model, seed=7, steps=2, cfg=3.5, sampler_name="euler",
                  scheduler="simple", positive=[(context[0], dict(options))], negative=[(context[1], dict(options))],
                  denoise=1.0, latent_image={"samples": torch.zeros(1, 16, 2, 4, 4)})
    extra = torch.cat([(1 - mask).expand(1, 4, -1, -1, -1), WAN21.process_in(image_latent)], dim=1)
    x = initial_noise(torch.zeros(1, 16, 2, 4, 4), 7)
    for sigma, sigma_next in ((1.0, SIGMA_MID), (SIGMA_MID, 0.0)):
        s = torch.tensor([sigma]) * 1000
        with torch.no_grad():
            v_cond, v_uncond = (theirs(torch.cat([x, extra], 1), s, c, return_dict=False)[0] for c in context)
        x = x + (v_uncond + 3.5 * (v_cond - v_uncond)) * (sigma_next - sigma)
    ours = latent["samples"] if isinstance(latent, dict) else latent[0]["samples"]
    want = WAN21.process_out(x)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())


# -- Wan 2.2 TI2V 5B --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ti2v_pair():
    from graphflow.models.wan import Wan
    from graphflow.testing import wan_config, wan_state

    cfg, state = wan_config(ti2v=True), wan_state(seed=5, ti2v=True)
    ours = Wan(cfg).eval()
    ours.load_state_dict(state)
    return cfg, ours, diffusers_transformer(cfg, state), state


def test_ti2v_config_from_shapes(ti2v_pair):
    from graphflow.models.wan import wan_config_from_state_dict
    from graphflow.testing import wan_config

    cfg, _, _, state = ti2v_pair
    assert wan_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()}) == cfg
    assert (cfg.in_channels, cfg.out_channels, cfg.patch_size) == (48, 48, (1, 2, 2))
    big = wan_config(False, ti2v=True)
    assert (big.dim, big.num_heads, big.depth, big.ffn_dim) == (3072, 24, 30, 14336)


def test_ti2v_per_frame_timesteps_match_diffusers(ti2v_pair):
    """sigma per latent pixel (the sampler's sigma x noise mask): each frame told its own timestep,
    as diffusers' per-token timesteps (Wan 2.2 TI2V's expand_timesteps); one sigma as before."""
    cfg, ours, theirs, _ = ti2v_pair
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 48, 3, 4, 6, generator=gen)
    context = torch.randn(2, 7, cfg.text_dim, generator=gen)
    sigma = torch.tensor([0.9, 0.4])
    mask = torch.ones(2, 3, 4, 6)
    mask[:, 0] = 0.0  # the kept start frame
    per_pixel = (mask * sigma[:, None, None, None]).flatten(1)
    per_token = (mask[:, :, ::2, ::2] * sigma[:, None, None, None]).flatten(1) * 1000  # 1x2x2 patches
    with torch.no_grad():
        got = ours(x, per_pixel, context)
        want = theirs(x, per_token, context, return_dict=False)[0]
        plain = ours(x, sigma, context)
        plain_want = theirs(x, sigma * 1000, context, return_dict=False)[0]
    assert got.shape == (2, 48, 3, 4, 6)
    assert float((got - want).abs().max()) < 1e-4 * float(want.abs().max())
    assert float((plain - plain_want).abs().max()) < 1e-4 * float(plain_want.abs().max())
    assert float((got - plain).abs().max()) > 1e-3  # the frame's timestep counts


def test_ti2v_sampler_takes_frames_or_one_image(tmp_path):
    """A 48-channel Wan is the 2.2 TI2V 5B (ComfyUI's WAN22_T2V: out_dim 48; its detection, the Wan 2.2
    latent format, shift 8, per-frame timesteps: tests/test_flow_families.py): KSampler refuses a
    latent that is not frames naming Wan22ImageToVideoLatent, and samples an image latent as one
    frame. Its VAE file is named and inspected as the Wan 2.2 VAE."""
    from graphflow.api import NodeInputError
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.models.file_kind import identify
    from graphflow.models.latent_formats import WAN22
    from graphflow.models.weight_files import WeightFile
    from graphflow.testing import write_wan, write_wan_vae
    from tests.test_nodes_image_mask import call

    path = write_wan(tmp_path / "wan2.2_ti2v_5B_fp16.safetensors", ti2v=True, dtype=torch.float32)
    model = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    assert model.latent_format is WAN22 and model.masked_timesteps
    with pytest.raises(NodeInputError, match="Wan22ImageToVideoLatent"):  # not a latent of frames: the node named
        call(registry(), "KSampler", model=model, seed=0, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple",
             positive=[], negative=[], denoise=1.0, latent_image={"samples": torch.zeros(48, 2, 2)})
    # an image latent is one frame, as ComfyUI's fix_empty_latent_channels makes it (text-to-image)
    image = call(registry(), "KSampler", model=model, seed=0, steps=1, cfg=1.0, sampler_name="euler",
                 scheduler="simple", positive=[], negative=[], denoise=1.0,
                 latent_image={"samples": torch.zeros(1, 48, 2, 2)})
    assert image["samples"].shape == (1, 48, 1, 2, 2)

    vae = write_wan_vae(tmp_path / "wan2.2_vae.safetensors", wan22=True, dtype=torch.float32)
    with WeightFile(vae) as f:
        assert identify(f.shapes).name == "Wan 2.2 video VAE"
    report = inspect_report(vae)
    assert "kind: Wan 2.2 video VAE" in report
    assert "48 latent channels, 4x frames, 16x pixels, channels 8 x [1, 2, 4, 4] (decoder 12)" in report


@pytest.fixture
def ti2v_models(tmp_folders):
    from graphflow.testing import write_umt5, write_wan, write_wan_vae

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    write_wan(m / "diffusion_models" / "wan2.2_ti2v_5B_fp16.safetensors", seed=5, ti2v=True, dtype=torch.float32)
    write_umt5(m / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors", seed=1, dtype=torch.float32)
    write_wan_vae(m / "vae" / "wan2.2_vae.safetensors", wan22=True, dtype=torch.float32)
    return tmp_folders


def test_wan22_image_to_video_latent(ti2v_models):
    """ComfyUI's Wan22ImageToVideoLatent: zeros [1, 48, (length - 1) // 4 + 1, H/16, W/16] without a
    start image (ComfyUI returns before repeating by batch_size); with one, its latent in the first latent frame, the Wan 2.2 means (model space 0)
    elsewhere, and a noise mask [B, 1, frames, h, w] of 0 there and 1 elsewhere."""
    from graphflow.models.latent_formats import WAN22
    from tests.test_nodes_image_mask import call

    reg = registry()
    vae = call(reg, "LoadVAE", vae_name="wan2.2_vae.safetensors")
    empty = call(reg, "Wan22ImageToVideoLatent", vae=vae, width=64, height=32, length=9, batch_size=2)
    assert set(empty) == {"samples"} and torch.equal(empty["samples"], torch.zeros(1, 48, 3, 2, 4))
    image = torch.rand(1, 32, 64, 3, generator=torch.Generator().manual_seed(7))
    out = call(reg, "Wan22ImageToVideoLatent", vae=vae, width=64, height=32, length=9, batch_size=2,
               start_image=image)
    samples, mask = out["samples"], out["noise_mask"]
    assert samples.shape == (2, 48, 3, 2, 4) and mask.shape == (2, 1, 3, 2, 4)
    assert mask[:, :, 0].eq(0).all() and mask[:, :, 1:].eq(1).all()
    encoded = vae.encode(image)
    assert encoded.shape == (1, 48, 1, 2, 4)
    assert torch.allclose(samples[:, :, :1], encoded.expand(2, -1, -1, -1, -1), atol=1e-5)
    mean = torch.tensor(WAN22.channel_mean).view(1, 48, 1, 1, 1)
    assert torch.allclose(samples[:, :, 1:], mean.expand(2, 48, 2, 2, 4))
    from graphflow.api import NodeInputError
    from graphflow.testing import write_wan_vae

    write_wan_vae(ti2v_models.models / "vae" / "wan_2.1_vae.safetensors", dtype=torch.float32)
    old = call(reg, "LoadVAE", vae_name="wan_2.1_vae.safetensors")
    with pytest.raises(NodeInputError, match=r"Wan 2.2 VAE, wan2.2_vae.safetensors \(48 latent channels\)"):
        call(reg, "Wan22ImageToVideoLatent", vae=old, width=64, height=32, length=9, batch_size=1, start_image=image)


def test_wan22_ti2v_workflow_keeps_the_start_frame_and_matches_diffusers(ti2v_models):
    """workflows/wan22_5b_ti2v.json (ComfyUI's Wan 2.2 5B template with its start image: UNETLoader,
    CLIPLoader wan, VAELoader wan2.2_vae, LoadImage, Wan22ImageToVideoLatent, ModelSamplingSD3
    shift 8, KSampler, VAEDecode, CreateVideo + SaveVideo) but for its size, steps and sampler (euler,
    to step by hand): 2
    Euler CFG steps of diffusers' transformer with the start frame's timestep 0 (per token), the
    model's input and output kept on the start frame (ComfyUI's masked sampling; WAN22 leaves the
    kept latent unnoised); the first latent frame comes out as the start image's latent."""
    import numpy as np
    from PIL import Image

    from graphflow.models.latent_formats import WAN22
    from graphflow.sampling.noise import initial_noise

    m = ti2v_models.models
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (32, 64, 3), dtype=np.uint8)).save(ti2v_models.inputs / "start.png")
    graph = json.loads((Path(__file__).parent.parent / "workflows" / "wan22_5b_ti2v.json").read_text())
    graph["55"]["inputs"].update(width=64, height=32, length=9)
    graph["3"]["inputs"].update(steps=2, sampler_name="euler", seed=13)
    result = run(graph)
    assert result.values["8"][0].shape == (9, 32, 64, 3)
    assert len(list(ti2v_models.outputs.rglob("wan22_ti2v*.mp4"))) == 1
    start = result.values["55"][0]
    ours = result.values["3"][0]["samples"]
    assert ours.shape == (1, 48, 3, 2, 4)
    assert torch.allclose(ours[:, :, 0], start["samples"][:, :, 0], atol=1e-5)  # the start frame is kept

    from safetensors.torch import load_file

    from graphflow.testing import wan_config

    theirs = diffusers_transformer(wan_config(ti2v=True), load_file(str(m / "diffusion_models" /
                                                                       "wan2.2_ti2v_5B_fp16.safetensors")))
    umt5, tokenizer = reference_umt5(m / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    cond, uncond = (reference_text(umt5, tokenizer, graph[n]["inputs"]["text"])[0] for n in ("6", "7"))
    cfg_scale = graph["3"]["inputs"]["cfg"]
    known = WAN22.process_in(start["samples"])
    keep = start["noise_mask"].expand(1, 48, 3, 2, 4)
    x = initial_noise(torch.zeros(1, 48, 3, 2, 4), 13)
    for sigma, sigma_next in ((1.0, SIGMA_MID), (SIGMA_MID, 0.0)):
        xin = x * keep + known * (1 - keep)
        t = (start["noise_mask"][:, 0, :, ::2, ::2] * sigma).flatten(1) * 1000  # [1, 3 x 1 x 2 tokens]
        with torch.no_grad():
            v_cond, v_uncond = (theirs(xin, t, c, return_dict=False)[0] for c in (cond, uncond))
        denoised = xin - sigma * (v_uncond + cfg_scale * (v_cond - v_uncond))
        denoised = denoised * keep + known * (1 - keep)
        x = x + (x - denoised) / sigma * (sigma_next - sigma)
    want = WAN22.process_out(x)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())


def test_first_last_frame_and_fun_inpaint_size_the_latent_by_the_vae(tmp_path):
    """ComfyUI's WanFirstLastFrameToVideo (and WanFunInpaintToVideo, which calls it) size the latent by
    the VAE (vae.latent_channels, spacial_compression_encode): with the Wan 2.2 VAE 48 channels at
    1/16, the start / end frames encoded by it and the FLF mask at that latent size."""
    from graphflow.models.checkpoint import load_vae
    from graphflow.testing import write_wan_vae
    from tests.test_nodes_image_mask import call

    vae = load_vae(write_wan_vae(tmp_path / "wan2.2_vae.safetensors", wan22=True, dtype=torch.float32),
                   device="cpu", dtype=torch.float32)
    cond = [(torch.randn(1, 512, 32), {})]
    gen = torch.Generator().manual_seed(4)
    start, end = torch.rand(1, 32, 64, 3, generator=gen), torch.rand(1, 32, 64, 3, generator=gen)
    video = torch.full((9, 32, 64, 3), 0.5)
    video[0], video[-1] = start[0], end[0]
    encoded = vae.encode(video)
    # ComfyUI's mask: pixel frames 0 .. start + 3 and the last end frames 0, 4 per latent frame as channels
    pixel = torch.ones(3 * 4)
    pixel[:1 + 3], pixel[-1:] = 0.0, 0.0
    want_mask = pixel.view(3, 4).T.reshape(1, 4, 3, 1, 1).expand(1, 4, 3, 2, 4)
    for node in ("WanFirstLastFrameToVideo", "WanFunInpaintToVideo"):
        pos, neg, latent = call(registry(), node, positive=cond, negative=cond, vae=vae, width=64, height=32,
                                length=9, batch_size=2, start_image=start, end_image=end)
        assert torch.equal(latent["samples"], torch.zeros(2, 48, 3, 2, 4))
        for side in (pos, neg):
            options = side[0][1]
            assert options["concat_latent_image"].shape == (1, 48, 3, 2, 4)
            assert torch.allclose(options["concat_latent_image"], encoded, atol=1e-5)
            assert torch.equal(options["concat_mask"], want_mask)
