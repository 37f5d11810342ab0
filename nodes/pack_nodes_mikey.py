"""bash-j's Mikey Nodes (mikey_nodes), its model-free nodes, under the pack's class names, inputs and
outputs. Read at bash-j/mikey_nodes mikey_nodes.py 006120dc8184c2a4208f24b9ee0037c7691222c7 (its
size solver, ratios, wildcards and the older nodes) and ratios.json 46a4978d8dfaf522e3c5c404090a91294bd84a38;
the later nodes (Int / Float to String, Range Float / Integer, TextConcat, TextCombinations, Ratio
Advanced's swap_axis) as the pack's source at 26fed34232dd144e6e33b9322c3c7981956fe7a6 is quoted
in get-salt-AI/SaltAI-Web-Docs (docs/md/mikey_nodes, 1d88d9fda74563204523ad42a3faf51f446d4df1).

Held here: Empty Latent Ratio Select SDXL, Empty Latent Ratio Custom SDXL, Ratio Advanced, Resize
Image for SDXL, Upscale Tile Calculator, Seed String, Int to String, Float to String, Range Float,
Range Integer, TextConcat, TextCombinations and Wildcard Processor.

Left out: the prompt-with-style nodes, Style Conditioner, the Mikey Samplers (upscale model and
fixed sampler schedules), the savers, HaldCLUT, the loaders, the LLM prompt nodes (a web service)
and the rest of the pack's later nodes; the pack's %date:...% / node-widget text replacement
(search_and_replace) in Wildcard Processor and TextCombinations; Ratio Advanced's presets
(user_ratio_presets.json) and the user_ratios.json addition to the ratio list.
"""

from __future__ import annotations

import itertools
import math
import random
import re

from graphflow.api import FLOAT, IMAGE, INT, LATENT, STRING, Choice, ComfyAlias, Float, Int, Node, NodeInputError, \
    Text, folders, safe_join
from graphflow.folders import UnsafePathError
from nodes.image import _image, _resize_image
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
    (0, 0) where none fits. Integer comparisons: the pack's Fraction ones, exactly."""
    best_w = best_h = 0
    limit = res * res
    for i in range(1, 256):
        for j in range(1, 256):
            # 8i/8j > 0.98 * w/h  and  8i/8j < w/h, cross-multiplied
            if not (100 * i * height > 98 * width * j and i * height < width * j and 64 * i * j <= limit):
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
    if step == 0:
        raise NodeInputError("step", "expected a step above 0")
    count = math.ceil((end - start) / step)
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
        value = start if index == 0 else start + self.step if index == 1 else start + index * ((start + self.step) - start)
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
        _range_count(self.start, self.end, self.step, "whole-number")
        numbers = range(self.start, self.end, self.step)  # not built: range indexes arithmetically
        value = numbers[self.seed % len(numbers)]
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


def wildcard_lines(name: str) -> list[str]:
    """The lines of wildcards/<name>.txt (name may hold folders: a/b), the first found in the
    wildcards folders; refused naming the file where there is none or it is empty."""
    for base in folders.model_dirs("wildcards"):
        try:
            path = safe_join(base, f"{name}.txt")
        except UnsafePathError as error:
            raise NodeInputError("prompt", f"wildcard __{name}__: {error}") from None
        if path.is_file():
            with open(path, encoding="utf-8") as file:  # readlines, as the pack: \r\n and \r end lines too
                lines = file.readlines()
            if not lines:
                raise NodeInputError("prompt", f"wildcard file {name}.txt in {base} is empty")
            return lines
    raise NodeInputError("prompt", f"wildcard file {name}.txt not found in the wildcards folder "
                                   f"({folders.model_dirs('wildcards')[0]})")


def replace_wildcards(prompt: str, seed: int) -> str:
    """The pack's find_and_replace_wildcards: each __name__ is replaced by the line at place
    offset mod n of wildcards/name.txt (stripped), the offset starting at the seed and moving on
    by the lines each wildcard took; [N$$__name__] takes N lines from there, joined by ","; with
    |words, each line is the next from there holding any of the words (whole words, any case). A
    name seen before in the prompt reads at an offset drawn from Python's random seeded with the
    seed (random.seed(seed); random.randint(0, 1000000)), as the pack does."""
    rng = random.Random(seed)
    offset = seed
    seen = []
    out = []
    last_end = 0
    for match in WILDCARD.finditer(prompt):
        _, count_text, name, words_text = match.groups()
        out.append(prompt[last_end:match.start()])
        last_end = match.end()
        words = words_text.split("|")[1:] if words_text else None
        count = int(count_text) if count_text else 1
        if count > MAX_WILDCARD_LINES:
            raise NodeInputError("prompt", f"[{count}$$__{name}__] asks for more than {MAX_WILDCARD_LINES} lines")
        lines = wildcard_lines(name)
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
        else:
            picked = [lines[(at % len(lines) + i) % len(lines)].strip() for i in range(count)]
        out.append(picked[0] if len(picked) == 1 else ",".join(picked))
        seen.append(name)
        offset += count
        fits(sum(map(len, out)), "prompt")
    out.append(prompt[last_end:])
    return "".join(out)


class MikeyWildcardProcessor(Node):
    """The prompt with its __wildcards__ replaced by lines of the wildcards folder's .txt files,
    picked by the seed as Mikey's Wildcard Processor picks them: __name__ (a/b for a folder),
    [N$$__name__] for N lines, __name|word|word__ for lines holding a word. A wildcard whose
    file is missing or empty is refused naming the file (the pack dropped it from the prompt).
    The pack's %date:...% and %node.widget% replacement is not done."""
    category = "Mikey/Text"
    prompt: str = Text("", multiline=True)
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Wildcard Processor",))

    def run(self):
        return replace_wildcards(self.prompt, self.seed)
