"""Derive graphflow's Pile-T5 tokenizer (AuraFlow's text encoder) from the npm package llama-tokenizer-js.

Pile-T5 (EleutherAI) tokenizes with LLaMA's SentencePiece vocabulary: 32,000 pieces (<unk> 0, <s> 1,
</s> 2, 256 byte-fallback pieces <0x00>..<0xFF> 3-258, then BPE pieces), and appends 100 T5 sentinels
<extra_id_99> = 32000 ... <extra_id_0> = 32099 (ComfyUI's t5_pile_tokenizer/added_tokens.json). No
PyPI package ships LLaMA's tokenizer; the npm package `llama-tokenizer-js` (1.2.2) carries its vocabulary
and merge list, converted from Hugging Face's LLaMA tokenizer.json (its data-conversion.py): the
vocabulary as base64 of the pieces joined by newlines, the merges as base64 of uint16 pairs of piece ids.
This writes them back as a `tokenizers` JSON file with the normalizer, byte fallback and decoder of
Hugging Face's (legacy) LLaMA tokenizer.json, gzip-compressed:

    npm pack llama-tokenizer-js@1.2.2 && tar xzf llama-tokenizer-js-1.2.2.tgz
    .venv/bin/python tools/make_pile_t5_tokenizer.py package/llama-tokenizer.js

Two choices follow ComfyUI, which runs LLaMA's tokenizer.model with sentencepiece (SPieceTokenizer):
no added tokens (sentencepiece reads "</s>" or "<extra_id_0>" typed in a prompt as text, not as the
special ids), so the sentinels are plain vocabulary entries, and no post-processor (the caller
frames the ids: ComfyUI's PT5XlTokenizer adds no <s> and ends with </s>).
"""

import argparse
import base64
import gzip
import json
import re
import struct
from pathlib import Path

OUT = Path(__file__).parent.parent / "graphflow" / "models" / "pile_t5_tokenizer" / "tokenizer.json.gz"
SENTINELS = 100


def read_llama_tokenizer_js(path: Path) -> tuple[list[str], list[str]]:
    source = path.read_text(encoding="utf-8")
    vocab_b64 = re.search(r'const llama_vocab_base64 = "([^"]+)"', source).group(1)
    merges_b64 = re.search(r'const llama_merges_binary = "([^"]+)"', source).group(1)
    vocab = base64.b64decode(vocab_b64).decode("utf-8").split("\n")
    raw = base64.b64decode(merges_b64)
    ids = struct.unpack(f"<{len(raw) // 2}H", raw)
    merges = [f"{vocab[ids[i]]} {vocab[ids[i + 1]]}" for i in range(0, len(ids), 2)]
    return vocab, merges


def tokenizer_json(vocab: list[str], merges: list[str]) -> dict:
    if len(vocab) != 32000 or vocab[:3] != ["<unk>", "<s>", "</s>"] or vocab[3] != "<0x00>" or vocab[258] != "<0xFF>":
        raise SystemExit("this is not LLaMA's vocabulary (32,000 pieces, <unk> <s> </s>, then <0x00>..<0xFF>)")
    pieces = vocab + [f"<extra_id_{i}>" for i in reversed(range(SENTINELS))]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        # LLaMA's SentencePiece normaliser: identity, a dummy prefix, spaces as U+2581
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                           {"type": "Replace", "pattern": {"String": " "},
                                                            "content": "\u2581"}]},
        "pre_tokenizer": None, "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": {p: i for i, p in enumerate(pieces)}, "merges": merges},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("llama_tokenizer_js", type=Path, help="llama-tokenizer.js of the npm package")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    vocab, merges = read_llama_tokenizer_js(args.llama_tokenizer_js)
    text = json.dumps(tokenizer_json(vocab, merges), ensure_ascii=False, separators=(",", ":"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "wb") as f:  # mtime 0: the same input gives the same bytes
        with gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
            gz.write(text.encode("utf-8"))
    print(f"{args.out}: {len(vocab)} pieces + {SENTINELS} sentinels, {len(merges)} merges")


if __name__ == "__main__":
    main()
