"""Derive graphflow's CLIP tokenizer files from the BPE vocabulary that open_clip_torch ships.

OpenAI's CLIP tokenizer is defined by one file, `bpe_simple_vocab_16e6.txt.gz` (a merge list),
which the PyPI package `open_clip_torch` carries inside its wheel. The token ids follow from
it by construction (256 byte symbols, the same with the end-of-word mark, one token per merge,
then the two special tokens), so we write them out as the `vocab.json` + `merges.txt` pair that
transformers' CLIPTokenizer reads. graphflow ships the result as package data and never needs
open_clip at run time.

    .venv/bin/pip install open_clip_torch      # tool/test dependency only
    .venv/bin/python tools/make_clip_vocab.py  # writes graphflow/models/clip_vocab/
"""

import argparse
import gzip
import importlib.util
import json
from pathlib import Path

# The 16e6 vocabulary's first line is a version header; CLIP uses the next 49152 - 256 - 2 merges
# (vocabulary size 49408 = 2 * 256 byte symbols + 48894 merges + 2 special tokens).
NUM_MERGES = 49152 - 256 - 2
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable-character table (also CLIP's)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def build_vocab(bpe_gz: Path) -> tuple[dict[str, int], list[str]]:
    lines = gzip.open(bpe_gz).read().decode("utf-8").split("\n")
    merges = lines[1 : NUM_MERGES + 1]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges] + [BOS, EOS]
    vocab = {t: i for i, t in enumerate(tokens)}
    if len(vocab) != 49408:
        raise SystemExit(f"expected 49408 distinct tokens, got {len(vocab)}")
    return vocab, merges


def default_source() -> Path:
    """open_clip's copy, located without importing the (slow to import) package."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None:
        raise SystemExit("open_clip_torch is not installed: pip install open_clip_torch, or pass --source")
    return Path(spec.submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=None, help="bpe_simple_vocab_16e6.txt.gz (default: open_clip's)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "graphflow/models/clip_vocab")
    args = parser.parse_args()
    vocab, merges = build_vocab(args.source or default_source())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    (args.out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    print(f"wrote {len(vocab)} tokens and {len(merges)} merges to {args.out}")


if __name__ == "__main__":
    main()
