"""Cosmos-Predict2 against diffusers on identical tiny random weights.

Oracle path: random weights in NVIDIA's layout (`net.` + x_embedder / t_embedder / blocks.N.
self_attn ...) go through diffusers' single-file converter
(`convert_cosmos_transformer_checkpoint_to_diffusers`, its Cosmos 2.0 branch) into
CosmosTransformer3DModel, loaded strictly; ours loads the same tensors as they are.
"""

import pytest
import torch
from diffusers import CosmosTransformer3DModel
from diffusers.loaders.single_file_utils import convert_cosmos_transformer_checkpoint_to_diffusers

from graphflow.models.cosmos import CosmosConfig, CosmosPredict2, cosmos_config_from_state_dict, find_cosmos

TOL = 1e-4


def random_state(module, seed):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) * 0.2 + (1.0 if "norm" in k else 0.0)
            for k, v in module.state_dict().items()}


def pair(in_channels=16, ratios=(4.0, 4.0, 1.0)):
    cfg = CosmosConfig(in_channels=in_channels, model_channels=48, num_blocks=2, num_heads=2, crossattn_emb_channels=20,
                       adaln_lora_dim=8, rope_extrapolation=ratios)
    ours = CosmosPredict2(cfg).eval()
    state = random_state(ours, 0)
    ours.load_state_dict(state, strict=True)
    theirs = CosmosTransformer3DModel(
        in_channels=in_channels, out_channels=16, num_attention_heads=2, attention_head_dim=24, num_layers=2,
        text_embed_dim=20, adaln_lora_dim=8, rope_scale=(ratios[2], ratios[0], ratios[1]), concat_padding_mask=True,
        extra_pos_embed_type=None).eval()
    converted = convert_cosmos_transformer_checkpoint_to_diffusers({f"net.{k}": v.clone() for k, v in state.items()})
    theirs.load_state_dict(converted, strict=True)
    return cfg, ours, theirs, state


@pytest.mark.parametrize("frames", [1, 3])
def test_matches_diffusers(frames):
    _, ours, theirs, _ = pair()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 16, frames, 4, 6, generator=gen)
    context = torch.randn(2, 7, 20, generator=gen)
    t = torch.tensor([0.9, 0.3])
    with torch.no_grad():
        got = ours(x, t, context)
        want = theirs(x, t, context, padding_mask=torch.zeros(1, 1, 4, 6), return_dict=False)[0]
    assert got.shape == x.shape
    assert (got - want).abs().max() < TOL
    assert got.abs().max() > 0.1


def test_per_frame_timesteps_and_mask_channel_match_diffusers():
    """video2world: 17 input channels (the known-frame mask, diffusers' condition_mask) and a
    timestep per frame ([B, 1, T, 1, 1] in diffusers)."""
    _, ours, theirs, _ = pair(17, (3.0, 3.0, 1.0))
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 16, 3, 4, 4, generator=gen)
    mask = torch.zeros(1, 1, 3, 4, 4)
    mask[:, :, 0] = 1.0
    context = torch.randn(1, 5, 20, generator=gen)
    t = torch.tensor([[0.0, 0.7, 0.7]])
    with torch.no_grad():
        got = ours(torch.cat([x, mask], dim=1), t, context)
        want = theirs(x, t.reshape(1, 1, 3, 1, 1), context, condition_mask=mask,
                      padding_mask=torch.zeros(1, 1, 4, 4), return_dict=False)[0]
    assert (got - want).abs().max() < TOL


def test_image_latent_is_one_frame():
    _, ours, _, _ = pair()
    x = torch.randn(1, 16, 4, 4)
    context = torch.randn(1, 3, 20)
    with torch.no_grad():
        t = torch.tensor([0.5])
        assert torch.allclose(ours(x, t, context), ours(x[:, :, None], t, context)[:, :, 0])


@pytest.mark.parametrize("prefix", ["", "net.", "model.diffusion_model."])
def test_config_and_prefix_from_state_dict(prefix):
    cfg, _, _, state = pair()
    shapes = {prefix + k: tuple(v.shape) for k, v in state.items()}
    shapes[prefix + "pos_embedder.dim_spatial_range"] = (4,)  # NVIDIA's files carry buffers: not weights
    assert find_cosmos(shapes) == prefix
    bare = {k[len(prefix):]: s for k, s in shapes.items()}
    got = cosmos_config_from_state_dict(bare)
    assert got == CosmosConfig(in_channels=16, model_channels=48, num_blocks=2, num_heads=2,
                               crossattn_emb_channels=20, adaln_lora_dim=8, rope_extrapolation=(4.0, 4.0, 1.0))
    assert find_cosmos({"x_embedder.proj.1.weight": (48, 68)}) is None


def test_rope_ratios_as_comfyui():
    from graphflow.models.cosmos import rope_extrapolation

    assert rope_extrapolation(16, 2048) == rope_extrapolation(16, 5120) == (4.0, 4.0, 1.0)
    assert rope_extrapolation(17, 2048) == (3.0, 3.0, 1.0)
    assert rope_extrapolation(17, 5120) == (2.0, 2.0, 5 / 6)


def test_nvidia_extras_are_skipped_on_load():
    _, ours, _, state = pair()
    extra = dict(state, **{"pos_embedder.seq": torch.arange(4.0), "accum_video_sample_counter": torch.tensor(3),
                           "blocks.0.self_attn.q_proj._extra_state": torch.zeros(1),
                           "extra_pos_embedder.pos_emb_t": torch.zeros(4, 48)})
    ours.load_state_dict(extra, strict=True)


# -- sampling as ComfyUI does ----------------------------------------------------------------------

def test_rflow_schedule_closed_forms():
    """ComfyUI's ModelSamplingCosmosRFlow + COSMOS_RFLOW: t = sigma / (1 + sigma), the network sees
    x / (1 + sigma), x0 = x (1 - t) - v t, noise added as latent + sigma noise even from the top."""
    from graphflow.sampling.model_sampling import CosmosRFlowSchedule

    s = CosmosRFlowSchedule()
    sigma = torch.tensor([80.0, 1.0, 0.002])
    t = sigma / (1 + sigma)
    assert torch.allclose(s.timestep(sigma), t)
    assert torch.allclose(s.sigma(t[1:]), sigma[1:], rtol=1e-4)
    assert float(s.sigma(torch.tensor(0.999))) == pytest.approx(80.0, rel=1e-4)  # capped at sigma_max
    assert float(s.sigma_min) == pytest.approx(0.002, rel=1e-4) and float(s.sigma_max) == pytest.approx(80.0, rel=1e-4)
    x, v = torch.randn(3, 2, 1, 2, 2), torch.randn(3, 2, 1, 2, 2)
    tt = t.view(3, 1, 1, 1, 1)
    assert torch.allclose(s.c_in(sigma, x), x * (1 - tt))
    assert torch.allclose(s.denoised(sigma, v, x), x * (1 - tt) - v * tt)
    latent, noise = torch.randn(1, 2, 1, 2, 2), torch.randn(1, 2, 1, 2, 2)
    assert torch.allclose(s.noise_scaling(torch.tensor(80.0), noise, latent, max_denoise=True), latent + 80 * noise)
    assert s.percent_to_sigma(0.0) > 80 and s.percent_to_sigma(1.0) == 0.0
    assert s.percent_to_sigma(0.5) == pytest.approx((0.002 * 80) ** 0.5, rel=1e-4)  # log-uniform, as EDM's


@pytest.fixture
def cosmos_models(tmp_folders):
    from graphflow.testing import write_cosmos, write_old_t5, write_wan_vae

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    write_cosmos(m / "diffusion_models" / "cosmos_predict2_2B_t2i.safetensors", dtype=torch.float32, seed=3,
                 prefix="model.diffusion_model.")
    write_old_t5(m / "text_encoders" / "oldt5_xxl_fp16.safetensors", dtype=torch.float32, seed=1)
    write_wan_vae(m / "vae" / "wan_2.1_vae.safetensors", dtype=torch.float32)
    return tmp_folders


def cosmos_t2i_graph(cfg_scale: float) -> dict:
    """workflows/cosmos_predict2_t2i.json as saved but for its size (48x32), steps (3), cfg and
    text encoder file (the tiny old T5 in fp16)."""
    import json
    from pathlib import Path

    graph = json.loads((Path(__file__).parent.parent / "workflows" / "cosmos_predict2_t2i.json").read_text())
    graph["2"]["inputs"]["clip_name"] = "oldt5_xxl_fp16.safetensors"
    graph["4"]["inputs"]["text"], graph["5"]["inputs"]["text"] = "a robot arm on a workbench", "blurry"
    graph["6"]["inputs"].update(width=48, height=32)
    graph["7"]["inputs"].update(seed=5, steps=3, cfg=cfg_scale)
    return graph


def test_cosmos_t2i_graph_runs_and_matches_diffusers(cosmos_models):
    """UNETLoader + CLIPLoader(cosmos) + VAELoader(wan) -> KSampler -> VAEDecode. Oracle: diffusers'
    transformer on the file's weights (through its converter), transformers' T5 (v1.0, ReLU) on
    the prompt padded to 512 with the padding masked and zeroed, Karras sigmas 80 .. 0.002 in
    closed form and Euler steps in EDM sigmas on x0 = x (1 - t) - v t."""
    import json

    from safetensors.torch import load_file
    from transformers import T5EncoderModel, T5TokenizerFast

    from graphflow.executor import Executor
    from graphflow.models.latent_formats import WAN21
    from graphflow.models.t5 import TOKENIZER_FILE
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import cosmos_config, old_t5_config
    from graphflow.workflow import parse_workflow

    cfg_scale = 3.0
    reg = Registry().load_builtin()
    result = Executor(reg).run(parse_workflow(json.loads(json.dumps(cosmos_t2i_graph(cfg_scale))), reg))
    assert result.ok, json.dumps(result.error, default=str)[:3000]
    assert len(list(cosmos_models.outputs.rglob("cosmos*.png"))) == 1
    image = result.values["8"][0]
    assert image.shape == (1, 32, 48, 3) and float(image.std()) > 0.001
    ours = result.values["7"][0]["samples"]
    assert ours.shape == (1, 16, 1, 4, 6)  # an image latent sampled as one frame (ComfyUI's)

    m = cosmos_models.models
    state = load_file(str(m / "diffusion_models" / "cosmos_predict2_2B_t2i.safetensors"))
    c = cosmos_config()
    theirs = CosmosTransformer3DModel(
        in_channels=16, out_channels=16, num_attention_heads=c.num_heads, attention_head_dim=c.head_dim,
        num_layers=c.num_blocks, text_embed_dim=c.crossattn_emb_channels, adaln_lora_dim=c.adaln_lora_dim,
        rope_scale=(1.0, 4.0, 4.0), concat_padding_mask=True, extra_pos_embed_type=None).eval()
    theirs.load_state_dict(convert_cosmos_transformer_checkpoint_to_diffusers(
        {"net." + k[len("model.diffusion_model."):]: v for k, v in state.items()}), strict=True)
    t5 = T5EncoderModel(old_t5_config()).eval()
    t5.load_state_dict(load_file(str(m / "text_encoders" / "oldt5_xxl_fp16.safetensors")), strict=False)
    tokenizer = T5TokenizerFast(tokenizer_file=str(TOKENIZER_FILE))

    def text(prompt):
        enc = tokenizer(prompt, padding="max_length", max_length=512, return_tensors="pt")
        with torch.no_grad():
            hidden = t5(enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
        return hidden * enc.attention_mask[..., None]

    cond, uncond = text("a robot arm on a workbench"), text("blurry")
    rho, smin, smax = 7.0, 0.002, 80.0
    ramp = torch.linspace(0, 1, 3)
    sigmas = ((smax ** (1 / rho) + ramp * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho).tolist() + [0.0]

    def denoised(x, sigma, context):
        t = sigma / (1 + sigma)
        with torch.no_grad():
            v = theirs(x * (1 - t), torch.tensor([t]), context, padding_mask=torch.zeros(1, 1, 4, 6),
                       return_dict=False)[0]
        return x * (1 - t) - v * t

    x = initial_noise(torch.zeros(1, 16, 1, 4, 6), 5) * sigmas[0]
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        d_cond, d_uncond = denoised(x, sigma, cond), denoised(x, sigma, uncond)
        d = d_uncond + cfg_scale * (d_cond - d_uncond)
        x = x + (x - d) / sigma * (sigma_next - sigma)
    want = WAN21.process_out(x)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())


def test_cosmos_video2world_graph_matches_diffusers(tmp_folders):
    """CosmosPredict2ImageToVideoLatent's start image is kept: before each model call its frame is
    set to the latent x (1 + sigma) (seen clean), the model gets the known-frame channel
    (diffusers' condition_mask) and timestep 0 for that frame (diffusers' per-frame timesteps),
    and the prediction there is the latent (ComfyUI's CosmosPredict2 video2world)."""
    from safetensors.torch import load_file

    from graphflow.models.checkpoint import load_diffusion_model, load_vae
    from graphflow.models.latent_formats import WAN21
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.sampling.pipeline import sample
    from graphflow.testing import cosmos_config, old_t5_config, write_cosmos, write_wan_vae
    from tests.test_nodes_image_mask import call

    m = tmp_folders.models
    for sub in ("diffusion_models", "vae"):
        (m / sub).mkdir()
    write_cosmos(m / "diffusion_models" / "v2w.safetensors", dtype=torch.float32, seed=4, video2world=True)
    write_wan_vae(m / "vae" / "wan_2.1_vae.safetensors", dtype=torch.float32)
    gen = torch.Generator().manual_seed(9)
    start = torch.rand(1, 40, 40, 3, generator=gen)
    context = torch.randn(1, 6, old_t5_config().d_model, generator=gen)
    cond = [(context, {})]
    model = load_diffusion_model(m / "diffusion_models" / "v2w.safetensors", device="cpu", dtype=torch.float32)
    vae = load_vae(m / "vae" / "wan_2.1_vae.safetensors", device="cpu", dtype=torch.float32)
    latent = call(Registry().load_builtin(), "CosmosPredict2ImageToVideoLatent", vae=vae, width=32, height=32,
                  length=9, batch_size=1, start_image=start)
    assert latent["samples"].shape == (1, 16, 3, 4, 4)
    assert latent["noise_mask"][0, 0, :, 0, 0].tolist() == [0.0, 1.0, 1.0]
    # frames to generate hold the raw latent of model-space zero
    assert torch.allclose(WAN21.process_in(latent["samples"])[:, :, 1:], torch.zeros(1, 16, 2, 4, 4), atol=1e-5)
    out = sample(model, 11, 2, 2.0, "euler", "karras", cond, [(torch.zeros_like(context), {})], latent)
    ours = out["samples"]

    state = load_file(str(m / "diffusion_models" / "v2w.safetensors"))
    c = cosmos_config(video2world=True)
    theirs = CosmosTransformer3DModel(
        in_channels=17, out_channels=16, num_attention_heads=c.num_heads, attention_head_dim=c.head_dim,
        num_layers=c.num_blocks, text_embed_dim=c.crossattn_emb_channels, adaln_lora_dim=c.adaln_lora_dim,
        rope_scale=(1.0, 1.0, 1.0), concat_padding_mask=True, extra_pos_embed_type=None).eval()
    theirs.load_state_dict(convert_cosmos_transformer_checkpoint_to_diffusers(
        {"net." + k: v for k, v in state.items()}), strict=True)

    known = WAN21.process_in(latent["samples"])
    mask = latent["noise_mask"].expand(1, 16, 3, 4, 4)
    frame_mask = torch.tensor([0.0, 1.0, 1.0]).reshape(1, 1, 3, 1, 1)
    sigmas = [80.0, 0.002, 0.0]

    def denoised(x, sigma, ctx):
        t = sigma / (1 + sigma)
        x_in = x * mask + known * (1 + sigma) * (1 - mask)
        with torch.no_grad():
            v = theirs(x_in * (1 - t), t * frame_mask, ctx, condition_mask=1 - mask[:, :1],
                       padding_mask=torch.zeros(1, 1, 4, 4), return_dict=False)[0]
        return (x_in * (1 - t) - v * t) * mask + known * (1 - mask)

    x = known + initial_noise(torch.zeros(1, 16, 3, 4, 4), 11) * sigmas[0]
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        d_cond, d_uncond = denoised(x, sigma, context), denoised(x, sigma, torch.zeros_like(context))
        d = d_uncond + 2.0 * (d_cond - d_uncond)
        x = x + (x - d) / sigma * (sigma_next - sigma)
    want = WAN21.process_out(x)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())
    assert torch.allclose(ours[:, :, 0], latent["samples"][:, :, 0], atol=1e-4)  # the start frame is kept


# -- nodes -------------------------------------------------------------------------------------------

def test_model_merge_cosmos_predict2_picks_each_blocks_weights(tmp_path):
    from safetensors.torch import load_file

    from graphflow.context import NodeInputError
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.registry import Registry
    from graphflow.testing import write_chroma, write_cosmos
    from tests.test_nodes_image_mask import call

    reg = Registry().load_builtin()
    paths = [write_cosmos(tmp_path / f"c{s}.safetensors", dtype=torch.float32, seed=s) for s in (0, 5)]
    m1, m2 = (load_diffusion_model(p, device="cpu", dtype=torch.float32) for p in paths)
    files = [load_file(str(p)) for p in paths]
    ratios = {"x_embedder.": 1.0, "t_embedder.": 0.0, "t_embedding_norm.": 0.25, "blocks.0.": 0.0, "blocks.1.": 0.5,
              "final_layer.": 1.0}
    widgets = {p.rstrip(".").replace(".", "_"): v for p, v in ratios.items()}
    merged = call(reg, "ModelMergeCosmosPredict2_2B", model1=m1, model2=m2, **widgets).unet.state_dict()
    for name, a in files[0].items():
        r = ratios[next(p for p in ratios if name.startswith(p))]
        torch.testing.assert_close(merged[name], r * a + (1 - r) * files[1][name], msg=name)
    assert [n for n in reg.get("ModelMergeCosmosPredict2_14B").input_specs][-2:] == ["blocks_35", "final_layer"]
    chroma = load_diffusion_model(write_chroma(tmp_path / "chroma.safetensors", dtype=torch.float32), device="cpu")
    with pytest.raises(NodeInputError, match="cosmos.*chroma") as e:
        call(reg, "ModelMergeCosmosPredict2_2B", model1=m1, model2=chroma)
    assert e.value.input == "model2"


def test_image_to_video_latent_shapes_and_bad_inputs(tmp_path):
    from graphflow.context import NodeInputError
    from graphflow.models.checkpoint import load_vae
    from graphflow.registry import Registry
    from graphflow.testing import write_flow_vae, write_wan_vae
    from tests.test_nodes_image_mask import call

    reg = Registry().load_builtin()
    wan = load_vae(write_wan_vae(tmp_path / "wan.safetensors", dtype=torch.float32), device="cpu", dtype=torch.float32)
    empty = call(reg, "CosmosPredict2ImageToVideoLatent", vae=wan, width=64, height=48, length=93, batch_size=2)
    assert empty["samples"].shape == (1, 16, 24, 6, 8) and "noise_mask" not in empty  # ComfyUI: batch 1 when empty
    end = torch.rand(2, 48, 64, 3)
    with pytest.raises(NodeInputError, match="2 frames do not fit the 1") as e:  # as in ComfyUI, which fails too
        call(reg, "CosmosPredict2ImageToVideoLatent", vae=wan, width=64, height=48, length=13, batch_size=2,
             end_image=end)
    assert e.value.input == "end_image"
    out = call(reg, "CosmosPredict2ImageToVideoLatent", vae=wan, width=64, height=48, length=13, batch_size=2,
               end_image=end[:1])
    assert out["samples"].shape == (2, 16, 4, 6, 8)
    assert out["noise_mask"][0, 0, :, 0, 0].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert torch.allclose(out["samples"][0, :, -1], wan.encode(end[:1])[0, :, 0], atol=1e-5)
    flux_vae = load_vae(write_flow_vae(tmp_path / "ae.safetensors"), device="cpu")
    with pytest.raises(NodeInputError, match="Wan 2.1 VAE") as e:
        call(reg, "CosmosPredict2ImageToVideoLatent", vae=flux_vae, width=64, height=48, length=13, batch_size=1,
             start_image=end)
    assert e.value.input == "vae"


def test_inspect_and_file_kind(tmp_path):
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.testing import write_cosmos

    report = inspect_report(write_cosmos(tmp_path / "v2w.safetensors", prefix="net.", video2world=True))
    assert "kind: Cosmos-Predict2 diffusion model, for models/diffusion_models/, loaded by LoadDiffusionModel" in report
    assert "video2world (known-frame mask channel), width 48, 2 blocks of 2 heads, text width 48, keys under net." \
        in report


def test_lora_in_comfyui_layout(tmp_path):
    """A LoRA in ComfyUI's diffusion_model.<NVIDIA key> layout patches the named weight."""
    import copy

    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.lora import apply_lora
    from graphflow.testing import write_cosmos

    model = load_diffusion_model(write_cosmos(tmp_path / "c.safetensors", dtype=torch.float32), device="cpu",
                                 dtype=torch.float32)
    gen = torch.Generator().manual_seed(3)
    down, up = torch.randn(4, 48, generator=gen) * 0.1, torch.randn(48, 4, generator=gen) * 0.1
    save_file({"diffusion_model.blocks.1.cross_attn.v_proj.lora_A.weight": down,
               "diffusion_model.blocks.1.cross_attn.v_proj.lora_B.weight": up}, str(tmp_path / "lora.safetensors"))
    patched, _ = apply_lora(model, None, tmp_path / "lora.safetensors", 0.5)
    want = copy.deepcopy(model.unet)
    want.blocks[1].cross_attn.v_proj.weight.data += 0.5 * up @ down
    x, context = torch.randn(1, 16, 2, 4, 4, generator=gen), torch.randn(1, 3, 48, generator=gen)
    t = torch.tensor([0.4])
    with torch.no_grad():
        got, base = patched(x, t, context), model(x, t, context)
        torch.testing.assert_close(got, want(x, t, context), atol=1e-5, rtol=1e-5)
    assert (got - base).abs().max() > 1e-3


def test_fp8_weight_dtype(tmp_path):
    """UNETLoader's weight_dtype fp8_e4m3fn: Linear weights stored in fp8 and upcast per layer, norms
    kept in the compute dtype with fp8-rounded values (ComfyUI builds the whole net in fp8): the
    full-precision model with every tensor rounded to fp8."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.testing import write_cosmos

    path = write_cosmos(tmp_path / "c.safetensors", dtype=torch.float32)
    full = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    fp8 = load_diffusion_model(path, device="cpu", dtype=torch.float32, weight_dtype="fp8_e4m3fn")
    assert fp8.unet.blocks[0].self_attn.q_proj.weight.dtype == torch.float8_e4m3fn
    assert fp8.unet.t_embedding_norm.weight.dtype == torch.float32
    gen = torch.Generator().manual_seed(6)
    x, context = torch.randn(1, 16, 1, 4, 4, generator=gen), torch.randn(1, 3, 48, generator=gen)
    t = torch.tensor([0.5])
    with torch.no_grad():
        before = full(x, t, context)
        for weight in full.unet.state_dict().values():
            if weight.is_floating_point():
                weight.copy_(weight.to(torch.float8_e4m3fn).float())
        torch.testing.assert_close(fp8(x, t, context), full(x, t, context), atol=1e-5, rtol=1e-5)
        assert (full(x, t, context) - before).abs().max() > 1e-3  # the rounding mattered


def test_scaled_fp8_file_equals_its_dequantised_weights(tmp_path):
    """ComfyUI's scaled-fp8 layout (weight_fp8 + scale_weight per Linear): kept in fp8 and scaled per
    layer, the same numbers as the dequantised file's."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.testing import write_cosmos, write_scaled_fp8

    source = write_cosmos(tmp_path / "c.safetensors", dtype=torch.float32, prefix="model.diffusion_model.")
    scaled = write_scaled_fp8(source, tmp_path / "c_fp8_scaled.safetensors", ("model.diffusion_model.",),
                              dequantised=tmp_path / "c_dequantised.safetensors")
    a = load_diffusion_model(scaled, device="cpu", dtype=torch.float32)
    b = load_diffusion_model(tmp_path / "c_dequantised.safetensors", device="cpu", dtype=torch.float32)
    assert a.unet.blocks[1].mlp.layer1.weight.dtype == torch.float8_e4m3fn
    gen = torch.Generator().manual_seed(7)
    x, context = torch.randn(1, 16, 1, 4, 4, generator=gen), torch.randn(1, 3, 48, generator=gen)
    t = torch.tensor([0.5])
    with torch.no_grad():
        torch.testing.assert_close(a(x, t, context), b(x, t, context), atol=1e-5, rtol=1e-5)


def test_old_t5_file_kind(tmp_path):
    from graphflow.models.file_kind import identify
    from graphflow.models.weight_files import WeightFile
    from graphflow.testing import write_old_t5, write_text_encoder

    with WeightFile(write_old_t5(tmp_path / "oldt5.safetensors")) as f:
        assert identify(f.shapes).name == "old T5-XXL text encoder (T5 v1.0, for Cosmos 1.0 and Cosmos-Predict2: type cosmos)"
    with WeightFile(write_text_encoder(tmp_path / "t5xxl.safetensors", "t5xxl")) as f:
        assert identify(f.shapes).name == "T5 text encoder (T5-XXL for SD3 / FLUX / Chroma)"
