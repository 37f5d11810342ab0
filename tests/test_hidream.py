"""HiDream-I1: the sparse MM-DiT against diffusers' HiDreamImageTransformer2DModel on identical tiny
random weights (ComfyUI's key layout is the original repository's, which diffusers' single-file
converter takes as it is: the same tensors load into both, strictly); detection, loading, ComfyUI's
sampling settings (ModelType.FLOW, shift 1, multiplier 1000; FLUX's latent) and the conditioning
interface (T5 states as the CONDITIONING tensor, "conditioning_llama3" [B, layers, L, 4096] and
"pooled_output" [B, 2048] options).

Where ComfyUI and diffusers differ: diffusers pads a non-square latent's tokens to max_resolution
(128 x 128 patches) and only scales the padding's keys by 0 (they still take softmax weight);
ComfyUI runs the tokens as they are. graphflow follows ComfyUI, and is checked on non-square
latents against diffusers' transformer given the patches with an all-ones mask (no padding).
ComfyUI's output is diffusers' negated (its pipeline negates the transformer's prediction).
"""

from dataclasses import replace

import pytest
import torch
from diffusers import HiDreamImageTransformer2DModel
from diffusers.loaders.single_file_utils import convert_hidream_transformer_to_diffusers

from graphflow.models.configs import swiglu_hidden
from graphflow.models.hidream import HiDream, hidream_config_from_state_dict
from graphflow.testing import (HIDREAM_TINY_LLAMA_DIM, HIDREAM_TINY_POOLED_DIM, HIDREAM_TINY_T5_DIM, hidream_config,
                               hidream_state)

T5, LLAMA, POOLED = HIDREAM_TINY_T5_DIM, HIDREAM_TINY_LLAMA_DIM, HIDREAM_TINY_POOLED_DIM
LAYERS = 4  # Llama layers in the tiny conditioning (the tiny model reads 0 .. 3)


def diffusers_hidream(state, config=None):
    c = config or hidream_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()})
    theirs = HiDreamImageTransformer2DModel(
        patch_size=c.patch_size, in_channels=c.in_channels, out_channels=c.out_channels, num_layers=c.num_layers,
        num_single_layers=c.num_single_layers, attention_head_dim=c.head_dim, num_attention_heads=c.num_heads,
        caption_channels=[c.t5_dim, c.llama_dim], text_emb_dim=c.text_emb_dim,
        num_routed_experts=c.num_routed_experts, num_activated_experts=c.num_activated_experts,
        axes_dims_rope=c.axes_dims, llama_layers=list(c.llama_layers)).eval()
    theirs.load_state_dict(convert_hidream_transformer_to_diffusers(dict(state)), strict=True)
    return theirs


def diffusers_velocity(theirs, x, sigma, t5, llama, pooled):
    """ComfyUI's velocity from diffusers' transformer: timestep 1000 sigma, Llama layers first, the
    output negated; the patches given with an all-ones mask (no max_resolution padding)."""
    b, c, H, W = x.shape
    h, w = H // 2, W // 2
    tokens = x.reshape(b, c, h, 2, w, 2).permute(0, 2, 4, 3, 5, 1).reshape(b, h * w, 4 * c)
    ids = torch.zeros(h * w, 3)
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ids[:, 1], ids[:, 2] = rows.flatten(), cols.flatten()
    with torch.no_grad():
        out = theirs(tokens, sigma * 1000, t5, llama.movedim(1, 0), pooled, img_ids=ids[None].repeat(b, 1, 1),
                     img_sizes=[(h, w)] * b, hidden_states_masks=torch.ones(b, h * w), return_dict=False)[0]
    return -out


def text(seed, batch=2, t5_len=5, llama_len=7):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, t5_len, T5, generator=g), torch.randn(batch, LAYERS, llama_len, LLAMA, generator=g),
            torch.randn(batch, POOLED, generator=g))


@pytest.fixture(scope="module")
def pair():
    state = hidream_state(seed=3)
    ours = HiDream(hidream_config()).eval()
    ours.load_state_dict(state, strict=True)
    return ours, diffusers_hidream(state), state


def test_config_from_shapes():
    shapes = {k: tuple(v.shape) for k, v in hidream_state().items()}
    assert hidream_config_from_state_dict(shapes) == hidream_config()
    c = hidream_config()
    assert (c.dim, c.axes_dims, c.llama_layers, c.expert_hidden, c.shared_hidden) == (64, (16, 8, 8), (0, 1, 2, 3),
                                                                                        256, 256)


def test_full_size_defaults():
    """The defaults are HiDream-I1's (ComfyUI's model_detection): diffusers' module of that config
    has the same parameter shapes, and the config read back from them is the default, ComfyUI's
    llama_layers (0 .. 31, then 31 sixteen times) included."""
    from graphflow.models.configs import HiDreamConfig

    c = HiDreamConfig()
    assert c.llama_layers == tuple(range(32)) + (31,) * 16
    assert (c.expert_hidden, c.shared_hidden) == (swiglu_hidden(2560, 4 * 2560), swiglu_hidden(2560, 2 * 2560))
    with torch.device("meta"):
        theirs = HiDreamImageTransformer2DModel(patch_size=2, in_channels=16, out_channels=16,
                                                caption_channels=[4096, 4096], axes_dims_rope=(64, 32, 32),
                                                llama_layers=list(c.llama_layers))
        ours = HiDream(c)
    shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert hidream_config_from_state_dict(shapes) == c
    assert 17.0e9 < sum(p.numel() for p in ours.parameters()) < 17.2e9  # HiDream-I1's 17B (34.2 GB in fp16)


def test_bf16_follows_fp32(pair):
    """ComfyUI runs HiDream in bf16: the same weights in bf16 stay close to fp32 (the routing included)."""
    ours, _, state = pair
    half = HiDream(hidream_config()).eval()
    half.load_state_dict(state, strict=True)
    half.to(torch.bfloat16)
    g = torch.Generator().manual_seed(11)
    x, sigma = torch.randn(2, 16, 6, 6, generator=g), torch.tensor([0.9, 0.4])
    t5, llama, pooled = text(12)
    with torch.no_grad():
        want = ours(x, sigma, t5, pooled, llama_states=llama)
        got = half(x.bfloat16(), sigma, t5.bfloat16(), pooled.bfloat16(), llama_states=llama.bfloat16())
    assert got.dtype == torch.bfloat16
    assert float((got.float() - want).abs().mean()) < 0.05 * float(want.abs().mean())


@pytest.mark.parametrize("size", [(8, 8), (6, 10)])
def test_matches_diffusers(pair, size):
    """Batch of two with different sigmas and prompts, square and non-square latents."""
    ours, theirs, _ = pair
    g = torch.Generator().manual_seed(1)
    x, sigma = torch.randn(2, 16, *size, generator=g), torch.tensor([0.8, 0.25])
    t5, llama, pooled = text(2)
    with torch.no_grad():
        mine = ours(x, sigma, t5, pooled, llama_states=llama)
    ref = diffusers_velocity(theirs, x, sigma, t5, llama, pooled)
    assert float(ref.abs().max()) > 0.5
    assert torch.allclose(mine, ref, atol=1e-4, rtol=1e-4)
    if size[0] == size[1]:  # diffusers' own patchify (square: no padding) agrees
        with torch.no_grad():
            direct = theirs(x, sigma * 1000, t5, llama.movedim(1, 0), pooled, return_dict=False)[0]
        assert torch.allclose(mine, -direct, atol=1e-4, rtol=1e-4)


def test_repeated_llama_layers_and_routing(pair):
    """Blocks reading one Llama layer several times (as HiDream's blocks 31 .. 47 read layer 31)
    match diffusers with the same llama_layers; each of the Llama layers read matters, and the
    routing does (the gate's weights change the output)."""
    _, _, state = pair
    cfg = replace(hidream_config(), llama_layers=(0, 2, 2, 2))
    ours = HiDream(cfg).eval()
    ours.load_state_dict(state, strict=True)
    theirs = diffusers_hidream(state, cfg)
    g = torch.Generator().manual_seed(4)
    x, sigma = torch.randn(2, 16, 4, 6, generator=g), torch.tensor([0.5, 0.9])
    t5, llama, pooled = text(5)
    with torch.no_grad():
        mine = ours(x, sigma, t5, pooled, llama_states=llama)
        unread, read = (llama.index_fill(1, torch.tensor(layers), 0.0) for layers in ([1, 3], [2]))
        assert torch.equal(mine, ours(x, sigma, t5, pooled, llama_states=unread))
        assert not torch.allclose(mine, ours(x, sigma, t5, pooled, llama_states=read))
    assert torch.allclose(mine, diffusers_velocity(theirs, x, sigma, t5, llama, pooled), atol=1e-4, rtol=1e-4)
    gate = ours.single_stream_blocks[0].block.ff_i.gate.weight
    with torch.no_grad():
        gate.copy_(gate.flip(0))
        assert not torch.allclose(mine, ours(x, sigma, t5, pooled, llama_states=llama), atol=1e-3)
        gate.copy_(gate.flip(0))


def test_odd_latent_is_padded_and_cropped(pair):
    """An odd latent is padded circularly to whole patches (ComfyUI's pad_to_patch_size) and cropped."""
    ours, theirs, _ = pair
    g = torch.Generator().manual_seed(6)
    x, sigma = torch.randn(2, 16, 5, 7, generator=g), torch.tensor([0.6, 0.6])
    t5, llama, pooled = text(7)
    with torch.no_grad():
        mine = ours(x, sigma, t5, pooled, llama_states=llama)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1), mode="circular")
    ref = diffusers_velocity(theirs, padded, sigma, t5, llama, pooled)[..., :5, :7]
    assert mine.shape == x.shape and torch.allclose(mine, ref, atol=1e-4, rtol=1e-4)


def test_bad_inputs_are_refused(pair):
    ours = pair[0]
    t5, llama, pooled = text(1, batch=1)
    x, s = torch.zeros(1, 16, 4, 4), torch.tensor([0.5])
    with pytest.raises(ValueError, match="QuadrupleCLIPLoader"):
        ours(x, s, t5, None, llama_states=llama)
    with pytest.raises(ValueError, match="conditioning_llama3.*QuadrupleCLIPLoader"):
        ours(x, s, t5, pooled)
    with pytest.raises(ValueError, match="Llama layers up to 3"):
        ours(x, s, t5, pooled, llama_states=llama[:, :2])
    with pytest.raises(ValueError, match="4096|T5-XXL"):
        ours(x, s, torch.zeros(1, 3, 7), pooled, llama_states=llama)
    with pytest.raises(ValueError, match="16-channel"):
        ours(torch.zeros(1, 4, 4, 4), s, t5, pooled, llama_states=llama)


# -- sampling settings, the conditioning (what every family does: tests/test_flow_families.py) --

def test_sampling_defaults_and_modelsamplingsd3():
    """ComfyUI's HiDream is ModelType.FLOW with empty sampling_settings (its shift 3.0 is overwritten
    by a second, empty dict): discrete flow, shift 1, multiplier 1000, no dynamic shift. Its
    workflows set the shift with ModelSamplingSD3 (multiplier 1000 too)."""
    from graphflow.models.diffusion_model import DiffusionModel
    from graphflow.registry import Registry
    from graphflow.sampling.flow_sampling import FlowDenoiser, model_sampling_for
    from tests.test_nodes_image_mask import call

    with torch.device("meta"):
        net = HiDream(hidream_config())
    model = DiffusionModel(net, "hidream", "flow")
    assert not model.shift_dynamic
    sd3 = call(Registry().load_builtin(), "ModelSamplingSD3", model=model, shift=3.0)
    s = model_sampling_for(sd3)
    assert (s.kind, s.shift, s.multiplier) == ("shift", 3.0, 1000.0)
    assert FlowDenoiser(sd3, s).timestep_scale == 1.0


class _Model:
    arch, prediction, is_video, adm_channels = "hidream", "flow", False, POOLED
    dtype = torch.float32


def test_conditioning_options_reach_the_model():
    """The CONDITIONING tensor is T5's states; "conditioning_llama3" [B, layers, L, 4096] and
    "pooled_output" [B, 2048] travel as the entry's llama_states and y, repeated to the batch;
    without either the sampler refuses, naming QuadrupleCLIPLoader."""
    from graphflow.sampling.guidance import _can_batch, prepare_conds

    t5, llama, pooled = text(1, batch=1)
    x = torch.zeros(2, 16, 4, 4)
    cond = prepare_conds([(t5, {"conditioning_llama3": llama, "pooled_output": pooled})], _Model(), x.shape, "cpu")[0]
    assert cond.llama_states.shape == (2, LAYERS, 7, LLAMA) and torch.equal(cond.llama_states[1], llama[0])
    assert cond.y.shape == (2, POOLED) and torch.equal(cond.y[0], pooled[0]) and cond.context.shape == (2, 5, T5)
    for options in ({"pooled_output": pooled}, {"conditioning_llama3": llama}, {}):
        with pytest.raises(ValueError, match="QuadrupleCLIPLoader"):
            prepare_conds([(t5, options)], _Model(), x.shape, "cpu")
    with pytest.raises(ValueError, match="pooled text vector has 5 channels"):
        prepare_conds([(t5, {"conditioning_llama3": llama, "pooled_output": torch.zeros(1, 5)})], _Model(), x.shape,
                      "cpu")
    # batched as ComfyUI's: its HiDream passes T5's states and Llama's as CONDRegular, so both must
    # agree in shape (no repeating of the shorter prompt's tokens, as CONDCrossAttn would)
    twice = torch.cat([t5, t5], 1)
    other_t5 = prepare_conds([(twice, {"conditioning_llama3": llama, "pooled_output": pooled})], _Model(), x.shape,
                             "cpu")[0]
    other_llama = prepare_conds([(t5, {"conditioning_llama3": llama[:, :, :3], "pooled_output": pooled})], _Model(),
                                x.shape, "cpu")[0]
    assert not _can_batch((x, None, None, cond), (x, None, None, other_t5))
    assert _can_batch((x, None, None, cond), (x, None, None, cond))
    assert not _can_batch((x, None, None, cond), (x, None, None, other_llama))


def test_ksampler_matches_diffusers(tmp_folders):
    """UNETLoader -> ModelSamplingSD3 3.0 -> KSampler (euler, simple, 2 steps, cfg 2.0) on a batch of
    two EmptySD3LatentImage latents, with a positive and a negative (other T5 and Llama lengths) built
    directly (T5 states + conditioning_llama3 + pooled_output): equals Euler CFG steps of diffusers'
    transformer on the same noise (sigmas 1, 0.75, 0), FLUX's latent scaling around it."""
    from safetensors.torch import load_file

    from graphflow.models.latent_formats import FLUX
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import write_hidream
    from tests.test_nodes_image_mask import call

    (tmp_folders.models / "diffusion_models").mkdir()
    path = write_hidream(tmp_folders.models / "diffusion_models" / "hidream_i1_full_fp16.safetensors", seed=7,
                         dtype=torch.float32, prefixed=True)
    reg = Registry().load_builtin()
    model = call(reg, "LoadDiffusionModel", unet_name="hidream_i1_full_fp16.safetensors", weight_dtype="default")
    model = call(reg, "ModelSamplingSD3", model=model, shift=3.0)
    latent = call(reg, "EmptySD3Latent", width=96, height=64, batch_size=2)
    (t5, llama, pooled), (t5_n, llama_n, pooled_n) = text(8, batch=1), text(9, batch=1, t5_len=3)
    positive = [(t5, {"conditioning_llama3": llama, "pooled_output": pooled})]
    negative = [(t5_n, {"conditioning_llama3": llama_n, "pooled_output": pooled_n})]
    cfg = 2.0
    out = call(reg, "KSampler", model=model, seed=9, steps=2, cfg=cfg, sampler_name="euler", scheduler="simple",
               positive=positive, negative=negative, latent_image=latent, denoise=1.0)["samples"]
    assert out.shape == (2, 16, 8, 12)

    theirs = diffusers_hidream({k.removeprefix("model.diffusion_model."): v for k, v in load_file(str(path)).items()})
    x = initial_noise(torch.zeros(2, 16, 8, 12), 9)
    sigmas = [1.0, 0.75, 0.0]
    for sigma, following in zip(sigmas, sigmas[1:]):
        s = torch.full((2,), sigma)
        v_cond, v_uncond = (diffusers_velocity(theirs, x, s, a.expand(2, -1, -1), b.expand(2, -1, -1, -1),
                                               c.expand(2, -1))
                            for a, b, c in ((t5, llama, pooled), (t5_n, llama_n, pooled_n)))
        x = x + (following - sigma) * (v_uncond + cfg * (v_cond - v_uncond))
    assert float(x.abs().mean()) > 0.05 and not torch.allclose(x[0], x[1])
    ours = FLUX.process_in(out.float())
    assert float((ours - x).abs().max()) < 1e-4 * float(x.abs().max())


def test_fp8_file_keeps_its_weights(tmp_path):
    """A file stored in fp8 (ComfyUI's hidream_i1_*_fp8) keeps them so with weight_dtype default; the
    gate and norms are upcast to the compute dtype (weight_dtype fp8_e4m3fn: tests/test_flow_families.py)."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.testing import write_hidream

    fp8_file = write_hidream(tmp_path / "hidream_i1_fast_fp8.safetensors", dtype=torch.float8_e4m3fn)
    stored = load_diffusion_model(fp8_file, device="cpu", dtype=torch.float32)
    block = stored.unet.single_stream_blocks[1].block
    assert block.attn1.to_v.weight.dtype == torch.float8_e4m3fn and block.ff_i.gate.weight.dtype == torch.float32
    t5, llama, pooled = text(2, batch=1)
    x = torch.randn(1, 16, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert stored(x, torch.tensor([0.5]), t5, pooled, llama_states=llama).isfinite().all()


# -- LoRAs: our module paths are ComfyUI's and diffusers' names alike --------------------------------

def test_lora_in_diffusers_layout_matches_diffusers(tmp_path):
    """A PEFT LoRA on every Linear of diffusers' HiDreamImageTransformer2DModel (`transformer.` + its
    names: SimpleTuner's, diffusers' own), applied to our model, gives diffusers' output with the adapter."""
    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.lora import apply_lora
    from graphflow.testing import write_hidream
    from tests.test_flow_lora import random_peft_lora

    model = load_diffusion_model(write_hidream(tmp_path / "m.safetensors", dtype=torch.float32), device="cpu",
                                 dtype=torch.float32)
    theirs = diffusers_hidream(hidream_state())
    lora = random_peft_lora(theirs, seed=5)
    assert "transformer.double_stream_blocks.1.block.attn1.to_k_t.lora_A.weight" in lora
    assert "transformer.single_stream_blocks.0.block.ff_i.experts.3.w2.lora_B.weight" in lora
    save_file(lora, str(tmp_path / "hidream_peft.safetensors"))
    theirs.load_lora_adapter(dict(lora), prefix="transformer", adapter_name="test")
    theirs.set_adapters(["test"], weights=[0.7])
    patched, _ = apply_lora(model, None, tmp_path / "hidream_peft.safetensors", 0.7, 0.0)
    g = torch.Generator().manual_seed(1)
    x, sigma = torch.randn(1, 16, 4, 8, generator=g), torch.tensor([0.6])
    t5, llama, pooled = text(3, batch=1)
    with torch.no_grad():
        plain, got = (m(x, sigma, t5, pooled, llama_states=llama) for m in (model, patched))
    want = diffusers_velocity(theirs, x, sigma, t5, llama, pooled)
    assert float((got - plain).abs().max()) > 1e-2  # the LoRA does something
    assert float((got - want).abs().max()) < 1e-4 * float(want.abs().max())


# -- HiDream-E1 (the editing model, same layout): the input image beside the noisy latent ------------

def test_e1_image_cond_through_ksampler(tmp_folders):
    """InstructPixToPixConditioning's "concat_latent_image" reaches a HiDream model as ComfyUI's
    image_cond: in model space, set beside the noisy latent along the width, the output cut back to
    the latent's; KSampler (euler, 1 step, cfg 1) equals diffusers' transformer on [x, image] cropped."""
    from safetensors.torch import load_file

    from graphflow.models.latent_formats import FLUX
    from graphflow.registry import Registry
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import write_hidream
    from tests.test_nodes_image_mask import call

    (tmp_folders.models / "diffusion_models").mkdir()
    path = write_hidream(tmp_folders.models / "diffusion_models" / "hidream_e1_full_bf16.safetensors", seed=2,
                         dtype=torch.float32)
    reg = Registry().load_builtin()
    model = call(reg, "LoadDiffusionModel", unet_name="hidream_e1_full_bf16.safetensors", weight_dtype="default")
    image = torch.randn(1, 16, 6, 3, generator=torch.Generator().manual_seed(3))  # a raw (VAE) latent, odd width
    t5, llama, pooled = text(4, batch=1)
    cond = [(t5, {"conditioning_llama3": llama, "pooled_output": pooled, "concat_latent_image": image})]
    out = call(reg, "KSampler", model=model, seed=5, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple",
               positive=cond, negative=cond, latent_image={"samples": torch.zeros(2, 16, 6, 6)}, denoise=1.0)["samples"]
    theirs = diffusers_hidream(load_file(str(path)))
    x = initial_noise(torch.zeros(2, 16, 6, 6), 5)
    beside = torch.cat([x, FLUX.process_in(image).expand(2, -1, -1, -1)], dim=-1)
    beside = torch.nn.functional.pad(beside, (0, 1, 0, 0), mode="circular")  # 6 + 3 columns: padded to whole patches
    v = diffusers_velocity(theirs, beside, torch.ones(2), t5.expand(2, -1, -1), llama.expand(2, -1, -1, -1),
                           pooled.expand(2, -1))[..., :6]
    want = x - v  # one Euler step from sigma 1 to 0
    assert torch.allclose(FLUX.process_in(out.float()), want, atol=1e-4 * float(want.abs().max()))
    plain = [(t5, {"conditioning_llama3": llama, "pooled_output": pooled})]  # HiDream-I1's: no image
    alone = call(reg, "KSampler", model=model, seed=5, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple",
                 positive=plain, negative=plain, latent_image={"samples": torch.zeros(2, 16, 6, 6)},
                 denoise=1.0)["samples"]
    assert not torch.allclose(alone, out, atol=1e-3)
