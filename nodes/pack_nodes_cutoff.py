"""BlenderNeko's ComfyUI_Cutoff built in under the pack's class names, inputs, defaults and outputs:
Cutoff Base Prompt (BNK_CutoffBasePrompt), Cutoff Set Regions (BNK_CutoffSetRegions), Cutoff Regions
To Conditioning (BNK_CutoffRegionsToConditioning) and its (ADV) variant
(BNK_CutoffRegionsToConditioning_ADV): all the pack's nodes. Read from the pack's cutoff.py at
ce5cc64043ca3b9f53c381a7f2563cb227e30521 (BlenderNeko/ComfyUI_Cutoff, one CLIP tower) and its later,
SDXL-era cutoff.py, the version users have, read in the fork lenkunz/ComfyUI_Cutoff at
3e27e4c75803a5cd4ef0dade4ba1f84441f742b6 (the upstream's later versions are not stored); the
pack's __init__.py at 95db47d9c72d14d56081449b488e80586d31dfc9 and its vendored adv_encode.py at
6c1b1248cbd336000ab1faf779ca603abd560904, which goes with the later cutoff.py. We follow the later
version; the prompt weighting is ComfyUI_ADV_CLIP_emb's (nodes/pack_nodes_adv_clip.py), which that
adv_encode.py is a copy of.

Cutoff keeps attribute words to their part of the prompt ("red hat, blue shirt" without the red
bleeding into the shirt): the prompt is encoded again with the words of each region's targets
replaced by a mask token, and the embeddings are mixed so that within a region only its own
targets' influence remains (see CutoffRegionsToConditioning's help for the formula).

A CLIPREGION is a ClipRegions: the text encoder, the base prompt's token windows per CLIP tower and
the regions set so far, each with its weight and, per tower, its region and target masks over the
prompt's token positions (1 where masked; a window's first and last position never are).

As the later pack: a region's and a target's tokens are matched without their trailing padding
(OpenCLIP's zeros) and end tokens; with no region set the conditioning is the base prompt's own
encoding; an empty region_text passes the CLIPREGION on; an empty mask_token masks with token 266
("+"); on SDXL the same masks mask both text encoders' tokens, each tower is encoded as ADV_CLIP
encodes it (the (ADV) node's weighting, or comfy) and mixed, the two concatenated, and the pooled
output is CLIP-G's of the unmasked prompt.

Where this differs from the later pack: it builds the masks from one tokenizer's tokens (CLIP-G's
on SDXL) and applies them to every tower; here each tower's masks come from its own tokens, which
are the same on SDXL (one vocabulary; only the padding differs, which no region covers). Its SD1
conditioning has no pooled output (None); here it is the encoder's, which SD1 does not read. It
reads only ComfyUI's 'l' and 'g' tokenizers, so SD2 (OpenCLIP-H) is our extension, masked by
token 266 too (the same vocabulary). A non-empty mask_token is looked up on SD1 through a
tokenizer ComfyUI's SD1 wrapper does not have (the pack fails there); here it is the text's first
token on every model. Blank region lines and empty target words (two spaces) are skipped, and a
target_text with none, a target or region line that gives no tokens, or a mask_token that gives no
token, is refused by name (the pack fails there on an index error). Limits the pack does not have:
a Base Prompt of more than MAX_CUTOFF_WINDOWS // 3 windows, a Set Regions whose lines would take
(2 + regions) x windows past MAX_CUTOFF_WINDOWS, and a conditioning whose encodings would run more
than MAX_CUTOFF_WINDOWS 77-token windows through a tower are refused, and the (ADV) node holds each
encoding to ADV_CLIP's MAX_WINDOW_PASSES."""

from __future__ import annotations

import re
from dataclasses import dataclass

from graphflow.api import (CLIP, CONDITIONING, Choice, ComfyAlias, Float, Node, NodeInputError, Text, check_interrupted,
                           socket_type, warn)
from nodes.conditioning import encoded
from nodes.pack_nodes_adv_clip import (MASK_TOKEN, TOKEN_NORMALIZATIONS, _check_choices, _check_passes, _is_clip,
                                      _tower_encode, _window_passes, joined_towers)

COMFY_PACK = "ComfyUI_Cutoff"  # the custom node pack this module's ComfyUI classes come from

CLIPREGION = socket_type("CLIPREGION", "#d4a373", "Cutoff's base prompt and the regions set on it, with their "
                                                  "target words (ComfyUI_Cutoff)")
# the (ADV) node's choices: the pack's list has no down_weight
CUTOFF_INTERPRETATIONS = ("comfy", "A1111", "compel", "comfy++")
# the conditioning encodes the prompt 2 + (regions) times, each encoding running all its windows (compel
# and comfy++ more than once): at most this many windows per tower for one conditioning
MAX_CUTOFF_WINDOWS = 1024


@dataclass(frozen=True)
class CutoffRegion:
    """One region (a line of region_text): its weight and, per tower, its masks over the prompt's
    token positions (window by window, 77 a window)."""

    weight: float
    region: dict  # tower name -> tuple of 0 / 1: the region's tokens, wherever the region occurs
    target: dict  # tower name -> tuple of 0 / 1: its target words' tokens inside those occurrences


@dataclass(frozen=True)
class ClipRegions:
    """The CLIPREGION value: the base prompt's token windows per tower and the regions set on it."""

    clip: object
    tokens: dict  # tower name -> TokenWindows
    regions: tuple = ()  # CutoffRegion, in the order set


def _embedding_id(vector, seen: list) -> int:
    """An id past CLIP's vocabulary standing for a textual-inversion vector, the same for equal
    vectors (the pack's replace_embeddings), so a target may name an embedding."""
    import torch

    from graphflow.models.tokenizer import EOS

    for number, known in enumerate(seen):
        if known.shape == vector.shape and torch.equal(known, vector):
            return EOS + 1 + number
    seen.append(vector)
    return EOS + len(seen)


def _inner(windows, seen: list) -> tuple[list[int], list[int]]:
    """The windows' ids and word numbers without each window's first and last position, one list
    after another (the pack's prompt_tokens: its masks cover these positions)."""
    ids, words = [], []
    for k, (row, row_words) in enumerate(zip(windows.ids, windows.words)):
        for j in range(1, len(row) - 1):
            vector = windows.vectors.get((k, j))
            ids.append(row[j] if vector is None else _embedding_id(vector, seen))
            words.append(row_words[j])
    return ids, words


def _text_ids(clip, tower, text: str, seen: list) -> list[int]:
    """The tokens `text` tokenizes to on this tower as the prompt does (weights read, embeddings
    looked up), without the end and padding tokens around them (the pack's unpad_prompt)."""
    windows = clip.with_towers([tower]).tokenize(text)[tower.name]
    ids, words = _inner(windows, seen)
    spoken = [i for i, word in enumerate(words) if word != 0]
    return ids[spoken[0]:spoken[-1] + 1] if spoken else []


def occurrences(tokens, part) -> list[int]:
    """Where `part` starts in `tokens`, overlaps included (the pack's get_sublists): the positions
    holding part's first token, narrowed token by token with numpy (no Python loop over positions)."""
    import numpy as np

    tokens, size = np.asarray(tokens), len(part)
    if size == 0 or size > len(tokens):
        return []
    starts = np.flatnonzero(tokens[:len(tokens) - size + 1] == part[0])
    for k in range(1, size):
        if not len(starts):
            break
        starts = starts[tokens[starts + k] == part[k]]
    return starts.tolist()


def target_words(target_text: str) -> list[str]:
    """target_text's words, split at each space; an unescaped underscore is a space inside a word
    (a run of words), "\\_" a literal underscore. Empty words (two spaces) are dropped."""
    words = []
    for word in target_text.strip().split(" "):
        if word:
            words.append(re.sub(r"(?<!\\)_", " ", word).replace("\\_", "_"))
    return words


def _windowed(flat, width: int) -> tuple[int, ...]:
    """A mask over the inner positions as one over whole windows: 0 at each window's first and
    last position."""
    import numpy as np

    rows = np.asarray(flat, dtype=np.int8).reshape(-1, width - 2)
    return tuple(np.pad(rows, ((0, 0), (1, 1))).reshape(-1).tolist())


def _covered(length: int, starts, size: int):
    """A boolean mask of `length` positions, True over `size` positions from each start (a
    difference array summed up: no loop over the starts)."""
    import numpy as np

    edges = np.zeros(length + 1, dtype=np.int64)
    np.add.at(edges, starts, 1)
    np.add.at(edges, np.minimum(np.asarray(starts, dtype=np.int64) + size, length), -1)
    return np.cumsum(edges[:length]) > 0


def region_masks(prompt: list[int], region: list[int], targets: list[list[int]]):
    """The pack's masks over the prompt's inner tokens (numpy booleans): every occurrence of the
    region's tokens, and in each occurrence every occurrence of each target's tokens within the
    region's."""
    import numpy as np

    starts = np.asarray(occurrences(prompt, region), dtype=np.int64)
    region_mask = _covered(len(prompt), starts, len(region))
    target_mask = np.zeros(len(prompt), dtype=bool)
    if not len(starts):  # nothing to place the targets in: a long region not in the prompt costs no more
        return region_mask, target_mask
    own = np.zeros(len(region), dtype=bool)  # the region's positions that its targets cover
    for target in targets:
        own |= _covered(len(region), occurrences(region, target), len(target))
    offsets = np.flatnonzero(own)
    # the region's target positions copied to each occurrence: one numpy step per start or per
    # offset, whichever are fewer
    if len(offsets) < len(starts):
        for offset in offsets:
            target_mask[starts + offset] = True
    else:
        for start in starts:
            target_mask[start:start + len(region)] |= own
    return region_mask, target_mask


def add_regions(regions: ClipRegions, region_text: str, target_text: str, weight: float) -> ClipRegions:
    """The CLIPREGION with a region for each line of region_text, all with target_text's words."""
    lines = [line for line in region_text.strip().split("\n") if line.strip()]
    if not lines:  # the pack passes the CLIPREGION on unchanged
        warn("Cutoff Set Regions: region_text is empty: no region set")
        return regions
    words = target_words(target_text)
    if not words:
        raise NodeInputError("target_text", "no target word: give the words to keep to the region, separated by "
                                            "spaces (a_run_of_words for several in a row)")
    windows_count = max(len(windows.ids) for windows in regions.tokens.values())
    encodings = 2 + len(regions.regions) + len(lines)
    if encodings * windows_count > MAX_CUTOFF_WINDOWS:
        raise NodeInputError("region_text", f"with {len(lines)} more region(s) the conditioning would encode the "
                                            f"{windows_count}-window prompt {encodings} times, "
                                            f"{encodings * windows_count} 77-token windows (at most "
                                            f"{MAX_CUTOFF_WINDOWS}): use fewer regions or a shorter prompt")
    words = list(dict.fromkeys(words))  # a repeated target masks nothing more
    clip = regions.clip
    masks = {}  # tower name -> [(region mask, target mask)] a line
    for tower in clip.towers:
        windows = regions.tokens[tower.name]
        seen = []  # the prompt's embedding vectors first, so that the texts' equal ones get their ids
        prompt, _ = _inner(windows, seen)
        targets = [ids for ids in (_text_ids(clip, tower, word, seen) for word in words) if ids]
        if not targets:
            raise NodeInputError("target_text", f"{target_text!r} gives no tokens")
        # a target absent from the prompt is absent from every region found in it and masks
        # nothing: keeping only the others bounds the work per region by the prompt, not by the
        # number of targets given
        targets = [list(ids) for ids in dict.fromkeys(map(tuple, targets)) if occurrences(prompt, ids)]
        width = len(windows.ids[0])
        masks[tower.name] = []
        found = {}  # region tokens -> its masks: a repeated region is matched once
        for line in lines:
            check_interrupted()
            region = _text_ids(clip, tower, line, seen)
            if not region:
                raise NodeInputError("region_text", f"the region {line!r} gives no tokens")
            if tuple(region) not in found:
                region_mask, target_mask = region_masks(prompt, region, targets)
                if tower is clip.towers[0] and not region_mask.any():
                    warn(f"Cutoff Set Regions: the region {line.strip()!r} is not in the base prompt: it masks "
                         f"and changes nothing")
                found[tuple(region)] = (_windowed(region_mask, width), _windowed(target_mask, width))
            masks[tower.name].append(found[tuple(region)])
    added = tuple(CutoffRegion(weight, {name: lists[n][0] for name, lists in masks.items()},
                               {name: lists[n][1] for name, lists in masks.items()}) for n in range(len(lines)))
    return ClipRegions(clip, regions.tokens, regions.regions + added)


def mask_token_id(mask_token: str) -> int:
    """The token masked words become: for an empty mask_token the pack's 266 ("+" as a word of its
    own, as ADV_CLIP masks with; the same id in SD1's, SDXL's and SD2's CLIP vocabulary), else the
    first token of the text (with a warning when it gives more than one)."""
    from graphflow.models.tokenizer import encode_text

    if mask_token == "":
        return MASK_TOKEN
    ids = encode_text(mask_token)
    if not ids:
        raise NodeInputError("mask_token", f"{mask_token!r} gives no token: leave it empty for \"+\" (token 266) "
                                           f"or give a word")
    if len(ids) > 1:
        warn(f"Cutoff: mask_token {mask_token!r} is {len(ids)} tokens; the first is used")
    return ids[0]


def masked_windows(windows, mask, token: int):
    """The windows with the positions where `mask` is 1 replaced by `token`, keeping their weights
    and word numbers (an embedding vector there is dropped with its token)."""
    from graphflow.models.tokenizer import TokenWindows

    width = len(windows.ids[0])
    positions = {(i // width, i % width) for i, m in enumerate(mask) if m}
    ids = [[token if (k, j) in positions else t for j, t in enumerate(row)] for k, row in enumerate(windows.ids)]
    vectors = {key: v for key, v in windows.vectors.items() if key not in positions}
    return TokenWindows(ids, windows.weights, vectors, windows.words)


def _check_windows(regions: ClipRegions, token_normalization: str, weight_interpretation: str) -> None:
    encodings = 2 + len(regions.regions) if regions.regions else 1
    for name, windows in regions.tokens.items():
        count = encodings * _window_passes(windows, token_normalization, weight_interpretation)
        if count > MAX_CUTOFF_WINDOWS:
            raise NodeInputError("clip_regions", f"{len(regions.regions)} regions would encode {count} 77-token "
                                                 f"windows on {name} (at most {MAX_CUTOFF_WINDOWS}): the prompt is "
                                                 f"encoded twice and once more per region; use fewer regions or a "
                                                 f"shorter prompt")


def _tower_cutoff(clip, tower, windows, regions, token: int, strict_mask: float, start_from_masked: float,
                  token_normalization: str, weight_interpretation: str):
    """One tower's (embedding, pooled output) mixed the pack's way (its finalize_clip_regions)."""
    import torch

    def encode(mask=None):
        tokens = windows if mask is None else masked_windows(windows, mask, token)
        return _tower_encode(clip, tower, tokens, token_normalization, weight_interpretation)

    full, pooled = encode()
    if not regions:
        return full, pooled
    as_tensor = lambda values: torch.tensor(values, dtype=full.dtype).reshape(1, -1, 1)  # noqa: E731
    tower_regions = [r.region[tower.name] for r in regions]
    tower_targets = [r.target[tower.name] for r in regions]
    any_target = [int(any(column)) for column in zip(*tower_targets)]
    covering = [sum(column) for column in zip(*tower_regions)]  # how many regions cover each token
    masked = encode(any_target)[0]
    start = full * (1 - start_from_masked) + masked * start_from_masked
    outer = full * (1 - strict_mask) + masked * strict_mask
    inside = as_tensor([float(n > 0) for n in covering])
    cond = start * inside + outer * (1 - inside)
    for region, mask, target in zip(regions, tower_regions, tower_targets):
        # every target masked but this region's own, the way from the start there, shared among
        # the regions covering a token
        own = encode([int(a and not t) for a, t in zip(any_target, target)])[0]
        share = as_tensor([region.weight * m / n if n else 0.0 for m, n in zip(mask, covering)])
        cond = cond + (own - start) * share
    return cond, pooled


def cutoff_conditioning(regions, mask_token: str, strict_mask: float, start_from_masked: float,
                        token_normalization: str = "none", weight_interpretation: str = "comfy") -> list:
    """The CONDITIONING of a CLIPREGION (see CutoffRegionsToConditioning), each CLIP tower mixed
    on its own and the towers concatenated; the pooled output is the last tower's (CLIP-G's on
    SDXL) of the unmasked prompt."""
    if not isinstance(regions, ClipRegions):
        raise NodeInputError("clip_regions", "needs Cutoff Base Prompt's or Cutoff Set Regions' output")
    # a linked weight_interpretation may be down_weight, which the node's list lacks: accepted, as
    # the pack hands it to its adv_encode, which weights that way too
    _check_choices(token_normalization, weight_interpretation)
    token = mask_token_id(mask_token)
    if (token_normalization, weight_interpretation) != ("none", "comfy"):
        # ADV's own limit on one encoding (CLIP Text Encode (Advanced) does not check none + comfy):
        # every encoding keeps the prompt's weights and word numbers, so each runs as many windows as
        # the unmasked prompt's does and checking that one checks them all
        _check_passes("clip_regions", regions.tokens, token_normalization, weight_interpretation)
    _check_windows(regions, token_normalization, weight_interpretation)

    def encode(clip):
        return joined_towers([_tower_cutoff(clip, tower, regions.tokens[tower.name], regions.regions, token,
                                            strict_mask, start_from_masked, token_normalization,
                                            weight_interpretation) for tower in clip.towers])

    return encoded(regions.clip, encode)


class CutoffBasePrompt(Node):
    """The prompt Cutoff works on: the whole prompt, weights and embeddings as CLIP Text Encode
    reads them. Set regions on it with Cutoff Set Regions, then make the conditioning with Cutoff
    Regions To Conditioning. Needs a CLIP text encoder (SD1, SD2, SDXL; the pack reads SD1's and
    SDXL's tokenizers only, SD2 is our extension). A prompt of more than 341 77-token windows is
    refused (the conditioning encodes it at least 3 times, at most 1024 windows; the pack has no
    limit)."""
    category = "conditioning/cutoff"
    display_name = "Cutoff Base Prompt"
    text: str = Text("", multiline=True)
    clip: CLIP
    outputs = {"clip_regions": CLIPREGION}
    comfy = ComfyAlias(("BNK_CutoffBasePrompt",))

    def run(self):
        if self.clip is None:
            raise NodeInputError("clip", "no text encoder: the checkpoint has none; load one separately")
        if not _is_clip(self.clip):
            raise NodeInputError("clip", "Cutoff needs a CLIP text encoder (SD1, SD2, SDXL)")
        tokens = self.clip.tokenize(self.text)
        for name, windows in tokens.items():
            # the conditioning encodes the prompt at least 3 times once a region is set
            if len(windows.ids) > MAX_CUTOFF_WINDOWS // 3:
                raise NodeInputError("text", f"the prompt takes {len(windows.ids)} 77-token windows on {name} (at "
                                             f"most {MAX_CUTOFF_WINDOWS // 3}: the conditioning encodes it at least "
                                             f"3 times, at most {MAX_CUTOFF_WINDOWS} windows); shorten it")
        return ClipRegions(self.clip, tokens)


class CutoffSetRegions(Node):
    """Keep target words to regions of the base prompt. region_text: a part of the base prompt
    (its tokens are looked for in the prompt's, every occurrence counts), one region a line.
    target_text: the words to keep to the region, separated by spaces; a_run_of_words (underscores)
    is several words in a row and \\_ a literal underscore; embedding:name names an embedding (its
    underscores escaped). Each target is looked for inside the region's text; a target that is not
    there masks nothing, and a region not in the prompt masks nothing either (with a warning).
    weight: how far each of the region's tokens travels from the start towards its own target words
    (shared among regions that overlap); the start is the masked prompt's embedding with Cutoff
    Regions To Conditioning's start_from_masked at 1 (see its help). Blank lines are skipped; an
    empty region_text sets no region (its clip_regions pass on unchanged, with a warning, as in the
    pack). A region_text whose lines would have the conditioning encode more than 1024 77-token
    windows ((2 + all regions) times the prompt's windows) is refused before its masks are built."""
    category = "conditioning/cutoff"
    display_name = "Cutoff Set Regions"
    clip_regions: CLIPREGION
    region_text: str = Text("", multiline=True)
    target_text: str = Text("")
    weight: float = Float(1.0, min=-10.0, max=10.0, step=0.05)
    outputs = {"clip_regions": CLIPREGION}
    comfy = ComfyAlias(("BNK_CutoffSetRegions",))

    def run(self):
        if not isinstance(self.clip_regions, ClipRegions):
            raise NodeInputError("clip_regions", "needs Cutoff Base Prompt's or Cutoff Set Regions' output")
        return add_regions(self.clip_regions, self.region_text, self.target_text, self.weight)


class CutoffRegionsToConditioning(Node):
    """The conditioning of a Cutoff prompt and its regions. The prompt is encoded as it is (full),
    with every region's target words replaced by mask_token (masked), and once per region with
    all targets but its own masked (own). start = full (1 - start_from_masked) + masked
    start_from_masked; outside every region the embedding is full (1 - strict_mask) + masked
    strict_mask (1: the targets reach only their regions; 0: they still reach what no region
    covers), inside the regions start, plus for each region (own - start) times its weight, divided
    among the regions covering that token. mask_token: the token masked words become (empty: "+",
    token 266, as the pack; a text of several tokens uses its first, with a warning). With no
    region set, the prompt's own encoding. On SDXL the same masks mask both text encoders, each encoded and mixed
    on its own and the two concatenated, as the pack; the pooled output is the unmasked prompt's
    (CLIP-G's on SDXL; on SD1 / SD2, where the pack gives none, the encoder's)."""
    category = "conditioning/cutoff"
    display_name = "Cutoff Regions To Conditioning"
    clip_regions: CLIPREGION
    mask_token: str = Text("")
    strict_mask: float = Float(1.0, min=0.0, max=1.0, step=0.05)
    start_from_masked: float = Float(1.0, min=0.0, max=1.0, step=0.05)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("BNK_CutoffRegionsToConditioning",))

    def run(self):
        return cutoff_conditioning(self.clip_regions, self.mask_token, self.strict_mask, self.start_from_masked)


class CutoffRegionsToConditioningADV(Node):
    """Cutoff Regions To Conditioning with every encoding weighted as CLIP Text Encode (Advanced)
    weights it: token_normalization and weight_interpretation (see that node's help; the masked
    words keep their weights). Weightings that encode the prompt more than once (compel, comfy++)
    do so for each of the 2 + regions encodings; as in CLIP Text Encode (Advanced), a weighting that
    would run more than 256 77-token windows through a text encoder for one encoding is refused."""
    category = "conditioning/cutoff"
    display_name = "Cutoff Regions To Conditioning (ADV)"
    clip_regions: CLIPREGION
    mask_token: str = Text("")
    strict_mask: float = Float(1.0, min=0.0, max=1.0, step=0.05)
    start_from_masked: float = Float(1.0, min=0.0, max=1.0, step=0.05)
    token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    weight_interpretation: str = Choice(CUTOFF_INTERPRETATIONS, "comfy")
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("BNK_CutoffRegionsToConditioning_ADV",))

    def run(self):
        return cutoff_conditioning(self.clip_regions, self.mask_token, self.strict_mask, self.start_from_masked,
                                   self.token_normalization, self.weight_interpretation)

