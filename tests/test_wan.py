"""Wan 2.1 against transformers / diffusers on identical tiny random weights.

Text: UMT5-XXL as ComfyUI's umt5_xxl_fp16.safetensors ships it (transformers' UMT5EncoderModel
names, the SentencePiece model's bytes as the tensor `spiece_model`); the oracle is transformers'
UMT5EncoderModel on ids from sentencepiece's own processor on that model (+ </s>, as ComfyUI's
SPieceTokenizer with add_eos), padded to 512 and masked (Wan's pipelines and ComfyUI), the padded
outputs zeroed.
Transformer: random weights in the original Wan layout (`blocks.N.self_attn.q`, `head.head`, ...)
go through diffusers' single-file converter (convert_wan_transformer_to_diffusers, which must
consume every key) into diffusers' WanTransformer3DModel, loaded strictly; ours loads the same
tensors as they are. ComfyUI's call: sigma in, timestep 1000 sigma, output the velocity.
"""

import functools
import json

import pytest
import torch

from tests.test_nodes_image_mask import call

TOL = 1e-4


@functools.lru_cache(maxsize=1)
def registry():
    from graphflow.registry import Registry

    return Registry().load_builtin()


def example_graph(name: str) -> tuple[dict, dict]:
    """workflows/<name>.json as saved, and a copy of it to change."""
    from pathlib import Path

    nodes = json.loads((Path(__file__).parent.parent / "workflows" / f"{name}.json").read_text())
    return nodes, json.loads(json.dumps(nodes))


def run_graph(graph: dict):
    """The API-format graph run by the built-in nodes; fails the test with its error if it does not run."""
    from graphflow.executor import Executor
    from graphflow.workflow import parse_workflow

    reg = registry()
    result = Executor(reg).run(parse_workflow(graph, reg))
    assert result.ok, json.dumps([result.error, result.problems], default=str)[:3000]
    return result


# -- UMT5-XXL -------------------------------------------------------------------------------------

class Tokenizer:
    """sentencepiece's processor on the file's model, </s> appended, padded with 0 and masked."""

    def __init__(self, model: bytes):
        from sentencepiece import SentencePieceProcessor

        self.sp = SentencePieceProcessor(model_proto=model, add_eos=True)

    def __call__(self, prompt, padding=None, max_length=None, return_tensors=None):
        from types import SimpleNamespace

        ids = self.sp.encode(prompt)
        if padding is None:
            return SimpleNamespace(input_ids=ids)
        mask = [1] * len(ids) + [0] * (max_length - len(ids))
        return SimpleNamespace(input_ids=torch.tensor([ids + [0] * (max_length - len(ids))]),
                               attention_mask=torch.tensor([mask]))


def reference_umt5(path):
    """(transformers' UMT5EncoderModel on the file's weights, a tokenizer of its spiece_model)."""
    from safetensors.torch import load_file
    from transformers import UMT5EncoderModel

    from graphflow.testing import umt5_config

    state = load_file(str(path))
    tokenizer = Tokenizer(state.pop("spiece_model").numpy().tobytes())
    model = UMT5EncoderModel(umt5_config(state["shared.weight"].shape[0])).eval()
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    assert not unexpected and set(missing) <= {"encoder.embed_tokens.weight"}
    return model, tokenizer


def reference_text(model, tokenizer, prompt):
    """The prompt padded to 512 with its mask through UMT5, padded outputs zeroed (ComfyUI's and
    diffusers' WanPipeline's context)."""
    tokens = tokenizer(prompt, padding="max_length", max_length=512, return_tensors="pt")
    with torch.no_grad():
        hidden = model(tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    return hidden * tokens.attention_mask[..., None], tokens


@pytest.fixture
def umt5_file(tmp_folders):
    from graphflow.testing import write_umt5

    (tmp_folders.models / "text_encoders").mkdir()
    return write_umt5(tmp_folders.models / "text_encoders" / "umt5_xxl_fp16.safetensors", dtype=torch.float32)


def test_cliploader_wan_matches_transformers_umt5(umt5_file):
    clip = call(registry(), "LoadTextEncoder", clip_name=umt5_file.name, type="wan")
    model, tokenizer = reference_umt5(umt5_file)
    assert model.config.model_type == "umt5" and clip.t5.umt5
    for prompt in ("a red fox runs through fresh snow", "", "dogs bark at the city lights at night"):
        context, pooled = clip.encode(prompt)
        want, tokens = reference_text(model, tokenizer, prompt)
        assert pooled is None and context.shape == (1, 512, model.config.d_model)
        n = int(tokens.attention_mask.sum())
        assert n >= 1 and float(context[0, :n].abs().min(dim=-1).values.max()) > 0  # the prompt's tokens
        torch.testing.assert_close(context, want, atol=1e-4, rtol=1e-4)
    # ids: the pieces then </s> (1), no start token, <pad> 0, as ComfyUI's UMT5XXlTokenizer
    ids, _ = clip.t5.tokenize("a red fox", 8)
    assert ids == tokenizer("a red fox").input_ids + [0] * (8 - len(tokenizer("a red fox").input_ids))
    assert ids[len(tokenizer("a red fox").input_ids) - 1] == 1


def test_umt5_layers_each_have_their_own_position_bias(umt5_file):
    """The per-layer bias is what makes UMT5: the second layer's changes the output, unlike T5's."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(umt5_file))
    state["encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"] *= 3.0
    other = umt5_file.with_name("umt5_other.safetensors")
    save_file(state, str(other))
    a = call(registry(), "LoadTextEncoder", clip_name=umt5_file.name, type="wan").encode("a red fox")[0]
    b = call(registry(), "LoadTextEncoder", clip_name=other.name, type="wan").encode("a red fox")[0]
    assert float((a - b).abs().max()) > 1e-3


def test_prompt_weights_pull_towards_the_masked_empty_prompt(umt5_file):
    clip = call(registry(), "LoadTextEncoder", clip_name=umt5_file.name, type="wan")
    plain = clip.encode("a red fox")[0]
    weighted = clip.encode("a (red:1.5) fox")[0]
    n = len(clip.t5.tokenize("a red fox")[0])
    empty = clip.t5.run([[1]])[0, 0]  # "</s>" alone: the masked empty prompt's first token, zeros after
    red = len(clip.t5.tokenize("a")[0]) - 1  # the first piece of "red"
    torch.testing.assert_close(weighted[0, red], (plain[0, red] - 0) * 1.5 if red else
                               (plain[0, 0] - empty) * 1.5 + empty, atol=1e-5, rtol=1e-5)
    assert torch.equal(weighted[0, n:], plain[0, n:])


def test_t5_tokenizer_options_pad_wan_prompts(umt5_file):
    """T5TokenizerOptions (min_length, min_padding) sets the UMT5 padding too: still zeros past </s>."""
    clip = call(registry(), "LoadTextEncoder", clip_name=umt5_file.name, type="wan")
    padded = call(registry(), "T5TokenizerOptions", clip=clip, min_padding=3, min_length=16)
    context, _ = padded.encode("a red fox")
    n = len(clip.t5.tokenize("a red fox")[0])
    assert context.shape[1] == 16 and context[0, n:].abs().max() == 0
    torch.testing.assert_close(context[:, :n], clip.encode("a red fox")[0][:, :n])


def test_clip_save_keeps_the_tokenizer(umt5_file, tmp_folders):
    """CLIPSave writes UMT5 with its spiece_model, so CLIPLoader type wan reads the file back alike."""
    import shutil

    clip = call(registry(), "LoadTextEncoder", clip_name=umt5_file.name, type="wan")
    call(registry(), "CLIPSave", clip=clip, filename_prefix="text_encoders/saved")
    [saved] = tmp_folders.outputs.rglob("saved_umt5xxl*.safetensors")
    shutil.copy(saved, umt5_file.parent / "resaved.safetensors")
    again = call(registry(), "LoadTextEncoder", clip_name="resaved.safetensors", type="wan")
    assert torch.equal(again.encode("a (red:1.2) fox")[0], clip.encode("a (red:1.2) fox")[0])


def test_umt5_without_tokenizer_or_plain_t5_refused(tmp_folders):
    from graphflow.api import NodeInputError
    from graphflow.testing import write_flow_text_encoder, write_umt5

    folder = tmp_folders.models / "text_encoders"
    folder.mkdir()
    write_umt5(folder / "umt5_bare.safetensors", tokenizer=False)
    write_flow_text_encoder(folder / "t5xxl_fp16.safetensors", "t5xxl")
    with pytest.raises(NodeInputError, match="umt5_xxl_fp16.safetensors or umt5_xxl_fp8_e4m3fn_scaled"):
        call(registry(), "LoadTextEncoder", clip_name="umt5_bare.safetensors", type="wan")
    with pytest.raises(NodeInputError, match="UMT5-XXL"):
        call(registry(), "LoadTextEncoder", clip_name="t5xxl_fp16.safetensors", type="wan")


# -- the transformer --------------------------------------------------------------------------------

def diffusers_transformer(cfg, state: dict):
    """diffusers' WanTransformer3DModel of `cfg` on Wan-layout `state` (through diffusers' converter)."""
    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    theirs = WanTransformer3DModel(
        patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_channels, out_channels=cfg.out_channels, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim, num_layers=cfg.depth, cross_attn_norm=cfg.cross_attn_norm,
        image_dim=cfg.image_dim or None, added_kv_proj_dim=cfg.dim if cfg.i2v else None).eval()
    left = {k: v.clone() for k, v in state.items()}
    converted = convert_wan_transformer_to_diffusers(left)
    assert not left, f"keys diffusers' converter does not know: {sorted(left)[:5]}"
    theirs.load_state_dict(converted, strict=True)
    return theirs


def comfy_lora(path, state: dict, targets, seed: int, rank: int = 4, alpha: float = 2.0) -> dict:
    """A random LoRA in ComfyUI's Wan layout (diffusion_model. + the module's path; lora_down / lora_up /
    alpha, as the lightx2v and relight files are) on `targets` of `state`; returns the merged deltas
    (alpha / rank x up @ down) by weight name."""
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    tensors, deltas = {}, {}
    for name in targets:
        out_ch, in_ch = state[name + ".weight"].shape
        down, up = torch.randn(rank, in_ch, generator=gen) * 0.3, torch.randn(out_ch, rank, generator=gen) * 0.3
        tensors.update({f"diffusion_model.{name}.lora_down.weight": down, f"diffusion_model.{name}.lora_up.weight": up,
                        f"diffusion_model.{name}.alpha": torch.tensor(alpha)})
        deltas[name + ".weight"] = alpha / rank * up @ down
    save_file(tensors, str(path))
    return deltas


def diffusers_velocity(theirs, x, sigma, context, image=None):
    """ComfyUI's model output from diffusers' transformer: net(x, 1000 sigma)."""
    with torch.no_grad():
        return theirs(x, sigma * 1000, context, encoder_hidden_states_image=image, return_dict=False)[0]


@functools.lru_cache(maxsize=2)
def transformer_pair(i2v: bool):
    from graphflow.models.wan import Wan
    from graphflow.testing import wan_config, wan_state

    cfg = wan_config(i2v=i2v)
    state = wan_state(seed=0, i2v=i2v)
    ours = Wan(cfg).eval()
    ours.load_state_dict(state)
    return cfg, ours, diffusers_transformer(cfg, state), state


@pytest.mark.parametrize("i2v", [False, True])
def test_transformer_matches_diffusers(i2v):
    cfg, ours, theirs, _ = transformer_pair(i2v)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, cfg.in_channels, 3, 4, 6, generator=gen)
    # diffusers' I2V attention takes the text to be the last 512 tokens (ComfyUI's padded prompt)
    context = torch.randn(2, 512 if i2v else 9, cfg.text_dim, generator=gen)
    image = torch.randn(2, 5, cfg.image_dim, generator=gen) if i2v else None
    sigma = torch.tensor([0.9, 0.3])
    with torch.no_grad():
        got = ours(x, sigma, context, clip_fea=image)
    want = diffusers_velocity(theirs, x, sigma, context, image)
    assert got.shape == (2, 16, 3, 4, 6)
    assert float((got - want).abs().max()) < TOL * float(want.abs().max())
    assert float(got.abs().max()) > 0.1
    if i2v:  # the image tokens count
        with torch.no_grad():
            other = ours(x, sigma, context, clip_fea=torch.randn(image.shape, generator=gen))
        assert float((other - got).abs().max()) > 1e-3
        # no CLIP vision states: ComfyUI's I2V image attention (k_img / v_img) runs over the prompt
        with torch.no_grad():
            plain = ours(x, sigma, context)
            v_img = [(b.cross_attn.v_img.weight.clone(), b.cross_attn.v_img.bias.clone()) for b in ours.blocks]
            for b in ours.blocks:
                b.cross_attn.v_img.weight.zero_(), b.cross_attn.v_img.bias.zero_()
            silenced = ours(x, sigma, context)
            for b, (w, bias) in zip(ours.blocks, v_img):
                b.cross_attn.v_img.weight.copy_(w), b.cross_attn.v_img.bias.copy_(bias)
        assert float((plain - silenced).abs().max()) > 1e-3


def test_positions_time_and_odd_sizes():
    cfg, ours, theirs, _ = transformer_pair(False)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(1, 16, 2, 4, 4, generator=gen)
    context = torch.randn(1, 5, cfg.text_dim, generator=gen)
    with torch.no_grad():
        a = ours(x, torch.tensor([0.5]), context)
        b = ours(x, torch.tensor([0.6]), context)
        swapped = ours(x.flip(2), torch.tensor([0.5]), context)
        odd = ours(torch.randn(1, 16, 2, 5, 3, generator=gen), torch.tensor([0.5]), context)
    assert float((a - b).abs().max()) > 1e-3
    assert float((swapped.flip(2) - a).abs().max()) > 1e-3  # frames are told apart by their rotation
    assert odd.shape == (1, 16, 2, 5, 3)  # padded to whole patches and cropped back, as ComfyUI


def test_config_from_shapes():
    from graphflow.models.wan import wan_config_from_state_dict
    from graphflow.testing import wan_config

    for i2v in (False, True):
        cfg, _, _, state = transformer_pair(i2v)
        assert wan_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()}) == cfg == wan_config(i2v=i2v)
    assert wan_config(False).num_heads == 12 and wan_config(False).dim == 1536  # T2V 1.3B


# -- the latent (detection, loading, sampling: tests/test_flow_families.py) ---------------------

def test_latent_format_is_diffusers_wan_vae_statistics():
    from diffusers import AutoencoderKLWan

    from graphflow.models.latent_formats import LATENT_FORMATS

    fmt = LATENT_FORMATS["wan21"]
    vae = AutoencoderKLWan()  # its default config: Wan 2.1's VAE
    mean = torch.tensor(vae.config.latents_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, 16, 1, 1, 1)
    raw = torch.randn(1, 16, 2, 3, 4, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(fmt.process_in(raw), (raw - mean) / std, atol=1e-6)
    assert torch.allclose(fmt.process_out(fmt.process_in(raw)), raw, atol=1e-6)


# -- nodes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("length,frames", [(25, 7), (1, 1), (81, 21), (4, 1), (5, 2)])
def test_empty_hunyuan_latent_video(length, frames):
    latent = call(registry(), "EmptyHunyuanLatentVideo", width=64, height=48, length=length, batch_size=2)
    assert latent["samples"].shape == (2, 16, frames, 6, 8) and latent["samples"].abs().max() == 0


@functools.lru_cache(maxsize=1)
def wan_vae():
    """A tiny random Wan 2.1 VAE (graphflow.models.wan_vae), as VAELoader gives it."""
    import tempfile
    from pathlib import Path

    from graphflow.models.checkpoint import load_vae
    from graphflow.testing import write_wan_vae

    with tempfile.TemporaryDirectory() as folder:
        return load_vae(write_wan_vae(Path(folder) / "wan_2.1_vae.safetensors", dtype=torch.float32),
                        device="cpu", dtype=torch.float32)


def test_wan_image_to_video_conditioning_and_concat():
    """WanImageToVideo as ComfyUI's: the start frames then grey through the (Wan) VAE, mask 0 on the
    latent frames they fix; the sampler's 20 extra channels are 1 - mask (x4) then the latent in model
    space."""
    from graphflow.models.clip_vision import ClipVisionOutput
    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.guidance import prepare_conds
    from graphflow.sampling.pipeline import wan_concat

    from graphflow.images import center_crop_to_aspect, resize_nchw

    cond = [(torch.randn(1, 512, 32), {"a": 1})]
    image = torch.rand(2, 40, 48, 3, generator=torch.Generator().manual_seed(0))
    vision = ClipVisionOutput(torch.zeros(1, 5, 64), torch.zeros(1, 8), torch.randn(1, 5, 64))
    vae = wan_vae()
    pos, neg, latent = call(registry(), "WanImageToVideo", positive=cond, negative=cond, vae=vae, width=32,
                            height=32, length=9, batch_size=1, start_image=image, clip_vision_output=vision)
    assert latent["samples"].shape == (1, 16, 3, 4, 4) and latent["samples"].abs().max() == 0
    # the VAE encoded the start frames (centre-cropped and scaled) and then mid-grey, 9 frames in all
    video = torch.full((9, 32, 32, 3), 0.5)
    video[:2] = resize_nchw(center_crop_to_aspect(image.movedim(-1, 1), 32, 32), 32, 32, "bilinear").movedim(1, -1)
    assert torch.allclose(pos[0][1]["concat_latent_image"], vae.encode(video), atol=1e-5)
    assert pos[0][1]["concat_latent_image"].shape == (1, 16, 3, 4, 4)
    for side in (pos, neg):
        options = side[0][1]
        assert options["a"] == 1 and options["clip_vision_output"] is vision
        assert options["concat_mask"].shape == (1, 1, 3, 4, 4)
        assert options["concat_mask"][0, 0, :, 0, 0].tolist() == [0.0, 1.0, 1.0]  # 2 frames: latent frame 0
    concat = wan_concat(pos[0][1], None, WAN21, (2, 16, 3, 4, 4), 20, "cpu")
    assert concat.shape == (2, 20, 3, 4, 4)
    assert concat[:, :4, 0].eq(1).all() and concat[:, :4, 1:].eq(0).all()
    assert torch.allclose(concat[:, 4:], WAN21.process_in(pos[0][1]["concat_latent_image"]).expand(2, -1, -1, -1, -1))

    class Model:  # what prepare_conds reads of a Wan I2V MODEL
        arch, prediction, is_video, adm_channels = "wan", "flow", True, 0
        dtype = torch.bfloat16  # the image tokens come in the model's dtype once, not cast at every step

    (entry,) = prepare_conds(pos, Model(), (2, 16, 3, 4, 4), "cpu")
    assert entry.clip_fea.dtype == torch.bfloat16
    assert torch.equal(entry.clip_fea, vision.penultimate_hidden_states.bfloat16().expand(2, -1, -1))
    # no start image: no concat options; the model's extra channels are zeros
    pos2, _, _ = call(registry(), "WanImageToVideo", positive=cond, negative=cond, vae=vae, width=32, height=32,
                      length=9, batch_size=1)
    assert "concat_latent_image" not in pos2[0][1]
    assert wan_concat(pos2[0][1], None, WAN21, (1, 16, 3, 4, 4), 20, "cpu").abs().max() == 0


def test_wan_first_last_frame_mask():
    """ComfyUI's FLF2V mask: pixel frames 0 on the start frames + 3 and on the end frames, folded 4 per
    latent frame into 4 channels."""
    from graphflow.models.clip_vision import ClipVisionOutput

    cond = [(torch.randn(1, 512, 32), {})]
    gen = torch.Generator().manual_seed(1)
    start, end = torch.rand(1, 32, 32, 3, generator=gen), torch.rand(1, 32, 32, 3, generator=gen)
    a, b = (ClipVisionOutput(torch.zeros(1, 5, 64), torch.zeros(1, 8), torch.randn(1, 5, 64, generator=gen))
            for _ in range(2))
    vae = wan_vae()
    pos, _, latent = call(registry(), "WanFirstLastFrameToVideo", positive=cond, negative=cond, vae=vae, width=32,
                          height=32, length=13, batch_size=1, start_image=start, end_image=end,
                          clip_vision_start_image=a, clip_vision_end_image=b)
    assert latent["samples"].shape == (1, 16, 4, 4, 4)
    video = torch.full((13, 32, 32, 3), 0.5)
    video[0], video[-1] = start[0], end[0]
    assert torch.allclose(pos[0][1]["concat_latent_image"], vae.encode(video), atol=1e-5)
    mask = pos[0][1]["concat_mask"]
    assert mask.shape == (1, 4, 4, 4, 4)
    pixel = mask[0, :, :, 0, 0].t().reshape(-1)  # pixel frame order
    assert pixel.tolist() == [0.0] * 4 + [1.0] * 11 + [0.0]
    states = pos[0][1]["clip_vision_output"]["penultimate_hidden_states"]
    assert torch.equal(states, torch.cat([a.penultimate_hidden_states, b.penultimate_hidden_states], dim=1))


# -- a ComfyUI graph end to end ------------------------------------------------------------------

@pytest.fixture
def wan_models(tmp_folders):
    """ComfyUI's Wan files, tiny and random: the T2V transformer bare, UMT5-XXL with its tokenizer,
    the Wan VAE."""
    from graphflow.testing import write_umt5, write_wan, write_wan_vae

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (m / sub).mkdir()
    write_wan_vae(m / "vae" / "wan_2.1_vae.safetensors", dtype=torch.float32)
    write_wan(m / "diffusion_models" / "wan2.1_t2v_1.3B_fp16.safetensors", seed=3, dtype=torch.float32)
    write_umt5(m / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors", seed=1, dtype=torch.float32)
    return tmp_folders


def test_wan_t2v_workflow_runs_and_matches_diffusers(wan_models):
    """workflows/wan_t2v.json as saved but for its size and steps: UNETLoader, CLIPLoader type wan,
    EmptyHunyuanLatentVideo, ModelSamplingSD3 (shift 8), KSampler (euler, simple, cfg 6), VAELoader,
    VAEDecode, SaveAnimatedWEBP (and SaveLatent of the video latent added); the sampled latent equals
    two Euler steps with CFG on diffusers' transformer fed transformers' UMT5 states of the
    512-token padded, masked prompts (zeroed padding), on ComfyUI's sigmas for Wan's shift 8."""

    from safetensors.torch import load_file

    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import wan_config

    nodes, graph = example_graph("wan_t2v")
    graph["5"]["inputs"].update(width=32, height=32, length=9)
    graph["6"]["inputs"]["steps"] = 2
    graph["11"] = {"class_type": "SaveLatent", "inputs": {"samples": ["6", 0], "filename_prefix": "latents/wan_t2v"}}
    result = run_graph(graph)
    assert len(list(wan_models.outputs.rglob("wan_t2v*.latent"))) == 1
    assert len(list(wan_models.outputs.rglob("wan_*.webp"))) == 1
    frames = result.values["8"][0]
    assert frames.shape == (9, 32, 32, 3) and float(frames.std()) > 0.01

    theirs = diffusers_transformer(wan_config(), load_file(
        str(wan_models.models / "diffusion_models" / "wan2.1_t2v_1.3B_fp16.safetensors")))
    umt5, tokenizer = reference_umt5(wan_models.models / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    cond, uncond = (reference_text(umt5, tokenizer, nodes[n]["inputs"]["text"])[0] for n in ("3", "4"))
    cfg_scale, seed = nodes["6"]["inputs"]["cfg"], nodes["6"]["inputs"]["seed"]
    sigma_mid = 8 * 0.5 / (1 + 7 * 0.5)  # "simple", 2 steps: t = 1, 0.5 through shift 8
    x = initial_noise(torch.zeros(1, 16, 3, 4, 4), seed)
    for sigma, sigma_next in ((1.0, sigma_mid), (sigma_mid, 0.0)):
        s = torch.tensor([sigma])
        v_cond, v_uncond = (diffusers_velocity(theirs, x, s, c) for c in (cond, uncond))
        assert float((v_cond - v_uncond).abs().max()) > 1e-3  # the negative prompt counts
        x = x + (v_uncond + cfg_scale * (v_cond - v_uncond)) * (sigma_next - sigma)
    ours = result.values["6"][0]["samples"]
    want = WAN21.process_out(x)  # the LATENT holds raw VAE latents
    assert ours.shape == (1, 16, 3, 4, 4)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())


@pytest.mark.parametrize("fun_control", [False, True])
def test_wan_i2v_sampling_matches_diffusers(tmp_path, fun_control):
    """An I2V model sampled by KSampler on WanImageToVideo-style conditioning (a given latent, its mask,
    CLIP vision states): two Euler CFG steps of diffusers' transformer fed [x, 1 - mask x4, image
    latent in model space] on the channels and the states as its image tokens. A Fun Control model
    (48 channels in) on WanFunControlToVideo's 32-channel concat: [x, each 16 in model space]."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.clip_vision import ClipVisionOutput
    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.noise import initial_noise
    from graphflow.models.flow_architecture import detect_flow_model
    from graphflow.models.weight_files import WeightFile
    from graphflow.testing import wan_config, wan_state, write_wan

    width = 48 if fun_control else 36
    path = write_wan(tmp_path / "wan.safetensors", seed=4, i2v=True, dtype=torch.float32, in_channels=width)
    model = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    with WeightFile(path) as f:
        assert detect_flow_model(f.shapes).family == ("wan_fun_control" if fun_control else "wan_i2v")
    theirs = diffusers_transformer(wan_config(i2v=True, in_channels=width),
                                   wan_state(seed=4, i2v=True, in_channels=width))
    gen = torch.Generator().manual_seed(5)
    context = [torch.randn(1, 512, 32, generator=gen) for _ in range(2)]
    image_latent = torch.randn(1, 32 if fun_control else 16, 2, 4, 4, generator=gen)
    mask = torch.ones(1, 1, 2, 4, 4)
    mask[:, :, :1] = 0.0
    vision = ClipVisionOutput(torch.zeros(1, 5, 64), torch.zeros(1, 8), torch.randn(1, 5, 64, generator=gen))
    options = {"concat_latent_image": image_latent, "clip_vision_output": vision}
    if not fun_control:
        options["concat_mask"] = mask
    positive, negative = [(context[0], dict(options))], [(context[1], dict(options))]
    seed, cfg_scale = 7, 5.0
    latent = call(registry(), "KSampler", model=model, seed=seed, steps=2, cfg=cfg_scale, sampler_name="euler",
                  scheduler="simple", positive=positive, negative=negative, denoise=1.0,
                  latent_image={"samples": torch.zeros(1, 16, 2, 4, 4)})
    extra = torch.cat([WAN21.process_in(image_latent[:, :16]), WAN21.process_in(image_latent[:, 16:])], dim=1) \
        if fun_control else torch.cat([(1 - mask).expand(1, 4, -1, -1, -1), WAN21.process_in(image_latent)], dim=1)
    sigma_mid = 8 * 0.5 / (1 + 7 * 0.5)
    x = initial_noise(torch.zeros(1, 16, 2, 4, 4), seed)
    for sigma, sigma_next in ((1.0, sigma_mid), (sigma_mid, 0.0)):
        s = torch.tensor([sigma])
        v_cond, v_uncond = (diffusers_velocity(theirs, torch.cat([x, extra], 1), s, c, vision.penultimate_hidden_states)
                            for c in context)
        x = x + (v_uncond + cfg_scale * (v_cond - v_uncond)) * (sigma_next - sigma)
    ours = latent["samples"] if isinstance(latent, dict) else latent[0]["samples"]
    want = WAN21.process_out(x)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())


def test_umt5_file_identified(tmp_path):
    from graphflow.models.file_kind import identify
    from graphflow.models.weight_files import WeightFile
    from graphflow.testing import write_umt5

    for tokenizer in (True, False):
        with WeightFile(write_umt5(tmp_path / f"u{tokenizer}.safetensors", tokenizer=tokenizer)) as f:
            kind = identify(f.shapes)
        assert kind.name.startswith("UMT5-XXL text encoder (Wan 2.1") and kind.folder == "text_encoders"
        assert ("NO tokenizer" in kind.name) != tokenizer


@pytest.mark.parametrize("i2v", [False, True])
def test_lora_in_diffusers_layout_matches_diffusers(tmp_path, i2v):
    """A PEFT LoRA on diffusers' WanTransformer3DModel (every Linear, diffusers' names) applied to our
    model gives diffusers' output with the adapter."""
    import copy

    from safetensors.torch import save_file

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.lora import apply_lora
    from graphflow.testing import write_wan
    from tests.test_flow_lora import random_peft_lora

    cfg, _, theirs, state = transformer_pair(i2v)
    theirs = copy.deepcopy(theirs)
    path = write_wan(tmp_path / "w.safetensors", seed=0, i2v=i2v, dtype=torch.float32)
    model = load_diffusion_model(path, device="cpu", dtype=torch.float32)
    lora = random_peft_lora(theirs, seed=5)
    assert "transformer.blocks.1.ffn.net.0.proj.lora_A.weight" in lora
    assert ("transformer.blocks.0.attn2.add_k_proj.lora_B.weight" in lora) == i2v
    save_file(lora, str(tmp_path / "wan_peft.safetensors"))
    theirs.load_lora_adapter(dict(lora), prefix="transformer", adapter_name="test")
    theirs.set_adapters(["test"], weights=[0.7])
    patched, _ = apply_lora(model, None, tmp_path / "wan_peft.safetensors", 0.7, 0.0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, cfg.in_channels, 2, 4, 4, generator=gen)
    context = torch.randn(1, 512 if i2v else 7, cfg.text_dim, generator=gen)
    image = torch.randn(1, 5, cfg.image_dim, generator=gen) if i2v else None
    sigma = torch.tensor([0.6])
    with torch.no_grad():
        plain = model(x, sigma, context, clip_fea=image)
        got = patched(x, sigma, context, clip_fea=image)
    want = diffusers_velocity(theirs, x, sigma, context, image)
    assert float((got - plain).abs().max()) > 1e-2  # the LoRA does something
    assert float((got - want).abs().max()) < TOL * float(want.abs().max())


def test_scaled_fp8_files(tmp_folders, tmp_path):
    """Comfy-Org's scaled-fp8 files (umt5_xxl_fp8_e4m3fn_scaled, wan2.1_t2v_14B_fp8_scaled): their
    tokenizer read as it is, the weights dequantised; the same numbers as the dequantised files."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.testing import write_scaled_fp8, write_umt5, write_wan

    folder = tmp_folders.models / "text_encoders"
    folder.mkdir()
    write_scaled_fp8(write_umt5(tmp_path / "u.safetensors", dtype=torch.float32),
                     folder / "umt5_xxl_fp8_e4m3fn_scaled.safetensors", dequantised=folder / "umt5_plain.safetensors")
    scaled, plain = (call(registry(), "LoadTextEncoder", clip_name=name, type="wan")
                     for name in ("umt5_xxl_fp8_e4m3fn_scaled.safetensors", "umt5_plain.safetensors"))
    torch.testing.assert_close(scaled.encode("a red fox")[0], plain.encode("a red fox")[0], atol=1e-5, rtol=1e-5)

    models = [load_diffusion_model(p, device="cpu", dtype=torch.float32) for p in (
        write_scaled_fp8(write_wan(tmp_path / "w.safetensors", dtype=torch.float32),
                         tmp_path / "wan_fp8_scaled.safetensors", dequantised=tmp_path / "wan_plain.safetensors"),
        tmp_path / "wan_plain.safetensors")]
    gen = torch.Generator().manual_seed(0)
    x, context = torch.randn(1, 16, 2, 4, 4, generator=gen), torch.randn(1, 7, 32, generator=gen)
    with torch.no_grad():
        a, b = (m(x, torch.tensor([0.5]), context) for m in models)
    assert float((a - b).abs().max()) < 1e-4 * float(b.abs().max())


def test_wan_i2v_workflow_runs_and_matches_diffusers(tmp_folders):
    """workflows/wan_i2v.json (ComfyUI's Wan 2.1 image-to-video template: UNETLoader (I2V), CLIPLoader
    wan, CLIPVisionLoader + CLIPVisionEncode (crop none) of the LoadImage start picture, VAELoader,
    WanImageToVideo, ModelSamplingSD3 shift 8, KSampler, VAEDecode, CreateVideo + SaveVideo) as saved
    but for its size, steps and sampler (euler, to step by hand): the latent equals two Euler CFG
    steps of diffusers' transformer on [x, 1 - mask x4, the start frame's latent in model space] with
    the picture's CLIP vision penultimate states as image tokens and transformers' UMT5 states."""

    import numpy as np
    from PIL import Image

    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import wan_config, wan_state, write_clip_vision, write_umt5, write_wan, write_wan_vae

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae", "clip_vision"):
        (m / sub).mkdir()
    write_wan(m / "diffusion_models" / "wan2.1_i2v_480p_14B_fp16.safetensors", seed=6, i2v=True, dtype=torch.float32)
    write_umt5(m / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors", seed=1, dtype=torch.float32)
    write_wan_vae(m / "vae" / "wan_2.1_vae.safetensors", dtype=torch.float32)
    write_clip_vision(m / "clip_vision" / "clip_vision_h.safetensors", dtype=torch.float32)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(
        tmp_folders.inputs / "image_to_video_wan_start_image.png")
    nodes, graph = example_graph("wan_i2v")
    graph["50"]["inputs"].update(width=32, height=32, length=5)
    graph["3"]["inputs"].update(steps=2, sampler_name="euler", seed=11)
    result = run_graph(graph)
    assert result.values["8"][0].shape == (5, 32, 32, 3)
    assert len(list(tmp_folders.outputs.rglob("wan_i2v*.mp4"))) == 1

    positive = result.values["50"][0][0][1]
    vision = result.values["51"][0]
    assert positive["clip_vision_output"] is vision and vision.penultimate_hidden_states.shape == (1, 17, 64)
    theirs = diffusers_transformer(wan_config(i2v=True), wan_state(seed=6, i2v=True))
    umt5, tokenizer = reference_umt5(m / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    cond, uncond = (reference_text(umt5, tokenizer, nodes[n]["inputs"]["text"])[0] for n in ("6", "7"))
    cfg_scale = nodes["3"]["inputs"]["cfg"]
    mask = torch.ones(1, 4, 2, 4, 4)
    mask[:, :, 0] = 0.0  # the start frame's latent frame is given
    extra = torch.cat([1 - mask, WAN21.process_in(positive["concat_latent_image"])], dim=1)
    sigma_mid = 8 * 0.5 / (1 + 7 * 0.5)
    x = initial_noise(torch.zeros(1, 16, 2, 4, 4), 11)
    for sigma, sigma_next in ((1.0, sigma_mid), (sigma_mid, 0.0)):
        s = torch.tensor([sigma])
        v_cond, v_uncond = (diffusers_velocity(theirs, torch.cat([x, extra], 1), s, c, vision.penultimate_hidden_states)
                            for c in (cond, uncond))
        x = x + (v_uncond + cfg_scale * (v_cond - v_uncond)) * (sigma_next - sigma)
    ours = result.values["3"][0]["samples"]
    want = WAN21.process_out(x)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())


def test_wan_flf2v_workflow_runs_and_matches_diffusers(tmp_folders):
    """workflows/wan_flf2v.json (ComfyUI's Wan 2.1 first-last-frame template: UNETLoader (FLF2V: learned
    positions for its two pictures' image tokens), CLIPLoader wan, CLIPVisionEncode of the start and of
    the end picture, WanFirstLastFrameToVideo, ModelSamplingSD3 shift 8, KSampler (cfg 3), VAEDecode,
    CreateVideo + SaveVideo) as saved but for its size, steps and sampler (euler): two Euler CFG steps
    of diffusers' transformer built with pos_embed_seq_len (the file's img_emb.emb_pos, which diffusers'
    converter leaves out, set by hand) on [x, 1 - the FLF mask x4, the start + grey + end latent] and
    both pictures' CLIP vision states."""

    import numpy as np
    from PIL import Image
    from safetensors.torch import save_file

    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import wan_config, wan_state, write_clip_vision, write_umt5, write_wan_vae

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae", "clip_vision"):
        (m / sub).mkdir()
    cfg = wan_config(i2v=True)
    state = wan_state(seed=12, i2v=True)
    emb_pos = torch.randn(1, 2 * 17, cfg.image_dim, generator=torch.Generator().manual_seed(13))
    save_file({**state, "img_emb.emb_pos": emb_pos}, str(m / "diffusion_models" / "wan2.1_flf2v_720p_14B_fp16.safetensors"))
    write_umt5(m / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors", seed=1, dtype=torch.float32)
    write_wan_vae(m / "vae" / "wan_2.1_vae.safetensors", dtype=torch.float32)
    write_clip_vision(m / "clip_vision" / "clip_vision_h.safetensors", dtype=torch.float32)
    rng = np.random.default_rng(3)
    for name in ("wan2.1_flf2v_720_f16_start_image.png", "wan2.1_flf2v_720_f16_end_image.png"):
        Image.fromarray(rng.integers(0, 255, (40, 24, 3), dtype=np.uint8)).save(tmp_folders.inputs / name)
    nodes, graph = example_graph("wan_flf2v")
    graph["83"]["inputs"].update(width=16, height=32, length=9)
    graph["90"]["inputs"].update(steps=2, sampler_name="euler", seed=14)
    result = run_graph(graph)
    assert result.values["8"][0].shape == (9, 32, 16, 3)
    assert len(list(tmp_folders.outputs.rglob("wan_flf2v*.mp4"))) == 1

    from diffusers import WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    theirs = WanTransformer3DModel(
        patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_channels, out_channels=cfg.out_channels, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim, num_layers=cfg.depth, cross_attn_norm=cfg.cross_attn_norm, image_dim=cfg.image_dim,
        added_kv_proj_dim=cfg.dim, pos_embed_seq_len=2 * 17).eval()
    converted = convert_wan_transformer_to_diffusers(dict(state))
    converted["condition_embedder.image_embedder.pos_embed"] = emb_pos
    theirs.load_state_dict(converted, strict=True)
    umt5, tokenizer = reference_umt5(m / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    cond, uncond = (reference_text(umt5, tokenizer, nodes[n]["inputs"]["text"])[0] for n in ("6", "7"))
    cfg_scale = nodes["90"]["inputs"]["cfg"]
    positive = result.values["83"][0][0][1]
    # diffusers' FLF2V takes the two pictures' states as a batch of 2 and joins them behind its positions
    image = torch.cat([result.values[n][0].penultimate_hidden_states for n in ("51", "87")])
    mask = torch.ones(1, 4, 3, 4, 2)
    mask[:, :, 0] = 0.0  # the start picture's latent frame
    mask[:, 3, 2] = 0.0  # the end picture: the last pixel frame of the last latent frame
    assert torch.equal(positive["concat_mask"], mask)
    extra = torch.cat([1 - mask, WAN21.process_in(positive["concat_latent_image"])], dim=1)
    sigma_mid = 8 * 0.5 / (1 + 7 * 0.5)
    x = initial_noise(torch.zeros(1, 16, 3, 4, 2), 14)
    for sigma, sigma_next in ((1.0, sigma_mid), (sigma_mid, 0.0)):
        s = torch.tensor([sigma])
        v_cond, v_uncond = (diffusers_velocity(theirs, torch.cat([x, extra], 1), s, c, image) for c in (cond, uncond))
        x = x + (v_uncond + cfg_scale * (v_cond - v_uncond)) * (sigma_next - sigma)
    ours = result.values["90"][0]["samples"]
    want = WAN21.process_out(x)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())


def test_wan_fun_control_workflow_runs_and_matches_diffusers(tmp_folders):
    """workflows/wan_fun_control.json (ComfyUI's Wan 2.1 Fun Control template: UNETLoader (Fun Control, 48
    channels in), its "attention booster" chain SkipLayerGuidanceDiT (blocks 9, 10, scale 3, 1%-80%) ->
    ModelSamplingSD3 shift 5 -> UNetTemporalAttentionMultiply (no attn1/attn2 names in Wan: no change, as
    in ComfyUI) -> CFGZeroStar, CLIPVisionEncode of the start frame, LoadVideo -> GetVideoComponents ->
    Canny for the control video, WanFunControlToVideo, KSampler (cfg 6), VAEDecode, CreateVideo +
    SaveVideo) as saved but for its size, steps and sampler (euler), on an 11-block model so that blocks
    9 and 10 exist: two Euler steps of diffusers' transformer with CFG 6, in the second step (the only one
    inside the window) the push away from the positive prediction without blocks 9 and 10 (diffusers'
    model with them removed), then CFG-Zero*'s optimised scale of the negative, in that order."""
    import copy

    import numpy as np
    from PIL import Image

    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import wan_config, wan_state, write_clip_vision, write_umt5, write_wan, write_wan_vae
    from graphflow.video import Video, write_video

    m = tmp_folders.models
    for sub in ("diffusion_models", "text_encoders", "vae", "clip_vision"):
        (m / sub).mkdir()
    write_wan(m / "diffusion_models" / "wan2.1_fun_control_1.3B_bf16.safetensors", seed=15, i2v=True, depth=11,
              in_channels=48, dtype=torch.float32)
    write_umt5(m / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors", seed=1, dtype=torch.float32)
    write_wan_vae(m / "vae" / "wan_2.1_vae.safetensors", dtype=torch.float32)
    write_clip_vision(m / "clip_vision" / "clip_vision_h.safetensors", dtype=torch.float32)
    rng = np.random.default_rng(4)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
        tmp_folders.inputs / "wan2.1_fun_control_start_frame.png")
    write_video(tmp_folders.inputs / "wan2.1_fun_control_control_video.mp4",
                Video(torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(5)), 16), "mp4", "libx264")
    nodes, graph = example_graph("wan_fun_control")
    graph["55"]["inputs"].update(width=32, height=32, length=5)
    graph["3"]["inputs"].update(steps=2, sampler_name="euler", seed=16)
    result = run_graph(graph)
    assert result.values["8"][0].shape == (5, 32, 32, 3)
    assert len(list(tmp_folders.outputs.rglob("wan_fun_control*.mp4"))) == 1

    cfg = wan_config(i2v=True, depth=11, in_channels=48)
    theirs = diffusers_transformer(cfg, wan_state(seed=15, i2v=True, depth=11, in_channels=48))
    skipped = copy.deepcopy(theirs)
    skipped.blocks = torch.nn.ModuleList(b for i, b in enumerate(theirs.blocks) if i not in (9, 10))
    umt5, tokenizer = reference_umt5(m / "text_encoders" / "umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    uncond = reference_text(umt5, tokenizer, nodes["7"]["inputs"]["text"])[0]
    # the positive's "(clay style:1.1)": ComfyUI tokenizes the two segments apart and scales the weighted
    # tokens' states towards the empty prompt's (zeros past its first token) by 1.1
    plain, weighted = nodes["6"]["inputs"]["text"].split("(")
    assert weighted == "clay style:1.1)"
    pieces = [tokenizer.sp.encode(segment, add_eos=False) for segment in (plain, "clay style")]
    ids = pieces[0] + pieces[1] + [tokenizer.sp.eos_id()]
    with torch.no_grad():
        cond = umt5(torch.tensor([ids + [0] * (512 - len(ids))]),
                    attention_mask=torch.tensor([[1] * len(ids) + [0] * (512 - len(ids))])).last_hidden_state
    cond[:, len(ids):] = 0.0
    cond[:, len(pieces[0]):len(pieces[0]) + len(pieces[1])] *= 1.1
    positive = result.values["55"][0][0][1]
    image = result.values["51"][0].penultimate_hidden_states
    given = positive["concat_latent_image"]
    assert given.shape == (1, 32, 2, 4, 4)
    extra = torch.cat([WAN21.process_in(given[:, :16]), WAN21.process_in(given[:, 16:])], dim=1)
    cfg_scale, slg_scale = nodes["3"]["inputs"]["cfg"], nodes["65"]["inputs"]["scale"]
    sigma_mid = 5 * 0.5 / (1 + 4 * 0.5)  # "simple", 2 steps: t = 1, 0.5 through shift 5
    x = initial_noise(torch.zeros(1, 16, 2, 4, 4), 16)
    # the window 1%-80% in sigmas (shift 5 or the file's 8 alike): ~0.998 down to 0.56-0.67, so only sigma_mid
    for sigma, sigma_next, in_window in ((1.0, sigma_mid, False), (sigma_mid, 0.0, True)):
        s = torch.tensor([sigma])
        xin = torch.cat([x, extra], 1)
        den_c, den_u = (x - sigma * diffusers_velocity(theirs, xin, s, c, image) for c in (cond, uncond))
        out = den_u + cfg_scale * (den_c - den_u)
        if in_window:
            den_skip = x - sigma * diffusers_velocity(skipped, xin, s, cond, image)
            assert float((den_c - den_skip).abs().max()) > 1e-3
            out = out + (den_c - den_skip) * slg_scale
        pos, neg = (x - den_c).flatten(1), (x - den_u).flatten(1)
        alpha = ((pos * neg).sum(1) / ((neg ** 2).sum(1) + 1e-8)).view(-1, 1, 1, 1, 1)
        out = out + den_u * (alpha - 1) + cfg_scale * den_u * (1 - alpha)
        x = x + (x - out) / sigma * (sigma_next - sigma)
    ours = result.values["3"][0]["samples"]
    want = WAN21.process_out(x)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())


def test_wan_fun_inpaint_and_control_nodes():
    """WanFunInpaintToVideo is WanFirstLastFrameToVideo with one CLIP vision output; WanFunControlToVideo
    puts the control video's latent and the start image's in 32 channels (what is not given: 0 in
    model space), no mask."""
    from graphflow.models.clip_vision import ClipVisionOutput
    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.pipeline import wan_concat

    cond = [(torch.randn(1, 512, 32), {})]
    gen = torch.Generator().manual_seed(2)
    start, end = torch.rand(1, 32, 32, 3, generator=gen), torch.rand(1, 32, 32, 3, generator=gen)
    vision = ClipVisionOutput(torch.zeros(1, 5, 64), torch.zeros(1, 8), torch.randn(1, 5, 64, generator=gen))
    vae = wan_vae()
    common = dict(positive=cond, negative=cond, vae=vae, width=32, height=32, length=9, batch_size=1)
    inpaint = call(registry(), "WanFunInpaintToVideo", **common, start_image=start, end_image=end,
                   clip_vision_output=vision)
    flf = call(registry(), "WanFirstLastFrameToVideo", **common, start_image=start, end_image=end,
               clip_vision_start_image=vision)
    for key in ("concat_latent_image", "concat_mask"):
        assert torch.equal(inpaint[0][0][1][key], flf[0][0][1][key])
    assert inpaint[0][0][1]["clip_vision_output"] is vision

    control = torch.rand(9, 32, 32, 3, generator=gen)
    pos, neg, latent = call(registry(), "WanFunControlToVideo", **common, start_image=start, control_video=control,
                            clip_vision_output=vision)
    concat = pos[0][1]["concat_latent_image"]
    assert latent["samples"].shape == (1, 16, 3, 4, 4) and concat.shape == (1, 32, 3, 4, 4)
    assert "concat_mask" not in pos[0][1] and neg[0][1]["clip_vision_output"] is vision
    assert torch.allclose(concat[:, :16], vae.encode(control), atol=1e-5)
    assert torch.allclose(concat[:, 16:, :1], vae.encode(start), atol=1e-5)
    extra = wan_concat(pos[0][1], None, WAN21, (1, 16, 3, 4, 4), 32, "cpu")
    assert extra[:, 16:, 1:].abs().max() < 1e-5  # no start frames there: zero in model space
    assert torch.allclose(extra[:, :16], WAN21.process_in(vae.encode(control)), atol=1e-4)
    empty, _, _ = call(registry(), "WanFunControlToVideo", **common)
    assert wan_concat(empty[0][1], None, WAN21, (1, 16, 3, 4, 4), 32, "cpu").abs().max() < 1e-5


# -- VACE ---------------------------------------------------------------------------------------

def test_vace_transformer_matches_diffusers():
    """A VACE model (its blocks over the control latents, hints added after every other block) against
    diffusers' WanVACETransformer3DModel through diffusers' converter; two control inputs are two
    hint streams, each at its strength (diffusers takes one: compared one at a time, and the pair
    as the sum of both hints)."""
    from diffusers import WanVACETransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    from graphflow.models.wan import Wan, wan_config_from_state_dict
    from graphflow.testing import wan_config, wan_state

    from graphflow.models.flow_architecture import detect_flow_model

    cfg, state = wan_config(vace=True), wan_state(seed=2, vace=True)
    assert wan_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()}) == cfg
    assert detect_flow_model({k: tuple(v.shape) for k, v in state.items()}).family == "wan_vace"
    ours = Wan(cfg).eval()
    ours.load_state_dict(state)
    theirs = WanVACETransformer3DModel(
        patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_channels, out_channels=cfg.out_channels, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim, num_layers=cfg.depth, cross_attn_norm=cfg.cross_attn_norm, vace_layers=[0, 2],
        vace_in_channels=cfg.vace_in_channels).eval()
    left = {k: v.clone() for k, v in state.items()}
    theirs.load_state_dict(convert_wan_transformer_to_diffusers(left), strict=True)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 16, 2, 4, 6, generator=gen)
    context = torch.randn(1, 9, cfg.text_dim, generator=gen)
    controls = torch.randn(1, 2, 96, 2, 4, 6, generator=gen)
    sigma = torch.tensor([0.7])
    with torch.no_grad():
        got = ours(x, sigma, context, vace_context=controls[:, :1], vace_strength=(0.8,))
        want = theirs(x, sigma * 1000, context, control_hidden_states=controls[:, 0],
                      control_hidden_states_scale=torch.tensor([0.8, 0.8]), return_dict=False)[0]
        both = ours(x, sigma, context, vace_context=controls, vace_strength=(0.8, 0.5))
        plain = theirs(x, sigma * 1000, context, control_hidden_states=controls[:, 0],
                       control_hidden_states_scale=torch.zeros(2), return_dict=False)[0]
    assert float((got - want).abs().max()) < TOL * float(want.abs().max())
    assert float((got - plain).abs().max()) > 1e-3  # the hints count
    assert float((both - got).abs().max()) > 1e-3  # so does the second input


def test_wan_vace_to_video_node():
    """WanVaceToVideo as ComfyUI's: inactive / reactive halves of the grey-padded control video through the
    VAE, the masks folded 8x8 into 64 channels with frames picked nearest-exact, a reference image as
    one more latent frame in front (trim_latent 1), inputs appended node after node."""
    from graphflow.models.latent_formats import WAN21

    cond = [(torch.randn(1, 512, 32), {})]
    gen = torch.Generator().manual_seed(4)
    vae = wan_vae()
    control = torch.rand(3, 16, 16, 3, generator=gen)
    masks = torch.stack([torch.full((16, 16), float(i) / 10) for i in range(5)])  # frame i: i / 10
    masks[:, :8, 8:] = 1.0  # the top-right 8x8 block of every frame
    pos, neg, latent, trim = call(registry(), "WanVaceToVideo", positive=cond, negative=cond, vae=vae, width=16,
                                  height=16, length=5, batch_size=2, strength=0.7, control_video=control,
                                  control_masks=masks)
    assert trim == 0 and latent["samples"].shape == (2, 16, 2, 2, 2) and latent["samples"].abs().max() == 0
    options = pos[0][1]
    [frames], [mask], [strength] = options["vace_frames"], options["vace_mask"], options["vace_strength"]
    assert strength == 0.7 and frames.shape == (1, 32, 2, 2, 2) and mask.shape == (1, 64, 2, 2, 2)
    video = torch.full((5, 16, 16, 3), 0.5)
    video[:3] = control
    m = masks[:, :, :, None]
    assert torch.allclose(frames[:, :16], vae.encode((video - 0.5) * (1 - m) + 0.5), atol=1e-5)
    assert torch.allclose(frames[:, 16:], vae.encode((video - 0.5) * m + 0.5), atol=1e-5)
    # latent frame 0 <- pixel frame 1, frame 1 <- pixel frame 3 (nearest-exact from 5 to 2)
    assert torch.allclose(mask[0, :, 0, 1, 1], torch.full((64,), 0.1)) and torch.allclose(mask[0, :, 1, 1, 1],
                                                                                       torch.full((64,), 0.3))
    assert mask[0, :, :, 0, 1].eq(1).all()  # the top-right block, every channel (its 64 pixels)
    # a second node appends its input; a reference image adds a latent frame in front
    ref = torch.rand(1, 16, 16, 3, generator=gen)
    pos2, _, latent2, trim2 = call(registry(), "WanVaceToVideo", positive=pos, negative=neg, vae=vae, width=16,
                                   height=16, length=5, batch_size=1, strength=1.0, reference_image=ref)
    options = pos2[0][1]
    assert trim2 == 1 and latent2["samples"].shape == (1, 16, 3, 2, 2)
    assert len(options["vace_frames"]) == 2 and options["vace_strength"] == [0.7, 1.0]
    second, second_mask = options["vace_frames"][1], options["vace_mask"][1]
    assert torch.allclose(second[:, :16, :1], vae.encode(ref), atol=1e-5)
    assert torch.allclose(WAN21.process_in(second[:, 16:, :1]), torch.zeros(1, 16, 1, 2, 2), atol=1e-5)
    assert second_mask[0, :, 0].eq(0).all() and second_mask[0, :, 1:].eq(1).all()
    trimmed = call(registry(), "TrimVideoLatent", samples=latent2, trim_amount=trim2)
    assert trimmed["samples"].shape == (1, 16, 2, 2, 2)


def test_wan_vace_sampling_matches_diffusers(tmp_path):
    """KSampler on a VACE model with WanVaceToVideo's conditioning: two Euler CFG steps of diffusers'
    WanVACETransformer3DModel fed the control latents in model space and the masks, at the strength."""
    from diffusers import WanVACETransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import wan_config, wan_state, write_wan

    cfg = wan_config(vace=True)
    model = load_diffusion_model(write_wan(tmp_path / "wan2.1_vace_1.3B_fp16.safetensors", seed=8, vace=True,
                                           dtype=torch.float32), device="cpu", dtype=torch.float32)
    theirs = WanVACETransformer3DModel(
        patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=16, out_channels=16, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim, ffn_dim=cfg.ffn_dim,
        num_layers=cfg.depth, vace_layers=[0, 2], vace_in_channels=96).eval()
    theirs.load_state_dict(convert_wan_transformer_to_diffusers(wan_state(seed=8, vace=True)), strict=True)
    gen = torch.Generator().manual_seed(9)
    context = [torch.randn(1, 512, 32, generator=gen) for _ in range(2)]
    cond, uncond = ([(c, {})] for c in context)
    control = torch.rand(5, 16, 16, 3, generator=gen)
    pos, neg, latent, _ = call(registry(), "WanVaceToVideo", positive=cond, negative=uncond, vae=wan_vae(),
                               width=16, height=16, length=5, batch_size=1, strength=0.6, control_video=control)
    ours = call(registry(), "KSampler", model=model, seed=3, steps=2, cfg=4.0, sampler_name="euler",
                scheduler="simple", positive=pos, negative=neg, denoise=1.0, latent_image=latent)["samples"]
    frames, mask = pos[0][1]["vace_frames"][0], pos[0][1]["vace_mask"][0]
    control_in = torch.cat([WAN21.process_in(frames[:, :16]), WAN21.process_in(frames[:, 16:]), mask], dim=1)
    sigma_mid = 8 * 0.5 / (1 + 7 * 0.5)
    x = initial_noise(torch.zeros(1, 16, 2, 2, 2), 3)
    for sigma, sigma_next in ((1.0, sigma_mid), (sigma_mid, 0.0)):
        with torch.no_grad():
            v_cond, v_uncond = (theirs(x, torch.tensor([sigma * 1000]), c, control_hidden_states=control_in,
                                       control_hidden_states_scale=torch.tensor([0.6, 0.6]), return_dict=False)[0]
                                for c in context)
        x = x + (v_uncond + 4.0 * (v_cond - v_uncond)) * (sigma_next - sigma)
    want = WAN21.process_out(x)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())


def test_wan_vace_ref2v_workflow_runs_and_matches_diffusers(tmp_folders):
    """workflows/wan_vace_ref2v.json (ComfyUI's Wan VACE 14B reference-to-video template, its bypassed
    first-frame group left out: UNETLoader (VACE), CLIPLoader wan, LoraLoader (CausVid, model 0.3),
    ModelSamplingSD3 shift 8, LoadImage reference, WanVaceToVideo, KSampler (cfg 1), TrimVideoLatent,
    VAEDecode, CreateVideo + SaveVideo) as saved but for its size, steps and sampler (euler): the
    latent, the reference frame first, equals two Euler steps of diffusers' WanVACETransformer3DModel
    on the file's weights with the LoRA merged by hand at 0.3 (cfg 1: the positive alone), fed the
    node's control latents and masks; TrimVideoLatent then drops the reference frame."""

    import numpy as np
    from diffusers import WanVACETransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
    from PIL import Image

    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import wan_config, wan_state, write_umt5, write_wan, write_wan_vae

    m = tmp_folders.models
    for sub in ("diffusion_models", "loras", "text_encoders", "vae"):
        (m / sub).mkdir(exist_ok=True)
    write_wan(m / "diffusion_models" / "wan2.1_vace_14B_fp16.safetensors", seed=8, vace=True, dtype=torch.float32)
    state = wan_state(seed=8, vace=True)
    deltas = comfy_lora(m / "loras" / "Wan21_CausVid_14B_T2V_lora_rank32.safetensors", state,
                        ["blocks.0.self_attn.q", "blocks.3.ffn.2", "vace_blocks.1.cross_attn.k"], seed=9)
    write_umt5(m / "text_encoders" / "umt5_xxl_fp16.safetensors", seed=1, dtype=torch.float32)
    write_wan_vae(m / "vae" / "wan_2.1_vae.safetensors", dtype=torch.float32)
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(
        tmp_folders.inputs / "video_wan_vace_14B_ref2v_reference_image.jpg")
    nodes, graph = example_graph("wan_vace_ref2v")
    graph["109"]["inputs"].update(width=16, height=16, length=5)
    graph["108"]["inputs"].update(steps=2, sampler_name="euler")
    result = run_graph(graph)
    assert result.values["109"][3] == 1 and result.values["119"][0].shape == (5, 16, 16, 3)
    assert len(list(tmp_folders.outputs.rglob("wan_vace_ref2v*.mp4"))) == 1

    cfg = wan_config(vace=True)
    theirs = WanVACETransformer3DModel(
        patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=16, out_channels=16, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim, ffn_dim=cfg.ffn_dim,
        num_layers=cfg.depth, vace_layers=[0, 2], vace_in_channels=96).eval()
    merged = {k: v + 0.3 * deltas[k] if k in deltas else v for k, v in state.items()}
    theirs.load_state_dict(convert_wan_transformer_to_diffusers(merged), strict=True)
    umt5, tokenizer = reference_umt5(m / "text_encoders" / "umt5_xxl_fp16.safetensors")
    cond = reference_text(umt5, tokenizer, nodes["105"]["inputs"]["text"])[0]
    positive = result.values["109"][0][0][1]
    frames, mask = positive["vace_frames"][0], positive["vace_mask"][0]
    assert frames.shape == (1, 32, 3, 2, 2)  # the reference frame, then the 2 latent frames of the video
    control_in = torch.cat([WAN21.process_in(frames[:, :16]), WAN21.process_in(frames[:, 16:]), mask], dim=1)
    sigma_mid = 8 * 0.5 / (1 + 7 * 0.5)
    x = initial_noise(torch.zeros(1, 16, 3, 2, 2), nodes["108"]["inputs"]["seed"])
    for sigma, sigma_next in ((1.0, sigma_mid), (sigma_mid, 0.0)):
        with torch.no_grad():
            v = theirs(x, torch.tensor([sigma * 1000]), cond, control_hidden_states=control_in,
                       control_hidden_states_scale=torch.tensor([1.0, 1.0]), return_dict=False)[0]
        x = x + v * (sigma_next - sigma)  # cfg 1: the positive alone
    ours = result.values["108"][0]["samples"]
    want = WAN21.process_out(x)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())
    assert torch.equal(result.values["118"][0]["samples"], ours[:, :, 1:])


# -- Phantom-Wan (WanPhantomSubjectToVideo) ---------------------------------------------------------

def test_wan_phantom_subject_to_video_node():
    """WanPhantomSubjectToVideo as ComfyUI's: each subject image (centre-cropped and scaled) through the
    VAE alone, one latent frame each, joined along time; positive and negative_text carry them,
    negative_img_text zeros in model space; the latent is the video's alone."""
    from graphflow.images import center_crop_to_aspect, resize_nchw
    from graphflow.models.latent_formats import WAN21

    cond = [(torch.randn(1, 512, 32), {"a": 1})]
    uncond = [(torch.randn(1, 512, 32), {"b": 2})]
    images = torch.rand(3, 24, 40, 3, generator=torch.Generator().manual_seed(4))
    vae = wan_vae()
    pos, neg_text, neg_img_text, latent = call(registry(), "WanPhantomSubjectToVideo", positive=cond, negative=uncond,
                                               vae=vae, width=32, height=16, length=9, batch_size=2, images=images)
    assert latent["samples"].shape == (2, 16, 3, 2, 4) and latent["samples"].abs().max() == 0
    fitted = resize_nchw(center_crop_to_aspect(images.movedim(-1, 1), 32, 16), 32, 16, "bilinear").movedim(1, -1)
    want = torch.cat([vae.encode(fitted[i:i + 1]) for i in range(3)], dim=2)
    assert want.shape == (1, 16, 3, 2, 4)
    # each image alone: not the 3 frames encoded as one video (which would give 1 latent frame)
    assert torch.allclose(pos[0][1]["time_dim_concat"], want, atol=1e-5)
    assert pos[0][1]["a"] == 1 and neg_text[0][1]["b"] == 2 and neg_img_text[0][1]["b"] == 2
    assert neg_text[0][0] is uncond[0][0] and neg_img_text[0][0] is uncond[0][0]
    assert torch.equal(neg_text[0][1]["time_dim_concat"], pos[0][1]["time_dim_concat"])
    blank = neg_img_text[0][1]["time_dim_concat"]
    assert blank.shape == want.shape and blank.abs().max() > 0  # raw latent of model-space zeros
    assert WAN21.process_in(blank).abs().max() < 1e-6
    # length caps the images: 2 frames keep the first 2 images
    pos2, *_ = call(registry(), "WanPhantomSubjectToVideo", positive=cond, negative=uncond, vae=vae, width=32,
                    height=16, length=2, batch_size=1, images=images)
    assert torch.allclose(pos2[0][1]["time_dim_concat"], want[:, :, :2], atol=1e-5)
    # no images: the conditionings pass through
    p, nt, nit, _ = call(registry(), "WanPhantomSubjectToVideo", positive=cond, negative=uncond, vae=vae, width=32,
                         height=16, length=9, batch_size=1)
    assert p == cond and nt == uncond and nit == uncond


def test_wan_time_dim_concat_is_frames_after_the_video():
    """time_dim_concat: the model's output on the video with the frames appended (positions after the
    video's), cut to the video's frames; the appended frames change the video's prediction."""
    cfg, ours, _, _ = transformer_pair(False)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 16, 3, 4, 6, generator=gen)
    extra = torch.randn(2, 16, 2, 4, 6, generator=gen)
    context = torch.randn(2, 7, cfg.text_dim, generator=gen)
    sigma = torch.tensor([0.7, 0.3])
    with torch.no_grad():
        got = ours(x, sigma, context, time_dim_concat=extra)
        whole = ours(torch.cat([x, extra], dim=2), sigma, context)
        plain = ours(x, sigma, context)
    assert got.shape == x.shape
    assert torch.allclose(got, whole[:, :, :3], atol=1e-5)
    assert (got - plain).abs().max() > 1e-3
    with pytest.raises(ValueError, match="time_dim_concat"):
        ours(x, sigma, context, time_dim_concat=extra[:, :, :, :2])


def test_wan_phantom_sampling_matches_diffusers(tmp_path):
    """KSampler with WanPhantomSubjectToVideo's positive and negative_img_text: two Euler CFG steps of
    diffusers' WanTransformer3DModel on the noisy video with the subject frames (model space) after
    it, its output cut to the video's frames."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import wan_config, wan_state, write_wan

    cfg = wan_config()
    model = load_diffusion_model(write_wan(tmp_path / "phantom_wan_1.3B_fp16.safetensors", seed=6,
                                           dtype=torch.float32), device="cpu", dtype=torch.float32)
    theirs = diffusers_transformer(cfg, wan_state(seed=6))
    gen = torch.Generator().manual_seed(2)
    context = [torch.randn(1, 512, 32, generator=gen) for _ in range(2)]
    cond, uncond = ([(c, {})] for c in context)
    images = torch.rand(2, 16, 16, 3, generator=gen)
    pos, _, neg, latent = call(registry(), "WanPhantomSubjectToVideo", positive=cond, negative=uncond,
                               vae=wan_vae(), width=16, height=16, length=5, batch_size=1, images=images)
    ours = call(registry(), "KSampler", model=model, seed=3, steps=2, cfg=4.0, sampler_name="euler",
                scheduler="simple", positive=pos, negative=neg, denoise=1.0, latent_image=latent)["samples"]
    assert ours.shape == (1, 16, 2, 2, 2)
    subjects = [WAN21.process_in(side[0][1]["time_dim_concat"]) for side in (pos, neg)]
    sigma_mid = 8 * 0.5 / (1 + 7 * 0.5)
    x = initial_noise(torch.zeros(1, 16, 2, 2, 2), 3)
    for sigma, sigma_next in ((1.0, sigma_mid), (sigma_mid, 0.0)):
        v_cond, v_uncond = (diffusers_velocity(theirs, torch.cat([x, s], dim=2), torch.tensor([sigma]), c)[:, :, :2]
                            for c, s in zip(context, subjects))
        x = x + (v_uncond + 4.0 * (v_cond - v_uncond)) * (sigma_next - sigma)
    want = WAN21.process_out(x)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())


def test_context_windows_keep_phantom_subject_frames_whole_in_time():
    """Context windows over frames give each window all the subject frames; over the batch, each
    window its rows."""
    from graphflow.sampling.context_windows import cut_cond
    from graphflow.sampling.guidance import Cond

    subjects = torch.randn(2, 16, 3, 4, 4)
    cond = Cond(context=torch.zeros(2, 5, 8), time_dim_concat=subjects)
    assert torch.equal(cut_cond(cond, 2, [1, 2, 3], (2, 16, 3, 4, 4)).time_dim_concat, subjects)
    assert torch.equal(cut_cond(cond, 0, [1], (2, 16, 3, 4, 4)).time_dim_concat, subjects[1:])


# -- Wan 2.2 Fun Control (Wan22FunControlToVideo) ---------------------------------------------------

def test_wan22_fun_control_to_video_node(tmp_path):
    """Wan22FunControlToVideo as ComfyUI's: the control video's latent then model-space zeros (the
    start-image slot) as the concat latent, a 4-channel all-ones mask inserted after the control
    latent (concat_mask_index), the reference image's latent appended to reference_latents; the
    Wan 2.2 VAE gives 48 channels at 1/16 the size."""
    from graphflow.images import center_crop_to_aspect, resize_nchw
    from graphflow.models.checkpoint import load_vae
    from graphflow.models.latent_formats import WAN21, WAN22
    from graphflow.sampling.pipeline import wan_concat
    from graphflow.testing import write_wan_vae

    cond = [(torch.randn(1, 512, 32), {"a": 1})]
    gen = torch.Generator().manual_seed(6)
    control = torch.rand(7, 24, 40, 3, generator=gen)
    ref = torch.rand(2, 40, 24, 3, generator=gen)
    vae = wan_vae()

    def fit(images):
        return resize_nchw(center_crop_to_aspect(images.movedim(-1, 1), 32, 16), 32, 16, "bilinear").movedim(1, -1)

    pos, neg, latent = call(registry(), "Wan22FunControlToVideo", positive=cond, negative=cond, vae=vae, width=32,
                            height=16, length=9, batch_size=2, ref_image=ref, control_video=control)
    assert latent["samples"].shape == (2, 16, 3, 2, 4) and latent["samples"].abs().max() == 0
    encoded = vae.encode(fit(control))  # 7 frames: 2 latent frames, the third left at model-space zero
    assert encoded.shape[2] == 2
    for side in (pos, neg):
        options = side[0][1]
        concat = options["concat_latent_image"]
        assert concat.shape == (2, 32, 3, 2, 4)
        assert torch.allclose(concat[:, :16, :2], encoded.expand(2, -1, -1, -1, -1), atol=1e-5)
        assert WAN21.process_in(concat[:, :16, 2:]).abs().max() < 1e-6
        assert WAN21.process_in(concat[:, 16:]).abs().max() < 1e-6
        assert options["concat_mask"].shape == (1, 4, 3, 2, 4) and options["concat_mask"].eq(1).all()
        assert options["concat_mask_index"] == 16 and options["a"] == 1
        (reference,) = options["reference_latents"]
        assert torch.allclose(reference, vae.encode(fit(ref[:1])), atol=1e-5)
    # the model's 36 extra channels: control latent, 1 - mask (0), start-image slot, in model space
    extra = wan_concat(pos[0][1], None, WAN21, (2, 16, 3, 2, 4), 36, "cpu")
    assert extra.shape == (2, 36, 3, 2, 4)
    assert torch.allclose(extra[:, :16], WAN21.process_in(pos[0][1]["concat_latent_image"][:, :16]), atol=1e-6)
    assert extra[:, 16:].abs().max() < 1e-5
    # nothing given: no reference, the control slot zero in model space
    pos2, _, _ = call(registry(), "Wan22FunControlToVideo", positive=cond, negative=cond, vae=vae, width=32,
                      height=16, length=9, batch_size=1)
    assert "reference_latents" not in pos2[0][1]
    assert wan_concat(pos2[0][1], None, WAN21, (1, 16, 3, 2, 4), 36, "cpu").abs().max() < 1e-5
    # the 5B: the Wan 2.2 VAE's 48 channels, 16x smaller
    vae22 = load_vae(write_wan_vae(tmp_path / "wan2.2_vae.safetensors", wan22=True, dtype=torch.float32),
                     device="cpu", dtype=torch.float32)
    pos3, _, latent3 = call(registry(), "Wan22FunControlToVideo", positive=cond, negative=cond, vae=vae22, width=32,
                            height=32, length=5, batch_size=1, control_video=control[:5])
    assert latent3["samples"].shape == (1, 48, 2, 2, 2)
    concat3 = pos3[0][1]["concat_latent_image"]
    assert concat3.shape == (1, 96, 2, 2, 2) and pos3[0][1]["concat_mask_index"] == 48
    control22 = resize_nchw(center_crop_to_aspect(control[:5].movedim(-1, 1), 32, 32), 32, 32,
                            "bilinear").movedim(1, -1)
    assert torch.allclose(concat3[:, :48], vae22.encode(control22), atol=1e-5)
    assert WAN22.process_in(concat3[:, 48:]).abs().max() < 1e-5


def test_wan_ref_conv_tokens_are_a_frame_before_the_video():
    """A reference latent through ref_conv: its tokens before the video's, at the first frame's
    positions, cut from the output. With ref_conv = the patch embedding's kernel, that is the model
    on the reference as an extra first frame, that frame cut; the config is read from the file."""
    from graphflow.models.configs import wan_config_from_state_dict
    from graphflow.models.wan import Wan
    from graphflow.testing import wan_config, wan_state

    state = wan_state(seed=4, ref_in_channels=16)
    cfg = wan_config_from_state_dict({k: tuple(v.shape) for k, v in state.items()})
    assert cfg == wan_config(ref_in_channels=16) and state["ref_conv.weight"].shape == (256, 16, 2, 2)
    ours = Wan(cfg).eval()
    state["ref_conv.weight"] = state["patch_embedding.weight"][:, :, 0].clone()
    state["ref_conv.bias"] = state["patch_embedding.bias"].clone()
    ours.load_state_dict(state)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 16, 3, 4, 6, generator=gen)
    ref = torch.randn(2, 16, 4, 6, generator=gen)
    context = torch.randn(2, 7, cfg.text_dim, generator=gen)
    sigma = torch.tensor([0.8, 0.4])
    with torch.no_grad():
        got = ours(x, sigma, context, reference_latents=[torch.randn(2, 16, 4, 6), ref])  # the last one counts
        want = ours(torch.cat([ref[:, :, None], x], dim=2), sigma, context)[:, :, 1:]
        plain = ours(x, sigma, context)
    assert got.shape == x.shape
    assert torch.allclose(got, want, atol=1e-5)
    assert (got - plain).abs().max() > 1e-3


def test_wan22_fun_control_sampling(tmp_path):
    """KSampler on a Fun Control model with ref_conv (16 + 36 channels in) with Wan22FunControlToVideo's
    conditioning: two Euler CFG steps of the network fed [x, control latent, 0 x4 (1 - mask), start
    slot zeros] in model space and the reference latent's first frame in model space."""
    from graphflow.models.checkpoint import load_diffusion_model
    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.noise import initial_noise
    from graphflow.testing import write_wan

    model = load_diffusion_model(write_wan(tmp_path / "wan2.2_fun_control_14B.safetensors", seed=9, in_channels=52,
                                           ref_in_channels=16, dtype=torch.float32), device="cpu",
                                 dtype=torch.float32)
    net = model.unet
    assert net.config.ref_in_channels == 16 and net.config.in_channels == 52
    gen = torch.Generator().manual_seed(1)
    context = [torch.randn(1, 512, 32, generator=gen) for _ in range(2)]
    cond, uncond = ([(c, {})] for c in context)
    control = torch.rand(5, 16, 16, 3, generator=gen)
    ref = torch.rand(1, 16, 16, 3, generator=gen)
    pos, neg, latent = call(registry(), "Wan22FunControlToVideo", positive=cond, negative=uncond, vae=wan_vae(),
                            width=16, height=16, length=5, batch_size=1, ref_image=ref, control_video=control)
    ours = call(registry(), "KSampler", model=model, seed=3, steps=2, cfg=4.0, sampler_name="euler",
                scheduler="simple", positive=pos, negative=neg, denoise=1.0, latent_image=latent)["samples"]
    options = pos[0][1]
    control_in = WAN21.process_in(options["concat_latent_image"][:, :16])
    y = torch.cat([control_in, torch.zeros(1, 4, 2, 2, 2), WAN21.process_in(options["concat_latent_image"][:, 16:])],
                  dim=1)
    reference = WAN21.process_in(options["reference_latents"][0])[:, :, 0]
    sigma_mid = 8 * 0.5 / (1 + 7 * 0.5)
    x = initial_noise(torch.zeros(1, 16, 2, 2, 2), 3)
    for sigma, sigma_next in ((1.0, sigma_mid), (sigma_mid, 0.0)):
        with torch.no_grad():
            v_cond, v_uncond = (net(torch.cat([x, y], dim=1), torch.tensor([sigma]), c, reference_latents=[reference])
                                for c in context)
        x = x + (v_uncond + 4.0 * (v_cond - v_uncond)) * (sigma_next - sigma)
    want = WAN21.process_out(x)
    assert float((ours - want).abs().max()) < 1e-4 * float(want.abs().max())
    # the reference counts
    with torch.no_grad():
        assert (net(torch.cat([x, y], dim=1), torch.tensor([0.5]), context[0], reference_latents=[reference])
                - net(torch.cat([x, y], dim=1), torch.tensor([0.5]), context[0])).abs().max() > 1e-3


# -- ATI trajectories (WanTrackToVideo) -------------------------------------------------------------

def test_wan_track_to_video_node():
    """WanTrackToVideo as ComfyUI's on one track, worked by hand: the track starts on latent pixel
    (row 2, column 1), whose first-frame features (model space) then spread to the next latent frame
    around the track's later position with weight exp(-temperature d^2) (d on ComfyUI's grid, the
    image spanning [-1, 1] on its short edge), the latent kept by 1 - weight; the mask is that
    weight (1 on the first frame); the I2V model's extra channels are the mask x4 and the features."""
    from graphflow.api import NodeInputError
    from graphflow.images import center_crop_to_aspect, resize_nchw
    from graphflow.models.latent_formats import WAN21
    from graphflow.sampling.pipeline import wan_concat

    cond = [(torch.randn(1, 512, 32), {"a": 1})]
    start = torch.rand(1, 40, 40, 3, generator=torch.Generator().manual_seed(8))
    vae = wan_vae()
    track = [{"x": 12, "y": 20}] + [{"x": 28, "y": 4}] * 120
    tracks = json.dumps(track).replace('"', "'")  # ComfyUI reads single quotes too
    pos, neg, latent = call(registry(), "WanTrackToVideo", positive=cond, negative=cond, vae=vae, tracks=tracks,
                            width=32, height=32, length=5, batch_size=1, temperature=3.0, topk=2, start_image=start)
    assert latent["samples"].shape == (1, 16, 2, 4, 4) and latent["samples"].abs().max() == 0
    video = torch.full((5, 32, 32, 3), 0.5)
    video[0] = resize_nchw(center_crop_to_aspect(start.movedim(-1, 1), 32, 32), 32, 32, "bilinear").movedim(1, -1)[0]
    y = WAN21.process_in(vae.encode(video))[0]  # [16, 2, 4, 4]
    grid = torch.linspace(-1, 1, 4)  # ComfyUI's: the grid spans [-1, 1], not the pixel centres
    weight = torch.exp(-3.0 * ((grid.view(1, 4) - 0.75) ** 2 + (grid.view(4, 1) + 0.75) ** 2))  # [rows, cols]
    point = y[:, 0, 2, 1]
    features = torch.stack([y[:, 0], point[:, None, None] * weight + y[:, 1] * (1 - weight)], dim=1)
    for side in (pos, neg):
        options = side[0][1]
        assert options["a"] == 1
        assert torch.allclose(WAN21.process_in(options["concat_latent_image"])[0], features, atol=1e-5)
        assert options["concat_mask"].shape == (1, 4, 2, 4, 4)
        assert torch.allclose(options["concat_mask"][0, :, 0], torch.zeros(4, 4, 4), atol=1e-6)
        assert torch.allclose(options["concat_mask"][0, :, 1], (1 - weight).expand(4, -1, -1), atol=1e-6)
    extra = wan_concat(pos[0][1], None, WAN21, (1, 16, 2, 4, 4), 20, "cpu")
    assert torch.allclose(extra[0, :4, 1], weight.expand(4, -1, -1), atol=1e-6) and extra[0, :4, 0].eq(1).all()
    assert torch.allclose(extra[0, 4:], features, atol=1e-5)
    # no tracks: WanImageToVideo's conditioning
    got = call(registry(), "WanTrackToVideo", positive=cond, negative=cond, vae=vae, tracks="[]", width=32,
               height=32, length=5, batch_size=1, temperature=3.0, topk=2, start_image=start)
    want = call(registry(), "WanImageToVideo", positive=cond, negative=cond, vae=vae, width=32, height=32, length=5,
                batch_size=1, start_image=start)
    assert torch.equal(got[0][0][1]["concat_latent_image"], want[0][0][1]["concat_latent_image"])
    assert torch.equal(got[0][0][1]["concat_mask"], want[0][0][1]["concat_mask"])
    with pytest.raises(NodeInputError, match="4n \\+ 1"):
        call(registry(), "WanTrackToVideo", positive=cond, negative=cond, vae=vae, tracks=tracks, width=32, height=32,
             length=6, batch_size=1, temperature=3.0, topk=2, start_image=start)


def test_track_tensor_resamples_121_points_to_the_frames():
    """ATI's 121 points at 24 fps: the first kept, the other 120 resampled to the video's frames
    (80 frames: every 1.5 points); x, y around the centre in short-edge halves; padding invisible."""
    from nodes.wan import track_tensor

    track = [{"x": float(t), "y": 10.0} for t in range(100)]  # 100 points, the rest padding
    out = track_tensor([track], 64, 32, 80)
    assert out.shape == (81, 1, 4)
    assert torch.allclose(out[:, 0, 0], torch.cat([torch.tensor([-1.0]),
                                                    torch.linspace(-1, 1, 121)[1:].repeat_interleave(2)[1::3]]))
    kept = torch.cat([torch.tensor([0]), torch.arange(1, 121).repeat_interleave(2)[1::3]])
    x = torch.where(kept < 100, kept.float(), torch.zeros(()))
    assert torch.allclose(out[:, 0, 1], (x - 32) / 32 * 2)
    assert torch.allclose(out[:, 0, 2], torch.where(kept < 100, torch.tensor(-6 / 32 * 2), torch.tensor(-1.0)))
    assert torch.equal(out[:, 0, 3], torch.where(kept < 100, torch.tensor(1.0), torch.tensor(-1.0)))
