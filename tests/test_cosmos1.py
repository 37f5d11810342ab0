"""Cosmos 1.0 (Text2World / Video2World) against diffusers on identical tiny random weights.

Oracle path: random weights in NVIDIA's first layout (`net.` + blocks.blockN.blocks.M.block.attn.
to_q.0 ...) go through diffusers' single-file converter (`convert_cosmos_transformer_checkpoint_
to_diffusers`, its Cosmos 1.0 branch) into CosmosTransformer3DModel with learned positions,
loaded strictly; ours loads the same tensors as they are. Sampling is checked against EDM's closed
forms and ComfyUI's CosmosVideo rules (scale_latent_inpaint, fps, the mask_inverted channel).
"""

import pytest
import torch
from diffusers import CosmosTransformer3DModel
from diffusers.loaders.single_file_utils import convert_cosmos_transformer_checkpoint_to_diffusers

from graphflow.models.cosmos import Cosmos1, Cosmos1Config, cosmos1_config_from_state_dict, find_cosmos1

TOL = 1e-4


def random_state(module, seed):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) * 0.2 + (1.0 if "to_q.1" in k or "to_k.1" in k
                                                              or "affline_norm" in k else 0.0)
            for k, v in module.state_dict().items()}


class _KeepsMarker(dict):
    """diffusers 0.42's converter empties the checkpoint before it looks for its Cosmos 1.0 marker
    key (net.blocks.block1....to_q.0.weight), so it always takes the 2.0 branch; a dict whose pop
    leaves that key in lets it choose its own 1.0 renames."""
    MARKER = "net.blocks.block1.blocks.0.block.attn.to_q.0.weight"

    def pop(self, key, *default):
        return self[key] if key == self.MARKER else super().pop(key, *default)


def to_diffusers(state: dict) -> dict:
    """NVIDIA's 1.0 keys (bare) -> diffusers' through diffusers' own converter."""
    extras = {"net.logvar.0.freqs": torch.zeros(3), "net.pos_embedder.seq": torch.arange(4.0)}  # NVIDIA's non-weights
    return convert_cosmos_transformer_checkpoint_to_diffusers(
        _KeepsMarker({**{f"net.{k}": v.clone() for k, v in state.items()}, **extras}))


def diffusers_twin(cfg: Cosmos1Config, state: dict) -> CosmosTransformer3DModel:
    ratio_h, ratio_w, ratio_t = cfg.rope_extrapolation
    frames, h, w = cfg.positions
    theirs = CosmosTransformer3DModel(
        in_channels=cfg.in_channels, out_channels=16, num_attention_heads=cfg.num_heads,
        attention_head_dim=cfg.head_dim, num_layers=cfg.num_blocks, text_embed_dim=cfg.crossattn_emb_channels,
        adaln_lora_dim=cfg.adaln_lora_dim, max_size=(frames, 2 * h, 2 * w), rope_scale=(ratio_t, ratio_h, ratio_w),
        concat_padding_mask=True, extra_pos_embed_type="learnable").eval()
    theirs.load_state_dict(to_diffusers(state), strict=True)
    return theirs


def pair(in_channels=16, ratios=(1.0, 3.0, 2.0)):
    cfg = Cosmos1Config(in_channels=in_channels, model_channels=48, num_blocks=2, num_heads=2,
                        crossattn_emb_channels=20, adaln_lora_dim=8, rope_extrapolation=ratios, positions=(6, 8, 10))
    ours = Cosmos1(cfg).eval()
    state = random_state(ours, 0)
    ours.load_state_dict(state, strict=True)
    return cfg, ours, diffusers_twin(cfg, state), state


@pytest.mark.parametrize("fps", [None, 12.0])
def test_text2world_matches_diffusers(fps):
    """The learned positions crop their tables (3 of 6 frames, 2 x 3 of 8 x 10 patches); with a
    frame rate RoPE's time is i / fps * 24 (diffusers' fps), without it the frame index."""
    _, ours, theirs, _ = pair()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 16, 3, 4, 6, generator=gen)
    context = torch.randn(2, 7, 20, generator=gen)
    t = torch.tensor([0.9, -1.3])
    with torch.no_grad():
        got = ours(x, t, context, fps=fps)
        want = theirs(x, t, context, fps=fps, padding_mask=torch.zeros(1, 1, 4, 6), return_dict=False)[0]
        other = ours(x, t, context, fps=24.0 if fps is None else None)
    assert got.shape == x.shape
    assert (got - want).abs().max() < TOL
    assert got.abs().max() > 0.1
    if fps is None:  # fps 24 is the base rate: the same positions as counting frames
        assert (got - other).abs().max() < 1e-5
    else:
        assert (got - other).abs().max() > 1e-3


def test_video2world_mask_channel_matches_diffusers():
    """Video2World: 17 input channels, the known-frame mask (ComfyUI's mask_inverted, diffusers'
    condition_mask) after the latent, then the padding mask; one timestep per sample."""
    _, ours, theirs, _ = pair(17)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 16, 3, 4, 4, generator=gen)
    mask = torch.zeros(1, 1, 3, 4, 4)
    mask[:, :, 0] = 1.0
    context = torch.randn(1, 5, 20, generator=gen)
    t = torch.tensor([0.4])
    with torch.no_grad():
        got = ours(torch.cat([x, mask], dim=1), t, context, fps=25.0)
        want = theirs(x, t, context, fps=25.0, condition_mask=mask, padding_mask=torch.zeros(1, 1, 4, 4),
                      return_dict=False)[0]
        unmasked = ours(torch.cat([x, torch.zeros_like(mask)], dim=1), t, context, fps=25.0)
    assert (got - want).abs().max() < TOL
    assert (got - unmasked).abs().max() > 1e-3


def test_learned_positions_bound_the_size():
    _, ours, _, _ = pair()
    with pytest.raises(ValueError, match="at most 6 latent frames of 128x160 pixels"):
        ours(torch.randn(1, 16, 7, 4, 4), torch.tensor([0.0]), torch.randn(1, 2, 20))


# -- files: detection, loading, reports ------------------------------------------------------------

def nvidia_shapes(size: str, video2world: bool, prefix: str) -> dict:
    from graphflow.testing import cosmos1_config

    with torch.device("meta"):
        net = Cosmos1(cosmos1_config(scaled_down=False, video2world=video2world, size=size))
    shapes = {prefix + k: tuple(v.shape) for k, v in net.state_dict().items()}
    shapes.update({prefix + "logvar.1.weight": (1, 128), prefix + "pos_embedder.seq": (128,)})  # not weights
    return shapes


@pytest.mark.parametrize("size, video2world, prefix", [("7B", False, "net."), ("7B", True, ""),
                                                       ("14B", False, "model.diffusion_model."), ("14B", True, "net.")])
def test_sizes_and_tasks_from_shapes(size, video2world, prefix):
    """7B / 14B by the width (4096 / 5120), Text2World / Video2World by the input channels (16 / 17,
    before the padding mask), with ComfyUI's block counts, heads and RoPE ratios."""
    from graphflow.models.cosmos import find_cosmos
    from graphflow.models.file_kind import identify

    shapes = nvidia_shapes(size, video2world, prefix)
    assert find_cosmos1(shapes) == prefix and find_cosmos(shapes) is None
    assert identify(shapes).name == "Cosmos 1.0 diffusion model" and identify(shapes).folder == "diffusion_models"
    cfg = cosmos1_config_from_state_dict({k[len(prefix):]: s for k, s in shapes.items()})
    big = size == "14B"
    assert cfg == Cosmos1Config(in_channels=17 if video2world else 16, model_channels=5120 if big else 4096,
                                num_blocks=36 if big else 28, num_heads=40 if big else 32,
                                rope_extrapolation=(2.0, 2.0, 2.0) if big else (1.0, 1.0, 2.0),
                                positions=(128, 120, 120))
    assert cfg.variant == f"{'Video2World' if video2world else 'Text2World'} {size}"


def test_predict2_files_are_not_cosmos1(tmp_path):
    from graphflow.models.weight_files import WeightFile
    from graphflow.testing import write_cosmos

    with WeightFile(write_cosmos(tmp_path / "p2.safetensors", prefix="net.")) as f:
        assert find_cosmos1(f.shapes) is None


def test_unknown_variants_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    from graphflow.models.checkpoint import CheckpointError, load_diffusion_model
    from graphflow.testing import write_cosmos1

    state = load_file(str(write_cosmos1(tmp_path / "c.safetensors", dtype=torch.float32, prefix="net.")))
    wide = dict(state, **{"net.x_embedder.proj.1.weight": torch.zeros(48, 19 * 4)})
    save_file(wide, str(tmp_path / "wide.safetensors"))
    with pytest.raises(CheckpointError, match=r"wide.safetensors: a Cosmos 1.0 network that cannot be read: 18 latent "
                                              r"input channels: Cosmos 1.0 is Text2World \(16\) or Video2World \(17\)"):
        load_diffusion_model(tmp_path / "wide.safetensors", device="cpu", dtype=torch.float32)
    save_file({k: v for k, v in state.items() if "extra_pos_embedder" not in k}, str(tmp_path / "nopos.safetensors"))
    with pytest.raises(CheckpointError, match="no learned positions"):
        load_diffusion_model(tmp_path / "nopos.safetensors", device="cpu", dtype=torch.float32)


def test_inspect_report(tmp_path):
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.testing import write_cosmos1

    report = inspect_report(write_cosmos1(tmp_path / "v2w.safetensors", prefix="net.", video2world=True))
    assert "kind: Cosmos 1.0 diffusion model, for models/diffusion_models/, loaded by LoadDiffusionModel" in report
    assert ("Video2World (neither 7B nor 14B), width 48, 2 blocks of 2 heads, text width 48, learned positions up "
            "to 6 latent frames of 128x160 pixels, keys under net.") in report


def test_fp8_weight_dtype_and_comfyui_lora(tmp_path):
    """UNETLoader's weight_dtype fp8_e4m3fn keeps the Linear weights in fp8 (norms and learned
    positions in the compute dtype); a LoRA in ComfyUI's diffusion_model.<NVIDIA key> layout
    patches the named weight."""
    import copy

    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.lora import apply_lora
    from graphflow.testing import write_cosmos1

    path = write_cosmos1(tmp_path / "c.safetensors", dtype=torch.float32)
    fp8 = load_diffusion_model(path, device="cpu", dtype=torch.float32, weight_dtype="fp8_e4m3fn")
    block = fp8.unet.blocks.block1.blocks[1].block.attn
    assert block.to_v[0].weight.dtype == torch.float8_e4m3fn and block.to_q[1].weight.dtype == torch.float32
    assert fp8.unet.extra_pos_embedder.pos_emb_t.dtype == torch.float32

    model = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    gen = torch.Generator().manual_seed(3)
    down, up = torch.randn(4, 48, generator=gen) * 0.1, torch.randn(48, 4, generator=gen) * 0.1
    save_file({"diffusion_model.blocks.block1.blocks.1.block.attn.to_v.0.lora_A.weight": down,
               "diffusion_model.blocks.block1.blocks.1.block.attn.to_v.0.lora_B.weight": up},
              str(tmp_path / "lora.safetensors"))
    patched, _ = apply_lora(model, None, tmp_path / "lora.safetensors", 0.5)
    want = copy.deepcopy(model.unet)
    want.blocks.block1.blocks[1].block.attn.to_v[0].weight.data += 0.5 * up @ down
    x, context = torch.randn(1, 16, 2, 4, 4, generator=gen), torch.randn(1, 3, 48, generator=gen)
    t = torch.tensor([0.4])
    with torch.no_grad():
        got, base = patched(x, t, context), model(x, t, context)
        torch.testing.assert_close(got, want(x, t, context), atol=1e-5, rtol=1e-5)
    assert (got - base).abs().max() > 1e-3


# -- sampling as ComfyUI does (CosmosVideo: EDM, Cosmos1CV8x8x8) ---------------------------------------

def load(tmp_path, video2world=False, seed=3, prefix="model.diffusion_model."):
    from safetensors.torch import load_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.testing import cosmos1_config, write_cosmos1

    path = write_cosmos1(tmp_path / f"c{int(video2world)}.safetensors", dtype=torch.float32, seed=seed, prefix=prefix,
                         video2world=video2world)
    model = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    state = {k[len(prefix):]: v for k, v in load_file(str(path)).items()}
    return model, diffusers_twin(cosmos1_config(video2world=video2world), state), path


def test_edm_schedule_closed_forms(tmp_path):
    """ComfyUI's CosmosT2V: EDM with sigma_data 0.5 between 0.002 and 80: the network sees
    x / sqrt(sigma^2 + 0.25) and c_noise = ln(sigma) / 4, x0 = 0.25 x / (sigma^2 + 0.25) +
    0.5 sigma F / sqrt(sigma^2 + 0.25); from the top the noise is scaled by sqrt(1 + sigma^2)."""
    from graphflow.models.latent_formats import COSMOS1
    from graphflow.sampling.model_sampling import DiscreteSchedule

    model, _, _ = load(tmp_path)
    assert (model.arch, model.prediction, model.edm, model.latent_format) == ("cosmos1", "edm", (0.002, 80.0), COSMOS1)
    z = torch.randn(1, 16, 2, 2, 2)
    assert torch.equal(COSMOS1.process_in(z), z) and torch.equal(COSMOS1.process_out(z), z)  # scale 1, no shift
    s = DiscreteSchedule.for_model(model)
    assert float(s.sigma_min) == pytest.approx(0.002, rel=1e-5) and float(s.sigma_max) == pytest.approx(80.0, rel=1e-5)
    sigma = torch.tensor([80.0, 1.0, 0.002])
    sv = sigma.view(3, 1, 1, 1, 1)
    x, f = torch.randn(3, 16, 1, 2, 2), torch.randn(3, 16, 1, 2, 2)
    assert torch.allclose(s.timestep(sigma), sigma.log() / 4)
    assert torch.allclose(s.c_in(sigma, x), x / (sv ** 2 + 0.25).sqrt())
    assert torch.allclose(s.denoised(sigma, f, x), 0.25 * x / (sv ** 2 + 0.25) + 0.5 * sv * f / (sv ** 2 + 0.25).sqrt())
    latent, noise = torch.randn(1, 16, 1, 2, 2), torch.randn(1, 16, 1, 2, 2)
    assert torch.allclose(s.noise_scaling(torch.tensor(80.0), noise, latent, max_denoise=True),
                          latent + noise * (1 + 80.0 ** 2) ** 0.5)


def test_known_frames_are_seen_clean(tmp_path):
    """CosmosVideo.scale_latent_inpaint: a noise mask's known region is set to latent / 0.5 (c_in
    at sigma 0) x sqrt(sigma^2 + 0.25), which the network's c_in turns back into latent / 0.5 at
    every sigma: no noise is added (the generic rule would give latent + sigma noise)."""
    from graphflow.sampling.model_sampling import DiscreteSchedule

    model, _, _ = load(tmp_path)
    s = DiscreteSchedule.for_model(model)
    known = model.scale_latent_inpaint(s)
    latent = torch.randn(2, 16, 3, 2, 2)
    sigma = torch.tensor([80.0, 0.3])
    sv = sigma.view(2, 1, 1, 1, 1)
    got = known(sigma, latent)
    assert torch.allclose(got, latent / 0.5 * (sv ** 2 + 0.25).sqrt())
    assert torch.allclose(s.c_in(sigma, got), latent / 0.5, atol=1e-6)
    assert torch.allclose(known(torch.tensor(2.0), latent), latent * 2 * (4.25 ** 0.5))  # a 0-dim sigma too


def diffusers_sample(theirs, x, sigmas, cfg_scale, cond, uncond, fps=None, known=None, mask=None):
    """Euler in EDM sigmas with CFG around diffusers' transformer, ComfyUI's CosmosVideo rules for a
    noise mask (known frames set to known / 0.5 * sqrt(sigma^2 + 0.25), the mask_inverted
    channel, the prediction's known region replaced by the latent)."""
    import math

    def denoised(x, sigma, context):
        c = (sigma ** 2 + 0.25) ** 0.5
        extra = {}
        if mask is not None:
            x = x * mask + known / 0.5 * c * (1 - mask)
            extra["condition_mask"] = 1 - mask[:, :1]
        with torch.no_grad():
            f = theirs(x / c, torch.tensor([math.log(sigma) / 4]), context, fps=fps,
                       padding_mask=torch.zeros(1, 1, *x.shape[-2:]), return_dict=False, **extra)[0]
        d = 0.25 * x / c ** 2 + 0.5 * sigma * f / c
        return d if mask is None else d * mask + known * (1 - mask)

    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        d_cond, d_uncond = denoised(x, sigma, cond), denoised(x, sigma, uncond)
        d = d_uncond + cfg_scale * (d_cond - d_uncond)
        x = x + (x - d) / sigma * (sigma_next - sigma)
    return x


def karras(steps, smin=0.002, smax=80.0, rho=7.0):
    ramp = torch.linspace(0, 1, steps)
    return ((smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho).tolist() + [0.0]


def test_text2world_graph_matches_diffusers(tmp_folders):
    """workflows/cosmos1_t2w.json as saved (tiny weights), at 48x32 and 9 frames: UNETLoader +
    CLIPLoader(cosmos) + EmptyCosmosLatentVideo -> KSampler (euler, karras) -> VAEDecode (the CV8x8x8
    tokenizer) -> SaveAnimatedWEBP. Oracle: diffusers' transformer on the file's weights, the graph's
    own text conditioning, Karras sigmas 80 .. 0.002 in closed form, EDM from pure noise (x sqrt(1 +
    80^2)); no frame rate: RoPE counts frames (ComfyUI's fps None); the decode is the tokenizer's own
    on that latent, 9 frames saved."""
    import json
    from pathlib import Path

    from graphflow.executor import Executor
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from PIL import Image

    from graphflow.models.cosmos_vae import CosmosVideoVAE
    from graphflow.testing import cosmos_vae_config, cosmos_vae_state, write_cosmos_vae, write_old_t5
    from graphflow.workflow import parse_workflow

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    _, theirs, path = load(tmp_folders.models / "diffusion_models")
    write_old_t5(m / "text_encoders" / "oldt5_xxl_fp16.safetensors", dtype=torch.float32, seed=1)
    graph = json.loads((Path(__file__).parent.parent / "workflows" / "cosmos1_t2w.json").read_text())
    write_cosmos_vae(m / "vae" / graph["3"]["inputs"]["vae_name"], seed=4, dtype=torch.float32)
    graph["1"]["inputs"]["unet_name"] = path.name
    graph["2"]["inputs"]["clip_name"] = "oldt5_xxl_fp16.safetensors"
    graph["6"]["inputs"].update(width=48, height=32, length=9)
    graph["7"]["inputs"].update(seed=5, steps=3, cfg=3.0, sampler_name="euler")
    reg = Registry().load_builtin()
    result = Executor(reg).run(parse_workflow(graph, reg))
    assert result.ok, json.dumps(result.error, default=str)[:3000]
    ours = result.values["7"][0]["samples"]
    assert ours.shape == (1, 16, 2, 4, 6)
    cond, uncond = result.values["4"][0][0][0], result.values["5"][0][0][0]
    x = initial_noise(torch.zeros(1, 16, 2, 4, 6), 5) * (1 + 80.0 ** 2) ** 0.5
    want = diffusers_sample(theirs, x, karras(3), 3.0, cond, uncond)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())
    tokenizer = CosmosVideoVAE(cosmos_vae_config()).eval()
    tokenizer.load_state_dict({k: v for k, v in cosmos_vae_state(seed=4).items() if "patcher3d" not in k})
    with torch.no_grad():
        frames = ((tokenizer.decode(ours) + 1) / 2).clamp(0, 1)[0].permute(1, 2, 3, 0)
    assert result.values["8"][0].shape == (9, 32, 48, 3)
    assert torch.allclose(result.values["8"][0], frames, atol=1e-5)
    saved = list(tmp_folders.outputs.glob("cosmos1*.webp"))
    assert len(saved) == 1
    with Image.open(saved[0]) as webp:
        assert (webp.n_frames, webp.size) == (9, (48, 32))


def test_video2world_sampling_matches_diffusers(tmp_path):
    """A start frame kept by the noise mask (CosmosImageToVideoLatent's) and a frame rate in the
    conditioning (LTXVConditioning's frame_rate, ComfyUI's fps): the known frame is seen clean
    each step, the model gets the mask_inverted channel and fps-scaled RoPE, the known frame
    comes out as given."""
    from graphflow.sampling.noise import initial_noise
    from graphflow.sampling.pipeline import sample

    model, theirs, _ = load(tmp_path, video2world=True, seed=4)
    gen = torch.Generator().manual_seed(9)
    known = torch.zeros(1, 16, 3, 4, 4)
    known[:, :, :1] = torch.randn(1, 16, 1, 4, 4, generator=gen)
    mask = torch.ones(1, 1, 3, 4, 4)
    mask[:, :, 0] = 0.0
    context = torch.randn(1, 6, 48, generator=gen)
    latent = {"samples": known.clone(), "noise_mask": mask}
    ours = sample(model, 11, 2, 2.0, "euler", "karras", [(context, {"frame_rate": 12.0})],
                  [(torch.zeros_like(context), {"frame_rate": 12.0})], latent)["samples"]
    x = known + initial_noise(torch.zeros(1, 16, 3, 4, 4), 11) * (1 + 80.0 ** 2) ** 0.5
    want = diffusers_sample(theirs, x, karras(2), 2.0, context, torch.zeros_like(context), fps=12.0, known=known,
                            mask=mask.expand(1, 16, 3, 4, 4))
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())
    assert torch.allclose(ours[:, :, 0], known[:, :, 0], atol=1e-5)
    without_fps = sample(model, 11, 2, 2.0, "euler", "karras", [(context, {})], [(torch.zeros_like(context), {})],
                         latent)["samples"]
    assert (without_fps - ours).abs().max() > 1e-4  # the frame rate reached RoPE


# -- nodes -----------------------------------------------------------------------------------------

class FakeTokenizer:
    """A stand-in for Cosmos' CV8x8x8 tokenizer: frames [F, H, W, 3] -> [1, 16, (F - 1) // 8 + 1,
    H / 8, W / 8], latent frame j the mean of its pictures (1 + 8 (j - 1) .. 8 j), channel c that
    mean x (c + 1); it records what it was given."""

    def __init__(self):
        self.calls = []

    def encode(self, pixels):
        self.calls.append(pixels.clone())
        groups = [pixels[:1]] + [pixels[1 + 8 * j:9 + 8 * j] for j in range((pixels.shape[0] - 1) // 8)]
        means = torch.stack([g.mean(dim=(0, 3)) for g in groups])  # [T, H, W]
        means = torch.nn.functional.avg_pool2d(means[:, None], 8)[:, 0]
        return means[None, None] * torch.arange(1.0, 17.0).view(1, 16, 1, 1, 1)


def test_empty_cosmos_latent_video():
    from graphflow.registry import Registry
    from tests.test_nodes_image_mask import call

    out = call(Registry().load_builtin(), "EmptyCosmosLatentVideo", width=1280, height=704, length=121, batch_size=2)
    assert out["samples"].shape == (2, 16, 16, 88, 160) and not out["samples"].any()
    assert call(Registry().load_builtin(), "EmptyCosmosLatentVideo", width=64, height=48, length=1,
                batch_size=1)["samples"].shape == (1, 16, 1, 6, 8)


def test_image_to_video_latent_places_frames_and_mask():
    """ComfyUI's CosmosImageToVideoLatent: the start image (padding 1) is encoded followed by grey
    (0.5) frames up to ((n - 1) // 8 + 2) * 8 - 7 pictures and its (n - 1) // 8 + 1 latent frames
    kept first; the end image (padding 0) likewise, kept last; the mask is 0 there, the latent the
    tokenizer's raw output elsewhere zero; both repeated to the batch."""
    from graphflow.context import NodeInputError
    from graphflow.registry import Registry
    from tests.test_nodes_image_mask import call

    reg = Registry().load_builtin()
    vae = FakeTokenizer()
    start, end = torch.rand(1, 48, 64, 3), torch.rand(1, 48, 64, 3)
    out = call(reg, "CosmosImageToVideoLatent", vae=vae, width=64, height=48, length=33, batch_size=2,
               start_image=start, end_image=end)
    assert out["samples"].shape == (2, 16, 5, 6, 8) and out["noise_mask"].shape == (2, 1, 5, 6, 8)
    assert out["noise_mask"][0, 0, :, 0, 0].tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    first, last = vae.calls
    assert first.shape == (9, 48, 64, 3) and torch.equal(first[0], start[0]) and (first[1:] == 0.5).all()
    assert last.shape == (1, 48, 64, 3) and torch.equal(last[0], end[0])
    assert torch.allclose(out["samples"][1, :, 0], vae.encode(start)[0, :, 0])
    assert torch.allclose(out["samples"][1, :, 4], vae.encode(end)[0, :, 0])
    assert not out["samples"][:, :, 1:4].any()

    clip = torch.rand(9, 48, 64, 3)  # a 9-frame start clip: 2 latent frames, encoded with 8 grey pictures after
    vae = FakeTokenizer()
    out = call(reg, "CosmosImageToVideoLatent", vae=vae, width=64, height=48, length=33, batch_size=1, start_image=clip)
    assert vae.calls[0].shape == (17, 48, 64, 3) and (vae.calls[0][9:] == 0.5).all()
    assert out["noise_mask"][0, 0, :, 0, 0].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]

    empty = call(reg, "CosmosImageToVideoLatent", vae=vae, width=64, height=48, length=17, batch_size=3)
    assert empty["samples"].shape == (1, 16, 3, 6, 8) and "noise_mask" not in empty  # ComfyUI: batch 1 when empty

    class Wrong:
        def encode(self, pixels):
            return torch.zeros(1, 12, 1, pixels.shape[1] // 8, pixels.shape[2] // 8)

    with pytest.raises(NodeInputError, match="16-channel video tokenizer") as e:
        call(reg, "CosmosImageToVideoLatent", vae=Wrong(), width=64, height=48, length=9, batch_size=1,
             start_image=start)
    assert e.value.input == "vae"


def test_model_merge_cosmos1_picks_each_blocks_weights(tmp_path):
    from safetensors.torch import load_file

    from graphflow.context import NodeInputError
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.registry import Registry
    from graphflow.testing import write_cosmos, write_cosmos1
    from tests.test_nodes_image_mask import call

    reg = Registry().load_builtin()
    paths = [write_cosmos1(tmp_path / f"c{s}.safetensors", dtype=torch.float32, seed=s) for s in (0, 5)]
    m1, m2 = (load_diffusion_model(p, device="cpu", dtype=torch.float32) for p in paths)
    files = [load_file(str(p)) for p in paths]
    ratios = {"extra_pos_embedder.": 0.75, "x_embedder.": 1.0, "t_embedder.": 0.0, "affline_norm.": 0.25,
              "blocks.block0.": 0.0, "blocks.block1.": 0.5, "final_layer.": 1.0}
    widgets = {p.rstrip(".").replace(".", "_"): v for p, v in ratios.items()}
    merged = call(reg, "ModelMergeCosmos7B", model1=m1, model2=m2, **widgets).unet.state_dict()
    for name, a in files[0].items():
        r = ratios[next(p for p in ratios if name.startswith(p))]
        torch.testing.assert_close(merged[name], r * a + (1 - r) * files[1][name], msg=name)
    names = list(reg.get("ModelMergeCosmos14B").input_specs)
    assert names[:7] == ["model1", "model2", "pos_embedder", "extra_pos_embedder", "x_embedder", "t_embedder",
                         "affline_norm"]
    assert names[-2:] == ["blocks_block35", "final_layer"] and len(names) == 2 + 5 + 36 + 1
    predict2 = load_diffusion_model(write_cosmos(tmp_path / "p2.safetensors", dtype=torch.float32), device="cpu")
    with pytest.raises(NodeInputError, match="cosmos1.*cosmos") as e:
        call(reg, "ModelMergeCosmos14B", model1=m1, model2=predict2)
    assert e.value.input == "model2"
