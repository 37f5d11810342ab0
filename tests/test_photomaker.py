"""PhotoMaker v1: the ID encoder's vision tower against transformers on identical random weights,
the fuse module against its formula written out with torch.nn.functional, the file formats, and
ComfyUI's PhotoMakerLoader -> PhotoMakerEncode -> KSampler graph on a tiny SDXL."""

import json
import logging

import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig as HFCLIPVisionConfig
from transformers import CLIPVisionModelWithProjection

from graphflow.context import NodeInputError
from graphflow.executor import Executor
from graphflow.models.clip_vision import CLIP_MEAN, CLIP_STD, preprocess
from graphflow.models.photomaker import PhotoMakerIDEncoder, load_photomaker, photomaker_config_from_shapes
from graphflow.models.tokenizer import WINDOW, encode_text
from graphflow.models.weight_files import CheckpointError
from graphflow.testing import photomaker_config, write_checkpoint, write_ip_adapter, write_lora, write_photomaker
from graphflow.workflow import parse_workflow
from tests.test_nodes_image_mask import call


def _random_encoder(seed=0) -> PhotoMakerIDEncoder:
    torch.manual_seed(seed)
    module = PhotoMakerIDEncoder(photomaker_config()).eval()
    with torch.no_grad():  # layer norms and biases away from their 1/0 init, so every weight matters
        for p in module.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return module


def test_vision_tower_matches_transformers():
    """ID embedding = [visual_projection(pooled), visual_projection_2(pooled)], the pooled output
    being CLIPVisionModelWithProjection's (post-layernorm of the class token), quick_gelu tower."""
    cfg = photomaker_config()
    v = cfg.vision
    torch.manual_seed(0)
    theirs = CLIPVisionModelWithProjection(HFCLIPVisionConfig(
        hidden_size=v.hidden_size, intermediate_size=v.intermediate_size, num_hidden_layers=v.num_layers,
        num_attention_heads=v.num_heads, image_size=v.image_size, patch_size=v.patch_size, hidden_act="quick_gelu",
        layer_norm_eps=v.layer_norm_eps, projection_dim=cfg.text_widths[0])).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    ours = _random_encoder(1)
    state = {k: w for k, w in theirs.state_dict().items() if not k.endswith("position_ids")}
    missing = ours.load_state_dict(state, strict=False).missing_keys
    assert all(k.startswith(("visual_projection_2.", "fuse_module.")) for k in missing)
    pixels = torch.randn(3, 3, v.image_size, v.image_size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = theirs(pixel_values=pixels)
        pooled = theirs.vision_model(pixel_values=pixels).pooler_output
        out = ours.id_embeds(pixels)
    assert out.shape == (3, cfg.embed_dim)
    torch.testing.assert_close(out[:, :cfg.text_widths[0]], ref.image_embeds, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, cfg.text_widths[0]:], pooled @ ours.visual_projection_2.weight.T, atol=1e-5, rtol=0)


def test_released_layout_is_read_from_its_shapes():
    """photomaker-v1.bin's id_encoder: transformers' ViT-L/14 CLIPVisionModelWithProjection (built on
    the meta device: shapes only) plus visual_projection_2 [1280, 1024] and the fuse module for
    SDXL's 2048-wide text embedding; every tensor finds its place, nothing is left over."""
    with torch.device("meta"):
        tower = CLIPVisionModelWithProjection(HFCLIPVisionConfig(
            hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=224,
            patch_size=14, projection_dim=768, hidden_act="quick_gelu"))
    shapes = {k: tuple(v.shape) for k, v in tower.state_dict().items() if not k.endswith("position_ids")}
    shapes["visual_projection_2.weight"] = (1280, 1024)
    for mlp, dim_in in (("mlp1", 4096), ("mlp2", 2048)):
        shapes.update({f"fuse_module.{mlp}.layernorm.weight": (dim_in,), f"fuse_module.{mlp}.layernorm.bias": (dim_in,),
                       f"fuse_module.{mlp}.fc1.weight": (2048, dim_in), f"fuse_module.{mlp}.fc1.bias": (2048,),
                       f"fuse_module.{mlp}.fc2.weight": (2048, 2048), f"fuse_module.{mlp}.fc2.bias": (2048,)})
    shapes.update({"fuse_module.layer_norm.weight": (2048,), "fuse_module.layer_norm.bias": (2048,)})
    config = photomaker_config_from_shapes(shapes)
    v = config.vision
    assert (v.hidden_size, v.num_layers, v.patch_size, v.image_size, v.projection_dim, v.hidden_act) == \
        (1024, 24, 14, 224, 768, "quick_gelu")
    assert config.text_widths == (768, 1280) and config.embed_dim == 2048
    with torch.device("meta"):
        ours = {k: tuple(t.shape) for k, t in PhotoMakerIDEncoder(config).state_dict().items()}
    assert ours == shapes


def _fuse_by_formula(sd: dict, prompt: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """layer_norm(mlp2(mlp1([p, id]) + p)), each MLP LayerNorm -> Linear -> exact GELU -> Linear,
    mlp2 adding its input; read straight from the state dict's tensors."""
    def norm(x, name):
        return F.layer_norm(x, x.shape[-1:], sd[name + ".weight"], sd[name + ".bias"], 1e-5)

    def mlp(x, name):
        h = F.gelu(F.linear(norm(x, name + ".layernorm"), sd[name + ".fc1.weight"], sd[name + ".fc1.bias"]))
        return F.linear(h, sd[name + ".fc2.weight"], sd[name + ".fc2.bias"])

    first = mlp(torch.cat([prompt, ids], dim=-1), "fuse_module.mlp1") + prompt
    second = mlp(first, "fuse_module.mlp2") + first
    return norm(second, "fuse_module.layer_norm")


def test_fuse_module_matches_the_formula():
    module = _random_encoder(3)
    sd = module.state_dict()
    g = torch.Generator().manual_seed(4)
    prompt, ids = torch.randn(4, 192, generator=g), torch.randn(4, 192, generator=g)
    with torch.no_grad():
        out = module.fuse_module(prompt, ids)
    torch.testing.assert_close(out, _fuse_by_formula(sd, prompt, ids), atol=1e-5, rtol=0)
    assert sd["fuse_module.mlp1.fc1.weight"].shape == (192, 384)  # 2D -> D, then D -> D


def test_bin_and_safetensors_load_the_same(tmp_path):
    a = load_photomaker(write_photomaker(tmp_path / "photomaker-v1.bin", dtype=torch.float32), "cpu", torch.float32)
    b = load_photomaker(write_photomaker(tmp_path / "pm.safetensors", dtype=torch.float32), "cpu", torch.float32)
    bare = tmp_path / "bare.bin"
    torch.save(torch.load(tmp_path / "photomaker-v1.bin", weights_only=True)["id_encoder"], bare)
    c = load_photomaker(bare, "cpu", torch.float32)
    assert a.config == b.config == c.config == photomaker_config()
    for other in (b, c):
        for (ka, va), (kb, vb) in zip(a.module.state_dict().items(), other.module.state_dict().items()):
            assert ka == kb and torch.equal(va, vb)


def test_file_kind_names_the_photomaker_folder(tmp_path):
    from graphflow.models.file_kind import identify
    from graphflow.models.weight_files import WeightFile

    with WeightFile(write_photomaker(tmp_path / "pm.safetensors")) as f:  # its lora_weights.* too
        kind = identify(f.shapes)
    assert (kind.folder, kind.loader) == ("photomaker", "PhotoMakerLoader")
    with pytest.raises(CheckpointError, match="put it in models/photomaker/ and load it with PhotoMakerLoader"):
        from graphflow.models.clip_vision import load_clip_vision
        load_clip_vision(tmp_path / "pm.safetensors")


def test_half_precision_encoder_gives_float32_rows_close_to_full_precision(tmp_path):
    """As on a GPU (weights in bf16/fp16): inputs are cast to the module's dtype, the rows come back float32."""
    path = write_photomaker(tmp_path / "photomaker-v1.bin", dtype=torch.float32)
    image = torch.rand(1, 40, 48, 3, generator=torch.Generator().manual_seed(7))
    prompt = torch.randn(1, 192, generator=torch.Generator().manual_seed(8))
    full = load_photomaker(path, "cpu", torch.float32).fuse(image, prompt)
    half = load_photomaker(path, "cpu", torch.bfloat16).fuse(image, prompt)
    assert half.dtype == full.dtype == torch.float32 and half.shape == (1, 192)
    torch.testing.assert_close(half, full, atol=0.1, rtol=0.05)
    assert not torch.equal(half, full)


class Payload:
    def __reduce__(self):
        return (print, ("this must not run",))


def test_pickles_go_through_the_restricted_unpickler(tmp_path):
    bad = tmp_path / "photomaker-v1.bin"
    torch.save({"id_encoder": {"x": torch.zeros(1)}, "extra": Payload()}, bad)
    with pytest.raises(CheckpointError, match="refused by PyTorch's restricted unpickler"):
        load_photomaker(bad, "cpu", torch.float32)


# -- the nodes ---------------------------------------------------------------------------------

@pytest.fixture
def models(tmp_folders):
    m = tmp_folders.models
    for sub in ("checkpoints", "photomaker"):
        (m / sub).mkdir(parents=True)
    write_checkpoint(m / "checkpoints" / "sdxl.safetensors", "sdxl", dtype=torch.float32)
    write_photomaker(m / "photomaker" / "photomaker-v1.bin", dtype=torch.float32)
    return m


def graph(text="a photo of a man photomaker smiling", plain="a photo of a man photomaker smiling"):
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}},
        "2": {"class_type": "PhotoMakerLoader", "inputs": {"photomaker_model_name": "photomaker-v1.bin"}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": plain, "clip": ["1", 1]}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "5": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 80, "batch_size": 1, "color": 0x30a0ff}},
        "7": {"class_type": "PhotoMakerEncode", "inputs": {"photomaker": ["2", 0], "image": ["5", 0],
                                                           "clip": ["1", 1], "text": text}},
        "8": {"class_type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "batch_size": 1}},
        "9": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["7", 0], "negative": ["4", 0],
                                                    "latent_image": ["8", 0], "seed": 3, "steps": 2, "cfg": 4.0,
                                                    "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
    }


def run(registry, g):
    result = Executor(registry).run(parse_workflow(json.loads(json.dumps(g)), registry), outputs=["9", "3", "7"])
    assert result.ok, result.error or result.problems
    return result.values


def _differing_rows(a: torch.Tensor, b: torch.Tensor) -> list[int]:
    return torch.nonzero((a - b).abs().amax(dim=-1)[0] > 0).flatten().tolist()


def test_comfyui_graph_changes_only_the_class_token(builtin_registry, models):
    values = run(builtin_registry, graph())
    [(plain, plain_options)] = values["3"][0]
    [(cond, options)] = values["7"][0]
    assert cond.shape == plain.shape == (1, WINDOW, 192)
    man = len(encode_text("a photo of a man"))  # the class word's (last) token; BOS is row 0
    assert encode_text("man") == [encode_text("a photo of a man")[-1]]
    assert _differing_rows(cond, plain) == [man]
    assert torch.equal(options["pooled_output"], plain_options["pooled_output"])
    # the changed row is the fuse module's output on the plain row and the image's ID embedding
    photomaker = call(builtin_registry, "PhotoMakerLoader", photomaker_model_name="photomaker-v1.bin")
    image = call(builtin_registry, "EmptyImage", width=64, height=80, batch_size=1, color=0x30a0ff)
    module = photomaker.module
    with torch.no_grad():
        ids = module.id_embeds(preprocess(image, 56, CLIP_MEAN, CLIP_STD).to(module.visual_projection.weight.dtype))
        expected = _fuse_by_formula({k: v.float() for k, v in module.state_dict().items()}, plain[0, man:man + 1],
                                    ids.float())
    torch.testing.assert_close(cond[0, man:man + 1], expected, atol=1e-4, rtol=1e-4)
    samples = values["9"][0]["samples"]
    assert torch.isfinite(samples).all()
    plain_graph = graph()
    plain_graph["9"]["inputs"]["positive"] = ["3", 0]
    assert (run(builtin_registry, plain_graph)["9"][0]["samples"] - samples).abs().max() > 1e-5


def test_class_row_and_dropped_tokens_follow_comfyuis_word_numbers(builtin_registry, models):
    """The fused row is the trigger's space-separated word number minus one; the tokens dropped are
    those of the tokenizer's word id with that number (weighted segments and embeddings, counted
    from 1), so the trigger usually stays in the prompt, and "(man:1.1) photomaker smiling" loses
    its whole second segment."""
    clip = call(builtin_registry, "LoadCheckpoint", checkpoint="sdxl.safetensors")[1]
    photomaker = call(builtin_registry, "PhotoMakerLoader", photomaker_model_name="photomaker-v1.bin")
    image = torch.rand(1, 40, 48, 3, generator=torch.Generator().manual_seed(5))
    assert len(encode_text("photomakerz")) > 1
    cases = [("(a photo of a man:1.2) photomaker", "(a photo of a man:1.2) photomaker", 5),  # word 6 of 2 segments
             ("(man:1.1) photomaker smiling", "(man:1.1)", 1),  # word 2: segment 2 dropped
             ("portrait of a photomakerz photomaker", "portrait of a photomakerz photomaker", 4),  # its first token
             ("a man photomaker " + "cat " * 80, "a man photomaker " + "cat " * 80, 2)]  # two windows
    for text, plain_text, row in cases:
        [(cond, options)] = call(builtin_registry, "PhotoMakerEncode", photomaker=photomaker, image=image, clip=clip,
                                 text=text)
        [(plain, plain_options)] = call(builtin_registry, "CLIPEncode", clip=clip, text=plain_text)
        assert cond.shape == plain.shape, text
        assert _differing_rows(cond, plain) == [row], text
        assert torch.equal(options["pooled_output"], plain_options["pooled_output"]), text
    with pytest.raises(NodeInputError, match="within the first 76 words"):
        call(builtin_registry, "PhotoMakerEncode", photomaker=photomaker, image=image, clip=clip,
             text="cat " * 80 + "man photomaker")


def test_comfyuis_choices_for_missing_trigger_and_several_images(builtin_registry, models, caplog):
    clip = call(builtin_registry, "LoadCheckpoint", checkpoint="sdxl.safetensors")[1]
    photomaker = call(builtin_registry, "PhotoMakerLoader", photomaker_model_name="photomaker-v1.bin")
    images = torch.rand(2, 40, 48, 3, generator=torch.Generator().manual_seed(6))
    with caplog.at_level(logging.WARNING):
        [(cond, _)] = call(builtin_registry, "PhotoMakerEncode", photomaker=photomaker, image=images, clip=clip,
                           text="a photo of a man, photomaker,")  # not a word on its own: no trigger
    [(plain, _)] = call(builtin_registry, "CLIPEncode", clip=clip, text="a photo of a man, photomaker,")
    assert torch.equal(cond, plain) and "no 'photomaker' word" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        [(both, _)] = call(builtin_registry, "PhotoMakerEncode", photomaker=photomaker, image=images, clip=clip,
                           text="a man photomaker")
    [(first, _)] = call(builtin_registry, "PhotoMakerEncode", photomaker=photomaker, image=images[:1], clip=clip,
                        text="a man photomaker")
    [(second, _)] = call(builtin_registry, "PhotoMakerEncode", photomaker=photomaker, image=images[1:], clip=clip,
                         text="a man photomaker")
    assert torch.equal(both, first) and not torch.equal(first, second)
    assert "uses the first of the 2 images" in caplog.text


def test_trigger_as_first_word_fuses_the_start_token_as_comfyui(builtin_registry, models, caplog):
    """"photomaker of a man": ComfyUI's word number 1 puts the identity on row 0 (the start token) and
    drops word id 1, the whole (unweighted) prompt, so the rest is the empty prompt's encoding."""
    clip = call(builtin_registry, "LoadCheckpoint", checkpoint="sdxl.safetensors")[1]
    photomaker = call(builtin_registry, "PhotoMakerLoader", photomaker_model_name="photomaker-v1.bin")
    image = torch.rand(1, 40, 48, 3, generator=torch.Generator().manual_seed(7))
    with caplog.at_level(logging.WARNING):
        [(cond, options)] = call(builtin_registry, "PhotoMakerEncode", photomaker=photomaker, image=image, clip=clip,
                                 text="photomaker of a man")
    [(empty, empty_options)] = call(builtin_registry, "CLIPEncode", clip=clip, text="")
    assert "first word" in caplog.text
    assert cond.shape == empty.shape and _differing_rows(cond, empty) == [0]
    assert torch.equal(options["pooled_output"], empty_options["pooled_output"])


def test_bad_inputs_are_named(builtin_registry, models):
    write_checkpoint(models / "checkpoints" / "sd1.safetensors", "sd1", dtype=torch.float32)
    write_lora(models / "photomaker" / "a_lora.safetensors", "sdxl")
    write_ip_adapter(models / "photomaker" / "ip-adapter.bin", "sdxl", dtype=torch.float32)
    (models / "photomaker" / "junk.bin").write_bytes(b"\x80\x04not a pickle at all")
    sdxl_clip = call(builtin_registry, "LoadCheckpoint", checkpoint="sdxl.safetensors")[1]
    sd1_clip = call(builtin_registry, "LoadCheckpoint", checkpoint="sd1.safetensors")[1]
    photomaker = call(builtin_registry, "PhotoMakerLoader", photomaker_model_name="photomaker-v1.bin")
    for name, message in (("a_lora.safetensors", "not a PhotoMaker v1 file.*put it in models/loras/"),
                          ("ip-adapter.bin", "ip-adapter.bin is not a PhotoMaker v1 file.*found no tensors"),
                          ("junk.bin", "junk.bin was refused by PyTorch's restricted unpickler")):
        with pytest.raises(NodeInputError, match=message) as info:
            call(builtin_registry, "PhotoMakerLoader", photomaker_model_name=name)
        assert info.value.input == "photomaker_model_name"
    wrong = graph()
    wrong["2"]["inputs"]["photomaker_model_name"] = "a_lora.safetensors"  # refused before anything runs
    result = Executor(builtin_registry).run(parse_workflow(wrong, builtin_registry), outputs=["9"])
    assert result.status == "invalid"
    assert any("a_lora.safetensors is not a file for models/photomaker/" in p.message and p.input == "photomaker_model_name"
               for p in result.problems)
    image = torch.rand(1, 32, 32, 3)
    base = dict(photomaker=photomaker, image=image, clip=sdxl_clip, text="a man photomaker")
    cases = [(dict(clip=sd1_clip), "clip", r"needs SDXL's text encoder \(CLIP-L \+ CLIP-G, 192 wide.*sd1's \(64 wide\)"),
             (dict(clip=None), "clip", "no text encoder"),
             (dict(image=torch.rand(32, 32, 3)), "image", r"IMAGE \[B, H, W, 3\]")]
    for change, name, message in cases:
        with pytest.raises(NodeInputError, match=message) as info:
            call(builtin_registry, "PhotoMakerEncode", **{**base, **change})
        assert info.value.input == name
