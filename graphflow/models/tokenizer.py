"""Prompt -> CLIP token windows with per-token weights, the way ComfyUI tokenizes.

Weighting syntax (ComfyUI's, so imported graphs encode alike):
  `(text)`        multiplies the weight of `text` by 1.1 (nesting multiplies: `((x))` = 1.21)
  `(text:1.3)`    sets the weight of `text` to 1.3 (absolute, not multiplied by outer brackets)
  `\\(` `\\)`     literal brackets
  `[text]`        plain text: ComfyUI does not read A1111's down-weighting brackets, neither do we.

Windowing: the prompt becomes windows of 77 tokens, each `BOS + up to 75 tokens + EOS + padding`.
Each weighted segment is tokenized on its own; a segment of fewer than 8 tokens that does not fit
the current window moves whole to the next one, a longer one is cut at the window edge. SD1's
CLIP-L pads with EOS, OpenCLIP (SD2's ViT-H, SDXL's bigG) pads with token 0, as the original
FrozenOpenCLIPEmbedder's open_clip.tokenize did.

Textual-inversion embeddings (ComfyUI's rules): inside a weighted segment, `embedding:` at its
start or after a space or newline begins an embedding reference; the next whitespace-free word is
the name (a trailing comma is dropped when the name with it is unknown) and the rest is text. The
embedding's vectors form one group (moved whole to the next window like a short word) with the
segment's weight; in the ids they are placeholder tokens, their vectors in `TokenWindows.vectors`.
An unknown name is warned about (graphflow.context.warn: logged, shown by the CLI and the editor)
and left out, as ComfyUI does.

Text is cleaned like OpenAI's/open_clip's tokenizer (ftfy.fix_text, HTML unescape twice,
whitespace collapsed, lower case) before transformers' CLIPTokenizer runs the BPE, so ids equal
the reference tokenizer's.
"""

import base64
import gzip
import html
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..context import warn


VOCAB_DIR = Path(__file__).parent / "clip_vocab"
BOS, EOS = 49406, 49407
WINDOW = 77
# A weighted segment shorter than this moves whole to the next window instead of being cut.
MAX_WORD_LENGTH = 8
PAREN_WEIGHT = 1.1

_ESCAPED_OPEN, _ESCAPED_CLOSE = "\0\2", "\0\1"
EMBEDDING = "embedding:"
PLACEHOLDER = 0  # the id standing where an embedding vector goes (never EOS: the pooled output looks for it)


@lru_cache(maxsize=1)
def clip_bpe():
    """transformers' CLIPTokenizer over the vocabulary shipped in clip_vocab/ (no hub)."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(VOCAB_DIR), local_files_only=True)


def clean_text(text: str) -> str:
    import ftfy  # imported on first use: only prompt cleaning needs it

    text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return " ".join(text.split()).lower()


def encode_text(text: str) -> list[int]:
    """BPE token ids of `text`, without BOS/EOS."""
    text = clean_text(text)
    if not text:
        return []
    return clip_bpe()(text, add_special_tokens=False)["input_ids"]


def _split_brackets(text: str) -> list[str]:
    """Top-level split into plain runs and `( ... )` groups, exactly as ComfyUI's parser does
    (including its handling of stray brackets: an unmatched `)` makes the rest plain text)."""
    parts, current, depth = [], "", 0
    for ch in text:
        if ch == "(":
            if depth == 0:
                if current:
                    parts.append(current)
                current = "("
            else:
                current += ch
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                parts.append(current + ")")
                current = ""
            else:
                current += ch
        else:
            current += ch
    if current:
        parts.append(current)
    return parts


def _weighted_segments(text: str, weight: float) -> list[tuple[str, float]]:
    out = []
    for part in _split_brackets(text):
        if len(part) >= 2 and part[0] == "(" and part[-1] == ")":
            inner, inner_weight = part[1:-1], weight * PAREN_WEIGHT
            colon = inner.rfind(":")
            if colon > 0:
                try:
                    inner_weight = float(inner[colon + 1 :])
                    inner = inner[:colon]
                except ValueError:
                    pass
            out += _weighted_segments(inner, inner_weight)
        else:
            out.append((part, weight))
    return out


def parse_weighted_prompt(prompt: str) -> list[tuple[str, float]]:
    """`"a (red:1.3) car"` -> `[("a ", 1.0), ("red", 1.3), (" car", 1.0)]`; escapes resolved."""
    escaped = prompt.replace("\\(", _ESCAPED_OPEN).replace("\\)", _ESCAPED_CLOSE)
    return [
        (seg.replace(_ESCAPED_OPEN, "(").replace(_ESCAPED_CLOSE, ")"), w)
        for seg, w in _weighted_segments(escaped, 1.0)
    ]


@dataclass(frozen=True)
class TokenWindows:
    """k windows of 77 token ids and their weights (1.0 on BOS/EOS/padding)."""

    ids: list[list[int]]
    weights: list[list[float]]
    vectors: dict = field(default_factory=dict)  # (window, position) -> embedding vector [D]
    # ComfyUI's word ids: each position's group (weighted segment or embedding) counted from 1 in
    # the order parsed, 0 for BOS / EOS / padding (PhotoMakerEncode drops a group by its number)
    words: list[list[int]] = field(default_factory=list)

    @property
    def has_weights(self) -> bool:
        return any(w != 1.0 for window in self.weights for w in window)


def _embedding_groups(text: str, weight: float, embeddings, encode=None) -> list[list]:
    """A segment's token groups: plain text as one group, each found embedding as another.
    encode: text -> ids (CLIP's BPE by default; T5 passes its pieces)."""
    encode = encode or encode_text
    split = re.split(f" {EMBEDDING}|\n{EMBEDDING}", text)
    words = [split[0]] + [EMBEDDING + rest for rest in split[1:]]
    groups = []
    for word in words:
        if word.startswith(EMBEDDING):
            parts = word[len(EMBEDDING):].strip("\n").split()
            name, leftover = (parts[0], " ".join(parts[1:])) if parts else ("", "")
            vectors = embeddings(name) if name else None
            if vectors is None and name.strip(",") != name:
                stripped = name.strip(",")
                vectors = embeddings(stripped) if stripped else None
                leftover = f"{name[len(stripped):]} {leftover}"
            if vectors is None:
                warn(f"embedding:{name} does not exist in models/embeddings/, ignoring it")
            else:
                groups.append([(v, weight) for v in vectors])
            word = leftover
        if word:
            groups.append([(t, weight) for t in encode(word)])
    return groups


def tokenize_prompt(prompt: str, pad_token: int, embeddings=None, window: int = WINDOW) -> TokenWindows:
    """Weighted prompt -> 77-token windows (BOS, <= 75 tokens, EOS, pad_token...).
    embeddings: name -> vectors [n, D] or None (unknown); None: `embedding:` is plain text.
    window: another length (ComfyUI's for a long CLIP: its position count, e.g. 248)."""
    groups = []
    for seg, w in parse_weighted_prompt(prompt):
        if embeddings is not None and EMBEDDING in seg:
            groups += _embedding_groups(seg, w, embeddings)
        else:
            groups.append([(t, w) for t in encode_text(seg)])
    limit = window - 2
    windows: list[list[tuple[int, float, int]]] = [[]]
    for number, group in enumerate(groups, start=1):
        if not group:
            continue
        group = [(t, w, number) for t, w in group]
        is_large = len(group) >= MAX_WORD_LENGTH
        while group:
            room = limit - len(windows[-1])
            if len(group) <= room:
                windows[-1].extend(group)
                break
            if is_large:
                windows[-1].extend(group[:room])
                group = group[room:]
            windows.append([])
    ids, weights, vectors, words = [], [], {}, []
    for w, body in enumerate(windows):
        padding = window - 2 - len(body)
        row = [BOS]
        for position, (t, _, _) in enumerate(body, start=1):
            if isinstance(t, int):
                row.append(t)
            else:
                row.append(PLACEHOLDER)
                vectors[(w, position)] = t
        ids.append(row + [EOS] + [pad_token] * padding)
        weights.append([1.0] + [wt for _, wt, _ in body] + [1.0] + [1.0] * padding)
        words.append([0] + [number for _, _, number in body] + [0] * (1 + padding))
    return TokenWindows(ids, weights, vectors, words)


def empty_window(pad_token: int) -> list[int]:
    """The empty prompt's window: weighting interpolates from its embedding."""
    return [BOS, EOS] + [pad_token] * (WINDOW - 2)


def tiktoken_ranks(vocab_file: Path, count: int) -> dict[bytes, int]:
    """A tiktoken ranks file (`base64(token) rank` lines, gzipped) -> {token bytes: rank}: the BPE
    vocabularies graphflow ships for Qwen's and Llama 3's text encoders."""
    ranks = {}
    with gzip.open(vocab_file, "rt", encoding="ascii") as lines:
        for line in lines:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    if len(ranks) != count:
        raise ValueError(f"{vocab_file.name}: {len(ranks)} tokens, expected {count}")
    return ranks
