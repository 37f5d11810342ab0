"""BlenderNeko's ComfyUI_ADV_CLIP_emb built in under the pack's class names, inputs, defaults and
outputs: CLIP Text Encode (Advanced) (BNK_CLIPTextEncodeAdvanced), CLIP Text Encode SDXL (Advanced)
(BNK_CLIPTextEncodeSDXLAdvanced), Add CLIP SDXL Params (BNK_AddCLIPSDXLParams) and Add CLIP SDXL
Refiner Params (BNK_AddCLIPSDXLRParams), and Mix CLIP Embeddings (BNK_MixCLIPEmbeddings) of the
pack's early versions, which saves from then still carry. Read from the pack's nodes.py at
e17c01fd3c48060b645f47cdb0c4f63806a997d7 (Mix CLIP Embeddings: at 1416cfcf710aacf79b63c468ab792195efaa8de7)
and adv_encode.py at ac51d7111dd7eeb5b15075849f3b95ce4f537b9d.

The encoding (advanced_encode) is the one place graphflow weights prompts the pack's way: Efficiency
Nodes, Easy-Use, Inspire and ttN encode their token_normalization / weight_interpretation prompts
with it, as those packs run this pack's adv_encode.py (a copy of it, or the pack itself). Prompts
are parsed and split into 77-token windows as CLIP Text Encode does (the pack calls ComfyUI's own
tokenizer, its word ids being the weighted segments and embeddings); "+" (token 266) is the pack's
mask token.

Left out: the pack's affect_pooled input (commented out of its inputs): the pooled output is always
the unweighted prompt's (comfy: the weighted one's), as with the pack's default "disable". Where this
differs from the pack: on SD1 / SD2 the pack's pooled_output is None and it reads only CLIP-L's tokens
(an SD2 encoder fails there); here SD2 encodes too and the pooled output is the encoder's, which
those models do not read. The SDXL node refuses texts of different 77-token window counts by name
(the pack fails there on a tensor shape)."""

from __future__ import annotations

from graphflow.api import CLIP, CONDITIONING, Choice, ComfyAlias, Float, Int, Node, NodeInputError, Text, warn
from nodes.conditioning import MAX_SIZE, CLIPEncode, _with_options, encoded
from nodes.pack_nodes import _core

COMFY_PACK = "ComfyUI_ADV_CLIP_emb"  # the custom node pack this module's ComfyUI classes come from

TOKEN_NORMALIZATIONS = ("none", "mean", "length", "length+mean")
WEIGHT_INTERPRETATIONS = ("comfy", "A1111", "compel", "comfy++", "down_weight")
MASK_TOKEN = 266  # the token the pack masks words with (CLIP's "+")
SDXL_TOWERS = ["clip_g", "clip_l"]
# compel / comfy++ / down_weight encode the prompt once per distinct weight below 1 (comfy++: and once
# per word above 1), all its windows each time: a tower runs at most this many windows for one prompt
# (a 3-window prompt with 80 weighted words), so a prompt cannot ask for thousands of encodings
MAX_WINDOW_PASSES = 256


def normalized_weights(weights: list[list[float]], words: list[list[int]], normalization: str) -> list[list[float]]:
    """Token weights after token_normalization: "length" spreads a segment's weight over its tokens
    (w -> 1 + (w - 1) / sqrt(n) for a segment of n tokens), "mean" shifts the weights of the
    prompt's tokens so that they average 1; BOS, EOS and padding (word 0) keep 1."""
    flat = [(w, word) for ws, ids in zip(weights, words) for w, word in zip(ws, ids)]
    if normalization.startswith("length"):
        counts = {}
        for _, word in flat:
            counts[word] = counts.get(word, 0) + 1
        weights = [[1.0 if word == 0 else 1 + (w - 1) / counts[word] ** 0.5 for w, word in zip(ws, ids)]
                   for ws, ids in zip(weights, words)]
    if normalization.endswith("mean"):
        spoken = [w for ws, ids in zip(weights, words) for w, word in zip(ws, ids) if word != 0]
        if spoken:
            delta = 1 - sum(spoken) / len(spoken)
            weights = [[w if word == 0 else w + delta for w, word in zip(ws, ids)] for ws, ids in zip(weights, words)]
    return weights


def _masked(ids, weights, vectors, positions):
    """Windows with the (window, index) positions replaced by MASK_TOKEN at weight 1 (an embedding
    vector there is dropped with its token)."""
    ids = [[MASK_TOKEN if (k, j) in positions else t for j, t in enumerate(window)] for k, window in enumerate(ids)]
    weights = [[1.0 if (k, j) in positions else w for j, w in enumerate(window)] for k, window in enumerate(weights)]
    return ids, weights, {key: v for key, v in vectors.items() if key not in positions}


def _down_levels(strengths) -> list[float]:
    """The distinct strengths of at most 1, lowest first: down_weighted encodes the prompt once
    more for each but the last."""
    return sorted({w for window in strengths for w in window if w <= 1})


def down_weighted(encode, ids, weights, strengths, vectors, base):
    """The pack's down-weighting: for the distinct strengths below 1, lowest first, the tokens
    at that strength are masked (cumulatively) and the prompt encoded again; the result mixes the
    base embedding and those encodings with the steps between the strengths (w0 base + (w1 - w0)
    first masked + ... + (1 - wn) all masked). `ids` / `weights` are what is encoded, `strengths`
    the token strengths; encode(ids, weights, vectors) -> embedding."""
    levels = _down_levels(strengths)
    if not levels or levels[0] >= 1:
        return base
    # each encoding is added to the sum at once, not kept: one embedding in memory, not one per level.
    # A level's step reaches the next level; the top one has none (1 is there unless every token,
    # padding too, is below 1) and is not encoded.
    cond, masked = levels[0] * base, set()
    for level, following in zip(levels, levels[1:]):
        masked |= {(k, j) for k, window in enumerate(strengths) for j, w in enumerate(window) if w == level}
        cond = cond + (following - level) * encode(*_masked(ids, weights, vectors, masked))
    return cond


def _up_words(words, strengths) -> list[int]:
    """The words (segments) whose strength at their first token is above 1: up_weighted encodes
    once more for each."""
    first = {}
    for window_words, window in zip(words, strengths):
        for word, w in zip(window_words, window):
            first.setdefault(word, w)
    return [word for word, w in first.items() if w > 1.0]


def up_weighted(encode, ids, strengths, words, vectors, base):
    """The pack's up-weighting by masking (comfy++): each word (segment) whose strength (at its
    first token) is above 1 is masked and the prompt encoded again; each of its tokens gets
    (strength - 1) times the difference between the base embedding and that encoding there."""
    import torch

    out = torch.zeros_like(base)
    plain = [[1.0] * len(window) for window in ids]
    for word in _up_words(words, strengths):
        positions = {(k, j) for k, window in enumerate(words) for j, wd in enumerate(window) if wd == word}
        diff = base - encode(*_masked(ids, plain, vectors, positions))
        mask = torch.tensor([wd == word for window in words for wd in window], dtype=base.dtype,
                            device=base.device).reshape(1, -1, 1)
        out = out + diff * mask
    scale = torch.tensor(strengths, dtype=base.dtype, device=base.device).reshape(1, -1, 1)
    return (scale - 1) * out


def _check_choices(token_normalization: str, weight_interpretation: str) -> None:
    for name, value, known in (("token_normalization", token_normalization, TOKEN_NORMALIZATIONS),
                               ("weight_interpretation", weight_interpretation, WEIGHT_INTERPRETATIONS)):
        if value not in known:  # a linked value: its choices are not checked before the run
            raise NodeInputError(name, f"{value!r} is not one of {', '.join(known)}")


def _is_clip(clip) -> bool:
    """A CLIP text encoder with CLIP towers: decoder language models (Qwen, Gemma, Llama) and
    T5 have with_towers / tokenize too, but no CLIP tokens to weight or mask."""
    from graphflow.models.text_encoders import TextEncoder

    return isinstance(clip, TextEncoder) and bool(clip.towers)


def _check_clip(clip, weight_interpretation: str) -> None:
    if not _is_clip(clip):
        raise NodeInputError("weight_interpretation" if weight_interpretation != "comfy" else "token_normalization",
                             "token_normalization and weight_interpretation other than none / comfy need a CLIP "
                             "text encoder (SD1, SD2, SDXL)")


def _down_weight_strengths(weights, words):
    """down_weight's strengths: the weights over their top (at most 1), BOS / EOS / padding at it."""
    top = max(w for window in weights for w in window)
    ceiling = min(top, 1.0)
    return [[ceiling if word == 0 else w / top * ceiling for w, word in zip(window, window_words)]
            for window, window_words in zip(weights, words)]


def _window_passes(windows, token_normalization: str, weight_interpretation: str) -> int:
    """How many 77-token windows _tower_encode runs through the tower for these windows: each
    encoding of the prompt runs all its windows."""
    weights = normalized_weights(windows.weights, windows.words, token_normalization)
    passes = 1  # comfy; A1111
    if weight_interpretation == "compel":
        passes = 2 + max(len(_down_levels(weights)) - 1, 0)
    elif weight_interpretation == "comfy++":
        up = [[max(w, 1.0) for w in window] for window in weights]
        passes = 1 + max(len(_down_levels(weights)) - 1, 0) + len(_up_words(windows.words, up))
    elif weight_interpretation == "down_weight":
        passes = 1 + max(len(_down_levels(_down_weight_strengths(weights, windows.words))) - 1, 0)
    return passes * len(windows.ids)


def _check_passes(input_name: str, tower_windows: dict, token_normalization: str,
                  weight_interpretation: str) -> None:
    """Refuses before encoding a prompt whose weighting would run more than MAX_WINDOW_PASSES
    windows through a tower: compel, comfy++ and down_weight encode the prompt again for each
    distinct weight below 1, comfy++ also for each word weighted above 1."""
    for name, windows in tower_windows.items():
        passes = _window_passes(windows, token_normalization, weight_interpretation)
        if passes > MAX_WINDOW_PASSES:
            raise NodeInputError(input_name, f"{weight_interpretation} would encode {passes} 77-token windows on "
                                             f"{name} (at most {MAX_WINDOW_PASSES}): it encodes the prompt once more "
                                             f"per distinct weight below 1 (comfy++: and per word weighted above 1); "
                                             f"use fewer distinct weights or weighted words, or comfy / A1111")


def _tower_encode(clip, tower, windows, token_normalization: str, weight_interpretation: str):
    """One CLIP tower's (embedding, pooled output) of its token windows, weighted the pack's way
    (its advanced_encode_from_tokens): the pooled output is the unweighted prompt's (comfy: the
    weighted one's)."""
    import torch

    from graphflow.models.tokenizer import TokenWindows

    single = clip.with_towers([tower])

    def run(ids, weights, vectors):
        return single.encode_tokens({tower.name: TokenWindows(ids, weights, vectors, windows.words)})

    ids, vectors = windows.ids, windows.vectors
    weights = normalized_weights(windows.weights, windows.words, token_normalization)
    plain = [[1.0] * len(w) for w in weights]
    if weight_interpretation == "comfy":
        return run(ids, weights, vectors)
    base, pooled = run(ids, plain, vectors)
    embed = lambda *args: run(*args)[0]  # noqa: E731
    if weight_interpretation == "A1111":
        scale = torch.tensor(weights, dtype=base.dtype, device=base.device).reshape(1, -1, 1)
        cond = base * scale
        return base.mean() / cond.mean() * cond, pooled
    if weight_interpretation == "compel":
        up = [[max(w, 1.0) for w in window] for window in weights]
        return down_weighted(embed, ids, up, weights, vectors, run(ids, up, vectors)[0]), pooled
    if weight_interpretation == "comfy++":
        cond = down_weighted(embed, ids, plain, weights, vectors, base)
        up = up_weighted(embed, ids, [[max(w, 1.0) for w in window] for window in weights], windows.words,
                         vectors, base)
        return cond + up, pooled
    scaled = _down_weight_strengths(weights, windows.words)
    return down_weighted(embed, ids, plain, scaled, vectors, base), pooled


def advanced_encode(clip, text: str, token_normalization: str, weight_interpretation: str,
                    input_name: str = "text") -> list:
    """A prompt's CONDITIONING as the pack's CLIP Text Encode (Advanced) encodes it. none + comfy
    is CLIP Text Encode itself; the other token normalizations reweight the tokens first
    (normalized_weights). Then, each of SDXL's towers on its own: comfy encodes with the weights
    as CLIP Text Encode does; A1111 multiplies the unweighted embedding by the weights and rescales
    it to its old mean; down_weight scales the weights to at most 1 (padding at the top one) and
    down-weights by masking (down_weighted); compel encodes the weights above 1 as comfy and
    down-weights the rest; comfy++ down-weights below 1 and up-weights above 1 by masking
    (up_weighted). The pooled output is the unweighted prompt's (comfy: the weighted one's).
    A prompt whose weighting would encode more than MAX_WINDOW_PASSES 77-token windows on a tower
    is refused (_check_passes). input_name: the node's input holding the text."""
    _check_choices(token_normalization, weight_interpretation)
    if token_normalization == "none" and weight_interpretation == "comfy":
        return _core(CLIPEncode, {"text": input_name}, text=text, clip=clip)
    _check_clip(clip, weight_interpretation)

    def encode(clip):
        tokens = clip.tokenize(text)
        _check_passes(input_name, tokens, token_normalization, weight_interpretation)
        return joined_towers([_tower_encode(clip, tower, tokens[tower.name], token_normalization,
                                            weight_interpretation) for tower in clip.towers])

    return encoded(clip, encode)


def joined_towers(parts: list) -> tuple:
    """One encoding's (embedding, options) from its towers' (embedding, pooled output), in the
    encoder's tower order: the embeddings cut to the shortest and concatenated along the features;
    the pooled output the last tower's (CLIP-G's on SDXL)."""
    import torch

    length = min(cond.shape[1] for cond, _ in parts)
    cond = torch.cat([c[:, :length] for c, _ in parts], dim=-1)
    pooled = parts[-1][1]
    return cond, {} if pooled is None else {"pooled_output": pooled}


def balance_weights(balance: float) -> tuple[float, float]:
    """The SDXL node's (CLIP-L, CLIP-G) factors: 0.5 keeps both, 0 silences CLIP-G, 1 CLIP-L."""
    return 1 - max(0.0, balance - 0.5) * 2, 1 - max(0.0, 0.5 - balance) * 2


def advanced_encode_sdxl(clip, text_l: str, text_g: str, token_normalization: str, weight_interpretation: str,
                         balance: float) -> list:
    """text_l through CLIP-L and text_g through CLIP-G, each weighted as advanced_encode weights a
    tower, CLIP-L's embedding times balance_weights' first factor and CLIP-G's times the second;
    the pooled output is CLIP-G's."""
    _check_choices(token_normalization, weight_interpretation)
    if clip is None:
        raise NodeInputError("clip", "no text encoder: the checkpoint has none; load one separately")
    towers = sorted(t.name for t in getattr(clip, "towers", ()))
    if towers != SDXL_TOWERS or not _is_clip(clip):
        raise NodeInputError("clip", f"needs SDXL's text encoder (CLIP-L and CLIP-G); this one has "
                                     f"{', '.join(towers) or 'other towers'}: use CLIP Text Encode (Advanced)")
    import torch

    def encode(clip):
        # each text tokenized for its own tower only (as TextEncoder.encode_each): an unknown
        # embedding is reported once
        l_windows = clip.with_towers([clip.tower("clip_l")]).tokenize(text_l)["clip_l"]
        g_windows = clip.with_towers([clip.tower("clip_g")]).tokenize(text_g)["clip_g"]
        if len(l_windows.ids) != len(g_windows.ids):
            raise NodeInputError("text_l", f"text_l takes {len(l_windows.ids)} 77-token windows and text_g "
                                           f"{len(g_windows.ids)}: the pack needs them to take the same number")
        _check_passes("text_l", {"clip_l": l_windows}, token_normalization, weight_interpretation)
        _check_passes("text_g", {"clip_g": g_windows}, token_normalization, weight_interpretation)
        cond_l, _ = _tower_encode(clip, clip.tower("clip_l"), l_windows, token_normalization, weight_interpretation)
        cond_g, pooled = _tower_encode(clip, clip.tower("clip_g"), g_windows, token_normalization,
                                       weight_interpretation)
        l_factor, g_factor = balance_weights(balance)
        return torch.cat([cond_l * l_factor, cond_g * g_factor], dim=-1), {"pooled_output": pooled}

    return encoded(clip, encode)


class CLIPTextEncodeAdvanced(Node):
    """CLIP Text Encode with the prompt weights read another way. token_normalization: none; mean
    shifts all the prompt's token weights so they average 1 (weighting one part up weights the
    rest down); length divides a part's weight change by the square root of its token count (a
    long weighted part counts no more than a short one); length+mean both. weight_interpretation:
    comfy (as CLIP Text Encode: from the empty prompt's embedding); A1111 (multiplies the
    embedding, then rescales it to its old mean, as Automatic1111's web UI); compel (up-weights
    as comfy, down-weights by mixing in encodings with those words masked out, as the compel
    library); comfy++ (down-weights as compel, up-weights by pushing the words away from their
    masked encoding); down_weight (scales all weights so the largest is 1, then down-weights as
    compel). none + comfy is CLIP Text Encode. On SDXL each text encoder is weighted on its own.
    The pooled output is the unweighted prompt's (comfy: the weighted one's); the pack's
    affect_pooled option is switched off in the pack and not here either. compel, comfy++ and
    down_weight encode the prompt again for each distinct weight below 1 (comfy++: and for each
    word weighted above 1); a prompt that would take more than 256 77-token window encodings per
    text encoder that way is refused (the pack has no limit). Needs a CLIP text encoder (SD1, SD2,
    SDXL) unless none + comfy."""
    category = "conditioning/advanced"
    text: str = Text("", multiline=True)
    clip: CLIP
    token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    weight_interpretation: str = Choice(WEIGHT_INTERPRETATIONS, "comfy")
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("BNK_CLIPTextEncodeAdvanced",))

    def run(self):
        if self.clip is None:
            raise NodeInputError("clip", "no text encoder: the checkpoint has none; load one separately")
        return advanced_encode(self.clip, self.text, self.token_normalization, self.weight_interpretation)


class CLIPTextEncodeSDXLAdvanced(Node):
    """CLIP Text Encode (Advanced) for SDXL with a text for each encoder: text_l goes to CLIP-L and
    text_g to CLIP-G, each weighted as token_normalization and weight_interpretation say (see
    CLIP Text Encode (Advanced)). balance leans between them: 0.5 keeps both; below, CLIP-G's
    embedding is scaled by 1 - 2 (0.5 - balance) (0: silenced); above, CLIP-L's by
    1 - 2 (balance - 0.5). The two texts must take the same number of 77-token windows, and each
    at most 256 window encodings under its weighting (see CLIP Text Encode (Advanced)). No size
    conditioning: add it with Add CLIP SDXL Params."""
    category = "conditioning/advanced"
    text_l: str = Text("", multiline=True)
    text_g: str = Text("", multiline=True)
    clip: CLIP
    token_normalization: str = Choice(TOKEN_NORMALIZATIONS, "none")
    weight_interpretation: str = Choice(WEIGHT_INTERPRETATIONS, "comfy")
    balance: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("BNK_CLIPTextEncodeSDXLAdvanced",))

    def run(self):
        return advanced_encode_sdxl(self.clip, self.text_l, self.text_g, self.token_normalization,
                                    self.weight_interpretation, self.balance)


class AddCLIPSDXLParams(Node):
    """SDXL's size conditioning added to a conditioning, as CLIP Text Encode SDXL sets it:
    width/height the size the picture should look taken at, crop_w/crop_h a crop offset into it,
    target_width/target_height the intended output size."""
    category = "conditioning/advanced"
    conditioning: CONDITIONING
    width: int = Int(1024, min=0, max=MAX_SIZE)
    height: int = Int(1024, min=0, max=MAX_SIZE)
    crop_w: int = Int(0, min=0, max=MAX_SIZE)
    crop_h: int = Int(0, min=0, max=MAX_SIZE)
    target_width: int = Int(1024, min=0, max=MAX_SIZE)
    target_height: int = Int(1024, min=0, max=MAX_SIZE)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("BNK_AddCLIPSDXLParams",))

    def run(self):
        return _with_options(self.conditioning, width=self.width, height=self.height, crop_w=self.crop_w,
                             crop_h=self.crop_h, target_width=self.target_width, target_height=self.target_height)


class AddCLIPSDXLRParams(Node):
    """The SDXL refiner's conditioning added to a conditioning, as CLIP Text Encode SDXL Refiner
    sets it: the original image size and the aesthetic score (ascore: 6 a typical positive, around
    2.5 a negative)."""
    category = "conditioning/advanced"
    conditioning: CONDITIONING
    width: int = Int(1024, min=0, max=MAX_SIZE)
    height: int = Int(1024, min=0, max=MAX_SIZE)
    ascore: float = Float(6.0, min=0.0, max=1000.0, step=0.01)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("BNK_AddCLIPSDXLRParams",))

    def run(self):
        return _with_options(self.conditioning, width=self.width, height=self.height, aesthetic_score=self.ascore)


class MixCLIPEmbeddings(Node):
    """Blend two conditionings' embeddings: cond1 * (1 - mix) + cond2 * mix, entry by entry (as
    many entries as the shorter has), keeping cond1's options (pooled output, area ...). An entry
    whose embeddings differ in shape (another token length or encoder) keeps cond1's, with a
    warning. From the pack's early versions."""
    category = "conditioning"
    cond1: CONDITIONING
    cond2: CONDITIONING
    mix: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("BNK_MixCLIPEmbeddings",))

    def run(self):
        mixed = []
        for (emb1, options), (emb2, _) in zip(self.cond1, self.cond2):
            if emb1.shape == emb2.shape:
                emb1 = emb1 * (1 - self.mix) + emb2 * self.mix
            else:
                warn(f"Mix CLIP Embeddings: embedding shapes {tuple(emb1.shape)} and {tuple(emb2.shape)} differ; "
                     f"cond1's kept")
            mixed.append((emb1, dict(options)))
        return mixed
