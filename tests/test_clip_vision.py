"""CLIP vision (and SigLIP) against transformers on identical random weights; ComfyUI's preprocessing
against a hand computation; the file layouts (transformers', OpenCLIP's) loading to the same model."""

import re

import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig as HFCLIPVisionConfig
from transformers import CLIPVisionModelWithProjection, SiglipVisionConfig, SiglipVisionModel

from graphflow.models.clip_vision import (CLIP_MEAN, CLIP_STD, CLIPVisionModel, ClipVision, load_clip_vision,
                                          preprocess)
from graphflow.models.weight_files import CheckpointError
from graphflow.testing import clip_vision_config, write_clip_vision, write_vae


def _hf(kind: str):
    cfg = clip_vision_config(kind)
    common = dict(hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                  num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, image_size=cfg.image_size,
                  patch_size=cfg.patch_size, hidden_act=cfg.hidden_act, layer_norm_eps=cfg.layer_norm_eps)
    torch.manual_seed(0)
    if kind == "siglip":
        model = SiglipVisionModel(SiglipVisionConfig(**common))
    else:
        model = CLIPVisionModelWithProjection(HFCLIPVisionConfig(projection_dim=cfg.projection_dim, **common))
    with torch.no_grad():  # layer norms and biases away from their 1/0 init, so every weight matters
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return cfg, model.eval()


def _ours(cfg, hf_model) -> CLIPVisionModel:
    ours = CLIPVisionModel(cfg)
    # SigLIP files name the tower vision_model.* (transformers 5's SiglipVisionModel leaves the level out)
    state = {k if k.startswith(("vision_model.", "visual_projection.")) else "vision_model." + k: v
             for k, v in hf_model.state_dict().items()}
    state = {k: v for k, v in state.items() if not k.endswith("position_ids") and not k.startswith("vision_model.head.")}
    ours.load_state_dict(state, strict=True)
    return ours.eval()


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_matches_transformers(kind):
    cfg, theirs = _hf(kind)
    ours = _ours(cfg, theirs)
    pixels = torch.randn(2, 3, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = theirs(pixel_values=pixels, output_hidden_states=True)
        out = ours(pixels)
    torch.testing.assert_close(out.last_hidden_state, ref.last_hidden_state, atol=1e-4, rtol=0)
    torch.testing.assert_close(out.penultimate_hidden_states, ref.hidden_states[-2], atol=1e-4, rtol=0)
    if kind == "clip":
        assert out.image_embeds.shape == (2, cfg.projection_dim)
        torch.testing.assert_close(out.image_embeds, ref.image_embeds, atol=1e-4, rtol=0)
        assert out.last_hidden_state.shape[1] == 1 + (cfg.image_size // cfg.patch_size) ** 2
        assert out.all_hidden_states is None  # ComfyUI keeps every block's output for SigLIP only
    else:
        assert out.last_hidden_state.shape[1] == (cfg.image_size // cfg.patch_size) ** 2  # no class token
        # every block's output (transformers' hidden_states[0] is the embeddings')
        torch.testing.assert_close(out.all_hidden_states, torch.stack(ref.hidden_states[1:], dim=1), atol=1e-4, rtol=0)
    assert ref.hidden_states[-2].abs().mean() > 0.1  # a live network


def _hand_preprocess(image, size, crop):
    """ComfyUI's clip_preprocess written out: BHWC -> BCHW, shorter side to `size` (or both sides
    when not cropping), bicubic antialiased, centre crop, 8-bit rounding, CLIP mean/std."""
    x = image.permute(0, 3, 1, 2)
    h, w = x.shape[2:]
    if crop:
        s = size / min(h, w)
        x = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bicubic", antialias=True)
    else:
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True)
    top, left = (x.shape[2] - size) // 2, (x.shape[3] - size) // 2
    x = x[:, :, top:top + size, left:left + size]
    x = torch.clamp(torch.round(x * 255), 0, 255) / 255
    out = torch.empty_like(x)
    for c in range(3):
        out[:, c] = (x[:, c] - CLIP_MEAN[c]) / CLIP_STD[c]
    return out


@pytest.mark.parametrize("crop", [True, False])
def test_preprocessing_as_comfyui(crop):
    image = torch.rand(2, 300, 260, 3, generator=torch.Generator().manual_seed(3))
    out = preprocess(image, 224, CLIP_MEAN, CLIP_STD, crop)
    assert out.shape == (2, 3, 224, 224)
    torch.testing.assert_close(out, _hand_preprocess(image, 224, crop), atol=1e-6, rtol=0)
    # the crop keeps the middle rows (300 -> 258 scaled, 17 cut at the top); squashing keeps them all
    assert not torch.allclose(preprocess(image, 224, CLIP_MEAN, CLIP_STD, True),
                              preprocess(image, 224, CLIP_MEAN, CLIP_STD, False))
    same = torch.rand(1, 224, 224, 3)
    torch.testing.assert_close(preprocess(same, 224, CLIP_MEAN, CLIP_STD, crop), _hand_preprocess(same, 224, crop))


@pytest.mark.parametrize("kind,layout", [("clip", "transformers"), ("clip", "openclip"), ("siglip", "transformers")])
def test_files_load_with_their_detected_config(tmp_path, kind, layout):
    path = write_clip_vision(tmp_path / "cv.safetensors", kind, dtype=torch.float32, layout=layout)
    vision = load_clip_vision(path, device="cpu", dtype=torch.float32)
    assert vision.config == clip_vision_config(kind)
    image = torch.rand(2, 70, 90, 3, generator=torch.Generator().manual_seed(4))
    out = vision.encode_image(image, crop=True)
    tokens = (56 // 14) ** 2 + (kind == "clip")
    assert out.last_hidden_state.shape == (2, tokens, 64)
    assert out.penultimate_hidden_states.shape == (2, tokens, 64)
    assert out.image_embeds.shape == ((2, 32) if kind == "clip" else (2, tokens, 64))
    assert out["image_embeds"] is out.image_embeds
    assert not torch.allclose(out.image_embeds[0], out.image_embeds[1])


def test_openclip_layout_is_the_same_model(tmp_path):
    """OpenCLIP's fused q/k/v and [width, dim] projection map onto transformers' names: computed by
    hand from the OpenCLIP tensors, the transformers-layout model gives the same embedding."""
    from safetensors.torch import load_file, save_file

    path = write_clip_vision(tmp_path / "open.safetensors", "clip", dtype=torch.float32, layout="openclip")
    sd = load_file(str(path))
    hf = {"vision_model.embeddings.class_embedding": sd["class_embedding"],
          "vision_model.embeddings.patch_embedding.weight": sd["conv1.weight"],
          "vision_model.embeddings.position_embedding.weight": sd["positional_embedding"],
          "vision_model.pre_layrnorm.weight": sd["ln_pre.weight"], "vision_model.pre_layrnorm.bias": sd["ln_pre.bias"],
          "vision_model.post_layernorm.weight": sd["ln_post.weight"],
          "vision_model.post_layernorm.bias": sd["ln_post.bias"], "visual_projection.weight": sd["proj"].T.contiguous()}
    for i in range(3):
        o, t = f"transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
        for j, name in enumerate("qkv"):
            hf[t + f"self_attn.{name}_proj.weight"] = sd[o + "attn.in_proj_weight"].chunk(3)[j].contiguous()
            hf[t + f"self_attn.{name}_proj.bias"] = sd[o + "attn.in_proj_bias"].chunk(3)[j].contiguous()
        for a, b in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                     ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
            hf[t + b + ".weight"], hf[t + b + ".bias"] = sd[o + a + ".weight"], sd[o + a + ".bias"]
    save_file(hf, str(tmp_path / "hf.safetensors"))
    image = torch.rand(1, 56, 56, 3)
    a = load_clip_vision(path, device="cpu", dtype=torch.float32).encode_image(image)
    b = load_clip_vision(tmp_path / "hf.safetensors", device="cpu", dtype=torch.float32).encode_image(image)
    torch.testing.assert_close(a.image_embeds, b.image_embeds)


def test_wrong_file_is_refused_with_its_name(tmp_path):
    path = write_vae(tmp_path / "a_vae.safetensors")
    with pytest.raises(CheckpointError, match=r"a_vae.safetensors is not a CLIP vision model.*encoder"):
        load_clip_vision(path)


def test_bad_image_is_refused(tmp_path):
    vision = load_clip_vision(write_clip_vision(tmp_path / "cv.safetensors"), device="cpu", dtype=torch.float32)
    assert isinstance(vision, ClipVision)
    with pytest.raises(ValueError, match="IMAGE"):
        vision.encode_image(torch.rand(56, 56, 3))


def test_inspect_recognises_clip_vision_redux_and_unclip_files(tmp_path, capsys):
    from graphflow import cli
    from graphflow.testing import write_redux, write_unclip_checkpoint

    files = {"clip": write_clip_vision(tmp_path / "clip_vision_h.safetensors"),
             "siglip": write_clip_vision(tmp_path / "sigclip.safetensors", "siglip"),
             "redux": write_redux(tmp_path / "redux.safetensors"),
             "unclip": write_unclip_checkpoint(tmp_path / "unclip.safetensors")}
    expected = {"clip": r"CLIP vision model.*\n.*CLIP ViT, width 64, 3 layers, patch 14, image 56px, projection 32",
                "siglip": r"CLIP vision model.*\n.*SigLIP, width 64, 3 layers, patch 14, image 56px, no projection",
                "redux": r"FLUX Redux style model.*\n.*image tokens 64 wide -> text tokens 192 wide",
                "unclip": r"SD2.x unCLIP \[sd2\](.|\n)*adm 64(.|\n)*clip vision \(embedder.model.visual.\).*projection 32"}
    for kind, path in files.items():
        assert cli.main(["inspect", str(path)]) == 0
        out = capsys.readouterr().out
        assert re.search(expected[kind], out), out
        assert "other keys" not in out  # every key accounted for


# The released encoders (transformers configs, built on the meta device: shapes only)
FULL = {
    "vit_l": (dict(hidden_size=1024, num_hidden_layers=24, intermediate_size=4096, projection_dim=768,
                   hidden_act="quick_gelu"), 224),
    "vit_h": (dict(hidden_size=1280, num_hidden_layers=32, intermediate_size=5120, projection_dim=1024,
                   hidden_act="gelu"), 224),
    "vit_g": (dict(hidden_size=1664, num_hidden_layers=48, intermediate_size=8192, projection_dim=1280,
                   hidden_act="gelu"), 224),
    "siglip_384": (dict(hidden_size=1152, num_hidden_layers=27, intermediate_size=4304, hidden_act="gelu_pytorch_tanh",
                        layer_norm_eps=1e-6), 384),
}


@pytest.mark.parametrize("name", list(FULL))
def test_released_encoders_are_recognised_from_their_shapes(name):
    from graphflow.models.clip_vision import clip_vision_config_from_shapes

    values, size = FULL[name]
    with torch.device("meta"):
        if name.startswith("siglip"):
            theirs = SiglipVisionModel(SiglipVisionConfig(num_attention_heads=16, patch_size=14, image_size=size, **values))
        else:
            theirs = CLIPVisionModelWithProjection(HFCLIPVisionConfig(num_attention_heads=16, patch_size=14,
                                                                      image_size=size, **values))
    shapes = {(k if k.startswith(("vision_model.", "visual_projection.")) else "vision_model." + k): tuple(v.shape)
              for k, v in theirs.state_dict().items()}
    shapes = {k: s for k, s in shapes.items() if not k.endswith("position_ids") and ".head." not in k}
    config = clip_vision_config_from_shapes(shapes)
    assert (config.hidden_size, config.num_layers, config.intermediate_size, config.image_size, config.hidden_act,
            config.num_heads) == (values["hidden_size"], values["num_hidden_layers"], values["intermediate_size"],
                                  size, values["hidden_act"], 16)
    assert config.projection_dim == values.get("projection_dim", 0)
    assert config.layer_norm_eps == values.get("layer_norm_eps", 1e-5)
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in CLIPVisionModel(config).state_dict().items()}
    assert ours == shapes


def test_file_metadata_overrides_what_shapes_cannot_show(tmp_path):
    """graphflow.config's "clip_vision" section sets the activation and heads; unknown fields are refused."""
    from safetensors.torch import save_file

    from graphflow.models.weight_files import config_metadata
    from graphflow.testing import clip_vision_state

    state = clip_vision_state("clip", dtype=torch.float32)
    save_file(state, str(tmp_path / "a.safetensors"), metadata=config_metadata(clip_vision={"hidden_act": "quick_gelu",
                                                                                            "num_heads": 4}))
    vision = load_clip_vision(tmp_path / "a.safetensors", device="cpu", dtype=torch.float32)
    assert (vision.config.hidden_act, vision.config.num_heads) == ("quick_gelu", 4)
    plain = load_clip_vision(write_clip_vision(tmp_path / "b.safetensors", dtype=torch.float32), device="cpu",
                             dtype=torch.float32)
    image = torch.rand(1, 56, 56, 3)
    assert not torch.allclose(vision.encode_image(image).image_embeds, plain.encode_image(image).image_embeds)
    save_file(state, str(tmp_path / "c.safetensors"), metadata=config_metadata(clip_vision={"width": 3}))
    with pytest.raises(CheckpointError, match=r"c.safetensors: .*unknown clip_vision config fields \['width'\]"):
        load_clip_vision(tmp_path / "c.safetensors")


def test_nodes_load_and_encode_with_the_crop_choice(builtin_registry, tmp_folders):
    from graphflow.context import NodeInputError
    from tests.test_nodes_image_mask import call

    (tmp_folders.models / "clip_vision").mkdir(parents=True)
    write_clip_vision(tmp_folders.models / "clip_vision" / "clip_vision_h.safetensors", dtype=torch.float32)
    vision = call(builtin_registry, "LoadCLIPVision", clip_name="clip_vision_h.safetensors")
    image = torch.rand(1, 90, 56, 3, generator=torch.Generator().manual_seed(5))
    embeds = {}
    for crop, flag in (("center", True), ("none", False)):
        embeds[crop] = call(builtin_registry, "CLIPVisionEncode", clip_vision=vision, image=image, crop=crop).image_embeds
        torch.testing.assert_close(embeds[crop], vision.encode_image(image, crop=flag).image_embeds)
    assert not torch.allclose(embeds["center"], embeds["none"])
    with pytest.raises(NodeInputError, match=r"expected an IMAGE \[B, H, W, C\]") as info:
        call(builtin_registry, "CLIPVisionEncode", clip_vision=vision, image=torch.rand(56, 56), crop="center")
    assert info.value.input == "image"
