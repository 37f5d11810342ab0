"""The shipped CLIP vocabulary and the prompt tokenizer against open_clip's reference tokenizer."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from graphflow.models.tokenizer import (BOS, EOS, VOCAB_DIR, WINDOW, clip_bpe, encode_text, parse_weighted_prompt,
                                        tokenize_prompt)

ROOT = Path(__file__).resolve().parents[1]

PROMPTS = [
    "a photo of a cat",
    "A Photo Of A CAT, masterpiece, best quality, 8k, highly detailed",
    "portrait of a woman, (freckles:1.2), golden hour; f/1.8 85mm",
    "  lots   of\twhitespace \n and newlines  ",
    "it's the cat's pyjamas, isn't it? they're here, we'll see, I'd go, you've won, I'm in",
    "tom &amp; jerry &lt;3 &quot;quoted&quot; &#39;single&#39;",
    "\u201ccurly quotes\u201d and \u2018single\u2019 \u2014 em dash \u2026 ellipsis",
    "caf\u00e9 na\u00efve fa\u00e7ade Stra\u00dfe \u00c5ngstr\u00f6m",
    "\u6771\u4eac\u306e\u591c\u666f, \u5bcc\u58eb\u5c71 \ud55c\uad6d\uc5b4 \u0440\u0443\u0441\u0441\u043a\u0438\u0439 \u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "emoji \U0001f408\U0001f525\U0001f30a and symbols \u00a9 \u2122 \u00b0C \u00b1 \u00d7 \u2192",
    "numbers 1234567890 3.14159 1,000,000 2nd 21st",
    "snake_case kebab-case CamelCase path/to/file.png user@example.com #hashtag",
    "punctuation!!! ??? ... --- ((( ))) [[ ]] {{ }} <<< >>>",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "\ufb01ne ligature and \uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 letters",
    "",
]


def load_reference_module():
    """open_clip's tokenizer module, loaded by itself (open_clip's package import is slow)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None:
        pytest.fail("open_clip_torch (a dev dependency) is needed as the reference tokenizer")
    path = Path(spec.submodule_search_locations[0]) / "tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("open_clip_reference_tokenizer", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference():
    return load_reference_module()


@pytest.fixture(scope="module")
def simple_tokenizer(reference):
    return reference.SimpleTokenizer()


def test_shipped_vocabulary_is_derived_from_open_clip(tmp_path):
    out = tmp_path / "vocab"
    subprocess.run([sys.executable, str(ROOT / "tools/make_clip_vocab.py"), "--out", str(out)], check=True,
                   capture_output=True)
    for name in ("vocab.json", "merges.txt"):
        assert (out / name).read_bytes() == (VOCAB_DIR / name).read_bytes(), name


def test_special_token_ids():
    bpe = clip_bpe()
    assert bpe.convert_tokens_to_ids("<|startoftext|>") == BOS == 49406
    assert bpe.convert_tokens_to_ids("<|endoftext|>") == EOS == 49407
    assert len(bpe) == 49408


@pytest.mark.parametrize("prompt", PROMPTS)
def test_tokens_equal_open_clip(prompt, simple_tokenizer):
    assert encode_text(prompt) == simple_tokenizer.encode(prompt)


def test_long_text_equals_open_clip(simple_tokenizer):
    text = " ".join(PROMPTS) * 3
    assert encode_text(text) == simple_tokenizer.encode(text)


def test_short_prompt_window_matches_reference_padding(reference):
    prompt = "a red fox in the snow, 35mm photograph"
    # OpenCLIP (SD2 / SDXL bigG) pads with 0: exactly open_clip.tokenize's output
    openclip_ids = reference.tokenize([prompt])[0].tolist()
    assert tokenize_prompt(prompt, pad_token=0).ids == [openclip_ids]
    # SD1's CLIP-L pads with EOS: transformers' tokenizer padded to 77, as SD1 pipelines call it
    hf = clip_bpe()(prompt.lower(), padding="max_length", max_length=WINDOW)["input_ids"]
    assert tokenize_prompt(prompt, pad_token=EOS).ids == [hf]


def test_long_prompt_splits_into_75_token_windows():
    prompt = ", ".join(f"word{i} thing" for i in range(60))
    body = encode_text(prompt)
    assert len(body) > 2 * 75
    windows = tokenize_prompt(prompt, pad_token=0)
    assert len(windows.ids) == -(-len(body) // 75)
    inner = []
    for window in windows.ids:
        assert len(window) == WINDOW and window[0] == BOS
        end = window.index(EOS)
        inner += window[1:end]
        assert all(t == 0 for t in window[end + 1:])
    assert inner == body  # one unweighted segment is cut exactly at 75 tokens
    assert all(len(w) == WINDOW for w in windows.weights)


def test_short_weighted_segment_moves_whole_to_next_window():
    filler = " ".join(["cat"] * 73)  # 73 tokens
    windows = tokenize_prompt(filler + " (big red dog:1.5)", pad_token=EOS)
    assert len(windows.ids) == 2
    assert windows.ids[0][1:74] == [2368] * 73 and windows.ids[0][74] == EOS  # no room for 3 tokens: pad
    assert windows.ids[1][1:4] == encode_text("big red dog") and windows.weights[1][1:4] == [1.5] * 3


@pytest.mark.parametrize("prompt, expected", [
    ("a (red:1.3) car", [("a ", 1.0), ("red", 1.3), (" car", 1.0)]),
    ("(red)", [("red", 1.1)]),
    ("((red))", [("red", pytest.approx(1.21))]),
    ("((red:0.5) car)", [("red", 0.5), (" car", 1.1)]),
    ("(a:b)", [("a:b", 1.1)]),  # not a number: the colon is text
    ("\\(not weighted\\)", [("(not weighted)", 1.0)]),
    ("[plain] text", [("[plain] text", 1.0)]),  # ComfyUI does not read A1111's [ ] down-weighting
    ("a (open", [("a ", 1.0), ("(open", 1.0)]),
])
def test_weight_parsing(prompt, expected):
    assert parse_weighted_prompt(prompt) == expected


def test_weights_attach_to_their_tokens():
    windows = tokenize_prompt("a (red:1.3) car", pad_token=0)
    ids, weights = windows.ids[0], windows.weights[0]
    red = encode_text("red")
    assert ids[:5] == [BOS, *encode_text("a"), *red, *encode_text("car"), EOS]
    assert weights[:5] == [1.0, 1.0, 1.3, 1.0, 1.0]
    assert windows.has_weights and not tokenize_prompt("a red car", 0).has_weights


def test_word_ids_number_weighted_segments_as_comfyuis_tokenizer():
    """ComfyUI's word ids: one per weighted segment (not per space-separated word), from 1; 0 on
    BOS / EOS / padding; a group cut across windows keeps its number."""
    windows = tokenize_prompt("(a man:1.1) photo of (cat:0.9)", EOS)
    a_man, photo_of = len(encode_text("a man")), len(encode_text(" photo of "))
    assert windows.words[0][:1 + a_man + photo_of + 2] == [0] + [1] * a_man + [2] * photo_of + [3, 0]
    assert set(windows.words[0][1 + a_man + photo_of + 1:]) == {0}
    long = tokenize_prompt("(x:1.2) " + "cat " * 100, EOS)
    assert [set(w) - {0} for w in long.words] == [{1, 2}, {2}]
