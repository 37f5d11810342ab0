"""bash-j's Mikey Nodes (mikey_nodes): its model-free nodes and those made of core nodes, under the
pack's class names, inputs and outputs. Read at bash-j/mikey_nodes: mikey_nodes.py
006120dc8184c2a4208f24b9ee0037c7691222c7 (the size solver, ratios, wildcards, image complexity)
and ratios.json 46a4978d8dfaf522e3c5c404090a91294bd84a38; the nodes as the pack's source at
26fed34232dd144e6e33b9322c3c7981956fe7a6 has them, as quoted in get-salt-AI/SaltAI-Web-Docs
(docs/md/mikey_nodes, 1d88d9fda74563204523ad42a3faf51f446d4df1) and CavinHuang/comfyui-nodes-docs
(Image Caption, Batch Load Images; 8ff31f3eb038bbd65b6904615b60376afe978eb5).

Held here: Empty Latent Ratio Select SDXL, Empty Latent Ratio Custom SDXL, Ratio Advanced, Resize
Image for SDXL, Upscale Tile Calculator, Seed String, Int to String, Float to String, Range
Float, Range Integer, TextConcat, TextCombinations, Wildcard Processor, ImageOverlay, Save Image
With Prompt Data, Save Images Mikey, Save Images No Display, Batch Load Images, Batch Resize
Image for SDXL, Batch Crop Image (folders inside the inputs folder only), Image Caption (a font of
models/fonts, else Pillow's own), Checkpoint Loader Simple Mikey (the core loader, with the file's
name and hash), Prompt With Style (V1), Prompt With SDXL, Style Conditioner (styles from
models/styles/mikey/styles.json, the pack's file, put there by the user, and user_styles.json:
a folder of their own, as the styles folder's top level is sdxl_prompt_styler's lists),
Mikey Sampler and Mikey Sampler Base Only (KSamplerAdvanced, VAEDecode / Encode,
ImageUpscaleWithModel and ImageScale, as the pack composes ComfyUI's) and HaldCLUT (its class
name ends in a space; CLUT pictures from models/luts, where the pack's own are to be copied).

Left out (not built this round; graphflow/comfy_format.py MIKEY_LEFT_OUT says what each needs):
Prompt With Style V2 / V3 (LoRA-in-prompt loading and several encodes), Mikey Sampler Tiled and
Mikey Sampler Base Only Advanced (the pack's own tiling and histogram matching), AddMetaData /
SaveMetaData (they change ComfyUI's hidden extra_pnginfo, which nodes here can't reach), the LLM
prompt nodes (a web service) and the pack's other later nodes; the pack's <random:a:b> syntax in
Prompt With Style / SDXL (refused there; Wildcard Processor makes it) and %date:...% / %node.widget%
replacement; the later wildcard grammar (comment lines, the !, +, -, * offset marks, bracketless
N$$__name__); Ratio Advanced's presets (user_ratio_presets.json) and the user_ratios.json additions to the ratio list.

Wildcard Processor's {a|b} choice pass, <random:a:b> numbers and up-to-10-more-passes loop follow
code that is commented out: WildcardProcessor.process, process_wildcard_syntax and
process_random_syntax as they stand, each line behind "# ", in a 268,857-character version of
mikey_nodes.py (its commit not given by the tool). No live copy of that code was found in the
index: the live versions read hold a Wildcard Processor that only replaces __wildcards__, and
later wildcard modules use another choice pattern ({([^{}]*)}, or brace expansion). So these passes
are the pack's once-written (then disabled) behaviour, not necessarily what its current release does.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

from graphflow.api import CLIP, CONDITIONING, FLOAT, IMAGE, INT, LATENT, MODEL, STRING, VAE, Choice, ComfyAlias, \
    Float, Int, ListOf, Node, NodeInputError, Text, check_interrupted, folders, safe_join, warn
from graphflow.folders import UnsafePathError
from nodes.image import _image, _resize_image
from nodes.loaders import LoadCheckpoint
from nodes.pack_nodes_sdxl_styler import MAX_STYLE_FILE, style_file_state
from nodes.strings import fits

COMFY_PACK = "mikey_nodes"  # the custom node pack this module's ComfyUI classes come from

SEED_MAX = 0xffffffffffffffff
# ratios.json as the pack ships it: name -> (width, height)
RATIOS = {
    "1:1 [1024x1024 square]": (1024, 1024),
    "8:5 [1216x768 landscape]": (1216, 768),
    "4:3 [1152x896 landscape]": (1152, 896),
    "3:2 [1216x832 landscape]": (1216, 832),
    "7:5 [1176x840 landscape]": (1176, 840),
    "16:9 [1344x768 landscape]": (1344, 768),
    "21:9 [1536x640 landscape]": (1536, 640),
    "19:9 [1472x704 landscape]": (1472, 704),
    "3:4 [896x1152 portrait]": (896, 1152),
    "2:3 [832x1216 portrait]": (832, 1216),
    "5:7 [840x1176 portrait]": (840, 1176),
    "9:16 [768x1344 portrait]": (768, 1344),
    "9:21 [640x1536 portrait]": (640, 1536),
    "5:8 [768x1216 portrait]": (768, 1216),
    "9:19 [704x1472 portrait]": (704, 1472),
}
FIRST_RATIO = next(iter(RATIOS))
TRUE_FALSE = ("true", "false")


def sdxl_size(width: int, height: int, res: int = 1024) -> tuple[int, int]:
    """The pack's find_latent_size: among sizes 8i x 8j (i, j below 256) whose ratio lies in
    (0.98 r, r) for r = width / height, with at most res^2 pixels, each rounded up or down to
    multiples of 64 either way, the largest area at most res^2 (the first found on a tie).
    (0, 0) where none fits. The lower bound is the pack's Fraction(width, height) * 0.98, which
    Python makes a float (rounded); the comparisons with it and with r are exact, as the pack's
    Fraction ones are."""
    best_w = best_h = 0
    limit = res * res
    # the float the pack's bound rounds to, as an exact ratio low_num / low_den
    low_num, low_den = (Fraction(width, height) * 0.98).as_integer_ratio()
    for i in range(1, 256):
        for j in range(1, 256):
            # 8i/8j > bound  and  8i/8j < w/h, cross-multiplied
            if not (i * low_den > low_num * j and i * height < width * j and 64 * i * j <= limit):
                continue
            up_w, down_w = math.ceil(8 * i / 64) * 64, 8 * i // 64 * 64
            up_h, down_h = math.ceil(8 * j / 64) * 64, 8 * j // 64 * 64
            for w, h in ((up_w, up_h), (down_w, up_h), (up_w, down_h), (down_w, down_h)):
                if w * h <= limit and w * h > best_w * best_h:
                    best_w, best_h = w, h
    return best_w, best_h


def tile_size(width: int, height: int, res: int) -> tuple[int, int]:
    """The pack's find_tile_dimensions at multiplier 1: the size cut to multiples of 8, split into
    as many whole tiles of at least `res` as fit (at least one) each way."""
    new_w, new_h = width // 8 * 8, height // 8 * 8
    return new_w // max(1, new_w // res), new_h // max(1, new_h // res)


def _zeros_latent(batch: int, width: int, height: int) -> dict:
    import torch
    return {"samples": torch.zeros(batch, 4, height // 8, width // 8)}


# -- latents and sizes --------------------------------------------------------------------------


class MikeyEmptyLatentRatioSelect(Node):
    """A blank SDXL latent batch (4 channels, 1/8 size) of one of the pack's ratios.json sizes,
    as Mikey's Empty Latent Ratio Select SDXL. (The pack's user_ratios.json additions are not
    read.)"""
    category = "Mikey/Latent"
    ratio_selected: str = Choice(tuple(RATIOS), FIRST_RATIO)
    batch_size: int = Int(1, min=1, max=64, resource="batch")
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("Empty Latent Ratio Select SDXL",))

    def run(self):
        width, height = RATIOS[self.ratio_selected]
        return _zeros_latent(self.batch_size, width, height)


class MikeyEmptyLatentRatioCustom(Node):
    """A blank SDXL latent batch at the size near 1024x1024 pixels whose aspect ratio is just under
    width : height, as Mikey's Empty Latent Ratio Custom SDXL (its find_latent_size: sides in
    multiples of 64, ratio within 2% below the asked one, the most pixels up to 1024^2). A ratio
    too extreme for any such size is refused (the pack made an empty latent)."""
    category = "Mikey/Latent"
    width: int = Int(1024, min=1, max=8192)
    height: int = Int(1024, min=1, max=8192)
    batch_size: int = Int(1, min=1, max=64, resource="batch")
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("Empty Latent Ratio Custom SDXL",))

    def run(self):
        width, height = sdxl_size(self.width, self.height)
        if width == 0 or height == 0:
            raise NodeInputError("width", f"no SDXL size near 1024x1024 has the ratio {self.width}:{self.height}")
        return _zeros_latent(self.batch_size, width, height)


class MikeyRatioAdvanced(Node):
    """Sizes for an SDXL workflow, as Mikey's Ratio Advanced: the latent size (a ratio, or
    custom_latent_w / _h under "custom"), the CLIPTextEncodeSDXL size and the target size (each a
    ratio or the custom w / h, then times *_mult, then the SDXL size solver at *_res pixels a side,
    then fitted so the longer side is *_fit_size; a 0 skips that step) and crop_w / crop_h as given.
    Presets (the pack's user_ratio_presets.json) are not read: only "none"; swap_axis acts only on
    a preset, as in the pack."""
    category = "Mikey/Utils"
    preset: str = Choice(("none",), "none")
    swap_axis: str = Choice(TRUE_FALSE, "false")
    select_latent_ratio: str = Choice(("custom", *RATIOS), FIRST_RATIO)
    custom_latent_w: int = Int(0, min=0, max=8192)
    custom_latent_h: int = Int(0, min=0, max=8192)
    select_cte_ratio: str = Choice(("custom", *RATIOS), FIRST_RATIO)
    cte_w: int = Int(0, min=0, max=8192)
    cte_h: int = Int(0, min=0, max=8192)
    cte_mult: float = Float(0.0, min=0.0, max=100.0, step=0.01)
    cte_res: int = Int(0, min=0, max=8192)
    cte_fit_size: int = Int(0, min=0, max=8192)
    select_target_ratio: str = Choice(("custom", *RATIOS), FIRST_RATIO)
    target_w: int = Int(0, min=0, max=8192)
    target_h: int = Int(0, min=0, max=8192)
    target_mult: float = Float(0.0, min=0.0, max=100.0, step=0.01)
    target_res: int = Int(0, min=0, max=8192)
    target_fit_size: int = Int(0, min=0, max=8192)
    crop_w: int = Int(0, min=0, max=8192)
    crop_h: int = Int(0, min=0, max=8192)
    use_preset_seed: str = Choice(TRUE_FALSE, "false")
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"latent_w": INT, "latent_h": INT, "cte_w": INT, "cte_h": INT, "target_w": INT, "target_h": INT,
               "crop_w": INT, "crop_h": INT}
    comfy = ComfyAlias(("Ratio Advanced",))

    def sized(self, prefix: str) -> tuple[int, int]:
        ratio = getattr(self, f"select_{prefix}_ratio")
        w, h = RATIOS[ratio] if ratio != "custom" else (getattr(self, f"{prefix}_w"), getattr(self, f"{prefix}_h"))
        mult, res, fit = (getattr(self, f"{prefix}_{step}") for step in ("mult", "res", "fit_size"))
        if mult != 0.0:
            w, h = int(w * mult), int(h * mult)
        if res != 0:
            if w == 0 or h == 0:
                raise NodeInputError(f"{prefix}_res", f"the {prefix} size {w}x{h} has no aspect ratio to solve for")
            w, h = sdxl_size(w, h, res)
        if fit != 0:
            if max(w, h) == 0:
                raise NodeInputError(f"{prefix}_fit_size", f"the {prefix} size {w}x{h} has no aspect ratio to fit")
            w, h = (fit, int(h * fit / w)) if w > h else (int(w * fit / h), fit)
        return w, h

    def run(self):
        if self.select_latent_ratio != "custom":
            latent_w, latent_h = RATIOS[self.select_latent_ratio]
        else:
            latent_w, latent_h = self.custom_latent_w, self.custom_latent_h
        return (latent_w, latent_h, *self.sized("cte"), *self.sized("target"), self.crop_w, self.crop_h)


SDXL_RESIZE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic")


class MikeyResizeImageSDXL(Node):
    """Resize images to the SDXL size (about 1024x1024 pixels, sides in multiples of 64) whose
    ratio is just under theirs, as Mikey's Resize Image for SDXL: the size solver of Empty Latent
    Ratio Custom SDXL, then ImageScale's resampling (crop "center" crops to that ratio first)."""
    category = "Mikey/Image"
    image: IMAGE
    upscale_method: str = Choice(SDXL_RESIZE_METHODS, "nearest-exact")
    crop: str = Choice(("disabled", "center"), "disabled")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Resize Image for SDXL",))

    def run(self):
        image = _image(self.image, "image")
        width, height = sdxl_size(image.shape[2], image.shape[1])
        if width == 0 or height == 0:
            raise NodeInputError("image", f"no SDXL size has the ratio of a {image.shape[2]}x{image.shape[1]} image")
        return _resize_image(image, width, height, self.upscale_method, crop=self.crop == "center")


class MikeyUpscaleTileCalculator(Node):
    """The image, passed on, and the tile size that splits it into whole tiles of at least
    tile_resolution a side, as Mikey's Upscale Tile Calculator (sides cut to multiples of 8, then
    divided by how many tile_resolutions fit, at least one)."""
    category = "Mikey/Image"
    image: IMAGE
    tile_resolution: int = Int(512, min=1, max=8192, step=8)
    outputs = {"image": IMAGE, "tile_width": INT, "tile_height": INT}
    comfy = ComfyAlias(("Upscale Tile Calculator",))

    def run(self):
        image = _image(self.image, "image")
        return (image, *tile_size(image.shape[2], image.shape[1], self.tile_resolution))


# -- numbers and text ---------------------------------------------------------------------------


class MikeySeedString(Node):
    """The seed, and as text, as Mikey's Seed String."""
    category = "Mikey/Utils"
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"seed": INT, "seed_string": STRING}
    comfy = ComfyAlias(("Seed String",))

    def run(self):
        return self.seed, str(self.seed)


class MikeyIntToString(Node):
    """A whole number as text, with thousands commas when use_commas is "true" (Python's "{:,}"),
    as Mikey's Int to String."""
    category = "Mikey/Utils"
    int_: int = Int(0, min=0, max=SEED_MAX)
    use_commas: str = Choice(TRUE_FALSE, "false")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Int to String",))

    def run(self):
        return f"{self.int_:,}" if self.use_commas == "true" else f"{self.int_}"


class MikeyFloatToString(Node):
    """A number as Python writes it (0.5, 1e-05), with thousands commas when use_commas is "true",
    as Mikey's Float to String."""
    category = "Mikey/Utils"
    float_: float = Float(0.0, min=0.0, max=1000000.0)
    use_commas: str = Choice(TRUE_FALSE, "false")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Float to String",))

    def run(self):
        return f"{self.float_:,}" if self.use_commas == "true" else f"{self.float_}"


def _range_count(start, end, step, what: str) -> int:
    """How many numbers start, start + step, ... lie below end: whole numbers are counted exactly
    (ceil((end - start) / step) in integers: a float division loses them past 2^53)."""
    if step == 0:
        raise NodeInputError("step", "expected a step above 0")
    if all(isinstance(v, int) for v in (start, end, step)):
        count = (end - start + step - 1) // step
    else:
        span = (end - start) / step
        if math.isinf(span):
            raise NodeInputError("step", f"a step of {step} makes too many numbers from {start} to {end}")
        count = math.ceil(span)
    if count <= 0:
        raise NodeInputError("end", f"the {what} range from start {start} to end {end} is empty: end must be "
                                    "above start")
    return count


class MikeyRangeFloat(Node):
    """The number at place seed mod n of numpy.arange(start, end, step) (n numbers), and as text,
    as Mikey's Range Float: numpy's values (start + i * (start + step - start)), taken without
    building the list. An empty range or a step of 0 is refused (the pack failed)."""
    category = "Mikey/Utils"
    start: float = Float(0.0, min=0.0, max=SEED_MAX, step=0.0001)
    end: float = Float(0.0, min=0.0, max=SEED_MAX, step=0.0001)
    step: float = Float(0.0, min=0.0, max=SEED_MAX, step=0.0001)
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"FLOAT": FLOAT, "STRING": STRING}
    comfy = ComfyAlias(("Range Float",))

    def run(self):
        count = _range_count(self.start, self.end, self.step, "number")
        index = self.seed % count
        start = float(self.start)
        # numpy's arange fills start, start + step, then start + i * delta with delta their difference
        if index < 2:
            value = start + index * self.step
        else:
            value = start + index * ((start + self.step) - start)
        return value, f"{value}"


class MikeyRangeInteger(Node):
    """The whole number at place seed mod n of the range start, start + step, ... below end (n
    numbers), and as text, as Mikey's Range Integer. An empty range or a step of 0 is refused
    (the pack failed)."""
    category = "Mikey/Utils"
    start: int = Int(0, min=0, max=SEED_MAX)
    end: int = Int(0, min=0, max=SEED_MAX)
    step: int = Int(0, min=0, max=SEED_MAX)
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"INT": INT, "STRING": STRING}
    comfy = ComfyAlias(("Range Integer",))

    def run(self):
        count = _range_count(self.start, self.end, self.step, "whole-number")
        # counted and indexed in integers: len(range(...)) fails past 2^63
        value = self.start + self.step * (self.seed % count)
        return value, f"{value}"


class MikeyTextConcat(Node):
    """The non-empty texts of text1 ... text5 joined with the delimiter, as Mikey's TextConcat."""
    category = "Mikey/Text"
    delimiter: str = Text(" ")
    text1: str = Text("")
    text2: str = Text("")
    text3: str = Text("")
    text4: str = Text("")
    text5: str = Text("")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("TextConcat",), optional=("text1", "text2", "text3", "text4", "text5"))

    def run(self):
        texts = [t for t in (self.text1, self.text2, self.text3, self.text4, self.text5) if t]
        fits(sum(map(len, texts)) + len(self.delimiter) * max(0, len(texts) - 1), "delimiter")
        return self.delimiter.join(texts)


COMBINATION_TEXTS = ("text1", "text2", "text1 + text2")
# the pack's operation list: every pair of the texts above, to output1 and output2
COMBINATIONS = tuple(f"{a} to output1, {b} to output2" for a, b in itertools.product(COMBINATION_TEXTS, repeat=2))


class MikeyTextCombinations(Node):
    """Two texts made of text1, text2 or both joined by the delimiter, as the operation says
    ("text1 + text2 to output1, text2 to output2"), as Mikey's TextCombinations (Text
    Combinations 2). With use_seed "true" the operation is the seed mod 9th of the list instead.
    The pack's %date:...% and %node.widget% replacement in the texts is not done."""
    category = "Mikey/Text"
    text1: str = Text("Text 1", multiline=True)
    text2: str = Text("Text 2", multiline=True)
    operation: str = Choice(COMBINATIONS, COMBINATIONS[0])
    delimiter: str = Text(" ")
    use_seed: str = Choice(TRUE_FALSE, "false")
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"output1": STRING, "output2": STRING}
    comfy = ComfyAlias(("TextCombinations",))

    def run(self):
        operation = COMBINATIONS[self.seed % len(COMBINATIONS)] if self.use_seed == "true" else self.operation
        texts = {"text1": self.text1, "text2": self.text2}
        fits(2 * (len(self.text1) + len(self.text2) + len(self.delimiter)), "delimiter")
        outputs = []
        for part in operation.split(", "):
            names = part.split(" to ")[0].split(" + ")
            outputs.append(self.delimiter.join(texts[name] for name in names))  # names, never evaluated
        return tuple(outputs)


# -- wildcards ----------------------------------------------------------------------------------

# the pack's wildcard syntax: [N$$__name|word|word__] (N lines, lines with any of the words)
WILDCARD = re.compile(r'(\[(\d+)\$\$)?__((?:[^|_]+_)*[^|_]+)((?:\|[^|]+)*)__\]?')
MAX_WILDCARD_LINES = 10_000  # lines one wildcard may insert ([N$$...]): each is a line of text
# the wildcard pattern backtracks on long runs of "__a|": longer prompts are searched under a time limit first
UNGUARDED_PROMPT = 2000


def wildcard_lines(name: str, input_name: str = "prompt") -> list[str]:
    """The lines of wildcards/<name>.txt (name may hold folders: a/b), the first found in the
    wildcards folders; refused naming the file where there is none or it is empty."""
    for base in folders.model_dirs("wildcards"):
        try:
            path = safe_join(base, f"{name}.txt")
        except UnsafePathError as error:
            raise NodeInputError(input_name, f"wildcard __{name}__: {error}") from None
        if path.is_file():
            with open(path, encoding="utf-8") as file:  # readlines, as the pack: \r\n and \r end lines too
                lines = file.readlines()
            if not lines:
                raise NodeInputError(input_name, f"wildcard file {name}.txt in {base} is empty")
            return lines
    raise NodeInputError(input_name, f"wildcard file {name}.txt not found in the wildcards folder "
                                     f"({folders.model_dirs('wildcards')[0]})")


# work one Wildcard Processor run may do over all its passes: characters of text produced and
# wildcard-file lines looked at (nested wildcard files can grow the text threefold a pass)
MAX_WILDCARD_WORK = 30_000_000


class WildcardWork:
    """One prompt's wildcard work: each file's lines read once, and a budget shared by all passes,
    refused naming the input once spent."""

    def __init__(self, input_name: str = "prompt"):
        self.input_name = input_name
        self.files: dict[str, list[str]] = {}
        self.spent = 0

    def spend(self, amount: int) -> None:
        self.spent += amount
        if self.spent > MAX_WILDCARD_WORK:
            raise NodeInputError(self.input_name, f"the wildcards and choices need more than {MAX_WILDCARD_WORK:,} "
                                                  f"characters produced and lines looked at over all passes (wildcard "
                                                  f"files that hold wildcards grow the text each pass)")

    def lines(self, name: str) -> list[str]:
        if name not in self.files:
            self.files[name] = wildcard_lines(name, self.input_name)
        return self.files[name]


def replace_wildcards(prompt: str, seed: int, input_name: str = "prompt", work: WildcardWork | None = None) -> str:
    """The pack's find_and_replace_wildcards: each __name__ is replaced by the line at place
    offset mod n of wildcards/name.txt (stripped), the offset starting at the seed and moving on
    by the lines each wildcard took; [N$$__name__] takes N lines from there, joined by ","; with
    |words, each line is the next from there holding any of the words (whole words, any case). A
    name seen before in the prompt reads at an offset drawn from Python's random seeded with the
    seed (random.seed(seed); random.randint(0, 1000000)), as the pack does. work: the budget and
    read files shared by a prompt's passes (a fresh one where not given)."""
    work = work or WildcardWork(input_name)
    if len(prompt) > UNGUARDED_PROMPT:
        from nodes.strings import _guarded

        _guarded(WILDCARD, prompt, every_match=True, input_name=input_name)
    rng = random.Random(seed)
    offset = seed
    seen = []
    out = []
    length = 0  # of the text in out
    last_end = 0
    for match in WILDCARD.finditer(prompt):
        _, count_text, name, words_text = match.groups()
        out.append(prompt[last_end:match.start()])
        length += match.start() - last_end
        last_end = match.end()
        words = words_text.split("|")[1:] if words_text else None
        count = int(count_text) if count_text else 1
        if count > MAX_WILDCARD_LINES:
            raise NodeInputError(input_name, f"[{count}$$__{name}__] asks for more than {MAX_WILDCARD_LINES} lines")
        lines = work.lines(name)
        at = rng.randint(0, 1000000) if name in seen else offset
        picked = []
        if words:
            patterns = [re.compile(r"\b" + re.escape(word) + r"\b", re.IGNORECASE) for word in words]
            for i in range(count):
                start = (at + i) % len(lines)
                for j in range(len(lines)):
                    line = lines[(start + j) % len(lines)].strip()
                    if any(p.search(line) for p in patterns):
                        picked.append(line)
                        break
                work.spend(j + 1)
        else:
            picked = [lines[(at % len(lines) + i) % len(lines)].strip() for i in range(count)]
        out.append(picked[0] if len(picked) == 1 else ",".join(picked))
        length += len(out[-1])
        work.spend(len(out[-1]) + count)
        seen.append(name)
        offset += count
        fits(length, input_name)
    out.append(prompt[last_end:])
    return "".join(out)


# the pack's {a|b|c} choice, its pattern {([^}]+)} (braces without a } inside), each replaced (every
# copy of it) by one part; found by choice_spans, as that pattern's search backtracks on many "{"
# the pack's <random:low:high> numbers; its -?\d*\.?\d+ written as the same numbers' form that can't
# backtrack over a long run of digits
NUMBER = r"-?(?:\d+(?:\.\d+)?|\.\d+)"
RANDOM_NUMBER = re.compile(rf"<random:({NUMBER}):({NUMBER})>")
WILDCARD_PASSES = 10  # the pack's: more passes for wildcards that wildcard files hold
# characters scanned by the {a|b} pass (each choice replaces through the whole text, as the pack's)
MAX_CHOICE_WORK = 10 ** 8


def choice_spans(text: str):
    """(start, end) of each match of the pack's {([^}]+)} in text, as re.finditer finds them, in
    one pass: from each "{", the next "}" ends the match, unless it follows at once ("{}", no
    match there: on from the next "{"); with no "}" after a "{" there are no more matches."""
    start = text.find("{")
    while start != -1:
        end = text.find("}", start + 1)
        if end == -1:
            return
        if end == start + 1:
            start = text.find("{", end)
            continue
        yield start, end + 1
        start = text.find("{", end + 1)


def replace_choices(prompt: str, seed: int, input_name: str = "prompt") -> str:
    """The pack's process_wildcard_syntax: after random.seed(seed), each {a|b} of the prompt as
    written, in turn, replaced wherever it stands by random.choice of its |-parts."""
    matches = [prompt[start:end] for start, end in choice_spans(prompt)]  # of the prompt as given, as the pack's
    if len(matches) * len(prompt) > MAX_CHOICE_WORK:
        raise NodeInputError(input_name, f"{len(matches):,} {{a|b}} choices in {len(prompt):,} characters: each is "
                                         f"replaced through the whole text, too much work (at most "
                                         f"{MAX_CHOICE_WORK:,} characters scanned)")
    rng = random.Random(seed)
    for match in matches:
        prompt = prompt.replace(match, rng.choice(match[1:-1].split("|")))
    return prompt


def replace_random_numbers(prompt: str, seed: int) -> str:
    """The pack's process_random_syntax: after random.seed(seed), each <random:low:high> replaced
    in turn by random.uniform(low, high) rounded to 4 places, as Python writes it."""
    rng = random.Random(seed)
    return RANDOM_NUMBER.sub(lambda m: str(round(rng.uniform(float(m.group(1)), float(m.group(2))), 4)), prompt)


def process_prompt(prompt: str, seed: int, input_name: str = "prompt") -> str:
    """The pack's Wildcard Processor pass: {a|b} choices, <random:a:b> numbers, then wildcards,
    each seeded with the seed; while wildcards changed the text, again (up to 10 more passes), so
    that wildcards and choices inside wildcard files are replaced too. Each pass's text is held to
    the text limit, and all passes to one budget of work (MAX_WILDCARD_WORK); each wildcard file
    is read once."""
    work = WildcardWork(input_name)

    def one_pass(text: str) -> tuple[str, str]:
        text = replace_random_numbers(replace_choices(text, seed, input_name), seed)
        fits(len(text), input_name)
        work.spend(len(text))
        return text, replace_wildcards(text, seed, input_name, work)

    before, after = one_pass(prompt)
    for _ in range(WILDCARD_PASSES):
        if after == before:
            break
        check_interrupted()
        before, after = one_pass(after)
    return after


class MikeyWildcardProcessor(Node):
    """The prompt with its {a|b} choices, <random:low:high> numbers and __wildcards__ replaced, as
    Mikey's Wildcard Processor does: {a|b|c} by a part picked by Python's random seeded with the
    seed (the pack's process_wildcard_syntax: every copy of one {...} gets the same part);
    <random:1.5:3> by random.uniform between them rounded to 4 places (random seeded again);
    then __name__ by lines of the wildcards folder's .txt files, picked by the seed as the pack
    picks them: __name__ (a/b for a folder), [N$$__name__] for N lines, __name|word|word__ for
    lines holding a word; and again, up to 10 more passes, while wildcards changed the text (for
    wildcards inside wildcard files). A wildcard whose file is missing or empty is refused naming
    the file (the pack dropped it from the prompt). A prompt over 2000 characters is searched
    under a time limit first (runs like "__a|__a|..." make the pattern backtrack) and refused where
    that runs out. Not done: the pack's %date:...% and %node.widget% replacement; the later
    bracketless N$$__name__ (read here as the text N$$ then __name__), comment lines and the !, +,
    -, * offset marks. The choices, numbers and passes follow code the pack has commented out (no
    live copy found): its live Wildcard Processor may replace only __wildcards__."""
    category = "Mikey/Text"
    prompt: str = Text("", multiline=True)
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Wildcard Processor",))

    def run(self):
        return process_prompt(self.prompt, self.seed)


# -- images -------------------------------------------------------------------------------------


class MikeyImageOverlay(Node):
    """The foreground laid over the background in the overlay blend mode, as Mikey's ImageOverlay:
    the foreground centred on a black canvas of the background's size (cropped where larger), then
    2ab where the background is below 0.5, else 1 - 2(1 - a)(1 - b), mixed with the background by
    opacity, in 8-bit levels (cut, not rounded, as the pack's). Batches go image by image, the
    foreground's last image reused (the pack took one image of each)."""
    category = "Mikey/Image"
    background_image: IMAGE
    foreground_image: IMAGE
    opacity: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"result_img": IMAGE}
    comfy = ComfyAlias(("ImageOverlay",))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image

        from graphflow.images import image_to_pil, pil_to_image

        backgrounds = _image(self.background_image, "background_image")
        foregrounds = _image(self.foreground_image, "foreground_image")
        results = []
        for index, background in enumerate(backgrounds):
            back = image_to_pil(background).convert("RGB")
            front = image_to_pil(foregrounds[min(index, len(foregrounds) - 1)]).convert("RGB")
            canvas = Image.new("RGB", back.size)
            canvas.paste(front, (int((back.width - front.width) / 2), int((back.height - front.height) / 2)))
            a = np.asarray(back, dtype=np.float32) / 255
            b = np.asarray(canvas, dtype=np.float32) / 255
            blend = np.where(a < 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b))
            mixed = (1 - self.opacity) * a + self.opacity * blend
            results.append(pil_to_image(Image.fromarray((mixed * 255).astype(np.uint8))))
        return torch.cat(results)


# -- savers -------------------------------------------------------------------------------------


def _counter_after_pngs(folder) -> int:
    """The pack's get_save_image_path counter: 1 + the highest number second from last between
    "_" in the folder's .png names (0 for a name without one)."""
    import os

    highest = 0
    for name in os.listdir(folder):
        if name.endswith(".png"):
            try:
                highest = max(highest, int(name.split("_")[-2]))
            except (ValueError, IndexError):
                pass
    return highest + 1


def _png_texts(extra: dict[str, str]):
    """PNG text chunks: the workflow's (ComfyUI's prompt and workflow, ours), then these."""
    from nodes.image import _png_metadata

    info = _png_metadata()
    for key, text in extra.items():
        info.add_text(key, text)
    return info


NAME_MAX_BYTES = 255  # the most a file system takes for one file or folder name


def _check_folder_names(path_text: str, input_name: str) -> None:
    """Refuse, naming the input, a folder path text with a name over 255 bytes (the file system
    would fail with ENAMETOOLONG)."""
    for part in re.split(r"[/\\]", path_text):
        if len(part.encode()) > NAME_MAX_BYTES:
            raise NodeInputError(input_name, f"the folder name {part[:40]!r}... is {len(part.encode())} bytes: a "
                                             f"file system takes at most {NAME_MAX_BYTES}")


class MikeySaveImageWithPromptData(Node):
    """Save images as PNGs in the outputs folder with the prompts in text chunks, as Mikey's Save
    Image With Prompt Data: chunks positive_prompt, negative_prompt, filename_prefix (as JSON) and
    parameters where given, beside the workflow's prompt and workflow. Named
    `<prefix, only letters, digits, space, _ and ->_<NNNNN>_.png` (the prefix cut to 75 characters;
    %width% and %height% replaced by the first image's size; its folder part names the subfolder),
    or without a prefix `<yymmddHHMMSS>_<positive prompt's letters, digits and spaces as _, 80 at
    most>__<NNNNN>_.png`; NNNNN counts on from the highest in the folder, and a name taken is
    never overwritten (the next number is used). The pack's %date:...% / %node.widget% replacement
    in the prefix is not done."""
    category = "Mikey/Image"
    output_node = True
    images: IMAGE
    positive_prompt: str = Text("Positive Prompt")
    negative_prompt: str = Text("Negative Prompt")
    filename_prefix: str = Text("")
    parameters: str = Text("")
    comfy = ComfyAlias(("Save Image With Prompt Data",))

    def run(self):
        import datetime
        import posixpath

        from graphflow.api import show
        from graphflow.images import image_to_pil
        from nodes.image import _save_new

        images = _image(self.images, "images")
        prefix = self.filename_prefix.replace("%width%", str(images.shape[2])).replace("%height%", str(images.shape[1]))
        normal = posixpath.normpath(prefix) if prefix else ""
        subfolder, filename = posixpath.split(normal)
        filename = filename[:-1] if filename.endswith(".") else filename
        _check_folder_names(subfolder, "filename_prefix")
        try:
            folder = safe_join(folders.outputs, subfolder) if subfolder else folders.outputs
        except UnsafePathError as error:
            raise NodeInputError("filename_prefix",
                                 f"saving outside the output folder is not allowed: {error}") from None
        folder.mkdir(parents=True, exist_ok=True)
        counter = _counter_after_pngs(folder)
        texts = {}
        if self.positive_prompt:
            texts["positive_prompt"] = self.positive_prompt
        if self.negative_prompt:
            texts["negative_prompt"] = self.negative_prompt
        if prefix:
            clean_prefix = re.sub(r"[^a-zA-Z0-9 _-]", "", prefix)
            texts["filename_prefix"] = json.dumps(clean_prefix, ensure_ascii=False)
        if self.parameters:
            texts["parameters"] = self.parameters
        metadata = _png_texts(texts)
        pos_short = re.sub(r"[^a-zA-Z0-9 ]", "", self.positive_prompt).replace(" ", "_")[:80]
        saved = []
        for image in images:
            if prefix:
                stem = clean_prefix[:75]
            else:
                stem = f"{datetime.datetime.now().strftime('%y%m%d%H%M%S')}_{pos_short}_{filename}"
            name, counter = _save_new(image_to_pil(image), folder, stem, counter, pnginfo=metadata, compress_level=4)
            saved.append({"filename": name, "subfolder": subfolder, "type": "output"})
            counter += 1
        show(images=saved)


FILENAME_TEXT_DEFAULTS = ("Filename Text 1", "Filename Text 2", "Filename Text 3")


def _mikey_file_texts(texts: tuple[str, str, str]) -> list[str]:
    """The pack's filename texts: characters a file name can't hold (<>:"/\\|?*) and non-ASCII
    ones dropped, then, where the three with 22 more pass 120 characters, the longest cut so they
    fit. (The pack blanks its default texts, then reads them back: they stay.)"""
    cleaned = [re.sub(r'[<>:"/\\|?*]', "", text).encode("ascii", "ignore").decode("ascii") for text in texts]
    total = sum(map(len, cleaned)) + 5 + 5 + 12
    if total > 120:
        longest = max(cleaned, key=len)
        at = cleaned.index(longest)
        cleaned[at] = longest[:max(0, 120 - (total - len(longest)))]
    return cleaned


class MikeySaveImagesMikey(Node):
    """Save images as PNGs in a subfolder of the outputs folder, named from up to five parts in
    the order their *_pos numbers give, joined by filename_separator, as Mikey's Save Images
    Mikey: the three filename texts, a timestamp (yyyymmddHHMMSS; with timestamp_type save_time
    each file's own, yymmddHHMMSS) and a five-digit counter. counter_type "folder" counts on from
    the highest number at the counter's place among the folder's names split by the separator
    (from 1 where one there is not a number), "filename" from 1 + the files whose first parts are
    these texts, and a number whose file exists is passed over (each file is written under a
    temporary name, then given the first free number's name: two runs never share one, and no
    half-written file has a real name); "none" names no counter and adds _01, _02 ... after the
    timestamp of the batch's later images (after the name, where there is no timestamp: the pack's
    text there was garbled), and, as the pack's, overwrites a file of the same name (replaced
    whole, never half-written). extra_metadata is written as a PNG text chunk beside the
    workflow's. Positions must differ; a separator with / or \\, a NUL in a text, and a file or
    folder name over 255 bytes are refused, naming the input the text came from. The
    pack's %date:...% / %node.widget% replacement is not done, and "counter" in a filename text
    stays as written (the pack's made it the number too)."""
    category = "Mikey/Image"
    output_node = True
    images: IMAGE
    sub_directory: str = Text("")
    filename_text_1: str = Text("Filename Text 1")
    filename_text_2: str = Text("Filename Text 2")
    filename_text_3: str = Text("Filename Text 3")
    filename_separator: str = Text("_")
    timestamp: str = Choice(TRUE_FALSE, "true")
    counter_type: str = Choice(("none", "folder", "filename"), "folder")
    filename_text_1_pos: int = Int(0)
    filename_text_2_pos: int = Int(2)
    filename_text_3_pos: int = Int(4)
    timestamp_pos: int = Int(1)
    timestamp_type: str = Choice(("job", "save_time"), "save_time")
    counter_pos: int = Int(3)
    extra_metadata: str = Text("Extra Metadata")
    comfy = ComfyAlias(("Save Images Mikey",))
    shown = True  # Save Images No Display sets False

    def first_counter(self, names: list[str], texts: list[str]) -> int:
        separator = self.filename_separator
        counter = 1
        if self.counter_type == "folder":
            for name in names:
                if not separator:  # the pack's split("") fails on the first name: from 1
                    return 1
                if separator in name:
                    parts = name.split(separator)
                    try:
                        counter = max(counter, int(parts[self.counter_pos]) + 1)
                    except (ValueError, IndexError):
                        return 1
        elif self.counter_type == "filename":
            for name in names:
                parts = [p.replace(".png", "") for p in name.split(separator)] if separator else [name]
                if all(i < len(parts) and texts[i] == parts[i] for i in range(3) if texts[i]):
                    counter += 1
        return counter

    def run(self):
        import datetime
        import os

        from graphflow.api import show
        from graphflow.images import image_to_pil
        from nodes.image import _claim, _temporary, _write_at

        images = _image(self.images, "images")
        positions = (self.filename_text_1_pos, self.filename_text_2_pos, self.filename_text_3_pos, self.timestamp_pos,
                     self.counter_pos)
        if len(set(positions)) != len(positions):
            raise NodeInputError("counter_pos", f"the five *_pos numbers must differ (they are {list(positions)})")
        if "/" in self.filename_separator or "\\" in self.filename_separator:
            raise NodeInputError("filename_separator", "a separator can't hold / or \\: it would make folders")
        for input_name in ("filename_text_1", "filename_text_2", "filename_text_3", "filename_separator"):
            if "\x00" in getattr(self, input_name):
                raise NodeInputError(input_name, "a file name can't hold a NUL character")
        sub_directory = re.sub(r'[<>:"|?*]', "", self.sub_directory).encode("ascii", "ignore").decode("ascii")
        _check_folder_names(sub_directory, "sub_directory")
        try:
            folder = safe_join(folders.outputs, sub_directory) if sub_directory else folders.outputs
        except UnsafePathError as error:
            raise NodeInputError("sub_directory", f"saving outside the output folder is not allowed: {error}") from None
        folder.mkdir(parents=True, exist_ok=True)
        texts = _mikey_file_texts((self.filename_text_1, self.filename_text_2, self.filename_text_3))
        stamp = datetime.datetime.now().strftime("%Y%m%d%H%M%S") if self.timestamp == "true" else ""
        counter = self.first_counter(os.listdir(folder), texts) if self.counter_type != "none" else 0
        metadata = _png_texts({"extra_metadata": self.extra_metadata} if self.extra_metadata else {})
        saved = []
        for index, image in enumerate(images):
            if self.timestamp_type == "save_time" and self.timestamp == "true":
                stamp = datetime.datetime.now().strftime("%y%m%d%H%M%S")
            picture = image_to_pil(image)

            def write(path, picture=picture):
                picture.save(path, format="PNG", pnginfo=metadata, compress_level=4)

            if self.counter_type == "none":  # the pack's: the name is reused, the file overwritten
                name = self.checked_name(texts, stamp, counter, index, folder)
                _write_at(write, folder / name, overwrite=True)
            else:  # written under a temporary name, then linked to the first free counter's name
                temporary = _temporary(folder, "mikey")
                try:
                    write(temporary)
                    while not _claim(temporary, folder / (name := self.checked_name(texts, stamp, counter, index,
                                                                                    folder))):
                        counter += 1
                finally:
                    temporary.unlink(missing_ok=True)
                counter += 1
            saved.append({"filename": name, "subfolder": sub_directory, "type": "output"})
        if self.shown:
            show(images=saved)

    def checked_name(self, texts: list[str], stamp: str, counter: int, index: int, folder) -> str:
        """The file's name (.png), refused naming the input that made it longer than a file
        system takes (the longest of the texts, or the separator's repeats)."""
        name = self.file_name(texts, stamp, counter, index) + ".png"
        if len(name.encode()) > NAME_MAX_BYTES:
            shares = {"filename_separator": len(self.filename_separator) * 4,
                      **{f"filename_text_{i + 1}": len(text) for i, text in enumerate(texts)}}
            culprit = max(shares, key=shares.get)
            raise NodeInputError(culprit, f"makes the file name {len(name.encode())} bytes long: a file system "
                                          f"takes at most {NAME_MAX_BYTES}")
        try:
            safe_join(folder, name)
        except UnsafePathError as error:
            raise NodeInputError("filename_separator", f"the file name {name!r} is not allowed: {error}") from None
        return name

    def file_name(self, texts: list[str], stamp: str, counter: int, index: int) -> str:
        if self.counter_type == "none" and index > 0:
            stamp_or_end = f"{stamp}_{index:02}"
        else:
            stamp_or_end = stamp
        parts = {self.filename_text_1_pos: texts[0], self.filename_text_2_pos: texts[1],
                 self.filename_text_3_pos: texts[2], self.timestamp_pos: stamp_or_end,
                 self.counter_pos: f"{counter:05}" if self.counter_type != "none" else ""}
        name = self.filename_separator.join(part for _, part in sorted(parts.items()) if part)
        if self.counter_type == "none" and index > 0 and not stamp:
            name += f"_{index:02}"
        if not name:
            raise NodeInputError("filename_text_1", "the file name is empty: give a filename text, the timestamp or "
                                                    "the counter")
        return name


class MikeySaveImagesNoDisplay(MikeySaveImagesMikey):
    """Save Images Mikey's saving, without showing the images in the editor, as Mikey's Save
    Images No Display."""
    comfy = ComfyAlias(("Save Images No Display",))
    shown = False


# -- folders of pictures ------------------------------------------------------------------------

FOLDER_PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


def input_folder_pictures(directory: str) -> list:
    """The pictures (the pack's extensions) in a folder of the inputs folder, sorted by name, held
    to the server's limits; errors name image_directory. An empty directory text (the pack's
    os.path.exists("") failed) and a folder with no pictures are refused. (The pack read any path
    on the machine, in the file system's order.)"""
    from nodes.image import check_folder_pictures, folder_files

    if not directory.strip():
        raise NodeInputError("image_directory", "is empty: give a folder inside the inputs folder")
    try:
        folder = safe_join(folders.inputs, directory.strip())
    except UnsafePathError as error:
        raise NodeInputError("image_directory", f"{error}: give a folder inside the inputs folder") from None
    if not folder.is_dir():
        raise NodeInputError("image_directory", f"image directory {directory!r} does not exist in the inputs folder")
    files = folder_files(folder, FOLDER_PICTURE_EXTENSIONS)
    if not files:
        raise NodeInputError("image_directory", f"{directory!r} in the inputs folder holds no pictures "
                                                f"({', '.join(FOLDER_PICTURE_EXTENSIONS)})")
    check_folder_pictures(files, "image_directory", "image_directory")
    return files


def _folder_picture(path):
    """One picture of such a folder as an RGB IMAGE of 1 (a GIF's first frame)."""
    from nodes.image import _load_picture

    try:
        return _load_picture(path, path.name, first_frame_only=True)[0]
    except NodeInputError as error:
        raise NodeInputError("image_directory", str(error)) from None


class MikeyBatchLoadImages(Node):
    """Every picture (.png, .jpg, .jpeg, .webp, .bmp, .gif) in a folder of the inputs folder, as a
    list (what follows runs once per picture), as Mikey's Batch Load Images; RGB, sorted by name.
    subdirectories does nothing, as in the pack."""
    category = "Mikey/Image"
    image_directory: str = Text("")
    subdirectories: str = Choice(TRUE_FALSE, "false")
    outputs = {"image": ListOf(IMAGE)}
    comfy = ComfyAlias(("Batch Load Images",))

    def run(self):
        return [_folder_picture(path) for path in input_folder_pictures(self.image_directory)]


class MikeyBatchResizeImageSDXL(Node):
    """Every picture in a folder of the inputs folder resized as Resize Image for SDXL resizes,
    as a list, as Mikey's Batch Resize Image for SDXL; RGB, sorted by name."""
    category = "Mikey/Image"
    image_directory: str = Text("")
    upscale_method: str = Choice(SDXL_RESIZE_METHODS, "nearest-exact")
    crop: str = Choice(("disabled", "center"), "disabled")
    outputs = {"image": ListOf(IMAGE)}
    comfy = ComfyAlias(("Batch Resize Image for SDXL",))

    def run(self):
        resized = []
        for path in input_folder_pictures(self.image_directory):
            image = _folder_picture(path)
            width, height = sdxl_size(image.shape[2], image.shape[1])
            if width == 0 or height == 0:
                raise NodeInputError("image_directory", f"no SDXL size has the ratio of {path.name!r}")
            resized.append(_resize_image(image, width, height, self.upscale_method, crop=self.crop == "center"))
        return resized


class MikeyBatchCropImage(Node):
    """Every picture in a folder of the inputs folder with int(width x crop_amount) rounded down
    to a multiple of 8 pixels cut from each side (the width's share on all four), as a list, as
    Mikey's Batch Crop Image; RGB, sorted by name."""
    category = "Mikey/Image"
    image_directory: str = Text("")
    crop_amount: float = Float(0.05, min=0.0, max=1.0)
    outputs = {"image": ListOf(IMAGE)}
    comfy = ComfyAlias(("Batch Crop Image",))

    def run(self):
        cropped = []
        for path in input_folder_pictures(self.image_directory):
            image = _folder_picture(path)
            cut = int(image.shape[2] * self.crop_amount) // 8 * 8
            if 2 * cut >= image.shape[1]:
                raise NodeInputError("crop_amount", f"cutting {cut} pixels a side leaves nothing of {path.name!r}")
            cropped.append(image[:, cut:image.shape[1] - cut, cut:image.shape[2] - cut])
        return cropped


# -- caption ------------------------------------------------------------------------------------

CAPTION_FONT_SIZE = 32
MAX_CAPTION = 100_000  # characters: each line is measured a few times over, and the bar grows with the lines


def caption_font(name: str):
    """The font file `name` from models/fonts at the pack's 32 px, else Pillow's own font (the
    system's: Pillow's bundled scalable default) at that size."""
    from nodes.pack_nodes_essentials_misc import text_font

    return text_font(name, CAPTION_FONT_SIZE)


def caption_lines(text: str, font, width: int) -> list[str]:
    """The pack's wrap: each line's words added while the line measures at most the width. A
    line's width only grows as words are added, so the first word that doesn't fit is found by
    doubling, then halving, the words tried: a few measures a line, not one a word (the pack's
    measured the growing line once per word, which took half a minute on a long caption)."""

    def fits(words: list[str], start: int, end: int) -> bool:
        return int(font.getlength(" ".join(words[start:end]))) <= width

    lines = []
    for line in text.split("\n"):
        words = line.split(" ")
        start = 0
        while start < len(words):
            fitting, step = start + 1, 1  # the first word is always taken
            while fitting + step <= len(words) and fits(words, start, fitting + step):
                fitting, step = fitting + step, step * 2
            low, high = fitting, min(fitting + step, len(words) + 1) - 1  # the last that fits is in [low, high]
            while low < high:
                middle = (low + high + 1) // 2
                if fits(words, start, middle):
                    low = middle
                else:
                    high = middle - 1
            lines.append(" ".join(words[start:low]))
            start = low
    return lines


class MikeyImageCaption(Node):
    """The image with a black caption bar below it, the caption in white 32 px text, each line
    centred, wrapped to the image's width, as Mikey's Image Caption: the bar is 15 px + the lines x
    the height of "Hg" + 15 px, then 5 px more black. The font is a file of models/fonts (the pack
    reads ComfyUI's fonts folder, or a path); a name not there is drawn with Pillow's own font.
    A caption over 100000 characters is refused. The pack's %date:...% / %node.widget%
    replacement is not done."""
    category = "Mikey/Image"
    image: IMAGE
    font: str = Text("Path to font file")
    caption: str = Text("Caption", multiline=True)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("Image Caption",))

    def run(self):
        import torch
        from PIL import Image, ImageDraw

        from graphflow.images import image_to_pil, pil_to_image

        images = _image(self.image, "image")
        if len(self.caption) > MAX_CAPTION:
            raise NodeInputError("caption", f"is {len(self.caption)} characters: at most {MAX_CAPTION} are drawn")
        font = caption_font(self.font)
        width, height = images.shape[2], images.shape[1]
        lines = caption_lines(self.caption, font, width)
        left, top, right, bottom = font.getbbox("Hg")
        bar_height = len(lines) * (bottom - top) + 2 * 15
        if width * (height + bar_height + 5) > 2 ** 28:
            raise NodeInputError("caption", f"{len(lines)} lines of caption make the picture too tall")
        bar = Image.new("RGB", (width, bar_height), (0, 0, 0))
        draw = ImageDraw.Draw(bar)
        y = 15
        for line in lines:
            draw.text(((width - int(font.getlength(line))) // 2, y), line, (255, 255, 255), font=font)
            line_box = font.getbbox(line)
            y += line_box[3] - line_box[1] + 5
        captioned = []
        for image in images:
            combined = Image.new("RGB", (width, height + bar_height + 5), (0, 0, 0))
            combined.paste(bar, (0, height))
            combined.paste(image_to_pil(image).convert("RGB"), (0, 0))
            captioned.append(pil_to_image(combined))
        return torch.cat(captioned)


# -- loaders ------------------------------------------------------------------------------------


class MikeyCheckpointLoaderSimple(LoadCheckpoint):
    """Load a checkpoint as CheckpointLoaderSimple does, as Mikey's Checkpoint Loader Simple, also
    giving its file name (without folders) and the first 10 hex digits of its SHA-256 (the pack
    caches hashes in a file_hashes.json; nothing is written here)."""
    category = "Mikey/Loaders"
    outputs = {"model": LoadCheckpoint.outputs["model"], "clip": LoadCheckpoint.outputs["clip"],
               "vae": LoadCheckpoint.outputs["vae"], "ckpt_name": STRING, "ckpt_hash": STRING}
    comfy = ComfyAlias(("Checkpoint Loader Simple Mikey",), inputs={"ckpt_name": "checkpoint"})

    def run(self):
        import posixpath

        from nodes.loaders import _find
        from nodes.pack_nodes_image_saver import file_sha256

        digest = file_sha256(_find("checkpoints", self.checkpoint, "checkpoint"))[:10]
        return (*super().run(), posixpath.basename(self.checkpoint.replace("\\", "/")), digest)


# -- styles and SDXL prompts --------------------------------------------------------------------

STYLE_FILES = ("styles.json", "user_styles.json")  # the pack's file, then ComfyUI's user file it adds to
# models/styles/mikey: apart from the styles folder's top level, whose every .json twri's
# sdxl_prompt_styler (nodes/pack_nodes_sdxl_styler.py) reads as a list of styles
MIKEY_STYLES_FOLDER = "mikey"
STYLES_SHAPE = '{"styles": {name: {"positive": ..., "negative": ...}}}'


def _style_file(file_name: str):
    """models/styles/mikey/<file_name>, the first styles folder holding it (inside it), or None."""
    try:
        return folders.find_model("styles", f"{MIKEY_STYLES_FOLDER}/{file_name}", inside=True)
    except (FileNotFoundError, UnsafePathError):
        return None


@lru_cache(maxsize=8)
def _read_style_file(state: tuple) -> dict[str, tuple[str, str]]:
    """One style file's {style: (positive, negative)}, read once per (path, mtime, size): a file
    too large or not of the pack's shape is left out on its own with a warning naming it."""
    path = Path(state[0])
    if state[2] > MAX_STYLE_FILE:
        warn(f"Mikey style file {path} is larger than {MAX_STYLE_FILE:,} bytes: left out")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(name): (str(style["positive"]), str(style["negative"])) for name, style in data["styles"].items()}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        warn(f"Mikey style file {path} is not the pack's shape {STYLES_SHAPE}: left out ({error!r})")
        return {}


def mikey_styles() -> dict[str, tuple[str, str]]:
    """{style: (positive, negative)} from models/styles/mikey/styles.json (the pack's own, put
    there) and then user_styles.json, each {"styles": {name: {"positive", "negative"}}} as the
    pack reads them; a file missing, too large or of another shape adds nothing (the last two
    with a warning naming it). Empty where neither gives styles."""
    styles = {}
    for file_name in STYLE_FILES:
        path = _style_file(file_name)
        if path is not None:
            styles.update(_read_style_file(style_file_state(path)))
    return styles


def style_choices() -> list[str]:
    """The styles' names, or only "none" where models/styles/mikey gives none."""
    return list(mikey_styles()) or ["none"]


def picked_style(style: str) -> tuple[str, str]:
    styles = mikey_styles()
    if style not in styles:
        if style == "none" and not styles:
            return "", ""
        where = folders.model_dirs("styles")[0] / MIKEY_STYLES_FOLDER
        raise NodeInputError("style", f"style {style!r} is not in styles.json / user_styles.json in {where} "
                                      "(copy the pack's styles.json there)")
    return styles[style]


def no_random_syntax(text: str, input_name: str) -> str:
    if "<random:" in text:
        raise NodeInputError(input_name, "<random:low:high> numbers (the pack's later syntax) are not made here")
    return text


def styled(prompt: str, placeholder: str, style_text: str) -> str:
    """The pack's merge: the prompt in the style's {prompt}, else after it with ", " (the style
    alone where the prompt is empty or still its placeholder)."""
    if prompt == "" or prompt == placeholder:
        return style_text
    if "{prompt}" in style_text:
        return style_text.replace("{prompt}", prompt)
    return f"{prompt}, {style_text}" if style_text else prompt


def refiner_size(width: int, height: int) -> tuple[int, int]:
    """The pack's 4096 target: 4096 on the longer side, 4096 x shorter / longer cut to 8 on the other."""
    ratio = min(width, height) / max(width, height)
    short = int(4096 * ratio // 8 * 8)
    return (4096, short) if width > height else (short, 4096)


class MikeyPromptWithStyle(Node):
    """A styled SDXL prompt pair and latent, as Mikey's Prompt With Style (V1): wildcards replaced
    as Wildcard Processor does (with the seed), the style's positive / negative text merged in
    ({prompt} in the style takes the prompt, else ", style" is added), an empty latent of the
    ratio's size and the refiner size (4096 on the longer side). Styles are read from
    models/styles/mikey/: styles.json (the pack's own file, to be put there) and user_styles.json
    (not the styles folder's top level, whose .json files SDXL Prompt Styler reads as lists); a
    file of another shape is left out with a warning naming it; a style not there is refused
    naming the files. The pack's <random:a:b> and %date% / %node.widget%
    syntax is not supported."""
    category = "Mikey"
    positive_prompt: str = Text("Positive Prompt", multiline=True)
    negative_prompt: str = Text("Negative Prompt", multiline=True)
    style: str = Choice(style_choices, "none")
    ratio_selected: str = Choice(tuple(RATIOS), FIRST_RATIO)
    batch_size: int = Int(1, min=1, max=64, resource="batch")
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"samples": LATENT, "positive_prompt_text_g": STRING, "negative_prompt_text_g": STRING,
               "positive_style_text_l": STRING, "negative_style_text_l": STRING, "width": INT, "height": INT,
               "refiner_width": INT, "refiner_height": INT}
    comfy = ComfyAlias(("Prompt With Style",))

    def run(self):
        positive_style, negative_style = picked_style(self.style)
        positive = replace_wildcards(no_random_syntax(self.positive_prompt, "positive_prompt"), self.seed,
                                     "positive_prompt")
        negative = replace_wildcards(no_random_syntax(self.negative_prompt, "negative_prompt"), self.seed,
                                     "negative_prompt")
        width, height = RATIOS[self.ratio_selected]
        return (_zeros_latent(self.batch_size, width, height), styled(positive, "Positive Prompt", positive_style),
                styled(negative, "Negative Prompt", negative_style), positive_style, negative_style, width, height,
                *refiner_size(width, height))


class MikeyPromptWithSDXL(Node):
    """The prompts (wildcards replaced with the seed, as Wildcard Processor does) and styles passed
    on, an empty latent of the ratio's size, its size and the refiner size (4096 on the longer
    side), as Mikey's Prompt With SDXL. The pack's <random:a:b> and %date% / %node.widget% syntax
    is not supported."""
    category = "Mikey"
    positive_prompt: str = Text("Positive Prompt", multiline=True)
    negative_prompt: str = Text("Negative Prompt", multiline=True)
    positive_style: str = Text("Positive Style", multiline=True)
    negative_style: str = Text("Negative Style", multiline=True)
    ratio_selected: str = Choice(tuple(RATIOS), FIRST_RATIO)
    batch_size: int = Int(1, min=1, max=64, resource="batch")
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = MikeyPromptWithStyle.outputs
    comfy = ComfyAlias(("Prompt With SDXL",))

    def run(self):
        positive = replace_wildcards(no_random_syntax(self.positive_prompt, "positive_prompt"), self.seed,
                                     "positive_prompt")
        negative = replace_wildcards(no_random_syntax(self.negative_prompt, "negative_prompt"), self.seed,
                                     "negative_prompt")
        width, height = RATIOS[self.ratio_selected]
        return (_zeros_latent(self.batch_size, width, height), positive, negative, self.positive_style,
                self.negative_style, width, height, *refiner_size(width, height))


class MikeyStyleConditioner(Node):
    """A style mixed into SDXL base and refiner conditionings, as Mikey's Style Conditioner: the
    style's positive and negative texts ({prompt} taken out) encoded with CLIPTextEncodeSDXL
    (1024 x 1024, both towers the style) and CLIPTextEncodeSDXLRefiner (ascore 6 / 2.5, 4096 x
    4096), each then ConditioningAverage'd onto the given one at strength (the style's share).
    "none" passes them through; use_seed picks the style at seed mod the number of styles. Styles
    as Prompt With Style reads them."""
    category = "Mikey/Conditioning"
    style: str = Choice(style_choices, "none")
    strength: float = Float(0.5, min=0.0, max=1.0, step=0.1)
    positive_cond_base: CONDITIONING
    negative_cond_base: CONDITIONING
    positive_cond_refiner: CONDITIONING
    negative_cond_refiner: CONDITIONING
    base_clip: CLIP
    refiner_clip: CLIP
    use_seed: str = Choice(TRUE_FALSE, "false")
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"base_pos_cond": CONDITIONING, "base_neg_cond": CONDITIONING, "refiner_pos_cond": CONDITIONING,
               "refiner_neg_cond": CONDITIONING, "style_str": STRING}
    comfy = ComfyAlias(("Style Conditioner",))

    def run(self):
        from nodes.conditioning import CLIPEncodeSDXL, CLIPEncodeSDXLRefiner, ConditioningAverage
        from nodes.pack_nodes import _core

        style = self.style
        if self.use_seed == "true":
            names = list(mikey_styles())
            if names:
                style = names[self.seed % len(names)]
        given = (self.positive_cond_base, self.negative_cond_base,
                 self.positive_cond_refiner, self.negative_cond_refiner)
        if style == "none":
            return (*given, style)
        positive, negative = (text.replace("{prompt}", "") for text in picked_style(style))
        base = {"width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024, "target_height": 1024}
        base_clip = {"clip": "base_clip"}
        made = (_core(CLIPEncodeSDXL, base_clip, clip=self.base_clip, text_g=positive, text_l=positive, **base),
                _core(CLIPEncodeSDXL, base_clip, clip=self.base_clip, text_g=negative, text_l=negative, **base),
                _core(CLIPEncodeSDXLRefiner, {"clip": "refiner_clip"}, clip=self.refiner_clip, ascore=6.0, width=4096,
                      height=4096, text=positive),
                _core(CLIPEncodeSDXLRefiner, {"clip": "refiner_clip"}, clip=self.refiner_clip, ascore=2.5, width=4096,
                      height=4096, text=negative))
        names = ("positive_cond_base", "negative_cond_base", "positive_cond_refiner", "negative_cond_refiner")
        mixed = [_core(ConditioningAverage, {"conditioning_from": name}, conditioning_to=new, conditioning_from=old,
                       conditioning_to_strength=self.strength) for new, old, name in zip(made, given, names)]
        return (*mixed, style)


# -- samplers -----------------------------------------------------------------------------------


def image_complexity(image) -> float:
    """The pack's calculate_image_complexity of an image [H, W, C]: on its 8-bit levels (cut, as
    the pack's tensor2pil), the share of grey-level steps whose size exceeds 30 (numpy's uint8
    arithmetic, wrapping as the pack's does), plus the standard deviations of R, G and B / 255,
    plus the grey histogram's entropy in bits."""
    import numpy as np
    from PIL import ImageOps

    from graphflow.images import image_to_pil

    picture = image_to_pil(image).convert("RGB")
    rgb = np.array(picture)
    grey = np.array(ImageOps.grayscale(picture))
    diff_x, diff_y = np.diff(grey, axis=1), np.diff(grey, axis=0)
    rows, cols = min(diff_x.shape[0], diff_y.shape[0]), min(diff_x.shape[1], diff_y.shape[1])
    diff_x, diff_y = diff_x[:rows, :cols], diff_y[:rows, :cols]
    magnitude = np.sqrt(diff_x ** 2 + diff_y ** 2)
    edges = np.sum(magnitude > 30) / magnitude.size
    spread = sum(np.std(rgb[:, :, c] / 255.0) for c in range(3))
    histogram = np.histogram(grey, bins=256, range=(0, 256), density=True)[0]
    entropy = -np.sum(histogram * np.log2(histogram + np.finfo(float).eps))
    return float(edges + spread + entropy)


def hires_start(complexity: float, hires_strength: float, steps: int) -> int:
    """The pack's adjust_start_step: complexity / 24 (at most 1, then at most 0.55) x strength
    of the steps taken off the start."""
    share = min(0.55, min(1.0, complexity / 24)) * hires_strength
    return min(steps, steps - int(round(share * steps, 0)))


def upscaled_latent(node, latent: dict, scale_by: float):
    """Decode, upscale with the node's upscale model, resize (nearest-exact, centre crop) to the
    decoded size x upscale_by cut to multiples of 8: (image, its VAEEncode)."""
    from nodes.image import ImageScale
    from nodes.pack_nodes import _core
    from nodes.upscale import ImageUpscaleWithModel, LoadUpscaleModel
    from nodes.vae import VAEDecode, VAEEncode

    model = _core(LoadUpscaleModel, model_name=node.model_name)
    pixels = _core(VAEDecode, {"samples": "samples"}, samples=latent, vae=node.vae)
    image = _core(ImageUpscaleWithModel, {"image": "samples"}, upscale_model=model, image=pixels)
    width, height = int(pixels.shape[2] * scale_by // 8 * 8), int(pixels.shape[1] * scale_by // 8 * 8)
    if width == 0 or height == 0:
        raise NodeInputError("upscale_by", f"upscale_by {scale_by} makes the {pixels.shape[2]}x{pixels.shape[1]} "
                                           "image nothing")
    image = _core(ImageScale, image=image, upscale_method="nearest-exact", width=width, height=height, crop="center")
    return image, _core(VAEEncode, {"pixels": "samples"}, pixels=image, vae=node.vae)


class MikeySampler(Node):
    """SDXL base then refiner then a hires pass, as Mikey's Mikey Sampler, made of the core
    nodes: KSamplerAdvanced on the base (25 steps, cfg 6.5, dpmpp_2s_ancestral, simple, steps 0-18,
    leftover noise kept), on the refiner (30 steps, cfg 3.5, dpmpp_2m, simple, from step 21, no
    noise added); with upscale_by 0 that latent is the result. Else VAEDecode, ImageUpscaleWithModel
    with model_name, ImageScale (nearest-exact, centre crop) to the size x upscale_by cut to 8, and
    VAEEncode (the result at hires_strength 0); else the base again (16 steps, cfg 9.5,
    dpmpp_2m_sde, karras) from a step set by the picture's complexity (the pack's measure, of the
    batch's first image) and hires_strength."""
    category = "Mikey/Sampling"
    base_model: MODEL
    refiner_model: MODEL
    samples: LATENT
    vae: VAE
    positive_cond_base: CONDITIONING
    negative_cond_base: CONDITIONING
    positive_cond_refiner: CONDITIONING
    negative_cond_refiner: CONDITIONING
    model_name: str = Choice(lambda: folders.list_models("upscale_models"), model_folder="upscale_models")
    seed: int = Int(0, min=0, max=SEED_MAX)
    upscale_by: float = Float(1.0, min=0.0, max=10.0, step=0.1)
    hires_strength: float = Float(1.0, min=0.0, max=2.0, step=0.1)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("Mikey Sampler",))

    def run(self):
        from nodes.pack_nodes_ttn import ksampled

        base = (self.positive_cond_base, self.negative_cond_base)
        first = ksampled(self.base_model, self.seed, 25, 6.5, "dpmpp_2s_ancestral", "simple", *base, self.samples,
                         start=0, end=18, leftover=True)
        refined = ksampled(self.refiner_model, self.seed, 30, 3.5, "dpmpp_2m", "simple", self.positive_cond_refiner,
                           self.negative_cond_refiner, first, start=21, leftover=False, add_noise=False)
        if self.upscale_by == 0:
            return refined
        image, latent = upscaled_latent(self, refined, self.upscale_by)
        if self.hires_strength == 0:
            return latent
        start = hires_start(image_complexity(image[0]), self.hires_strength, 16)
        return ksampled(self.base_model, self.seed, 16, 9.5, "dpmpp_2m_sde", "karras", *base, latent, start=start,
                        leftover=False)


class MikeySamplerBaseOnly(Node):
    """Two base passes then a hires pass, as Mikey's Mikey Sampler Base Only, made of the core
    nodes: KSamplerAdvanced (30 steps, cfg 5, dpmpp_3m_sde_gpu, exponential, steps 0-14, leftover
    noise kept), again with seed + 1 (31 + smooth_step steps, cfg 9.5, from step 15, no noise
    added); with upscale_by 0 that latent is the result; else upscaled as Mikey Sampler does, then
    (hires_strength above 0) the base from a complexity-set step of 31 (31 steps, cfg 9.5,
    dpmpp_3m_sde_gpu, exponential)."""
    category = "Mikey/Sampling"
    base_model: MODEL
    samples: LATENT
    positive_cond_base: CONDITIONING
    negative_cond_base: CONDITIONING
    vae: VAE
    model_name: str = Choice(lambda: folders.list_models("upscale_models"), model_folder="upscale_models")
    seed: int = Int(0, min=0, max=SEED_MAX)
    upscale_by: float = Float(1.0, min=0.0, max=10.0, step=0.1)
    hires_strength: float = Float(1.0, min=0.0, max=2.0, step=0.1)
    smooth_step: int = Int(0, min=-1, max=100)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("Mikey Sampler Base Only",))

    def run(self):
        from nodes.pack_nodes_ttn import ksampled

        base = (self.positive_cond_base, self.negative_cond_base)
        first = ksampled(self.base_model, self.seed, 30, 5.0, "dpmpp_3m_sde_gpu", "exponential", *base, self.samples,
                         start=0, end=14, leftover=True)
        second = ksampled(self.base_model, self.seed + 1, 31 + self.smooth_step, 9.5, "dpmpp_3m_sde_gpu",
                          "exponential", *base, first, start=15, leftover=False, add_noise=False)
        if self.upscale_by == 0:
            return second
        image, latent = upscaled_latent(self, second, self.upscale_by)
        if self.hires_strength == 0:
            return latent
        start = hires_start(image_complexity(image[0]), self.hires_strength, 31)
        return ksampled(self.base_model, self.seed, 31, 9.5, "dpmpp_3m_sde_gpu", "exponential", *base, latent,
                        start=start, leftover=False)


# -- colour -------------------------------------------------------------------------------------


def hald_clut_choices() -> list[str]:
    """The Hald CLUT pictures (.png) in models/luts (the pack lists the ones it ships in its own
    HaldCLUT folder; copy them there)."""
    return folders.list_files_inside("luts", (".png",))


def apply_hald_clut(clut, picture):
    """The pack's apply_hald_clut: a level-L Hald picture (L^3 x L^3 pixels) is a cube of L^2
    steps a channel; each 8-bit colour is rounded to its step (rint(v x (L^2 - 1) / 255)) and
    replaced by the cube's entry r + L^2 g + L^4 b."""
    import numpy as np

    size = int(round(clut.width ** (1 / 3)))
    table = np.asarray(clut.convert("RGB")) if clut.mode not in ("RGB", "L") else np.asarray(clut)
    if table.ndim == 2:  # a grey CLUT: its level for each channel, as the pack's
        table = np.stack([table] * 3, axis=-1)
    if table.shape[0] * table.shape[1] != size ** 6:
        raise NodeInputError("hald_clut", f"a {clut.width}x{clut.height} picture is not a Hald CLUT "
                                          "(L^3 x L^3 pixels)")
    table = table.reshape(size ** 6, 3)
    scale = (size * size - 1) / 255
    rgb = np.asarray(picture)
    index = [np.rint(rgb[:, :, c] * scale).astype(int) for c in range(3)]
    return table[index[0] + size ** 2 * index[1] + size ** 4 * index[2]].astype(np.uint8)


class MikeyHaldCLUT(Node):
    """Colour-grade images with a Hald CLUT picture from models/luts, as Mikey's HaldCLUT: each
    8-bit colour looked up in the CLUT's cube at its nearest step; with gamma_correction "True" the
    levels are first raised to 1/2.2 (and cut to 8 bits, as the pack's). Each image of the batch
    in turn."""
    category = "Mikey/Image"
    output_node = True
    image: IMAGE
    hald_clut: str = Choice(hald_clut_choices)
    gamma_correction: str = Choice(("True", "False"), "True")
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("HaldCLUT ",), output_names=("i",))  # the pack's RETURN_NAMES is the string 'image,'

    def run(self):
        import numpy as np
        import torch
        from PIL import Image

        from graphflow.images import image_to_pil, pil_to_image

        images = _image(self.image, "image")
        try:
            path = folders.find_model("luts", self.hald_clut, inside=True)
            with Image.open(path) as picture:
                clut = picture.copy()
        except (FileNotFoundError, ValueError, OSError) as error:
            raise NodeInputError("hald_clut", f"{self.hald_clut!r} in models/luts: {error}") from None
        graded = []
        for image in images:
            picture = image_to_pil(image).convert("RGB")
            if self.gamma_correction == "True":
                levels = np.power(np.array(picture) / 255.0, 1.0 / 2.2)
                picture = Image.fromarray(np.uint8(levels * 255))
            graded.append(pil_to_image(Image.fromarray(apply_hald_clut(clut, picture), "RGB")))
        return torch.cat(graded)
