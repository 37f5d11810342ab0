"""Text encoders loaded from checkpoint layouts vs diffusers' converters + transformers' models
on the same random weights (fp32, max abs diff <= 1e-4), clip skip, long prompts, weighting."""

import pytest
import torch
from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_open_clip_checkpoint
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from graphflow.models.checkpoint import load_text_encoder
from graphflow.models.text_encoders import hf_to_openclip, openclip_key_map
from graphflow.models.tokenizer import EOS, clip_bpe, tokenize_prompt
from graphflow.models.weight_files import config_metadata
from graphflow.testing import text_config, tower_state, write_checkpoint

TOL = 1e-4
PROMPT = "a watercolor painting of a lighthouse on a cliff at dawn"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("te")
    return {arch: write_checkpoint(root / f"{arch}.safetensors", arch, components=("text",), seed=7)
            for arch in ("sd1", "sd2", "sdxl", "sdxl_refiner")}


@pytest.fixture(scope="module")
def encoders(files):
    return {arch: load_text_encoder(path, device="cpu") for arch, path in files.items()}


def _reference(model_cls, config, converted):
    model = model_cls(config).eval()
    if not hasattr(model, "text_model"):  # transformers >= 5.6 flattened CLIPTextModel
        converted = {k.removeprefix("text_model."): v for k, v in converted.items()}
    result = model.load_state_dict(converted, strict=False)
    assert not result.missing_keys, result.missing_keys
    return model


def reference_clip_l(path, arch):
    """diffusers' SD1/SDXL CLIP-L conversion into a transformers CLIPTextModel (local config)."""
    sd = {k: v.float() for k, v in load_file(str(path)).items()}
    return _reference(CLIPTextModel, text_config("clip_l"), convert_ldm_clip_checkpoint(sd))


def reference_open_clip(path, tower, prefix, layers=None):
    sd = {k: v.float() for k, v in load_file(str(path)).items()}
    config = text_config(tower)
    if layers is not None:
        config.num_hidden_layers = layers
    model_cls = CLIPTextModel if layers is not None else CLIPTextModelWithProjection
    shell = model_cls(config)
    return _reference(model_cls, config, convert_open_clip_checkpoint(shell, sd, prefix=prefix))


def hf_ids(prompt, pad_token):
    """How diffusers' pipelines tokenize: transformers' tokenizer padded to 77 (SDXL's
    tokenizer_2 pads with '!' = id 0)."""
    ids = clip_bpe()(prompt, padding="max_length", max_length=77, truncation=True)["input_ids"]
    end = ids.index(EOS)
    return torch.tensor([ids[:end + 1] + [pad_token] * (76 - end)])


def max_diff(a, b):
    return (a.float() - b.float()).abs().max().item()


@torch.no_grad()
def test_sd1_clip_l_parity(files, encoders):
    ref = reference_clip_l(files["sd1"], "sd1")
    ids = hf_ids(PROMPT, EOS)
    assert tokenize_prompt(PROMPT, EOS).ids == ids.tolist()
    out = ref(ids, output_hidden_states=True)
    cond, pooled = encoders["sd1"].encode(PROMPT)
    assert cond.shape == (1, 77, 64) and pooled.shape == (1, 64)
    assert max_diff(cond, out.last_hidden_state) <= TOL
    assert max_diff(pooled, out.pooler_output) <= TOL
    # clip skip 2 (diffusers' clip_skip=1): the penultimate layer through the final layer norm
    cond2, _ = encoders["sd1"].encode(PROMPT, clip_skip=-2)
    assert max_diff(cond2, ref.final_layer_norm(out.hidden_states[-2]) if hasattr(ref, "final_layer_norm")
                    else ref.text_model.final_layer_norm(out.hidden_states[-2])) <= TOL
    assert max_diff(cond2, cond) > 1e-2


@torch.no_grad()
def test_sd2_open_clip_parity(files, encoders):
    # diffusers' SD2 text encoder drops the last layer and uses last_hidden_state (incl. final LN)
    layers = text_config("clip_h").num_hidden_layers
    ref = reference_open_clip(files["sd2"], "clip_h", "cond_stage_model.model.", layers=layers - 1)
    ids = hf_ids(PROMPT, 0)
    cond, pooled = encoders["sd2"].encode(PROMPT)
    assert encoders["sd2"].clip_skip == -2
    assert cond.shape == (1, 77, 128) and pooled.shape == (1, 128)
    assert max_diff(cond, ref(ids).last_hidden_state) <= TOL


@torch.no_grad()
def test_sdxl_parity(files, encoders):
    path = files["sdxl"]
    ref_l = reference_clip_l(path, "sdxl")
    ref_g = reference_open_clip(path, "clip_g", "conditioner.embedders.1.model.")
    out_l = ref_l(hf_ids(PROMPT, EOS), output_hidden_states=True)
    out_g = ref_g(hf_ids(PROMPT, 0), output_hidden_states=True)
    # diffusers' StableDiffusionXLPipeline.encode_prompt: hidden_states[-2] of both, concatenated;
    # pooled = text_encoder_2's projected output
    expected = torch.cat([out_l.hidden_states[-2], out_g.hidden_states[-2]], dim=-1)
    cond, pooled = encoders["sdxl"].encode(PROMPT)
    assert cond.shape == (1, 77, 64 + 128) and pooled.shape == (1, 128)
    assert max_diff(cond, expected) <= TOL
    assert max_diff(pooled, out_g.text_embeds) <= TOL
    # clip skip -1 for SDXL: last layer states, no final layer norm; pooled unchanged
    cond1, pooled1 = encoders["sdxl"].with_clip_skip(-1).encode(PROMPT)
    expected1 = torch.cat([out_l.hidden_states[-1], out_g.hidden_states[-1]], dim=-1)
    assert max_diff(cond1, expected1) <= TOL
    assert torch.equal(pooled1, pooled)


@torch.no_grad()
def test_sdxl_refiner_parity(files, encoders):
    ref = reference_open_clip(files["sdxl_refiner"], "clip_g", "conditioner.embedders.0.model.")
    out = ref(hf_ids(PROMPT, 0), output_hidden_states=True)
    cond, pooled = encoders["sdxl_refiner"].encode(PROMPT)
    assert max_diff(cond, out.hidden_states[-2]) <= TOL
    assert max_diff(pooled, out.text_embeds) <= TOL


@torch.no_grad()
def test_long_prompt_is_windows_concatenated(files, encoders):
    ref = reference_clip_l(files["sd1"], "sd1")
    prompt = ", ".join(f"detail number {i}" for i in range(40))
    windows = tokenize_prompt(prompt, EOS)
    assert len(windows.ids) >= 2
    cond, pooled = encoders["sd1"].encode(prompt)
    out = ref(torch.tensor(windows.ids))
    assert cond.shape == (1, 77 * len(windows.ids), 64)
    assert max_diff(cond, out.last_hidden_state.reshape(1, -1, 64)) <= TOL
    assert max_diff(pooled, out.pooler_output[:1]) <= TOL  # pooled from the first window


@torch.no_grad()
def test_weighting_interpolates_from_empty_prompt(files, encoders):
    ref = reference_clip_l(files["sd1"], "sd1")
    weighted = tokenize_prompt("a (red:1.5) car", EOS)
    plain = tokenize_prompt("a red car", EOS)
    assert weighted.ids == plain.ids
    z = ref(torch.tensor(plain.ids)).last_hidden_state[0]
    empty = ref(torch.tensor([[49406, EOS] + [EOS] * 75])).last_hidden_state[0]
    expected = z.clone()
    expected[2] = empty[2] + (z[2] - empty[2]) * 1.5  # BOS, "a", "red"
    cond, pooled = encoders["sd1"].encode("a (red:1.5) car")
    assert max_diff(cond[0], expected) <= TOL
    cond_plain, pooled_plain = encoders["sd1"].encode("a red car")
    changed = (cond[0] - cond_plain[0]).abs().amax(dim=-1) > 0
    assert changed.tolist() == [i == 2 for i in range(77)]  # only the weighted token moves
    assert torch.equal(pooled, pooled_plain)


@torch.no_grad()
def test_sdxl_weighting_per_tower(files, encoders):
    enc = encoders["sdxl"]
    cond, _ = enc.encode("a (lighthouse:0.5)")
    plain, _ = enc.encode("a lighthouse")
    diff = (cond - plain).abs()
    assert diff[0, 2, :64].max() > 0 and diff[0, 2, 64:].max() > 0
    assert diff[0, [0, 1] + list(range(3, 77))].max() == 0


def test_clip_skip_validation(encoders):
    enc = encoders["sd1"]  # 2 layers
    for bad in (0, 1, 1.5):
        with pytest.raises(ValueError, match="clip_skip"):
            enc.encode("x", clip_skip=bad)
    skipped = enc.with_clip_skip(-2)
    assert skipped.clip_skip == -2 and enc.clip_skip == -1
    assert skipped.towers[0].model is enc.towers[0].model  # weights shared, not copied


def test_openclip_key_mapping_round_trip():
    state = tower_state("clip_g", seed=3, dtype=torch.float32)
    state.pop("text_model.embeddings.position_ids")
    openclip = hf_to_openclip(state)
    assert "transformer.resblocks.0.attn.in_proj_weight" in openclip and openclip["text_projection"].shape == (128, 128)
    back = {}
    for key, tensor in openclip.items():
        for hf_key, op in openclip_key_map(key):
            from graphflow.models.text_encoders import _apply
            back[hf_key] = _apply(op, tensor)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)
    with pytest.raises(KeyError):
        openclip_key_map("visual.conv1.weight")


@torch.no_grad()
def test_metadata_overrides_heads(tmp_path, files):
    tensors = load_file(str(files["sd1"]))
    path = tmp_path / "heads.safetensors"
    save_file(tensors, str(path), metadata=config_metadata(text_encoders={"clip_l": {"num_attention_heads": 4}}))
    clip = load_text_encoder(path, device="cpu")
    assert clip.towers[0].model.config.num_attention_heads == 4
    config = text_config("clip_l")
    config.num_attention_heads = 4
    sd = {k: v.float() for k, v in tensors.items()}
    ref = _reference(CLIPTextModel, config, convert_ldm_clip_checkpoint(sd))
    cond, _ = clip.encode(PROMPT)
    assert max_diff(cond, ref(hf_ids(PROMPT, EOS)).last_hidden_state) <= TOL


@torch.no_grad()
def test_standalone_text_encoder_files(tmp_path, encoders):
    """SDXL's towers as separate files: CLIP-L in transformers' layout, bigG in OpenCLIP's."""
    full = load_file(str(write_checkpoint(tmp_path / "x.safetensors", "sdxl", components=("text",), seed=7)))
    l_prefix, g_prefix = "conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."
    save_file({k[len(l_prefix):]: v for k, v in full.items() if k.startswith(l_prefix)}, str(tmp_path / "l.safetensors"))
    save_file({k[len(g_prefix):]: v for k, v in full.items() if k.startswith(g_prefix)}, str(tmp_path / "g.safetensors"))
    clip = load_text_encoder([tmp_path / "l.safetensors", tmp_path / "g.safetensors"], device="cpu")
    assert clip.arch == "sdxl"
    cond, pooled = clip.encode(PROMPT)
    ref_cond, ref_pooled = encoders["sdxl"].encode(PROMPT)
    assert torch.equal(cond, ref_cond) and torch.equal(pooled, ref_pooled)
    single = load_text_encoder(tmp_path / "l.safetensors", device="cpu")
    assert single.arch == "sd1"  # a lone CLIP-L-layout tower: SD1's conventions unless told


@torch.no_grad()
def test_half_precision_on_cpu(files, encoders):
    clip16 = load_text_encoder(files["sd1"], device="cpu", dtype=torch.float16)
    assert clip16.dtype == torch.float16
    cond16, _ = clip16.encode(PROMPT)
    cond32, _ = encoders["sd1"].encode(PROMPT)
    assert cond16.dtype == torch.float32  # conditioning leaves the encoder in float32
    assert max_diff(cond16, cond32) < 2e-2


@torch.no_grad()
def test_clip_skip_past_a_towers_first_layer_gives_its_last_layer(files, encoders):
    """ComfyUI's CLIPSetLastLayer goes down to -24 for every CLIP; a tower with fewer layers (SDXL's
    CLIP-L beside bigG) then gives its last layer through the final layer norm, the other tower
    its own layer. Tiny SDXL: CLIP-L 2 layers, bigG 3."""
    path = files["sdxl"]
    out_l = reference_clip_l(path, "sdxl")(hf_ids(PROMPT, EOS), output_hidden_states=True)
    out_g = reference_open_clip(path, "clip_g", "conditioner.embedders.1.model.")(hf_ids(PROMPT, 0),
                                                                                   output_hidden_states=True)
    cond, _ = encoders["sdxl"].with_clip_skip(-3).encode(PROMPT)
    expected = torch.cat([out_l.last_hidden_state, out_g.hidden_states[-3]], dim=-1)
    assert max_diff(cond, expected) <= TOL
    # SD1 (2 layers, normed): -24 is the plain last layer
    sd1 = encoders["sd1"]
    assert torch.equal(sd1.with_clip_skip(-24).encode(PROMPT)[0], sd1.encode(PROMPT)[0])
