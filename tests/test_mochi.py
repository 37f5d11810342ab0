"""Mochi 1 Preview against diffusers on identical tiny random weights.

Oracle path: random weights in Genmo's single-file layout (`blocks.N.attn.qkv_x`, ...) go through
diffusers' own single-file converter (`convert_mochi_transformer_checkpoint_to_diffusers`, which
must consume every key) into diffusers' MochiTransformer3DModel, loaded strictly; our model loads
the same tensors as they are. The converter knows 48 blocks only, so the oracle model has 48
(tiny) blocks. ComfyUI's call convention: sigma in, timestep 1000 (1 - sigma) to the network, its
output negated (diffusers' pipeline does the same with its own timesteps and scheduler).
"""

import functools
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers import MochiTransformer3DModel
from diffusers.loaders.single_file_utils import convert_mochi_transformer_checkpoint_to_diffusers

from graphflow.models.mochi import Mochi, mochi_config_from_state_dict
from tests.test_nodes_image_mask import call

TOL = 1e-4


@functools.lru_cache(maxsize=1)
def registry():
    from graphflow.registry import Registry

    return Registry().load_builtin()


def diffusers_transformer(cfg, state: dict) -> MochiTransformer3DModel:
    """diffusers' model of `cfg` on Genmo-layout `state` (through diffusers' converter)."""
    theirs = MochiTransformer3DModel(
        patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        num_layers=cfg.depth, pooled_projection_dim=cfg.hidden_size_y, in_channels=cfg.in_channels,
        text_embed_dim=cfg.text_dim).eval()
    left = {k: v.clone() for k, v in state.items()}
    converted = convert_mochi_transformer_checkpoint_to_diffusers(left)
    assert not left, f"keys diffusers' converter does not know: {sorted(left)[:5]}"
    theirs.load_state_dict(converted, strict=True)
    return theirs


def diffusers_velocity(theirs, x, sigma, context, mask=None):
    """ComfyUI's model output from diffusers' transformer: -net(x, 1000 (1 - sigma))."""
    if mask is None:
        mask = torch.ones(context.shape[:2], dtype=torch.long)
    with torch.no_grad():
        return -theirs(x, context, (1 - sigma) * 1000, mask, return_dict=False)[0]


@pytest.fixture(scope="module")
def transformer_pair():
    from graphflow.testing import mochi_config, mochi_state

    cfg = mochi_config(depth=48)
    state = mochi_state(seed=0, depth=48)
    ours = Mochi(cfg).eval()
    ours.load_state_dict(state)
    return cfg, ours, diffusers_transformer(cfg, state), state


def test_transformer_matches_diffusers(transformer_pair):
    cfg, ours, theirs, _ = transformer_pair
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 12, 3, 4, 6, generator=gen)
    context = torch.randn(2, 7, cfg.text_dim, generator=gen)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])  # the second prompt padded after 4 tokens
    sigma = torch.tensor([0.9, 0.3])
    with torch.no_grad():
        got = ours(x, sigma, context, attention_mask=mask)
    want = diffusers_velocity(theirs, x, sigma, context, mask)
    assert float((got - want).abs().max()) < TOL * float(want.abs().max())
    assert float(got.abs().max()) > 0.1  # not trivially zero
    # the padding has no say: the second prompt's 4 tokens alone, without a mask, give the same
    with torch.no_grad():
        alone = ours(x[1:], sigma[1:], context[1:, :4])
    assert float((alone - want[1:]).abs().max()) < TOL * float(want.abs().max())


def test_positions_and_time_matter(transformer_pair):
    """Frames are told apart (rotary time), and so are sigmas (the timestep embedding)."""
    cfg, ours, _, _ = transformer_pair
    gen = torch.Generator().manual_seed(2)
    frame = torch.randn(1, 12, 1, 4, 4, generator=gen)
    context = torch.randn(1, 3, cfg.text_dim, generator=gen)
    with torch.no_grad():
        two = ours(frame.repeat(1, 1, 2, 1, 1), torch.tensor([0.5]), context)
        other = ours(frame, torch.tensor([0.2]), context)
    assert float((two[:, :, 0] - two[:, :, 1]).abs().max()) > 1e-3
    assert float((two[:, :, :1] - other).abs().max()) > 1e-3


def test_odd_latent_sizes_refused(transformer_pair):
    cfg, ours, _, _ = transformer_pair
    with pytest.raises(ValueError, match="divisible by 2"):
        ours(torch.zeros(1, 12, 1, 3, 4), torch.tensor([0.5]), torch.zeros(1, 2, cfg.text_dim))


def test_config_from_shapes(transformer_pair):
    cfg, _, _, state = transformer_pair
    assert mochi_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()}) == cfg


def test_full_size_defaults_are_mochi_1_preview():
    """The default config builds diffusers' default MochiTransformer3DModel's shapes (Genmo's names)."""
    from graphflow.models.configs import MochiConfig

    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in Mochi(MochiConfig()).state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in MochiTransformer3DModel().state_dict().items()}
    converted = convert_mochi_transformer_checkpoint_to_diffusers({k: torch.empty(0) for k in ours})
    assert set(converted) == set(theirs)
    assert mochi_config_from_state_dict(ours) == MochiConfig()
    assert ours["blocks.0.mlp_x.w1.weight"] == (2 * 8192, 3072) and ours["pos_frequencies"] == (3, 24, 64)


# -- the latent (detection, loading, sampling: tests/test_flow_families.py) ---------------------

def test_latent_format_is_per_channel():
    """process_in standardises each channel by the VAE's statistics (diffusers' MochiPipeline
    undoes it as latents * std / scaling_factor + mean before decoding)."""
    from diffusers import AutoencoderKLMochi

    from graphflow.models.latent_formats import LATENT_FORMATS

    fmt = LATENT_FORMATS["mochi"]
    import inspect

    config = {k: p.default for k, p in inspect.signature(AutoencoderKLMochi.__init__).parameters.items()}
    mean = torch.tensor(config["latents_mean"]).view(1, 12, 1, 1, 1)
    std = torch.tensor(config["latents_std"]).view(1, 12, 1, 1, 1)
    raw = torch.randn(1, 12, 2, 3, 4, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(fmt.process_in(raw), (raw - mean) / std, atol=1e-6)
    assert torch.allclose(fmt.process_out(fmt.process_in(raw)), raw, atol=1e-6)
    assert fmt.channels == 12 and fmt.scale_factor == 1.0


# -- nodes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("length,frames", [(25, 5), (7, 2), (13, 3), (31, 6), (30, 5)])
def test_empty_mochi_latent_video(length, frames):
    latent = call(registry(), "EmptyMochiLatentVideo", width=64, height=48, length=length, batch_size=2)
    assert latent["samples"].shape == (2, 12, frames, 6, 8) and latent["samples"].abs().max() == 0


def test_cliploader_mochi_gives_t5_tokens_as_masked_padding_would(tmp_folders):
    """CLIPLoader type mochi: T5-XXL alone, the prompt's tokens unpadded; equal to T5 run on the
    256-token padded prompt with its attention mask (ComfyUI's and diffusers' way), padding dropped."""
    from safetensors.torch import load_file
    from transformers import T5EncoderModel, T5TokenizerFast

    from graphflow.models.t5 import TOKENIZER_FILE
    from graphflow.testing import t5_config, write_flow_text_encoder

    (tmp_folders.models / "text_encoders").mkdir()
    path = write_flow_text_encoder(tmp_folders.models / "text_encoders" / "t5xxl_fp16.safetensors", "t5xxl",
                                   dtype=torch.float32)
    clip = call(registry(), "LoadTextEncoder", clip_name="t5xxl_fp16.safetensors", type="mochi")
    prompt = "a red fox running through fresh snow"
    context, pooled = clip.encode(prompt)
    assert pooled is None
    t5 = T5EncoderModel(t5_config()).eval()
    t5.load_state_dict(load_file(str(path)), strict=False)
    tokens = T5TokenizerFast(tokenizer_file=str(TOKENIZER_FILE))(prompt, padding="max_length", max_length=256,
                                                                 return_tensors="pt")
    with torch.no_grad():
        want = t5(tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    n = int(tokens.attention_mask.sum())
    assert context.shape == (1, n, want.shape[-1])
    torch.testing.assert_close(context.float(), want[:, :n], atol=1e-4, rtol=1e-4)


# -- the VAE decoder ------------------------------------------------------------------------------

from diffusers import AutoencoderKLMochi  # noqa: E402

from graphflow.models.mochi_vae import MochiVAEDecoder, mochi_vae_config_from_state_dict  # noqa: E402

RESNET_NAMES = (("stack.0", "norm1.norm_layer"), ("stack.2", "conv1.conv"), ("stack.3", "norm2.norm_layer"),
                ("stack.5", "conv2.conv"))


def decoder_to_diffusers(state: dict, cfg) -> dict:
    """Genmo's decoder names -> AutoencoderKLMochi's (the mapping of diffusers'
    scripts/convert_mochi_to_diffusers.py, as facts; weights unchanged)."""
    out = {}

    def resnet(src, dst):
        for a, b in RESNET_NAMES:
            for p in ("weight", "bias"):
                out[f"decoder.{dst}.{b}.{p}"] = state.pop(f"{src}.{a}.{p}")

    for p in ("weight", "bias"):
        out[f"decoder.conv_in.{p}"] = state.pop(f"blocks.0.0.{p}")
        out[f"decoder.proj_out.{p}"] = state.pop(f"output_proj.{p}")
        for b in range(3):
            out[f"decoder.up_blocks.{b}.proj.{p}"] = state.pop(f"blocks.{b + 1}.proj.{p}")
    for i in range(cfg.layers[0]):
        resnet(f"blocks.0.{i + 1}", f"block_in.resnets.{i}")
    for b in range(3):
        for i in range(cfg.layers[b + 1]):
            resnet(f"blocks.{b + 1}.blocks.{i}", f"up_blocks.{b}.resnets.{i}")
    for i in range(cfg.layers[4]):
        resnet(f"blocks.4.{i}", f"block_out.resnets.{i}")
    assert not state, f"decoder keys the mapping does not know: {sorted(state)[:5]}"
    return out


@pytest.fixture(scope="module")
def vae_pair():
    from graphflow.testing import mochi_vae_config, random_state

    cfg = mochi_vae_config()
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in MochiVAEDecoder(cfg).state_dict().items()}
    state = random_state(shapes, 4, torch.float32)
    theirs = AutoencoderKLMochi(decoder_block_out_channels=tuple(reversed(cfg.channels)),
                                layers_per_block=tuple(reversed(cfg.layers))).eval()
    missing, unexpected = theirs.load_state_dict(decoder_to_diffusers(dict(state), cfg), strict=False)
    assert not unexpected and not [k for k in missing if k.startswith("decoder.")]
    return cfg, state, theirs


def test_vae_config_from_shapes(vae_pair):
    from graphflow.models.configs import MochiVAEConfig

    cfg, state, _ = vae_pair
    assert mochi_vae_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()}) == cfg
    with torch.device("meta"):
        full = {k: tuple(v.shape) for k, v in MochiVAEDecoder(MochiVAEConfig()).state_dict().items()}
    assert mochi_vae_config_from_state_dict(full) == MochiVAEConfig()
    # shapes of ComfyUI's mochi_vae.safetensors (decoder part)
    assert full["blocks.1.proj.weight"] == (6144, 768) and full["output_proj.weight"] == (3, 128)
    assert full["blocks.2.blocks.3.stack.5.weight"] == (512, 512, 3, 3, 3)


@pytest.mark.parametrize("frames", [1, 2, 3])
def test_vae_decode_matches_diffusers(vae_pair, frames):
    """diffusers' way (every expanded frame kept, the first 5 dropped at the end): equal."""
    cfg, state, theirs = vae_pair
    ours = MochiVAEDecoder(cfg, drop_per_block=False).eval()
    ours.load_state_dict(state)
    z = torch.randn(1, 12, frames, 3, 4, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        got, want = ours(z), theirs.decode(z).sample
    assert got.shape == want.shape == (1, 3, 6 * (frames - 1) + 1, 24, 32)
    assert float((got - want).abs().max()) < TOL * max(1.0, float(want.abs().max()))
    assert float(want.std()) > 1e-2


@pytest.mark.parametrize("frames", [1, 3])
def test_vae_decode_drops_frames_per_up_block_as_comfyui(vae_pair, frames):
    """Genmo's / ComfyUI's decoder drops the t - 1 first frames after each up block that expands
    frames t times: diffusers' own blocks run in that order are the oracle."""
    cfg, state, theirs = vae_pair
    ours = MochiVAEDecoder(cfg).eval()
    ours.load_state_dict(state)
    dec = theirs.decoder
    z = torch.randn(2, 12, frames, 2, 3, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        x, _ = dec.block_in(dec.conv_in(z))
        for block, t in zip(dec.up_blocks, cfg.temporal_expansions):
            x = block(x)[0][:, :, t - 1:]
        x, _ = dec.block_out(x)
        want = dec.proj_out(F.silu(x).movedim(1, -1)).movedim(-1, 1)
        got, theirs_way = ours(z), theirs.decode(z).sample
    assert got.shape == want.shape == (2, 3, 6 * frames - 5, 16, 24)
    assert float((got - want).abs().max()) < TOL * max(1.0, float(want.abs().max()))
    if frames > 1:  # not diffusers' numbers: the dropped frames were in the early frames' causal past
        assert float((got - theirs_way).abs().max()) > 1e-3


def encoder_to_diffusers(state: dict, cfg) -> dict:
    """Genmo's encoder names -> AutoencoderKLMochi's (diffusers' conversion script's mapping, as
    facts): qkv split into to_q / to_k / to_v, the rest renamed."""
    out = {}

    def resnet(src, dst, attention_dst=None):
        for a, b in RESNET_NAMES:
            for p in ("weight", "bias"):
                out[f"encoder.{dst}.{b}.{p}"] = state.pop(f"{src}.{a}.{p}")
        if attention_dst is not None:
            block, i = attention_dst
            for name, q in zip(("to_q", "to_k", "to_v"), state.pop(f"{src}.attn_block.attn.qkv.weight").chunk(3)):
                out[f"encoder.{block}.attentions.{i}.{name}.weight"] = q
            for p in ("weight", "bias"):
                out[f"encoder.{block}.attentions.{i}.to_out.0.{p}"] = state.pop(f"{src}.attn_block.attn.out.{p}")
                out[f"encoder.{block}.norms.{i}.norm_layer.{p}"] = state.pop(f"{src}.attn_block.norm.{p}")

    for p in ("weight", "bias"):
        out[f"encoder.proj_in.{p}"] = state.pop(f"layers.0.{p}")
        out[f"encoder.norm_out.norm_layer.{p}"] = state.pop(f"output_norm.{p}")
    out["encoder.proj_out.weight"] = state.pop("output_proj.weight")
    index = 1
    for i in range(cfg.layers[0]):
        resnet(f"layers.{index}", f"block_in.resnets.{i}", ("block_in", i) if cfg.attention[0] else None)
        index += 1
    for b in range(3):
        for p in ("weight", "bias"):
            out[f"encoder.down_blocks.{b}.conv_in.conv.{p}"] = state.pop(f"layers.{index}.layers.0.{p}")
        for i in range(cfg.layers[b + 1]):
            resnet(f"layers.{index}.layers.{i + 1}", f"down_blocks.{b}.resnets.{i}",
                   (f"down_blocks.{b}", i) if cfg.attention[b + 1] else None)
        index += 1
    for i in range(cfg.layers[4]):
        resnet(f"layers.{index}", f"block_out.resnets.{i}", ("block_out", i) if cfg.attention[4] else None)
        index += 1
    assert not state, f"encoder keys the mapping does not know: {sorted(state)[:5]}"
    return out


def test_vae_encoder_matches_diffusers():
    """Genmo's / diffusers' causal attention over frames: equal; ComfyUI's attends to every frame
    (graphflow's default): equal to diffusers' encoder with its attention made non-causal."""
    from diffusers.models.attention_processor import Attention

    from graphflow.models.configs import MochiVAEEncoderConfig
    from graphflow.models.mochi_vae import MochiVAEEncoder, mochi_vae_encoder_config_from_state_dict
    from graphflow.testing import mochi_vae_encoder_config, mochi_vae_state

    cfg = mochi_vae_encoder_config()
    state = {k[len("encoder."):]: v for k, v in mochi_vae_state(seed=5).items() if k.startswith("encoder.")}
    assert mochi_vae_encoder_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()}) == cfg
    with torch.device("meta"):
        full = {k: tuple(v.shape) for k, v in MochiVAEEncoder(MochiVAEEncoderConfig()).state_dict().items()}
    assert mochi_vae_encoder_config_from_state_dict(full) == MochiVAEEncoderConfig()
    # shapes of ComfyUI's mochi_vae.safetensors (encoder part)
    assert full["layers.4.layers.1.attn_block.attn.qkv.weight"] == (384, 128)
    assert full["layers.6.layers.6.stack.5.weight"] == (384, 384, 3, 3, 3) and full["output_proj.weight"] == (24, 384)
    ours, causal = MochiVAEEncoder(cfg).eval(), MochiVAEEncoder(cfg, causal_attention=True).eval()
    ours.load_state_dict(state)
    causal.load_state_dict(state)
    theirs = AutoencoderKLMochi(encoder_block_out_channels=cfg.channels, layers_per_block=cfg.layers,
                                decoder_block_out_channels=(32, 32, 32, 32)).eval()
    missing, unexpected = theirs.load_state_dict(encoder_to_diffusers(dict(state), cfg), strict=False)
    assert not unexpected and not [k for k in missing if k.startswith("encoder.")]
    x = torch.rand(1, 3, 13, 16, 24, generator=torch.Generator().manual_seed(6)) * 2 - 1
    with torch.no_grad():
        got, want = causal(x), theirs.encode(x).latent_dist.mode()
        assert got.shape == want.shape == (1, 12, 3, 2, 3)
        assert float((got - want).abs().max()) < TOL * max(1.0, float(want.abs().max()))
        assert float(want.std()) > 1e-2
        for module in theirs.encoder.modules():
            if isinstance(module, Attention):
                module.is_causal = False
        got, want_comfyui = ours(x), theirs.encode(x).latent_dist.mode()
    assert float((got - want_comfyui).abs().max()) < TOL * max(1.0, float(want_comfyui.abs().max()))
    assert float((want_comfyui - want).abs().max()) > 1e-3  # the two ways differ


def test_vae_file_loads_as_comfyui_ships_it(tmp_path):
    from graphflow.models.checkpoint import load_vae
    from graphflow.models.file_kind import identify
    from graphflow.models.mochi_vae import MochiVAE
    from graphflow.models.weight_files import CheckpointError, WeightFile
    from graphflow.testing import mochi_vae_config, mochi_vae_encoder_config, write_mochi_vae

    for bare in (False, True):
        path = write_mochi_vae(tmp_path / f"mochi_vae{bare}.safetensors", bare_decoder=bare, dtype=torch.float32)
        with WeightFile(path) as f:
            assert identify(f.shapes).name == "Mochi video VAE"
        vae = load_vae(path, device="cpu", dtype=torch.float32)
        assert isinstance(vae, MochiVAE) and vae.module.config == mochi_vae_config()
        assert vae.latent_format.name == "mochi" and vae.downscale == 8 and vae.latent_channels == 12
        frames = vae.decode(torch.randn(2, 12, 2, 2, 3, generator=torch.Generator().manual_seed(0)))
        assert frames.shape == (2 * 7, 16, 24, 3) and 0 <= float(frames.min()) and float(frames.max()) <= 1
        with pytest.raises(ValueError, match="video latents"):
            vae.decode(torch.zeros(1, 12, 2, 2))
        pictures = torch.rand(9, 20, 26, 3, generator=torch.Generator().manual_seed(1))
        if bare:  # Genmo's decoder file alone
            assert vae.module.encoder is None
            with pytest.raises(ValueError, match="decoder alone"):
                vae.encode(pictures)
            continue
        assert vae.module.encoder.config == mochi_vae_encoder_config()
        latent = vae.encode(pictures)  # 20 x 26 -> 16 x 24 around the centre; 9 frames -> 2 latent frames
        with torch.no_grad():
            want = vae.module.encoder(pictures[:, 2:18, 1:25].permute(3, 0, 1, 2)[None] * 2 - 1)
        assert latent.shape == (1, 12, 2, 2, 3) and torch.allclose(latent, want, atol=1e-6)
        assert vae.encode(pictures[:7]).shape == (1, 12, 2, 2, 3) and vae.encode(pictures[:1]).shape[2] == 1
    from safetensors.torch import save_file

    save_file({"layers.4.layers.1.attn_block.attn.qkv.weight": torch.zeros(384, 128)},
              str(tmp_path / "enc.safetensors"))
    with pytest.raises(CheckpointError, match="encoder alone"):
        load_vae(tmp_path / "enc.safetensors", device="cpu")


# -- a ComfyUI graph end to end ------------------------------------------------------------------

@pytest.fixture
def mochi_models(tmp_folders):
    """ComfyUI's Mochi files, tiny and random: the transformer (48 blocks, as diffusers' converter
    wants), T5-XXL, the VAE with its decoder under decoder."""
    from graphflow.testing import write_flow_text_encoder, write_mochi, write_mochi_vae

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    write_mochi(m / "diffusion_models" / "mochi_preview_bf16.safetensors", seed=3, depth=48, dtype=torch.float32)
    write_flow_text_encoder(m / "text_encoders" / "t5xxl_fp16.safetensors", "t5xxl", dtype=torch.float32, seed=1)
    write_mochi_vae(m / "vae" / "mochi_vae.safetensors", dtype=torch.float32)
    return tmp_folders


def oracle(models):
    """(diffusers' transformer on the file's weights, prompt -> (T5 states on the prompt padded to 256
    tokens, its attention mask): transformers' T5 run as diffusers' MochiPipeline runs it)."""
    from safetensors.torch import load_file
    from transformers import T5EncoderModel, T5TokenizerFast

    from graphflow.models.t5 import TOKENIZER_FILE
    from graphflow.testing import mochi_config, t5_config

    theirs = diffusers_transformer(mochi_config(depth=48), load_file(
        str(models.models / "diffusion_models" / "mochi_preview_bf16.safetensors")))
    t5 = T5EncoderModel(t5_config()).eval()
    t5.load_state_dict(load_file(str(models.models / "text_encoders" / "t5xxl_fp16.safetensors")), strict=False)
    tokenizer = T5TokenizerFast(tokenizer_file=str(TOKENIZER_FILE))

    def text(prompt):
        tokens = tokenizer(prompt, padding="max_length", max_length=256, return_tensors="pt")
        with torch.no_grad():
            return t5(tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state, tokens.attention_mask

    return theirs, text


def test_mochi_t2v_workflow_runs_and_matches_diffusers(mochi_models):
    """workflows/mochi_t2v.json as saved but for its size and steps: UNETLoader, CLIPLoader type
    mochi, EmptyMochiLatentVideo, KSampler (euler, simple, cfg 4.5), VAELoader, VAEDecode,
    SaveAnimatedWEBP (and SaveWEBM, CreateVideo + SaveVideo added); the sampled latent equals two
    Euler steps with CFG on diffusers' transformer fed T5 states of the 256-token padded prompts
    with their masks, on ComfyUI's sigmas for Mochi's shift 6."""
    from graphflow.executor import Executor
    from graphflow.models.latent_formats import MOCHI
    from graphflow.sampling.noise import initial_noise
    from graphflow.workflow import parse_workflow

    reg = registry()
    nodes = json.loads((Path(__file__).parent.parent / "workflows" / "mochi_t2v.json").read_text())
    graph = json.loads(json.dumps(nodes))
    graph["5"]["inputs"].update(width=32, height=32, length=13)
    graph["6"]["inputs"]["steps"] = 2
    # the frames as video files too, as ComfyUI's other Mochi graphs save them
    graph["10"] = {"class_type": "SaveWEBM", "inputs": {"images": ["8", 0], "filename_prefix": "mochi_webm",
                                                        "codec": "vp9", "fps": 24.0, "crf": 32.0}}
    graph["11"] = {"class_type": "CreateVideo", "inputs": {"images": ["8", 0], "fps": 24.0}}
    graph["12"] = {"class_type": "SaveVideo", "inputs": {"video": ["11", 0], "filename_prefix": "video/mochi",
                                                         "format": "auto", "codec": "auto"}}
    result = Executor(reg).run(parse_workflow(graph, reg))
    assert result.ok, json.dumps(result.error, default=str)[:3000]
    assert len(list(mochi_models.outputs.rglob("mochi*.webp"))) == 1
    assert list(mochi_models.outputs.rglob("mochi_webm*.webm")) and list(mochi_models.outputs.rglob("mochi*.mp4"))
    frames = result.values["8"][0]
    assert frames.shape == (13, 32, 32, 3) and float(frames.std()) > 0.01

    theirs, text = oracle(mochi_models)
    cond, uncond = text(nodes["3"]["inputs"]["text"]), text(nodes["4"]["inputs"]["text"])
    cfg_scale, seed = nodes["6"]["inputs"]["cfg"], nodes["6"]["inputs"]["seed"]
    sigma_mid = 6 * 0.5 / (1 + 5 * 0.5)  # "simple", 2 steps: t = 1, 0.5 through shift 6
    x = initial_noise(torch.zeros(1, 12, 3, 4, 4), seed)
    for sigma, sigma_next in ((1.0, sigma_mid), (sigma_mid, 0.0)):
        s = torch.tensor([sigma])
        v_cond, v_uncond = (diffusers_velocity(theirs, x, s, *c) for c in (cond, uncond))
        assert float((v_cond - v_uncond).abs().max()) > 1e-3  # the negative prompt counts (cfg 4.5)
        x = x + (v_uncond + cfg_scale * (v_cond - v_uncond)) * (sigma_next - sigma)
    ours = result.values["6"][0]["samples"]
    want = MOCHI.process_out(x)  # the LATENT holds raw VAE latents
    assert ours.shape == (1, 12, 3, 4, 4)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())


def test_all_in_one_checkpoint(tmp_path):
    """CheckpointLoaderSimple's file: the transformer under model.diffusion_model., the VAE decoder
    under vae.decoder., T5-XXL under text_encoders.t5xxl.transformer."""
    from safetensors.torch import load_file, save_file

    from graphflow.models.checkpoint import load_checkpoint
    from graphflow.models.checkpoint_report import inspect_report
    from graphflow.models.mochi_vae import MochiVAE
    from graphflow.testing import write_flow_text_encoder, write_mochi, write_mochi_vae

    state = load_file(str(write_mochi(tmp_path / "m.safetensors", prefixed=True, dtype=torch.float32)))
    state.update(load_file(str(write_mochi_vae(tmp_path / "v.safetensors", prefix="vae."))))
    state.update({"text_encoders.t5xxl.transformer." + k: v for k, v in
                  load_file(str(write_flow_text_encoder(tmp_path / "t.safetensors", "t5xxl"))).items()})
    save_file(state, str(tmp_path / "mochi_checkpoint.safetensors"))
    ckpt = load_checkpoint(tmp_path / "mochi_checkpoint.safetensors", device="cpu", dtype=torch.float32)
    assert ckpt.model.arch == "mochi" and isinstance(ckpt.vae, MochiVAE) and ckpt.clip.arch == "mochi"
    assert ckpt.info.vae_prefix == "vae.decoder." and not ckpt.info.notes and ckpt.vae.module.encoder is not None
    context, pooled = ckpt.clip.encode("a fox")
    assert pooled is None and context.shape[-1] == ckpt.model.unet.config.text_dim
    report = inspect_report(tmp_path / "mochi_checkpoint.safetensors")
    assert "vae (vae.) (decoder + encoder)" in report and "other keys" not in report
