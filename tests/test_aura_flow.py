"""AuraFlow's MM-DiT (graphflow.models.aura_flow) against diffusers' AuraFlowTransformer2DModel on the same
tiny random weights (fal's / ComfyUI's names converted by diffusers' own
convert_auraflow_transformer_checkpoint_to_diffusers); ComfyUI's conventions diffusers lacks (odd latent
sizes padded circularly, its centre crop and enlargement of the position table); the sampler's model call;
the all-in-one checkpoint's model and VAE; ModelMergeAuraflow; LoRAs in diffusers' names. Detection,
UNETLoader, ModelSave, fp8 and ComfyUI's / kohya's LoRA names: the aura_flow row of tests/test_flow_families.py.
"""

import pytest
import torch
import torch.nn.functional as F
from diffusers import AuraFlowTransformer2DModel
from diffusers.loaders.single_file_utils import convert_auraflow_transformer_checkpoint_to_diffusers
from safetensors.torch import load_file

from graphflow import testing
from graphflow.models.aura_flow import AuraFlow, aura_flow_config_from_state_dict

TOL = 1e-4
TEXT = testing.AURA_FLOW_TINY_TEXT_DIM


def diffusers_aura_flow(state, cfg=None):
    cfg = cfg or testing.aura_flow_config()
    net = AuraFlowTransformer2DModel(
        sample_size=8, patch_size=cfg.patch_size, in_channels=cfg.in_channels, out_channels=cfg.out_channels,
        num_mmdit_layers=cfg.n_double_layers, num_single_dit_layers=cfg.n_layers - cfg.n_double_layers,
        attention_head_dim=cfg.head_dim, num_attention_heads=cfg.n_heads, joint_attention_dim=cfg.cond_seq_dim,
        caption_projection_dim=cfg.dim, pos_embed_max_size=cfg.max_seq).eval()
    net.load_state_dict(convert_auraflow_transformer_checkpoint_to_diffusers(dict(state)), strict=True)
    return net


@pytest.fixture(scope="module")
def pair():
    state = testing.aura_flow_state(seed=3)
    ours = AuraFlow(testing.aura_flow_config()).eval()
    ours.load_state_dict(state)
    return ours, diffusers_aura_flow(state)


def _inputs(h, w, seed=1, batch=2):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 4, h, w, generator=g), torch.tensor([0.83, 0.27])[:batch],
            torch.randn(batch, 6, TEXT, generator=g))


def _close(got, want):
    assert got.shape == want.shape
    assert float((got - want).abs().max()) < TOL * max(1.0, float(want.abs().max()))


def test_config_from_shapes():
    state = testing.aura_flow_state()
    assert aura_flow_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()}) == testing.aura_flow_config()


def test_full_size_defaults():
    """The defaults are AuraFlow v0.3's: diffusers' AuraFlowTransformer2DModel with fal's shapes (12 heads of 256,
    4 + 32 layers, a 64 x 64 table) has as many parameters, and the config reads back from the shapes."""
    with torch.device("meta"):
        ours = AuraFlow(testing.aura_flow_config(scaled_down=False))
        theirs = AuraFlowTransformer2DModel(pos_embed_max_size=4096)
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(ours) == count(theirs)
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert shapes["double_layers.0.mlpX.c_fc1.weight"] == (8192, 3072)
    assert shapes["positional_encoding"] == (1, 4096, 3072)
    assert aura_flow_config_from_state_dict(shapes) == testing.aura_flow_config(scaled_down=False)


@pytest.mark.parametrize("size", [(8, 8), (6, 10)], ids=["square", "wide"])
def test_matches_diffusers(pair, size):
    """A batch of two at their own sigmas: diffusers takes the same number as its timestep (the pipeline's
    t / 1000), as ComfyUI's AuraFlow with multiplier 1."""
    ours, theirs = pair
    x, sigma, context = _inputs(*size)
    with torch.no_grad():
        _close(ours(x, sigma, context), theirs(x, context, sigma).sample)


def test_odd_latent_is_padded_circularly_and_cropped(pair):
    """A 7 x 9 latent (diffusers takes none): ComfyUI's patchify pads it circularly to 8 x 10 and crops the
    output back, which is diffusers' output on the padded latent, cropped."""
    ours, theirs = pair
    x, sigma, context = _inputs(7, 9)
    padded = F.pad(x, (0, 1, 0, 1), mode="circular")
    with torch.no_grad():
        got, want = ours(x, sigma, context), theirs(padded, context, sigma).sample[..., :7, :9]
    _close(got, want)


def test_position_table_crop_and_enlargement():
    """ComfyUI's apply_pos_embeds: the window's top-left is (side - h) // 2 (an 8-wide table, 5 patches: row 1;
    diffusers' side // 2 - h // 2 gives row 2), and a latent with more patches a side than the table gets
    the table bilinearly enlarged to that side first."""
    cfg = testing.aura_flow_config()
    from dataclasses import replace

    net = AuraFlow(replace(cfg, max_seq=64))
    rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    with torch.no_grad():
        net.positional_encoding.zero_()
        net.positional_encoding[0, :, 0], net.positional_encoding[0, :, 1] = rows.flatten(), cols.flatten()
    window = net.positions(5, 3, torch.float32).reshape(5, 3, -1)
    assert window[0, 0, :2].tolist() == [1.0, 2.0] and window[-1, -1, :2].tolist() == [5.0, 4.0]
    big = net.positions(10, 4, torch.float32)
    table = net.positional_encoding.reshape(1, 8, 8, -1).movedim(-1, 1)
    want = F.interpolate(table, (10, 10), mode="bilinear").movedim(1, -1)[:, :, 3:7].reshape(1, 40, -1)
    assert torch.equal(big, want)


def test_the_samplers_model_call_gives_diffusers_denoised(pair):
    """CheckpointLoaderSimple's MODEL sampled with ComfyUI's defaults (ModelSamplingAuraFlow's shift 1.73,
    multiplier 1): the denoiser's x0 at a step's sigma is x - sigma v with v diffusers' at timestep sigma."""
    from graphflow.models.diffusion_model import DiffusionModel
    from graphflow.sampling.flow_sampling import FlowDenoiser, model_sampling_for
    from graphflow.sampling.schedules import compute_sigmas

    ours, theirs = pair
    model = DiffusionModel(ours, "aura_flow", "flow")
    schedule = model_sampling_for(model)
    assert (schedule.kind, schedule.shift, schedule.multiplier) == ("shift", 1.73, 1.0)
    sigma = compute_sigmas(schedule, "simple", 8)[3].reshape(1)
    assert abs(float(sigma) - 1.73 * 0.625 / (1 + 0.73 * 0.625)) < 1e-6
    x, _, context = _inputs(8, 6, batch=1)
    with torch.no_grad():
        denoised = FlowDenoiser(model)(x, sigma, context)
        want = x - sigma * theirs(x, context, sigma).sample
    _close(denoised, want)
    # ComfyUI's workflows set the same with ModelSamplingAuraFlow (its default shift 1.73)
    from graphflow.registry import Registry
    from tests.test_nodes_image_mask import call

    node = call(Registry().load_builtin(), "ModelSamplingAuraFlow", model=model)
    same = model_sampling_for(node)
    assert torch.equal(same.sigmas, schedule.sigmas) and same.multiplier == 1.0
    with torch.no_grad():
        assert torch.equal(FlowDenoiser(node, same)(x, sigma, context), denoised)


def test_wrong_inputs_are_refused(pair):
    ours, _ = pair
    x, sigma, context = _inputs(4, 4)
    with pytest.raises(ValueError, match="4-channel latents"):
        ours(torch.zeros(2, 16, 4, 4), sigma, context)
    with pytest.raises(ValueError, match=f"Pile-T5-XL's {TEXT}-wide text states"):
        ours(x, sigma, torch.zeros(2, 3, 32))


def test_all_in_one_checkpoint_gives_model_and_vae(tmp_path):
    """ComfyUI's aura_flow_0.3.safetensors layout: the network under model.diffusion_model., the SDXL VAE under
    vae. (ComfyUI's AuraFlow vae_key_prefix; first_stage_model. reads too): CheckpointLoaderSimple gives the
    model with the file's weights and the VAE with SDXL's latent format."""
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.file_kind import identify
    from graphflow.models.weight_files import WeightFile

    for prefix in ("vae.", "first_stage_model."):
        path = testing.write_aura_flow_checkpoint(tmp_path / "aura_flow_0.3.safetensors", dtype=torch.float32,
                                                  vae_prefix=prefix)
        with WeightFile(path) as f:
            assert identify(f.shapes).name == "AuraFlow checkpoint"
        ckpt = load_checkpoint(path, device="cpu", dtype=torch.float32)
        assert ckpt.model.arch == "aura_flow" and ckpt.info.vae_prefix == prefix
        assert ckpt.vae is not None and ckpt.vae.latent_format.name == "sdxl" and ckpt.vae.latent_channels == 4
        stored = load_file(str(path))
        net = ckpt.model.unet.state_dict()
        assert all(torch.equal(v, stored["model.diffusion_model." + k]) for k, v in net.items())
        assert all(torch.equal(v, stored[prefix + k]) for k, v in ckpt.vae.module.state_dict().items())


def test_model_merge_auraflow(tmp_path):
    """ModelMergeAuraflow: ComfyUI's inputs in its order (the embedders, 4 double and 32 single layers, modF,
    final_linear), each weight ratio * model1 + (1 - ratio) * model2 by its longest prefix; other families refused."""
    from graphflow.context import NodeInputError
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.registry import Registry
    from tests.test_nodes_image_mask import call

    reg = Registry().load_builtin()
    inputs = list(reg.get("ModelMergeAuraflow").input_specs)
    assert inputs == ["model1", "model2", "init_x_linear", "positional_encoding", "cond_seq_linear",
                      "register_tokens", "t_embedder", *(f"double_layers_{i}" for i in range(4)),
                      *(f"single_layers_{i}" for i in range(32)), "modF", "final_linear"]
    ratios = {"init_x_linear.": 0.7, "positional_encoding": 0.2, "cond_seq_linear.": 1.0, "register_tokens": 0.0,
              "t_embedder.": 0.4, "double_layers.0.": 0.1, "double_layers.1.": 0.9, "single_layers.0.": 0.3,
              "single_layers.1.": 0.6, "modF.": 0.8, "final_linear.": 0.5}
    paths = [testing.write_aura_flow(tmp_path / f"m{s}.safetensors", seed=s, dtype=torch.float32) for s in (0, 5)]
    m1, m2 = (load_diffusion_model(p, device="cpu", dtype=torch.float32) for p in paths)
    a, b = (load_file(str(p)) for p in paths)
    widgets = {p.rstrip(".").replace(".", "_"): r for p, r in ratios.items()}
    merged = call(reg, "ModelMergeAuraflow", model1=m1, model2=m2, **widgets).unet.state_dict()
    assert set(merged) == set(a)
    for name in a:
        r = ratios[max((p for p in ratios if name.startswith(p)), key=len)]
        torch.testing.assert_close(merged[name], r * a[name] + (1 - r) * b[name], msg=name)
    lumina = load_diffusion_model(testing.write_lumina2(tmp_path / "l.safetensors", dtype=torch.float32),
                                  device="cpu", dtype=torch.float32)
    with pytest.raises(NodeInputError, match="aura_flow.*lumina2") as e:
        call(reg, "ModelMergeAuraflow", model1=m1, model2=lumina)
    assert e.value.input == "model2"


def test_lora_in_diffusers_names_matches_diffusers(tmp_path, pair):
    """A PEFT LoRA on every Linear of diffusers' AuraFlowTransformer2DModel (its names: SimpleTuner's, what
    ComfyUI reads as transformer.*) applied to our model gives diffusers' output with the adapter; norm_out's
    (scale, shift) rows land on modF's (shift, scale)."""
    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.lora import apply_lora
    from tests.test_flow_lora import random_peft_lora

    state = testing.aura_flow_state(seed=3)
    model = load_diffusion_model(testing.write_aura_flow(tmp_path / "m.safetensors", seed=3, dtype=torch.float32),
                                 device="cpu", dtype=torch.float32)
    theirs = diffusers_aura_flow(state)
    lora = random_peft_lora(theirs, seed=5)
    assert {"transformer.norm_out.linear.lora_A.weight", "transformer.pos_embed.proj.lora_B.weight",
            "transformer.single_transformer_blocks.1.attn.to_out.0.lora_A.weight"} <= set(lora)
    save_file(lora, str(tmp_path / "aura_peft.safetensors"))
    theirs.load_lora_adapter(dict(lora), prefix="transformer", adapter_name="test")
    theirs.set_adapters(["test"], weights=[0.7])
    patched, _ = apply_lora(model, None, tmp_path / "aura_peft.safetensors", 0.7, 0.0)
    x, sigma, context = _inputs(6, 8)
    with torch.no_grad():
        plain, got, want = model(x, sigma, context), patched(x, sigma, context), theirs(x, context, sigma).sample
    assert float((got - plain).abs().max()) > 1e-2  # the LoRA does something
    _close(got, want)


def test_all_in_one_checkpoint_round_trips_through_checkpoint_save(tmp_path):
    """CheckpointLoaderSimple on ComfyUI's all-in-one file gives MODEL, CLIP (Pile-T5 XL) and VAE; CheckpointSave
    writes ComfyUI's AuraFlow layout (model.diffusion_model., text_encoders.pile_t5xl.transformer., the VAE under
    vae., its vae_key_prefix), read back unchanged."""
    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.checkpoint_save import save_checkpoint

    path = testing.write_aura_flow_checkpoint(tmp_path / "aura_flow_0.3.safetensors", dtype=torch.float32,
                                              text_encoder=True)
    ckpt = load_checkpoint(path, device="cpu", dtype=torch.float32)
    assert ckpt.clip is not None and ckpt.clip.t5 is not None
    saved = load_file(str(save_checkpoint(tmp_path / "saved.safetensors", ckpt.model, ckpt.clip, ckpt.vae)))
    assert {k.split(".")[0] for k in saved} == {"model", "text_encoders", "vae"}
    assert all(k.startswith(testing.PILE_T5_PREFIX) for k in saved if k.startswith("text_encoders."))
    original = load_file(str(path))
    assert saved.keys() == original.keys()
    assert all(torch.equal(saved[k], original[k]) for k in saved)
    again = load_checkpoint(tmp_path / "saved.safetensors", device="cpu", dtype=torch.float32)
    assert again.model.arch == "aura_flow" and again.info.vae_prefix == "vae." and again.clip.t5 is not None


def test_unetloader_reads_diffusers_names(tmp_path, pair):
    """A diffusers AuraFlowTransformer2DModel file (fal's transformer/ weights), as ComfyUI's UNETLoader converts
    it: the same network as fal's names give, modF's halves swapped back; told apart by its file kind."""
    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.models.file_kind import identify
    from graphflow.models.weight_files import WeightFile

    ours, theirs = pair
    save_file(dict(theirs.state_dict()), str(tmp_path / "diffusion_pytorch_model.safetensors"))
    with WeightFile(tmp_path / "diffusion_pytorch_model.safetensors") as f:
        kind = identify(f.shapes)
    assert kind.folder == "diffusion_models" and "AuraFlowTransformer2DModel" in kind.name
    assert f"kind: {kind.name}" in inspect_report(tmp_path / "diffusion_pytorch_model.safetensors")
    model = load_diffusion_model(tmp_path / "diffusion_pytorch_model.safetensors", device="cpu", dtype=torch.float32)
    assert model.arch == "aura_flow" and model.unet.config == ours.config
    assert all(torch.equal(v, ours.state_dict()[k]) for k, v in model.unet.state_dict().items())


def test_ksampler_steps_are_diffusers_euler_steps(pair):
    """KSampler (euler, simple, 3 steps, cfg 2.5) on an AuraFlow MODEL: from seed noise at sigma 1, each step
    x += (sigma_next - sigma) v with v CFG-mixed from diffusers' velocities at timestep sigma (prompts of other
    lengths), the sigmas ComfyUI's discrete flow with shift 1.73; the result unscaled by SDXL's 0.13025."""
    from graphflow.models.diffusion_model import DiffusionModel
    from graphflow.sampling.flow_sampling import model_sampling_for
    from graphflow.sampling.pipeline import sample
    from graphflow.sampling.schedules import compute_sigmas

    ours, theirs = pair
    model = DiffusionModel(ours, "aura_flow", "flow")
    g = torch.Generator().manual_seed(4)
    pos, neg = torch.randn(1, 5, TEXT, generator=g), torch.randn(1, 3, TEXT, generator=g)
    out = sample(model, 7, 3, 2.5, "euler", "simple", [(pos, {})], [(neg, {})],
                 {"samples": torch.zeros(1, 4, 8, 6)})["samples"]
    sigmas = compute_sigmas(model_sampling_for(model), "simple", 3)
    x = torch.randn((1, 4, 8, 6), generator=torch.Generator().manual_seed(7)) * sigmas[0]
    with torch.no_grad():
        for sigma, following in zip(sigmas[:-1], sigmas[1:]):
            v_pos, v_neg = (theirs(x, c, sigma.reshape(1)).sample for c in (pos, neg))
            x = x + (following - sigma) * (v_neg + 2.5 * (v_pos - v_neg))
    _close(out, x / 0.13025)


# -- ComfyUI's AuraFlow graph, prompt to picture (workflows/aura_flow.json) ---------------------------------

def test_example_workflow_matches_aura_flow_pipeline(tmp_folders):
    """workflows/aura_flow.json as saved but for its size and steps (64 x 48, 4 steps), on a tiny all-in-one
    aura_flow_0.3.safetensors (network, Pile-T5 XL, SDXL VAE): diffusers' AuraFlowPipeline with the same
    transformer (diffusers' converter), FlowMatchEulerDiscreteScheduler(shift 1.73) and cfg, on the same noise
    and the prompt states our CLIPTextEncode made (Pile-T5's side: tests/test_aura_flow_text.py), ends on the
    latent our KSampler gives; the saved picture is diffusers' VAE decode of it."""
    from diffusers import AuraFlowPipeline, FlowMatchEulerDiscreteScheduler
    from test_vae import to_diffusers_vae

    from graphflow.executor import Executor
    from graphflow.models.latent_formats import SDXL
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from tests.test_workflows import workflow

    (tmp_folders.models / "checkpoints").mkdir(exist_ok=True)
    path = testing.write_aura_flow_checkpoint(tmp_folders.models / "checkpoints" / "aura_flow_0.3.safetensors",
                                              seed=5, dtype=torch.float32, text_encoder=True)
    wf = workflow("aura_flow", **{"8__width": 64, "8__height": 48, "3__steps": 4})
    result = Executor(Registry().load_builtin()).run(wf)
    assert result.ok, result.error
    image = result.values["9"][0]
    assert image.shape == (1, 48, 64, 3) and float(image.std()) > 0.01
    assert result.outputs["10"]["images"][0]["filename"].startswith("aura_flow_")

    [(cond, _)], [(uncond, _)] = result.values["6"][0], result.values["7"][0]
    assert cond.shape == uncond.shape == (1, 256, testing.pile_t5_config().d_model)
    stored = load_file(str(path))
    network = {k.removeprefix("model.diffusion_model."): v for k, v in stored.items()
               if k.startswith("model.diffusion_model.")}
    transformer = diffusers_aura_flow(network, testing.aura_flow_config(text_dim=cond.shape[-1]))
    vae, _ = to_diffusers_vae(load_checkpoint_vae(path))
    pipe = AuraFlowPipeline(tokenizer=None, text_encoder=None, vae=vae, transformer=transformer,
                            scheduler=FlowMatchEulerDiscreteScheduler(shift=1.73))
    noise = initial_noise(torch.zeros(1, 4, 6, 8), wf.nodes["3"].inputs["seed"])
    ones = torch.ones(1, cond.shape[1])
    with torch.no_grad():
        theirs = pipe(prompt_embeds=cond, prompt_attention_mask=ones, negative_prompt_embeds=uncond,
                      negative_prompt_attention_mask=ones, latents=noise.clone(), height=48, width=64,
                      num_inference_steps=4, guidance_scale=wf.nodes["3"].inputs["cfg"], output_type="latent").images
        picture = (vae.decode(theirs / SDXL.scale_factor).sample / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)
    ours = SDXL.process_in(result.values["3"][0]["samples"])
    assert float((theirs - noise).abs().mean()) > 0.05  # the model moved the latent
    assert float((ours - theirs).abs().max()) < 1e-4 * max(1.0, float(theirs.abs().max()))
    assert float((image - picture).abs().max()) < 1e-3


def load_checkpoint_vae(path):
    from graphflow.models.checkpoint import load_checkpoint

    return load_checkpoint(path, device="cpu", dtype=torch.float32).vae.module


def test_time_embedding_rounds_as_comfyuis():
    """ComfyUI's AuraFlow scales the sinusoid's frequencies by 1000, not sigma: the network's time input is
    cos / sin of sigma * (1000 * freqs) to the bit (sigma * 1000 first rounds otherwise, by up to 6e-5 rad)."""
    import math

    net = AuraFlow(testing.aura_flow_config()).eval()
    seen = []
    net.t_embedder.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    sigma = torch.tensor([0.83, 0.27, 0.5123, 0.9993])
    x, _, context = _inputs(4, 4, batch=4)
    with torch.no_grad():
        net(x, sigma, context)
    base = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float32) / 128)
    args = sigma[:, None] * (1000 * base)[None]
    assert torch.equal(seen[0], torch.cat([torch.cos(args), torch.sin(args)], dim=-1))
    other = (sigma * 1000)[:, None] * base[None]
    assert not torch.equal(torch.cos(other), torch.cos(args))
