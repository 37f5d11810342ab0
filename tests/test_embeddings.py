"""Textual-inversion embeddings: `embedding:name` in prompts, A1111 and SDXL files, weights,
unknown names and refused files. The reference puts the same vectors into the text encoder by
hand: as new rows of its token-embedding table, addressed by new token ids."""

import copy
import logging

import pytest
import torch
from safetensors.torch import save_file

from graphflow.models.checkpoint import load_text_encoder
from graphflow.models.text_encoders import DEFAULT_CLIP_SKIP, LAYER_NORM_HIDDEN
from graphflow.models.tokenizer import BOS, EOS, WINDOW, encode_text, tokenize_prompt
from graphflow.models.weight_files import CheckpointError
from graphflow.testing import write_checkpoint


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("emb")
    return {arch: load_text_encoder(write_checkpoint(root / f"{arch}.safetensors", arch, components=("text",), seed=3),
                                    device="cpu", dtype=torch.float32) for arch in ("sd1", "sdxl")}


@pytest.fixture
def emb_dir(tmp_folders):
    folder = tmp_folders.models / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _vectors(n, width, seed):
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed)) * 0.02


def by_hand(encoder, tower_name, before: str, vectors: torch.Tensor, after: str, arch: str):
    """Hidden states of BOS + before + [vectors] + after + EOS + padding, the vectors given to the
    model as extra vocabulary rows."""
    tower = encoder.tower(tower_name)
    model = copy.deepcopy(tower.model)
    table = model.get_input_embeddings()
    vocab = table.weight.shape[0]
    grown = torch.nn.Embedding(vocab + len(vectors), table.weight.shape[1])
    grown.weight.data = torch.cat([table.weight.data, vectors.to(table.weight.dtype)])
    model.set_input_embeddings(grown)
    body = encode_text(before) + list(range(vocab, vocab + len(vectors))) + encode_text(after)
    ids = [BOS] + body + [EOS] + [tower.spec.pad_token] * (WINDOW - 2 - len(body))
    transformer = getattr(model, "text_model", model)
    with torch.no_grad():
        out = transformer(input_ids=torch.tensor([ids]), output_hidden_states=True)
        hidden = out.hidden_states[DEFAULT_CLIP_SKIP[arch]]
        if LAYER_NORM_HIDDEN[arch]:
            hidden = transformer.final_layer_norm(hidden)
    return hidden.float(), 1 + len(encode_text(before))


def test_a1111_embedding_equals_vectors_given_by_hand(encoders, emb_dir):
    clip = encoders["sd1"]
    width = clip.tower("clip_l").hidden_size
    vectors = _vectors(3, width, 0)
    save_file({"emb_params": vectors}, str(emb_dir / "style.safetensors"))
    cond, _ = clip.encode("a photo of embedding:style a cat")
    expected, start = by_hand(clip, "clip_l", "a photo of", vectors, "a cat", "sd1")
    assert cond.shape == expected.shape
    assert (cond - expected).abs().max() < 1e-5
    plain, _ = clip.encode("a photo of a cat")
    assert (cond - plain).abs().max() > 1e-3  # the vectors did change the result


def test_weighted_embedding_as_comfyui_weights_tokens(encoders, emb_dir):
    clip = encoders["sd1"]
    vectors = _vectors(2, clip.tower("clip_l").hidden_size, 1)
    save_file({"emb_params": vectors}, str(emb_dir / "w.safetensors"))
    cond, _ = clip.encode("a cat (embedding:w:1.2)")
    z, start = by_hand(clip, "clip_l", "a cat", vectors, "", "sd1")
    empty, _ = by_hand(clip, "clip_l", "", torch.zeros(0, z.shape[-1]), "", "sd1")
    expected = z.clone()
    expected[:, start:start + 2] = (z[:, start:start + 2] - empty[:, start:start + 2]) * 1.2 + empty[:, start:start + 2]
    assert (cond - expected).abs().max() < 1e-5
    windows = tokenize_prompt("a cat (embedding:w:1.2)", EOS, lambda name: vectors if name == "w" else None)
    assert windows.weights[0][start:start + 2] == [1.2, 1.2] and len(windows.vectors) == 2


def test_sdxl_two_vector_file_gives_each_tower_its_own(encoders, emb_dir):
    clip = encoders["sdxl"]
    vl = _vectors(2, clip.tower("clip_l").hidden_size, 2)
    vg = _vectors(2, clip.tower("clip_g").hidden_size, 3)
    save_file({"clip_l": vl, "clip_g": vg}, str(emb_dir / "xl.safetensors"))
    cond, _ = clip.encode("embedding:xl, a red car")
    hl, _ = by_hand(clip, "clip_l", "", vl, ", a red car", "sdxl")
    hg, _ = by_hand(clip, "clip_g", "", vg, ", a red car", "sdxl")
    expected = torch.cat([hl, hg], dim=-1)
    assert (cond - expected).abs().max() < 1e-5


def test_a1111_pickle_string_to_param(encoders, emb_dir):
    clip = encoders["sd1"]
    vectors = _vectors(2, clip.tower("clip_l").hidden_size, 4)
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vectors}, "name": "old", "step": 100},
               emb_dir / "old.pt")
    cond, _ = clip.encode("embedding:old")
    expected, _ = by_hand(clip, "clip_l", "", vectors, "", "sd1")
    assert (cond - expected).abs().max() < 1e-5


def test_unknown_embedding_warns_and_is_left_out(encoders, emb_dir, caplog):
    clip = encoders["sd1"]
    with caplog.at_level(logging.WARNING):
        cond, _ = clip.encode("a embedding:nothere cat")
    assert "embedding:nothere does not exist" in caplog.text
    assert torch.equal(cond, clip.encode("a cat")[0])


def test_refuses_damaged_or_foreign_embedding_files(encoders, emb_dir):
    clip = encoders["sd1"]
    save_file({"emb_params": _vectors(2, 99, 0)}, str(emb_dir / "other.safetensors"))
    with pytest.raises(CheckpointError, match=r"other.safetensors: vectors of shape \(2, 99\) don't fit the clip_l"):
        clip.encode("embedding:other")
    good = emb_dir / "good.safetensors"
    save_file({"emb_params": _vectors(2, clip.tower("clip_l").hidden_size, 0)}, str(good))
    (emb_dir / "cut.safetensors").write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cut.safetensors .*truncated"):
        clip.encode("embedding:cut")
    import pickle

    class Code:
        def __reduce__(self):
            return (print, ("ran",))
    (emb_dir / "code.pt").write_bytes(pickle.dumps({"string_to_param": {"*": Code()}}))
    with pytest.raises(CheckpointError, match="code.pt was refused by PyTorch's restricted unpickler"):
        clip.encode("embedding:code")
    save_file({"a": torch.zeros(2, 4), "b": torch.zeros(2, 4)}, str(emb_dir / "lora.safetensors"))
    with pytest.raises(CheckpointError, match="lora.safetensors is not a textual-inversion embedding"):
        clip.encode("embedding:lora")


def test_sd3_and_flux_clip_prompts_read_embeddings(encoders, emb_dir, caplog):
    """ComfyUI's SD3 / FLUX tokenizers read embedding:name for their CLIP towers as SDXL's do: each
    tower its own vectors, an unknown name warned about and left out (not encoded as text)."""
    from graphflow.models.flow_text import FlowTextEncoder

    xl = encoders["sdxl"]
    vl = _vectors(2, xl.tower("clip_l").hidden_size, 5)
    vg = _vectors(2, xl.tower("clip_g").hidden_size, 6)
    save_file({"clip_l": vl, "clip_g": vg}, str(emb_dir / "both.safetensors"))
    sd3 = FlowTextEncoder("sd3", clip_l=xl.tower("clip_l"), clip_g=xl.tower("clip_g"))
    context, _ = sd3.encode("embedding:both, a red car")
    hl, _ = by_hand(xl, "clip_l", "", vl, ", a red car", "sdxl")  # SD3's CLIP: penultimate, no norm, as SDXL's
    hg, _ = by_hand(xl, "clip_g", "", vg, ", a red car", "sdxl")
    assert (context[:, :, :64] - hl).abs().max() < 1e-5 and (context[:, :, 64:192] - hg).abs().max() < 1e-5
    with caplog.at_level(logging.WARNING):
        unknown, _ = sd3.encode("a embedding:nothere cat")
    assert "embedding:nothere does not exist" in caplog.text
    assert torch.equal(unknown, sd3.encode("a cat")[0])


def test_t5_prompts_read_embeddings_as_comfyui(emb_dir, caplog):
    """ComfyUI's T5 tokenizers read embedding:name too (key t5xxl, 4096 wide on T5-XXL): the vectors
    stand in the sequence where the name was; an unknown name, or a file whose vectors are of
    another width (an SD1 embedding in a FLUX prompt), is left out with a warning."""
    from graphflow.models.t5 import t5_from_state_dict, t5_ids
    from graphflow.testing import t5_state

    t5 = t5_from_state_dict(t5_state(seed=2, dtype=torch.float32))
    width = t5.hidden_size
    vectors = _vectors(2, width, 7) * 20
    save_file({"t5xxl": vectors, "clip_l": _vectors(2, 64, 8)}, str(emb_dir / "tv.safetensors"))
    save_file({"emb_params": _vectors(3, 64, 9)}, str(emb_dir / "sd1only.safetensors"))
    got = t5.encode("a embedding:tv (red:1.5) fox", 12)
    ids = t5_ids("a ") + [0, 0] + t5_ids("red") + t5_ids(" fox") + [1]
    ids += [0] * (12 - len(ids))
    n = len(t5_ids("a "))
    with torch.no_grad():
        embeds = t5.model.get_input_embeddings()(torch.tensor([ids])).clone()
        embeds[0, n:n + 2] = vectors
        z = t5.model(inputs_embeds=embeds).last_hidden_state
        empty = t5.model(input_ids=torch.tensor([[1] + [0] * 11])).last_hidden_state
    red = n + 2
    z[0, red] = (z[0, red] - empty[0, red]) * 1.5 + empty[0, red]
    torch.testing.assert_close(got, z, atol=1e-5, rtol=0)
    with caplog.at_level(logging.WARNING):
        left_out = t5.encode("a embedding:nothere fox embedding:sd1only", 12)
    assert "embedding:nothere does not exist" in caplog.text and "sd1only" in caplog.text
    torch.testing.assert_close(left_out, t5.encode("a fox", 12), atol=0, rtol=0)


def test_embeddings_in_subfolders_are_found_by_name(encoders, emb_dir):
    """ComfyUI looks for embedding:name in every subfolder of models/embeddings/ too."""
    clip = encoders["sd1"]
    vectors = _vectors(2, clip.tower("clip_l").hidden_size, 10)
    (emb_dir / "negative" / "deep").mkdir(parents=True)
    save_file({"emb_params": vectors}, str(emb_dir / "negative" / "deep" / "buried.safetensors"))
    cond, _ = clip.encode("a photo of embedding:buried a cat")
    expected, _ = by_hand(clip, "clip_l", "a photo of", vectors, "a cat", "sd1")
    assert (cond - expected).abs().max() < 1e-5
    cond, _ = clip.encode("a photo of embedding:deep/buried a cat")  # a path below a subfolder, as ComfyUI joins it
    assert (cond - expected).abs().max() < 1e-5
