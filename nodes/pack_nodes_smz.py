"""shiimizu's ComfyUI_smZNodes built in under the pack's class names, inputs, defaults and outputs:
CLIP Text Encode++ (smZ CLIPTextEncode) and Settings (smZ) (smZ Settings). Read from the pack's
nodes.py and modules/text_processing/ (prompt_parser.py, classic_engine.py, emphasis.py) and
smZNodes.py at 3846ef3b018e37ab68fbb65c51720b26fe06603d (the newest stored version); the saves of
older versions (nodes.py at a6f810fbdfa13cd8ee7305a973e05069d3401ffe and before) carry a
use_CFGDenoiser widget after use_old_emphasis_implementation, which is read and dropped.

CLIP Text Encode++ encodes a prompt the way Automatic1111's web UI does (A1111 / full / fixed
attention parsers): A1111's emphasis syntax, BREAK, AND with weights, prompt editing [from:to:when]
and alternation [a|b], 75-token chunks with A1111's comma word wrap, and its emphasis (the
embedding times the weights, then its mean put back). "comfy" is CLIP Text Encode; "comfy++" is
ComfyUI's prompt syntax with A1111's emphasis. Prompt editing and alternation make a conditioning
entry per stretch of steps, marked with a "step_range" (fractions of the sampler's steps, judged at
each sigma's nearest step as the pack's sampling hook does: graphflow.sampling.guidance); the step
count is the one of the sampler the conditioning feeds (the pack's prompt handler reads it the same
way), else the smZ_steps input.

Left out, each refused by name when asked for: the "compel" parser (it reads the compel library's
own prompt syntax), use_old_emphasis_implementation (A1111's pre-2023 tokenizer), the pack's T5
engine (its parsers on FLUX / SD3 encoders: there only "comfy" runs) and the Settings options
graphflow's samplers cannot follow (see Settings (smZ)). AND weights become the entries' strengths:
ComfyUI's weighted average, not the pack's own CFG sum (the same when the weights are 1). The pack's dpmpp_2m_alt sampler and
its sampling hooks for its own CFG denoiser are not nodes and are not here."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from graphflow.api import (ANY, CLIP, CONDITIONING, Bool, Choice, ComfyAlias, Float, Int, Node, NodeInputError,
                           Text, check_interrupted, current_node_id, current_workflow)
from nodes.conditioning import MAX_SIZE, CLIPEncode, CLIPEncodeSDXL, CLIPEncodeSDXLRefiner, encoded
from nodes.pack_nodes import _core
from nodes.pack_nodes_adv_clip import _is_clip

COMFY_PACK = "ComfyUI_smZNodes"  # the custom node pack this module's ComfyUI classes come from

PARSERS = ("comfy", "comfy++", "A1111", "full", "compel", "fixed attention")
CHUNK = 75  # tokens of a chunk between its start and end token (A1111's chunk_length)
COMMA_BACKTRACK = 20  # A1111's "prompt word wrap length limit": the pack's engine fixes it at 20
ROUND, SQUARE = 1.1, 1 / 1.1  # (word) and [word] multipliers
PACK_MAX_STEPS = 10000  # the pack's prompt handler clamps the sampler's steps to this (not the engine's schedule cap)
# the characters a prompt's schedule texts may hold in all (entries x prompt length): 1000 entries of
# a 20,000-character prompt; each text is parsed and encoded after, so this bounds that work too
MAX_SCHEDULE_CHARS = 20_000_000
# the largest emphasis weight taken (float32's largest): nested brackets multiply by 1.1 each, and
# past it (about 930 levels) the weight is inf in the embeddings, then NaN in the conditioning
MAX_WEIGHT = 3.4028234663852886e38
BREAK_MARK = -1.0  # the weight A1111's parser gives a BREAK
MAX_SCHEDULE_ENTRIES = 1000  # conditioning entries one prompt's editing may make (alternation: one per step)
# 75-token chunks the distinct texts of one prompt's editing may encode in all: each is an encoder
# pass and 77 x width floats kept through sampling (SDXL's 2048: 630 KB, so 500 chunks ~ 315 MB);
# a long prompt edited at every step is far past what any prompt needs
MAX_SCHEDULE_CHUNKS = 500


# -- prompt editing and alternation (A1111's schedule grammar) ------------------------------------
#
# A prompt is read as A1111's grammar (prompt_parser.py's schedule_parser) describes it:
#   start: (prompt | stray "[", "]", "(", ")" or ":")*
#   prompt: (emphasized | scheduled | alternate | plain)*
#   emphasized: "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"
#   scheduled: "[" [prompt ":"] prompt ":" NUMBER "]"      (spaces allowed around NUMBER)
#   alternate: "[" prompt ("|" [prompt])+ "]"
#   plain: characters other than \ [ ] ( ) : |, or a backslash and any character
# A prompt this does not read (a "|" outside brackets) is used as it is for every step.

_NUMBER = re.compile(r"\s*([+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)\s*\]")


MAX_NESTING = 100  # bracket levels a prompt may nest (the parser recurses once per level)


class _NoParse(Exception):
    """The text at this place is not what the grammar reads there."""


def _number(text: str, what: str) -> float:
    """A number written in the prompt, refused by name when it does not read or is not finite."""
    try:
        value = float(text)
    except ValueError:
        raise NodeInputError("text", f"{what} {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise NodeInputError("text", f"{what} {text.strip()!r} is too large (it must be a finite number)")
    return value


@dataclass
class _Scheduled:
    before: list | None
    after: list
    when: str  # the number as written: "." in it makes it a fraction of the steps
    step: int = 0  # the last step showing `before` (set by schedule_steps)


@dataclass
class _Alternate:
    options: list


def _plain(text: str, i: int) -> int:
    """The end of the plain run starting at i."""
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            i += 2
        elif text[i] in "\\[]():|":
            break
        else:
            i += 1
    return i


def _bracket_partners(text: str) -> dict[int, int]:
    """Each "(" / "[" that has a closing bracket of its kind -> that bracket's position, matched as
    nesting goes (a closer of the other kind ends the opener below it unmatched). An opener without
    one opens nothing the grammar reads (a construct read closes at its partner), so it is text."""
    partners, stack, i = {}, [], 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char in "([":
            stack.append(i)
        elif char in ")]" and stack:
            opener = stack.pop()
            if text[opener] + char in ("()", "[]"):
                partners[opener] = i
        i += 1
    return partners


class _Parser:
    """A1111's grammar read once: brackets without a partner are text at once, and a construct
    found not to close is remembered, so each is tried once (no re-reading the rest of the text)."""

    def __init__(self, text: str):
        self.text = text
        self.partners = _bracket_partners(text)
        self.failed: set[int] = set()
        self.depth = 0

    def construct(self, i: int) -> tuple[object, int]:
        """The bracketed construct opening at i (its partner is known)."""
        if i in self.failed or i not in self.partners:
            raise _NoParse
        self.depth += 1
        if self.depth > MAX_NESTING:  # the reading recurses once per level
            raise NodeInputError("text", f"brackets nest more than {MAX_NESTING} levels deep")
        try:
            return (self._round if self.text[i] == "(" else self._square)(i)
        except _NoParse:
            self.failed.add(i)
            raise
        finally:
            self.depth -= 1

    def prompt(self, i: int) -> tuple[list, int]:
        """Nested prompt items from i up to (not past) a "]", ")", ":" or "|"."""
        text, items = self.text, []
        while i < len(text):
            end = _plain(text, i)
            if end > i:
                items.append(text[i:end])
                i = end
            elif text[i] in "([":
                item, i = self.construct(i)
                items.append(item)
            elif text[i] == "\\":  # a lone backslash at the very end
                raise _NoParse
            else:
                break
        return items, i

    def _round(self, i: int) -> tuple[list, int]:
        """ "(" prompt ")" or "(" prompt ":" prompt ")", kept as text (weights are read later)."""
        text = self.text
        inner, i = self.prompt(i + 1)
        out = ["(", *inner]
        if i < len(text) and text[i] == ":":
            weight, i = self.prompt(i + 1)
            out += [":", *weight]
        if i >= len(text) or text[i] != ")":
            raise _NoParse
        return out + [")"], i + 1

    def _square(self, i: int) -> tuple[object, int]:
        text = self.text
        first, i = self.prompt(i + 1)
        if i >= len(text):
            raise _NoParse
        if text[i] == "]":
            return ["[", *first, "]"], i + 1
        if text[i] == "|":
            options = [first]
            while i < len(text) and text[i] == "|":
                option, i = self.prompt(i + 1)
                options.append(option)
            if i >= len(text) or text[i] != "]":
                raise _NoParse
            return _Alternate(options), i + 1
        if text[i] != ":":
            raise _NoParse
        number = _NUMBER.match(text, i + 1)
        if number:  # [to:when]
            return _Scheduled(None, first, number.group(1)), number.end()
        second, i = self.prompt(i + 1)
        if i < len(text) and text[i] == ":":
            number = _NUMBER.match(text, i + 1)
            if number:  # [from:to:when]
                return _Scheduled(first, second, number.group(1)), number.end()
        raise _NoParse


def parse_schedule(text: str) -> list | None:
    """The prompt's items as A1111's grammar reads it; None where the grammar does not read it.
    At the top level a bracket or colon that opens nothing readable is kept as text."""
    parser, items, i = _Parser(text), [], 0
    while i < len(text):
        end = _plain(text, i)
        if end > i:
            items.append(text[i:end])
            i = end
        elif text[i] in "([":
            try:
                item, i = parser.construct(i)
                items.append(item)
            except _NoParse:  # the construct opening here does not close: its opener is text
                items.append(text[i])
                i += 1
        elif text[i] == "|":
            return None
        else:  # a stray ] ) or :, or a lone backslash at the end
            items.append(text[i])
            i += 1
    return items


def _walk(items, visit) -> None:
    for item in items:
        if isinstance(item, _Scheduled):
            visit(item)
            _walk(item.before or [], visit)
            _walk(item.after, visit)
        elif isinstance(item, _Alternate):
            visit(item)
            for option in item.options:
                _walk(option, visit)
        elif isinstance(item, list):
            _walk(item, visit)


def schedule_steps(items, steps: int) -> list[int]:
    """The steps at which the prompt changes, the last one `steps` (A1111's collect_steps): a
    [from:to:when] ends `from` at step `when` (with a "." a fraction of the steps, else a step
    number), cut to whole steps; an alternation changes at every step."""
    ends, alternates = {steps}, []

    def visit(item):
        if isinstance(item, _Alternate):
            alternates.append(item)  # every step, added once below (not once per alternation)
            return
        value = _number(item.when, "a prompt editing step")
        if "." in item.when:
            value = value * steps
        item.step = max(0, min(steps, int(value)))
        if item.step >= 1:
            ends.add(item.step)

    _walk(items, visit)
    if alternates:
        ends.update(range(1, steps + 1))
    return sorted(ends)


def _text_at(items, step: int) -> str:
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, _Scheduled):
            out.append(_text_at(item.before or [], step) if step <= item.step else _text_at(item.after, step))
        elif isinstance(item, _Alternate):
            out.append(_text_at(item.options[(step - 1) % len(item.options)], step))
        else:
            out.append(_text_at(item, step))
    return "".join(out)


def prompt_schedule(text: str, steps: int, max_entries: int | None = None) -> list[tuple[int, str]]:
    """[(last step, prompt text)] for a prompt with editing / alternation, as A1111's
    get_learned_conditioning_prompt_schedules: "a [b:3]" at 10 steps is [(3, "a "), (10, "a b")].
    More than max_entries stretches, or texts that would hold more than MAX_SCHEDULE_CHARS
    characters in all, are refused before any text is made."""
    if "[" not in text:  # no editing or alternation (emphasis alone may nest deeper than the cap)
        return [(steps, text)]
    items = parse_schedule(text)
    if items is None:
        return [(steps, text)]
    ends = schedule_steps(items, steps)
    if max_entries is not None and len(ends) > max_entries:
        raise NodeInputError("text", f"the prompt's editing / alternation over {steps} steps makes {len(ends)} "
                                     f"conditioning entries, more than {max_entries}: use fewer steps or alternations")
    if len(ends) * len(text) > MAX_SCHEDULE_CHARS:  # each entry's text is at most about the prompt's length
        raise NodeInputError("text", f"the prompt's editing / alternation over {steps} steps makes {len(ends)} texts "
                                     f"of up to {len(text)} characters, more than {MAX_SCHEDULE_CHARS} in all: "
                                     f"shorten the prompt or use fewer steps or alternations")
    out = []
    for end in ends:
        check_interrupted()
        out.append((end, _text_at(items, end)))
    return out


_AND = re.compile(r"\bAND\b")
_WEIGHT = re.compile(r"[-+]?(?:\d+\.?|\d*\.\d+)")


def split_and(text: str) -> list[tuple[str, float]]:
    """A1111's multi-conditioning: the prompt cut at each AND, each part's weight written after a
    colon at its end ("a cat :1.2 AND a dog"), 1 when none."""
    parts = []
    for part in _AND.split(text):
        body = part.rstrip()
        head, colon, tail = body.rpartition(":")
        if colon and _WEIGHT.fullmatch(tail.strip()):
            parts.append((head.rstrip(), _number(tail, "an AND weight")))
        else:
            parts.append((body, 1.0))
    return parts


# -- emphasis (A1111's parse_prompt_attention) ----------------------------------------------------

_ATTENTION = re.compile(r"\\\(|\\\)|\\\[|\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:")
_BREAK = re.compile(r"\bBREAK\b")  # the pieces' spaces next to it are stripped after
_LEADING_NON_WORD = re.compile(r"^\W+", re.S)
_SPACES = re.compile(r"\s+", re.S)


def parse_attention(text: str, parser: str = "A1111") -> list[tuple[str, float]]:
    """[(text, weight)] as A1111's parse_prompt_attention for the pack's parser: (a) 1.1 times,
    [a] 1/1.1 times, (a:w) w times, nested brackets multiply, an unclosed bracket reaches the end,
    \\( \\) \\[ \\] \\\\ are literal; BREAK gives ("BREAK", -1). "full" also drops each part's leading
    non-word characters, squeezes its spaces and joins parts of one weight with a space (A1111
    joins them as they are); "fixed attention" keeps the whole text at weight 1."""
    if parser == "fixed attention":
        return [(text, 1.0)]
    separator = ""
    if parser != "A1111":
        text = text.replace("\\n", " ")  # the two characters \ n, as the pack does
        separator = " "
    res, rounds, squares = [], [], []

    def multiply(start, factor):
        for p in range(start, len(res)):
            res[p][1] *= factor

    for match in _ATTENTION.finditer(text):
        part, weight = match.group(0), match.group(1)
        if part.startswith("\\"):
            res.append([part[1:], 1.0])
        elif part == "(":
            rounds.append(len(res))
        elif part == "[":
            squares.append(len(res))
        elif weight is not None and rounds:
            multiply(rounds.pop(), _number(weight, "an emphasis weight"))
        elif part == ")" and rounds:
            multiply(rounds.pop(), ROUND)
        elif part == "]" and squares:
            multiply(squares.pop(), SQUARE)
        else:
            pieces = _BREAK.split(part)
            for k, piece in enumerate(pieces):
                if k > 0:
                    res.append(["BREAK", BREAK_MARK])
                    piece = piece.lstrip()
                if k < len(pieces) - 1:
                    piece = piece.rstrip()
                if parser == "full":
                    piece = _SPACES.sub(" ", _LEADING_NON_WORD.sub("", piece)).strip()
                    if not piece:
                        continue
                res.append([piece, 1.0])
    for start in rounds:
        multiply(start, ROUND)
    for start in squares:
        multiply(start, SQUARE)
    if not res:
        res = [["", 1.0]]
    for piece, weight in res:
        if weight != BREAK_MARK and not (math.isfinite(weight) and abs(weight) <= MAX_WEIGHT):
            raise NodeInputError("text", f"{piece[:40]!r} is weighted {weight:g} by its nested brackets, past "
                                         f"{MAX_WEIGHT:g}: the conditioning would not be finite")
    merged = [res[0]]
    for piece, weight in res[1:]:  # runs of one weight merge (two BREAKs in a row too: then text)
        if merged[-1][1] == weight:
            merged[-1][0] += separator + piece
        else:
            merged.append([piece, weight])
    return [(piece, weight) for piece, weight in merged]


# -- A1111's chunks ---------------------------------------------------------------------------------

def _comfy_escaped(text: str) -> str:
    """Text for graphflow's tokenizer, which reads ComfyUI's brackets: every bracket literal."""
    return text.replace("(", "\\(").replace(")", "\\)")


def _token_units(clip, tower, text: str) -> list[list]:
    """The text's tokens on one tower as units: a plain token [(id, None)], an embedding
    (embedding:name) all its vectors [(0, vector), ...] (they stay in one chunk)."""
    from graphflow.models.tokenizer import PLACEHOLDER

    windows = clip.with_towers([tower]).tokenize(_comfy_escaped(text))[tower.name]
    units, last_word = [], None
    for k, (ids, words) in enumerate(zip(windows.ids, windows.words)):
        for j, (token, word) in enumerate(zip(ids, words)):
            if word == 0:
                continue
            vector = windows.vectors.get((k, j))
            if vector is not None and token == PLACEHOLDER and units and units[-1][0][1] is not None \
                    and word == last_word:
                units[-1].append((token, vector))
            else:
                units.append([(token, vector)])
            last_word = word
    return units


def a1111_chunks(clip, tower, parts: list[tuple[str, float]], comma: int,
                 backtrack: int = COMMA_BACKTRACK) -> list[tuple[list, list]]:
    """A1111's tokenize_line: the weighted parts' tokens in chunks of 75 [(tokens, weights)], a
    token being (id, embedding vector or None); BREAK starts a chunk; a chunk that fills up within
    `backtrack` tokens after a comma moves what follows the comma to the next chunk; an embedding
    that does not fit starts one."""
    chunks, tokens, weights, last_comma = [], [], [], -1

    def next_chunk():
        nonlocal tokens, weights, last_comma
        chunks.append((tokens, weights))
        tokens, weights, last_comma = [], [], -1

    for text, weight in parts:
        if text == "BREAK" and weight == BREAK_MARK:
            next_chunk()
            continue
        for unit in _token_units(clip, tower, text):
            if len(unit) == 1 and unit[0][1] is None:
                if unit[0][0] == comma:
                    last_comma = len(tokens)
                elif backtrack and len(tokens) == CHUNK and last_comma != -1 and len(tokens) - last_comma <= backtrack:
                    cut = last_comma + 1
                    moved, moved_weights = tokens[cut:], weights[cut:]
                    tokens, weights = tokens[:cut], weights[:cut]
                    next_chunk()
                    tokens, weights = moved, moved_weights
                if len(tokens) == CHUNK:
                    next_chunk()
                tokens.append(unit[0])
                weights.append(weight)
                continue
            if len(tokens) == CHUNK:
                next_chunk()
            if len(tokens) + len(unit) > CHUNK:
                next_chunk()
            tokens += unit[:CHUNK]
            weights += [weight] * min(len(unit), CHUNK)
    if tokens or not chunks:
        next_chunk()
    return chunks


def _chunk_windows(chunks, pad_token: int):
    """Chunks -> graphflow TokenWindows: start token, the chunk, end token, then the pad token
    (A1111 pads with the end token and the pack's engine writes the pad token after the first)."""
    from graphflow.models.tokenizer import BOS, EOS, TokenWindows

    ids, vectors, words, multipliers = [], {}, [], []
    for k, (tokens, weights) in enumerate(chunks):
        row = [BOS] + [t for t, _ in tokens] + [EOS]
        for j, (_, vector) in enumerate(tokens, start=1):
            if vector is not None:
                vectors[(k, j)] = vector
        padding = CHUNK + 2 - len(row)
        ids.append(row + [pad_token] * padding)
        multipliers.append([1.0] + list(weights) + [1.0] * (padding + 1))
        words.append([0] + [1] * len(tokens) + [0] * (padding + 1))
    return TokenWindows(ids, [[1.0] * len(r) for r in ids], vectors, words), multipliers


def emphasized(cond, multipliers, mean_normalization: bool):
    """A1111's emphasis on a [1, 77 k, D] embedding, window by window: each token's vector times
    its weight; with mean_normalization the window is then scaled back to its old mean ("Original";
    else "No norm"). Weights so large that the result is not finite (about 1e36 and up, depending
    on the embedding) are refused naming text, where A1111 gives NaN conditioning."""
    import torch

    windows = cond.reshape(-1, CHUNK + 2, cond.shape[-1])
    scale = torch.tensor(multipliers, dtype=cond.dtype, device=cond.device)[..., None]
    out = []
    for window, factor in zip(windows, scale):
        weighted = window * factor
        if mean_normalization:
            weighted = weighted * (window.mean() / weighted.mean())
        out.append(weighted)
    result = torch.cat(out).reshape(1, -1, cond.shape[-1])
    if not bool(torch.isfinite(result).all()):
        largest = max(abs(w) for row in multipliers for w in row)
        raise NodeInputError("text", f"the prompt's weights (up to {largest:g}) make the conditioning overflow "
                                     f"(not finite): use smaller weights or fewer brackets")
    return result


def _towers_encode(clip, tower_windows: dict, mean_normalization: bool):
    """(cond, pooled) of each tower's (TokenWindows, multipliers), emphasized, joined along the
    features as ComfyUI's SDXL encoder joins them (cut to the shorter); pooled: the last tower's."""
    import torch

    conds, pooled = [], None
    for tower in clip.towers:
        windows, multipliers = tower_windows[tower.name]
        cond, pooled = clip.with_towers([tower]).encode_tokens({tower.name: windows})
        conds.append(emphasized(cond, multipliers, mean_normalization))
    length = min(c.shape[1] for c in conds)
    return torch.cat([c[:, :length] for c in conds], dim=-1), pooled


def _padded(clip, tower_windows: dict) -> dict:
    """Each tower's windows with empty ones added up to the longest count (ComfyUI's SDXL node)."""
    from graphflow.models.tokenizer import BOS, EOS, TokenWindows

    count = max(len(w.ids) for w, _ in tower_windows.values())
    out = {}
    for name, (windows, multipliers) in tower_windows.items():
        extra = count - len(windows.ids)
        empty = [BOS, EOS] + [clip.tower(name).spec.pad_token] * CHUNK
        out[name] = (TokenWindows(windows.ids + [empty] * extra, windows.weights + [[1.0] * (CHUNK + 2)] * extra,
                                  windows.vectors, windows.words + [[0] * (CHUNK + 2)] * extra),
                     multipliers + [[1.0] * (CHUNK + 2)] * extra)
    return out


def a1111_encode(clip, texts: dict[str, str], parser: str, mean_normalization: bool):
    """(cond, pooled) of A1111's engine: texts {tower name: prompt} parsed by `parser`, chunked,
    encoded chunk by chunk and emphasized."""
    from graphflow.models.tokenizer import encode_text

    comma = encode_text(",")[0]
    tower_windows = {}
    for tower in clip.towers:
        parts = parse_attention(texts[tower.name], parser)
        tower_windows[tower.name] = _chunk_windows(a1111_chunks(clip, tower, parts, comma), tower.spec.pad_token)
    return _towers_encode(clip, _padded(clip, tower_windows), mean_normalization)


def comfy_plus_plus_encode(clip, texts: dict[str, str], mean_normalization: bool):
    """(cond, pooled) of the pack's comfy++: ComfyUI's tokens and weights ((word:1.2), 77-token
    windows) with A1111's emphasis in place of ComfyUI's weighting."""
    from graphflow.models.tokenizer import TokenWindows

    tower_windows = {}
    for tower in clip.towers:
        windows = clip.with_towers([tower]).tokenize(texts[tower.name])[tower.name]
        plain = TokenWindows(windows.ids, [[1.0] * len(w) for w in windows.ids], windows.vectors, windows.words)
        tower_windows[tower.name] = (plain, windows.weights)
    return _towers_encode(clip, _padded(clip, tower_windows), mean_normalization)


# -- the sampler's step count ------------------------------------------------------------------------

def _links_to(nodes: dict, node_id: str, target: str) -> bool:
    """Whether node_id takes target's output, directly or through other nodes (walked with a list:
    a chain of any length)."""
    seen, pending = set(), [node_id]
    while pending:
        current = pending.pop()
        if current in seen or current not in nodes:
            continue
        seen.add(current)
        for value in (nodes[current].get("inputs") or {}).values():
            if isinstance(value, list) and len(value) == 2:
                if str(value[0]) == target:
                    return True
                pending.append(str(value[0]))
    return False


def _input_value(nodes: dict, node_id: str, name: str):
    """A node's input `name` followed through links as the pack's prompt handler follows them: at a
    linked node its input of that name, else the one at the link's output index (modulo its inputs).
    A link naming its output (not an index) gives None: the pack's handler reads indices only."""
    value = (nodes.get(node_id, {}).get("inputs") or {}).get(name)
    for _ in range(len(nodes) + 1):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        if not (isinstance(value, list) and len(value) == 2):
            return None
        inputs = nodes.get(str(value[0]), {}).get("inputs") or {}
        if name in inputs:
            value = inputs[name]
        elif inputs and isinstance(value[1], int) and not isinstance(value[1], bool):
            keys = list(inputs)
            value = inputs[keys[value[1] % len(keys)]]
        else:
            return None
    return None


def sampler_steps(workflow: dict, node_id: str) -> int | None:
    """The step count of the first sampler node (its type naming a sampler) that this node feeds,
    directly or through other nodes: its steps input, else its sigmas' node's steps (the pack's
    prompt handler); 1 to 10000. None when there is none, or the workflow is not one this reads
    (then smZ_steps counts: a guess gone wrong never fails the run)."""
    try:
        return _sampler_steps(workflow, node_id)
    except Exception:  # noqa: BLE001 - any odd workflow shape means "no sampler found"
        return None


def _sampler_steps(workflow: dict, node_id: str) -> int | None:
    nodes = workflow.get("nodes") if isinstance(workflow, dict) else None
    if not isinstance(nodes, dict) or node_id is None:
        return None
    for sampler_id, node in nodes.items():
        kind = str(node.get("type", ""))
        if "sampler" not in kind.lower() or not _links_to(nodes, str(sampler_id), str(node_id)):
            continue
        inputs = node.get("inputs") or {}
        if "steps" in inputs:
            value = _input_value(nodes, str(sampler_id), "steps")
        else:  # the steps of the node giving its sigmas
            sigmas = inputs.get("sigmas")
            value = _input_value(nodes, str(sigmas[0]), "steps") if isinstance(sigmas, list) else None
        if value is not None:
            return min(max(1, int(value)), PACK_MAX_STEPS)
    return None


# -- the nodes ------------------------------------------------------------------------------------------

def _widgets(values):
    """An older save's widgets (use_CFGDenoiser after use_old_emphasis_implementation, a boolean
    where today's layout has ascore) read into today's layout."""
    if isinstance(values, list) and len(values) > 6 and isinstance(values[6], bool):
        return values[:5] + values[6:]
    return values


class CLIPTextEncodePlusPlus(Node):
    """Encode a prompt as Automatic1111's web UI does (the pack's aim: the same embeddings).
    parser: comfy is CLIP Text Encode; comfy++ reads ComfyUI's syntax ((word:1.2), \\( escapes)
    but weights as A1111: the embedding times the weights; A1111 reads A1111's syntax: (word) 1.1
    times, [word] 1/1.1 times, (word:1.3), nested brackets multiply, \\( \\[ literal, BREAK starts a
    new 75-token chunk, a chunk filling up within 20 tokens after a comma moves the rest of the
    phrase to the next; full is A1111 that also drops leading punctuation from each part and joins
    parts with spaces; fixed attention takes the text as it is (brackets are text, weights 1).
    mean_normalization (not comfy): after weighting, each 77-token chunk is scaled back to its
    unweighted mean (A1111's "Original" emphasis; off: "No norm").
    multi_conditioning: "a cat AND a dog :0.5" makes one conditioning entry per AND part; with A1111 /
    full / fixed attention the number after a part's colon is its weight, given to the entry as its
    strength (ComfyUI's average of the entries; the pack's own CFG adds each part's difference
    times its weight over the part count instead, which is the same when the weights are 1);
    comfy / comfy++ split the text only. A weight of 0 or below is refused (an average cannot take it).
    Prompt editing (A1111 / full / fixed attention): [from:to:when] shows `from` until step `when`
    then `to`; [to:when] and [from::when] add or drop text; `when` with a "." is a fraction of the
    steps, without one a step number; [a|b] alternates every step. The step count is the sampler's
    that the conditioning reaches (its steps, or its sigmas' scheduler's), else smZ_steps; each
    stretch of steps becomes an entry used at those steps of the sampler's schedule (a sampler
    that evaluates between steps uses the nearest step's), as the pack switches them: KSampler
    Advanced's partial runs count steps of its whole schedule; a custom sampler counts the sigmas it
    is given (a SplitSigmas half its own steps: the whole schedule is not known there); within a
    ConditioningSetTimestepRange an entry is used only where both allow. A prompt whose editing
    would make more than 1000 entries, or whose different texts make more than 500 75-token chunks
    in all, is refused; brackets nested past 100 levels and numbers that do not read or are not
    finite are refused. with_SDXL (SDXL encoders): text_g
    goes to CLIP-G and text_l to CLIP-L (no prompt editing there, as the pack) with the size
    conditioning width ... target_height as CLIP Text Encode SDXL; on the SDXL refiner the text
    with ascore (aesthetic score) and width/height.
    Left out: the compel parser (the compel library's syntax) and use_old_emphasis_implementation
    (A1111's old tokenizer) are refused by name; parsers other than comfy need a CLIP text encoder
    (SD1, SD2, SDXL): the pack's T5 engine (FLUX, SD3) is not built here. Embeddings are written
    embedding:name. UI saves of the pack's versions with a use_CFGDenoiser widget (after
    use_old_emphasis_implementation) are read too; that switch of the pack's own sampling is
    dropped."""
    category = "conditioning"
    text: str = Text("", multiline=True)
    clip: CLIP
    parser: str = Choice(PARSERS, "comfy")
    mean_normalization: bool = Bool(True)
    multi_conditioning: bool = Bool(True)
    use_old_emphasis_implementation: bool = Bool(False)
    with_SDXL: bool = Bool(False)
    ascore: float = Float(6.0, min=0.0, max=1000.0, step=0.01)
    width: int = Int(1024, min=0, max=MAX_SIZE)
    height: int = Int(1024, min=0, max=MAX_SIZE)
    crop_w: int = Int(0, min=0, max=MAX_SIZE)
    crop_h: int = Int(0, min=0, max=MAX_SIZE)
    target_width: int = Int(1024, min=0, max=MAX_SIZE)
    target_height: int = Int(1024, min=0, max=MAX_SIZE)
    text_g: str = Text("", multiline=True)
    text_l: str = Text("", multiline=True)
    smZ_steps: int = Int(1, min=1, max=PACK_MAX_STEPS)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("smZ CLIPTextEncode",), optional=("smZ_steps",), widgets=_widgets)

    @classmethod
    def fingerprint(cls, text="", parser="comfy", **_):
        """The step count of the sampler fed, where the prompt may edit or alternate (its result
        depends on it): a run with other steps encodes again."""
        if parser in ("comfy", "comfy++") or "[" not in str(text):
            return None
        return sampler_steps(current_workflow(), current_node_id())

    def _checked(self) -> None:
        if self.clip is None:
            raise NodeInputError("clip", "no text encoder: the checkpoint has none; load one separately")
        if self.parser not in PARSERS:
            raise NodeInputError("parser", f"{self.parser!r} is not one of {', '.join(PARSERS)}")
        if self.parser == "compel":
            raise NodeInputError("parser", "the compel parser (the compel library's prompt syntax) is not built "
                                           "here: use A1111 or comfy++")
        if self.use_old_emphasis_implementation and self.parser not in ("comfy", "comfy++"):
            raise NodeInputError("use_old_emphasis_implementation", "A1111's old emphasis implementation is not "
                                                                    "built here: switch it off")
        if self.parser != "comfy" and not _is_clip(self.clip):
            raise NodeInputError("parser", f"{self.parser} needs a CLIP text encoder (SD1, SD2, SDXL); use comfy")

    def _arch(self) -> str:
        return getattr(self.clip, "arch", "")

    def _sdxl_sizes(self) -> dict:
        if self.with_SDXL and self._arch() == "sdxl":
            return {"width": self.width, "height": self.height, "crop_w": self.crop_w, "crop_h": self.crop_h,
                    "target_width": self.target_width, "target_height": self.target_height}
        if self.with_SDXL and self._arch() == "sdxl_refiner":
            return {"aesthetic_score": self.ascore, "width": self.width, "height": self.height}
        return {}

    def _steps(self) -> int:
        found = sampler_steps(current_workflow(), current_node_id())
        return found if found is not None else max(int(self.smZ_steps), 1)

    def run(self):
        self._checked()
        if self.parser == "comfy":
            return self._comfy()
        if self.parser == "comfy++":
            return self._comfy_plus_plus()
        return self._a1111()

    def _comfy(self):
        if self.with_SDXL and self._arch() == "sdxl":
            return _core(CLIPEncodeSDXL, clip=self.clip, text_g=self.text_g, text_l=self.text_l,
                         **self._sdxl_sizes())
        if self.with_SDXL and self._arch() == "sdxl_refiner":
            return _core(CLIPEncodeSDXLRefiner, clip=self.clip, text=self.text, ascore=self.ascore,
                         width=self.width, height=self.height)
        texts = _AND.split(self.text) if self.multi_conditioning else [self.text]
        return [entry for text in texts for entry in _core(CLIPEncode, clip=self.clip, text=text)]

    def _comfy_plus_plus(self):
        sizes = self._sdxl_sizes()
        names = [t.name for t in self.clip.towers]
        if self.with_SDXL and self._arch() == "sdxl":
            prompts = [{"clip_g": self.text_g, "clip_l": self.text_l}]
        else:
            parts = _AND.split(self.text) if self.multi_conditioning and not sizes else [self.text]
            prompts = [{name: part for name in names} for part in parts]
        out = []
        for texts in prompts:
            def encode(clip, texts=texts):
                cond, pooled = comfy_plus_plus_encode(clip, texts, self.mean_normalization)
                return cond, {**({} if pooled is None else {"pooled_output": pooled}), **sizes}

            out += encoded(self.clip, encode)
        return out

    def _a1111(self):
        sizes = self._sdxl_sizes()
        names = [t.name for t in self.clip.towers]

        def encode_texts(texts: dict, extra: dict) -> list:
            def encode(clip):
                cond, pooled = a1111_encode(clip, texts, self.parser, self.mean_normalization)
                return cond, {**({} if pooled is None else {"pooled_output": pooled}), **extra}

            return encoded(self.clip, encode)

        if self.with_SDXL and self._arch() == "sdxl":  # the pack skips prompt editing here
            return encode_texts({"clip_g": self.text_g, "clip_l": self.text_l}, sizes)
        parts = split_and(self.text) if self.multi_conditioning else [(self.text, 1.0)]
        for _, weight in parts:
            if len(parts) > 1 and weight <= 0:
                raise NodeInputError("text", f"an AND part's weight must be above 0 here (got {weight:g}): the "
                                             f"parts are averaged by weight")
        steps = self._steps()
        out, cache, chunks = [], {}, 0
        for body, weight in parts:
            # each entry is a model input at sampling: counted before any step's text is made
            schedule = prompt_schedule(body, steps, max_entries=MAX_SCHEDULE_ENTRIES - len(out))
            start = 0
            for end, text in schedule:
                extra = dict(sizes)
                if len(schedule) > 1:
                    extra["step_range"] = (start / steps, end / steps)
                if len(parts) > 1:
                    extra["strength"] = weight
                if text not in cache:
                    cache[text] = encode_texts({name: text for name in names}, {})
                    chunks += cache[text][0][0].shape[-2] // (CHUNK + 2)
                    if chunks > MAX_SCHEDULE_CHUNKS and len(cache) > 1:
                        raise NodeInputError("text", f"the prompt's editing makes {len(cache)} different texts "
                                                     f"of more than {MAX_SCHEDULE_CHUNKS} 75-token chunks in all "
                                                     f"(each an encoder pass kept for sampling): use fewer "
                                                     f"edits or a shorter prompt")
                out += [(cond, {**options, **extra}) for cond, options in cache[text]]
                start = end
        return out


# Settings (smZ): the options, in the pack's order. Its headings (named by 1 to 6 Hangul fillers)
# and its info_* descriptions are text widgets of the editor only.
HEADING = "\u3164"
SETTINGS_DEFAULTS = {  # our input name -> (the pack's name, default)
    "prompt_word_wrap_length_limit": ("Prompt word wrap length limit", 20),
    "enable_emphasis": ("enable_emphasis", True),
    "RNG": ("RNG", "cpu"),
    "disable_nan_check": ("disable_nan_check", True),
    "eta": ("eta", 1.0),
    "s_churn": ("s_churn", 0.0),
    "s_tmin": ("s_tmin", 0.0),
    "s_tmax": ("s_tmax", 0.0),
    "s_noise": ("s_noise", 1.0),
    "ENSD": ("ENSD", 0),
    "skip_early_cond": ("skip_early_cond", 0.0),
    "sgm_noise_multiplier": ("sgm_noise_multiplier", True),
    "upcast_sampling": ("upcast_sampling", True),
    "NGMS": ("NGMS", 0.0),
    "NGMS_all_steps": ("NGMS all steps", False),
    "pad_cond_uncond": ("pad_cond_uncond", False),
    "batch_cond_uncond": ("batch_cond_uncond", True),
    "use_previous_prompt_editing_timelines": ("Use previous prompt editing timelines", True),
    "use_CFGDenoiser": ("Use CFGDenoiser", False),
    "debug": ("debug", False),
}
# what graphflow cannot do as the pack does: refused when not at the default
UNSUPPORTED = {
    "RNG": "only the CPU noise (\"cpu\") is built here: the GPU's and NVIDIA's Philox generator (\"nv\") are not",
    "ENSD": "the eta noise seed delta is not built here",
    "skip_early_cond": "skipping the negative prompt early in sampling is not built here",
    "NGMS": "negative guidance minimum sigma is not built here",
    "NGMS_all_steps": "negative guidance minimum sigma is not built here",
    "pad_cond_uncond": "padding prompt and negative prompt to one length is not built here",
    "use_CFGDenoiser": "the web UI's CFG denoiser is not built here",
    "s_churn": "graphflow's samplers take no churn from the model",
    "s_tmin": "graphflow's samplers take no churn from the model",
    "s_tmax": "graphflow's samplers take no churn from the model",
}


def _settings_widgets(values):
    """A save from before the pack added skip_early_cond and NGMS all steps (with their info texts):
    their defaults put in at their places."""
    if isinstance(values, list) and len(values) == len(SETTINGS_ORDER) - 4:
        values = list(values)
        at = SETTINGS_ORDER.index("info_skip_early_cond")
        values[at:at] = ["", 0.0]
        at = SETTINGS_ORDER.index("info_NGMS_all_steps")
        values[at:at] = ["", False]
    return values


class SettingsSmZ(Node):
    """The pack's settings put on the MODEL passed through (anything else passes as it is).
    On a MODEL: eta and s_noise reach the samplers that take them (the ancestral and SDE ones,
    through KSampler or the custom samplers), as the pack passes them to ComfyUI's sampler
    functions; sgm_noise_multiplier off starts from noise scaled by the first sigma alone (the
    pack's max_denoise off). A CLIP passes unchanged: enable_emphasis changes nothing, as in the pack
    (its encoder, classic_engine.py, reads emphasis whatever the setting says). Refused by name when set away from the pack's default:
    RNG gpu / nv, ENSD, skip_early_cond, NGMS, NGMS all steps, pad_cond_uncond, Use CFGDenoiser and
    s_churn / s_tmin / s_tmax (graphflow's samplers have no churn). Prompt word wrap length limit
    and Use previous prompt editing timelines change nothing, as in the pack (its encoder wraps at
    20 tokens and uses today's timelines whatever they say); disable_nan_check, upcast_sampling,
    batch_cond_uncond and debug change no result (graphflow checks, casts and batches its own way).
    All of these are taken as they are. RNG cpu (the default) is graphflow's own noise: the
    starting noise from the seed on the CPU, as ComfyUI's (the pack's hook gives the same there). The headings and info_* texts are the editor's
    labels; extra is the editor's display state. UI saves of the pack's versions before
    skip_early_cond and NGMS all steps are read too (those at their defaults)."""
    category = "advanced"
    value: ANY
    extra: str = Text('{"show_headings":true,"show_descriptions":false,"mode":"*"}', multiline=True)
    heading_1: str = Text("Stable Diffusion")
    info_comma_padding_backtrack: str = Text("", multiline=True)
    prompt_word_wrap_length_limit: int = Int(20, min=0, max=74)
    enable_emphasis: bool = Bool(True)
    info_RNG: str = Text("", multiline=True)
    RNG: str = Choice(("cpu", "gpu", "nv"), "cpu")
    heading_2: str = Text("Compute Settings")
    info_disable_nan_check: str = Text("", multiline=True)
    disable_nan_check: bool = Bool(True)
    heading_3: str = Text("Sampler parameters")
    info_eta_ancestral: str = Text("", multiline=True)
    eta: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    info_s_churn: str = Text("", multiline=True)
    s_churn: float = Float(0.0, min=0.0, max=100.0, step=0.01)
    info_s_tmin: str = Text("", multiline=True)
    s_tmin: float = Float(0.0, min=0.0, max=10.0, step=0.01)
    info_s_tmax: str = Text("", multiline=True)
    s_tmax: float = Float(0.0, min=0.0, max=999.0, step=0.01)
    info_s_noise: str = Text("", multiline=True)
    s_noise: float = Float(1.0, min=0.0, max=1.1, step=0.001)
    info_eta_noise_seed_delta: str = Text("", multiline=True)
    ENSD: int = Int(0, min=0, max=0xFFFFFFFFFFFFFFFF)
    info_skip_early_cond: str = Text("", multiline=True)
    skip_early_cond: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    info_sgm_noise_multiplier: str = Text("", multiline=True)
    sgm_noise_multiplier: bool = Bool(True)
    info_upcast_sampling: str = Text("", multiline=True)
    upcast_sampling: bool = Bool(True)
    heading_4: str = Text("Optimizations")
    info_NGMS: str = Text("", multiline=True)
    NGMS: float = Float(0.0, min=0.0, max=15.0, step=0.01)
    info_NGMS_all_steps: str = Text("", multiline=True)
    NGMS_all_steps: bool = Bool(False)
    info_pad_cond_uncond: str = Text("", multiline=True)
    pad_cond_uncond: bool = Bool(False)
    info_batch_cond_uncond: str = Text("", multiline=True)
    batch_cond_uncond: bool = Bool(True)
    heading_5: str = Text("Compatibility")
    info_use_prev_scheduling: str = Text("", multiline=True)
    use_previous_prompt_editing_timelines: bool = Bool(True)
    heading_6: str = Text("Experimental")
    info_use_CFGDenoiser: str = Text("", multiline=True)
    use_CFGDenoiser: bool = Bool(False)
    info_debug: str = Text("", multiline=True)
    debug: bool = Bool(False)
    outputs = {"*": ANY}
    comfy = ComfyAlias(("smZ Settings",), inputs={"*": "value", **{HEADING * k: f"heading_{k}" for k in range(1, 7)},
                                                  **{label: ours for ours, (label, _) in SETTINGS_DEFAULTS.items()
                                                     if label != ours}},
                       optional=("extra", *(f"heading_{k}" for k in range(1, 7)), *SETTINGS_DEFAULTS),
                       widgets=_settings_widgets)

    def run(self):
        for name, (label, default) in SETTINGS_DEFAULTS.items():
            value = getattr(self, name)
            if name in UNSUPPORTED and value != default:
                raise NodeInputError(name, f"{label} = {value!r}: {UNSUPPORTED[name]}; leave it at {default!r}")
        target = self.value
        if hasattr(target, "towers") and hasattr(target, "with_towers"):  # a CLIP: nothing the pack's encoder reads
            return target
        if hasattr(target, "unet") or hasattr(target, "options"):  # a MODEL
            from nodes.model_sampling import _with_options

            return _with_options(target, sampler_overrides={"eta": float(self.eta), "s_noise": float(self.s_noise)},
                                 max_denoise=bool(self.sgm_noise_multiplier))
        return target


SETTINGS_ORDER = [name for name in SettingsSmZ.input_specs if name != "value"]
