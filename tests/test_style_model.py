"""FLUX Redux: the style model against diffusers' ReduxImageEncoder on the same weights, the
StyleModelApply token arithmetic, refusals, and a ComfyUI Redux graph on a tiny FLUX; SD1.x's
T2I-Adapter style model against transformers' CLIPEncoder on the same weights."""

import json

import pytest
import torch
from diffusers.pipelines.flux.modeling_flux import ReduxImageEncoder as DiffusersRedux
from safetensors.torch import load_file

from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.models.clip_vision import ClipVisionOutput
from graphflow.models.redux import load_style_model
from graphflow.models.weight_files import CheckpointError
from graphflow.testing import (T5_TINY_WIDTH, write_clip_vision, write_flow_checkpoint, write_redux, write_text_encoder,
                               write_vae)
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call


def test_redux_matches_diffusers(tmp_path):
    path = write_redux(tmp_path / "redux.safetensors", dtype=torch.float32)
    ours = load_style_model(path, device="cpu", dtype=torch.float32)
    theirs = DiffusersRedux(redux_dim=64, txt_in_features=T5_TINY_WIDTH)
    theirs.load_state_dict(load_file(str(path)), strict=True)
    tokens = torch.randn(2, 16, 64, generator=torch.Generator().manual_seed(0))
    out = ours.tokens(ClipVisionOutput(tokens, tokens, tokens))
    with torch.no_grad():
        ref = theirs(tokens).image_embeds
    assert out.shape == (2, 16, T5_TINY_WIDTH) and ref.abs().mean() > 0.01
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


@pytest.fixture
def models(tmp_folders):
    m = tmp_folders.models
    for sub in ("clip_vision", "style_models", "diffusion_models", "text_encoders"):
        (m / sub).mkdir(parents=True)
    write_clip_vision(m / "clip_vision" / "sigclip_tiny.safetensors", "siglip", dtype=torch.float32)
    write_redux(m / "style_models" / "redux_tiny.safetensors", dtype=torch.float32)
    return m


def test_apply_concatenates_scaled_tokens(builtin_registry, models):
    vision = call(builtin_registry, "LoadCLIPVision", clip_name="sigclip_tiny.safetensors")
    style = call(builtin_registry, "LoadStyleModel", style_model_name="redux_tiny.safetensors")
    images = torch.rand(2, 80, 60, 3, generator=torch.Generator().manual_seed(1))
    output = call(builtin_registry, "CLIPVisionEncode", clip_vision=vision, image=images, crop="center")
    assert output.last_hidden_state.shape == (2, 16, 64)  # SigLIP: 4x4 patches, no class token
    expected = style.tokens(output).reshape(1, 32, T5_TINY_WIDTH)  # both images' tokens in one sequence
    text = torch.randn(1, 10, T5_TINY_WIDTH)
    conditioning = [(text, {"pooled_output": torch.ones(1, 64), "guidance": 3.5})]

    def apply(strength, strength_type="multiply"):
        return call(builtin_registry, "ApplyStyleModel", conditioning=conditioning, style_model=style,
                    clip_vision_output=output, strength=strength, strength_type=strength_type)

    [(cond, options)] = apply(0.5)
    assert cond.shape == (1, 42, T5_TINY_WIDTH)
    assert torch.equal(cond[:, :10], text) and options["guidance"] == 3.5 and "attention_mask" not in options
    torch.testing.assert_close(cond[:, 10:], 0.5 * expected)
    [(unscaled, options)] = apply(1.0, "attn_bias")  # strength 1: no bias, the tokens as they are
    torch.testing.assert_close(unscaled[:, 10:], expected)
    assert "attention_mask" not in options
    # ComfyUI's bias: [text 10, style 32, reference image 1 x 1]; log(strength) from text and image to style
    [(biased, options)] = apply(0.5, "attn_bias")
    torch.testing.assert_close(biased[:, 10:], expected)
    mask = options["attention_mask"].float()
    assert mask.shape == (1, 43, 43) and options["attention_mask_img_shape"] == (1, 1)
    log_half = torch.log(torch.tensor(0.5)).half().float()
    expected_mask = torch.zeros(1, 43, 43)
    expected_mask[:, :10, 10:42] = log_half
    expected_mask[:, 42:, 10:42] = log_half
    assert torch.equal(mask, expected_mask)
    # applied again, the existing bias is kept in its quadrants
    twice = call(builtin_registry, "ApplyStyleModel", conditioning=[(biased, options)], style_model=style,
                 clip_vision_output=output, strength=1.0, strength_type="multiply")
    mask2 = twice[0][1]["attention_mask"].float()
    assert mask2.shape == (1, 75, 75)
    assert torch.equal(mask2[:, :42, :42], mask[:, :42, :42]) and torch.equal(mask2[:, 74:, :42], mask[:, 42:, :42])
    assert torch.equal(mask2[:, :, 42:74], torch.zeros(1, 75, 32))  # log(1): no bias to the second image's tokens
    with pytest.raises(NodeInputError, match="Redux: FLUX's T5 tokens") as info:
        call(builtin_registry, "ApplyStyleModel", conditioning=[(torch.zeros(1, 77, 768), {})], style_model=style,
             clip_vision_output=output, strength=1.0, strength_type="multiply")
    assert info.value.input == "conditioning"


def test_loaders_refuse_wrong_files(builtin_registry, models):
    write_vae(models / "style_models" / "a_vae.safetensors")
    write_vae(models / "clip_vision" / "a_vae.safetensors")
    with pytest.raises(NodeInputError, match=r"a_vae.safetensors is not a style model .FLUX Redux or T2I-Adapter style.*redux_up") as info:
        call(builtin_registry, "LoadStyleModel", style_model_name="a_vae.safetensors")
    assert info.value.input == "style_model_name"
    with pytest.raises(NodeInputError, match=r"a_vae.safetensors is not a CLIP vision model") as info:
        call(builtin_registry, "LoadCLIPVision", clip_name="a_vae.safetensors")
    assert info.value.input == "clip_name"
    cut = models / "style_models" / "cut.safetensors"
    cut.write_bytes((models / "style_models" / "redux_tiny.safetensors").read_bytes()[:3000])
    with pytest.raises(CheckpointError, match="cut.safetensors is not a readable safetensors file"):
        load_style_model(cut)


def test_redux_graph_on_flux(builtin_registry, models):
    """A ComfyUI Redux graph (CLIPVisionLoader, CLIPVisionEncode, StyleModelLoader, StyleModelApply)
    imports and samples a tiny FLUX; the image's tokens change the result."""
    write_flow_checkpoint(models / "diffusion_models" / "flux.safetensors", "flux_dev", dtype=torch.float32,
                          components=("model",), prefixed=False, seed=4)
    write_text_encoder(models / "text_encoders" / "t5xxl.safetensors", "t5xxl", seed=1, dtype=torch.float32)
    write_text_encoder(models / "text_encoders" / "clip_l.safetensors", "clip_l", seed=2, dtype=torch.float32)
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux.safetensors", "weight_dtype": "default"}},
        "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors",
                                                          "clip_name2": "t5xxl.safetensors", "type": "flux"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["2", 0]}},
        "4": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "sigclip_tiny.safetensors"}},
        "5": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0x30a0ff}},
        "6": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["4", 0], "image": ["5", 0], "crop": "center"}},
        "7": {"class_type": "StyleModelLoader", "inputs": {"style_model_name": "redux_tiny.safetensors"}},
        "8": {"class_type": "StyleModelApply", "inputs": {"conditioning": ["3", 0], "style_model": ["7", 0],
                                                          "clip_vision_output": ["6", 0], "strength": 1.0,
                                                          "strength_type": "multiply"}},
        "9": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "10": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["8", 0], "negative": ["3", 0],
                                                     "latent_image": ["9", 0], "seed": 3, "steps": 2, "cfg": 1.0,
                                                     "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
    }

    def run(graph):
        result = Executor(builtin_registry).run(parse_workflow(json.loads(json.dumps(graph)), builtin_registry),
                                                outputs=["10"])
        assert result.ok, result.error or result.problems
        return result.values["10"][0]["samples"]

    styled = run(graph)
    graph["8"]["inputs"].update(strength=0.3, strength_type="attn_bias")
    biased = run(graph)
    graph["8"]["inputs"].update(strength=0.0)  # bias -inf: nothing attends to the style tokens
    ignored = run(graph)
    graph["10"]["inputs"]["positive"] = ["3", 0]
    plain = run(graph)
    assert styled.shape == plain.shape == (1, 16, 4, 4)
    assert (styled - plain).abs().max() > 1e-4
    assert (biased - plain).abs().max() > 1e-4 and (biased - styled).abs().max() > 1e-4
    torch.testing.assert_close(ignored, plain, atol=1e-5, rtol=0)


def test_attention_bias_upscaled_to_the_token_grid():
    """ComfyUI's upscale_dit_mask: a bias over text + a 1 x 1 reference grid becomes one over text +
    FLUX's image tokens (latent 6 x 4 -> 3 x 2 tokens), the reference's values spread to every token."""
    from graphflow.sampling.flow_sampling import attention_bias

    mask = torch.arange(9.0).reshape(1, 3, 3)  # 2 text tokens + 1 reference token
    out = attention_bias(None, {"attention_mask": mask}, (6, 4))
    assert out.shape == (1, 8, 8)
    assert torch.equal(out[:, :2, :2], mask[:, :2, :2])
    assert torch.equal(out[:, :2, 2:], mask[:, :2, 2:].expand(1, 2, 6))
    assert torch.equal(out[:, 2:, :2], mask[:, 2:, :2].expand(1, 6, 2))
    assert torch.equal(out[:, 2:, 2:], torch.full((1, 6, 6), 8.0))
    same = attention_bias(None, {"attention_mask": out, "attention_mask_img_shape": (3, 2)}, (6, 4))
    assert same is out or torch.equal(same, out)


def _t2i_style_state(width=64, txt=32, layers=2, tokens=8, seed=0) -> dict:
    """A tiny T2I-Adapter style model in the released file's layout (OpenAI blocks, fused q/k/v)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    state = {"style_embedding": r(1, tokens, width, scale=1.0), "ln_pre.weight": 1 + r(width), "ln_pre.bias": r(width),
             "ln_post.weight": 1 + r(width), "ln_post.bias": r(width), "proj": r(width, txt)}
    for i in range(layers):
        p = f"transformer_layes.{i}."
        state.update({p + "attn.in_proj_weight": r(3 * width, width), p + "attn.in_proj_bias": r(3 * width),
                      p + "attn.out_proj.weight": r(width, width), p + "attn.out_proj.bias": r(width),
                      p + "ln_1.weight": 1 + r(width), p + "ln_1.bias": r(width),
                      p + "mlp.c_fc.weight": r(4 * width, width), p + "mlp.c_fc.bias": r(4 * width),
                      p + "mlp.c_proj.weight": r(width, 4 * width), p + "mlp.c_proj.bias": r(width),
                      p + "ln_2.weight": 1 + r(width), p + "ln_2.bias": r(width)})
    return state


def test_t2i_adapter_style_model_as_comfyui(builtin_registry, models):
    """SD1.x's T2I-Adapter style model (ComfyUI's StyleModelLoader reads it too): the image tokens and
    8 learned tokens through ln_pre, the CLIP blocks (transformers' CLIPEncoder on the same weights,
    8 heads, quick_gelu), ln_post on the last 8, @ proj; StyleModelApply appends every image's 8."""
    import torch.nn.functional as F
    from transformers import CLIPVisionConfig
    from transformers.models.clip.modeling_clip import CLIPEncoder

    from graphflow.models.file_kind import identify

    width, txt = 64, 32
    state = _t2i_style_state(width, txt)
    torch.save(state, models / "style_models" / "t2i_style_tiny.pth")
    assert identify({k: tuple(v.shape) for k, v in state.items()}).folder == "style_models"
    style = call(builtin_registry, "LoadStyleModel", style_model_name="t2i_style_tiny.pth")

    encoder = CLIPEncoder(CLIPVisionConfig(hidden_size=width, num_attention_heads=8, intermediate_size=4 * width,
                                           num_hidden_layers=2, hidden_act="quick_gelu")).eval()
    theirs = {}
    for i in range(2):
        p, q = f"transformer_layes.{i}.", f"layers.{i}."
        for j, name in enumerate("qkv"):
            theirs[q + f"self_attn.{name}_proj.weight"] = state[p + "attn.in_proj_weight"][j * width:(j + 1) * width]
            theirs[q + f"self_attn.{name}_proj.bias"] = state[p + "attn.in_proj_bias"][j * width:(j + 1) * width]
        for mine, their in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                            ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
            for param in ("weight", "bias"):
                theirs[f"{q}{their}.{param}"] = state[f"{p}{mine}.{param}"]
    encoder.load_state_dict(theirs)

    hidden = torch.randn(2, 5, width, generator=torch.Generator().manual_seed(3))
    output = ClipVisionOutput(hidden, hidden[:, 0], hidden)
    with torch.no_grad():
        x = torch.cat([hidden, state["style_embedding"].expand(2, -1, -1)], 1)
        x = F.layer_norm(x, (width,), state["ln_pre.weight"], state["ln_pre.bias"])
        x = encoder(inputs_embeds=x).last_hidden_state[:, -8:]
        ref = F.layer_norm(x, (width,), state["ln_post.weight"], state["ln_post.bias"]) @ state["proj"]
    torch.testing.assert_close(style.tokens(output), ref, atol=1e-5, rtol=1e-5)
    assert ref.abs().mean() > 0.05

    text = torch.randn(1, 77, txt)
    [(cond, options)] = call(builtin_registry, "ApplyStyleModel", conditioning=[(text, {})], style_model=style,
                             clip_vision_output=output, strength=0.5, strength_type="multiply")
    assert cond.shape == (1, 77 + 16, txt) and "attention_mask" not in options
    torch.testing.assert_close(cond, torch.cat([text, 0.5 * ref.reshape(1, 16, txt)], 1), atol=1e-5, rtol=1e-5)
