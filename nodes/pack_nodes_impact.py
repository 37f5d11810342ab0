"""ComfyUI Impact Pack's model-free nodes, under the pack's class names, inputs and outputs.

Read from ltdrdata/ComfyUI-Impact-Pack: the wildcard engine (modules/impact/wildcards.py) as the
store holds it at its newest (store file 1951372682: comments, .yml files, weighted wildcard
lines, N#__name__ quantifiers, escaped braces; the store names commit c03945ba37a0c474aceabac0244fda75893b3038
for that path, an older text without these, which we don't follow), the nodes of
impact_pack.py at 544a0b9df22142d78ec9176ec74cd7f8a720cf78 (an old version: the three wildcard
modes populate/fixed/reproduce and ImpactSchedulerAdapter's extra_scheduler with GITS follow the
pack's newer versions, which the store holds only as copies in other repositories and node
documentation pages, not as a version of impact_pack.py we can name), logics.py (store file 1907124997,
newer than 2f5ff69b9eb5a457ce58b4e3b2530b66d48b6015), util_nodes.py at
06b428ec8cf9b09b69cde52fc21d7a8cd83b52b0 and pipe.py at ef8095b9af2359b7bc24038a725956bb492059ce.

Nodes: ImpactWildcardProcessor, ImpactWildcardEncode; ImpactInt, ImpactFloat, ImpactBoolean,
ImpactCompare, ImpactConditionalBranch, ImpactConditionalBranchSelMode, ImpactLogicalOperators,
ImpactNeg, ImpactMinMax, ImpactConvertDataType, ImpactIfNone, ImpactValueSender,
ImpactValueReceiver, ImpactLogger, ImpactDummyInput, ImpactStringSelector, StringListToString,
ImpactImageInfo, ImpactLatentInfo, ImpactSchedulerAdapter; ImpactSwitch, LatentSwitch,
ImageMaskSwitch, ImpactInversedSwitch; ImpactMakeImageList, ImpactMakeImageBatch,
ImageListToImageBatch, ImageBatchToImageList, ImpactMakeAnyList, ImpactConcatConditionings,
ImpactCombineConditionings; ToBasicPipe, FromBasicPipe, FromBasicPipe_v2, EditBasicPipe,
ImpactKSamplerBasicPipe, ImpactKSamplerAdvancedBasicPipe.

The SEGS and detailer nodes (MaskToSEGS, DetailerForEach, SEGSDetailer, SEGSPaste ...) are in
nodes/pack_nodes_impact_segs.py. Left out: the detectors and SAM (model files and packages we don't
have; comfy_format.CUSTOM_PACKS names the pack for them), ImpactString (its source is not in the
store we read from), ImpactNegativeConditioningPlaceholder (its source is stored, file 2166609295:
it gives the marker "NegativePlaceholder" in place of a negative prompt, which our samplers don't take),
the queue/mute/widget-setting nodes (editor remote control) and the detailer pipes.
"""

from __future__ import annotations

import hashlib
import logging
import re

from graphflow.api import ANY, BOOLEAN, CLIP, CONDITIONING, FLOAT, IMAGE, INT, LATENT, MASK, MODEL, STRING, VAE, \
    Bool, Choice, ComfyAlias, Float, Int, ListOf, Node, NodeInputError, Text, folders, show, socket_type, warn
from graphflow.folders import _walk_files
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.conditioning import CLIPEncode, concat_conditioning
from nodes.image import _resize_image
from nodes.pack_nodes import _apply_lora, _core
from nodes.sampling import SEED_MAX, KSampler, KSamplerAdvanced, _estimate
import nodes.strings
from nodes.strings import fits

COMFY_PACK = "ComfyUI Impact Pack"  # the custom node pack this module's ComfyUI classes come from

BASIC_PIPE = socket_type("BASIC_PIPE", "#7e57c2", "Impact Pack's (model, clip, vae, positive, negative)")

WILDCARD_PROMPT = "Select the Wildcard to add to the text"
LORA_PROMPT = "Select the LoRA to add to the text"
MODES = ("populate", "fixed", "reproduce")
# saves from before the mode list hold a Populate/Fixed toggle; the modes map onto themselves after
# it, so that a workflow is written back with today's names
OLD_MODES = {True: "populate", False: "fixed", **{mode: mode for mode in MODES}}
MAX_ROUNDS = 99  # the pack's replace_depth: 100, counted down while above 1
MAX_OPTION_PASSES = 100  # {...} nesting deeper than this is refused (each level is one pass over the text)
MAX_UNKNOWN_NAMES = 100  # bare names found nowhere, each retried as */name by a pass over the whole text
WORK_PER_RUN = 100  # times MAX_TEXT: characters a run may scan and rebuild, all passes together
MAX_BREAK_PARTS = 100  # ImpactWildcardEncode's BREAK parts, each one CLIP encoding
# ComfyUI's supported_pt_extensions (read with weights_only=True: plain tensors, never pickled code)
LORA_EXTENSIONS = (".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft")

# (?<!\d): tried only where a digit run begins, so that a long run of digits is scanned once
_QUANTIFIER = re.compile(r"(?<!\d)(?P<quantifier>\d+)#__(?P<keyword>[\w.\-+/*\\]+?)__", re.IGNORECASE)
_OPTIONS = re.compile(r"(?<!\\)\{((?:[^{}]|(?<=\\)[{}])*?)(?<!\\)\}")  # innermost {...}, \{ \} left alone
_WILDCARD = re.compile(r"__([\w.\-+/*\\]+?)__")
_WEIGHT_PREFIX = re.compile(r"^\s*[0-9.]+::")
_NUMBER = re.compile(r"^-?(\d*\.?\d+|\d+\.?\d*)$")


# -- wildcard files ------------------------------------------------------------------------------


def wildcard_key(name: str) -> str:
    """The pack's wildcard_normalize: / for \\, - for spaces, lower case."""
    return name.replace("\\", "/").replace(" ", "-").lower()


WILDCARD_EXTENSIONS = (".txt", ".yaml", ".yml")  # the wildcard files this pack reads


def wildcard_files(extensions: tuple[str, ...] = WILDCARD_EXTENSIONS):
    """(folder, file path) of every file of these extensions under the wildcards model folders
    (the Dynamic Prompts nodes read theirs, .txt/.json/.yaml, from the same folders), in
    sorted order (the pack takes os.walk's order, which differs between file systems). As in the
    other model folders (folders' walk): links followed, each real folder once, .git skipped, and
    only plain files (not a dangling link or a pipe)."""
    for base in folders.model_dirs("wildcards"):
        if base.is_dir():
            for name in sorted(_walk_files(base)):
                if name.endswith(extensions):
                    yield base, base / name


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("iso-8859-1")


def _yaml_entries(key: str, value, table: dict) -> None:
    """The pack's read_wildcard: a list is a wildcard, a mapping a folder of them, a lone string
    or number a one-line wildcard."""
    if isinstance(value, list):
        table[wildcard_key(key)] = [str(v) for v in value]
    elif isinstance(value, dict):
        for sub, inner in value.items():
            _yaml_entries(f"{key}/{sub}", inner, table)
    elif isinstance(value, (str, int, float)):  # true / false as "True" / "False", as the pack has them
        table[wildcard_key(key)] = [str(value)]


_loaded: tuple[str, dict] = ("", {})  # (wildcards_state(), table) of the last load


def load_wildcards() -> dict[str, list[str]]:
    """{key: lines} of the wildcard files: a .txt file's key is its path in the folder without the
    extension, its lines those not starting with # (empty lines kept, as the pack keeps them); a
    YAML file's top-level keys are wildcards (nested mappings give key/sub keys). The first
    wildcards folder (the user's) wins over later ones. Read again only when a file changed
    (wildcards_state); the table is shared, so it is only read, never changed."""
    global _loaded
    state = wildcards_state()
    if _loaded[0] != state:
        _loaded = (state, _read_wildcards())
    return _loaded[1]


def _read_wildcards() -> dict[str, list[str]]:
    import yaml

    table: dict[str, list[str]] = {}
    for base, path in reversed(list(wildcard_files())):
        if path.suffix == ".txt":
            lines = _read_text(path).splitlines()
            table[wildcard_key(str(path.relative_to(base).with_suffix("")))] = \
                [line for line in lines if not line.strip().startswith("#")]
            continue
        try:
            data = yaml.safe_load(_read_text(path))
        except yaml.YAMLError as e:
            raise NodeInputError("wildcard_text", f"wildcard file {path.name}: {e}") from None
        for key, value in (data or {}).items() if isinstance(data, dict) else ():
            _yaml_entries(str(key), value, table)
    return table


def wildcards_state(extensions: tuple[str, ...] = WILDCARD_EXTENSIONS) -> str:
    """The wildcard files' names, sizes and times, for node caches: an edited file re-runs."""
    digest = hashlib.sha1()
    for _, path in wildcard_files(extensions):
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def glob_matches(pattern: str, key: str) -> bool:
    """re.match(pattern with * as .*, key) as the pack runs it, without running a user's
    expression: * is any run of characters, . any one character, the rest themselves (\\w, -, /
    and + escaped, the only characters a wildcard name holds); the pattern need only match the
    key's beginning. Linear in their lengths, so no name can make it backtrack."""
    ends = {0}
    for char in pattern:
        if char == "*":
            ends = set(range(min(ends), len(key) + 1))
        elif char == ".":
            ends = {i + 1 for i in ends if i < len(key)}
        else:
            ends = {i + 1 for i in ends if i < len(key) and key[i] == char}
        if not ends:
            return False
    return True


# -- the wildcard language -------------------------------------------------------------------------


def remove_comments(text: str) -> str:
    """The pack's process_comment_out: a line starting with # is dropped, and the line after it
    is joined to the line before with a space. As there, a comment before any kept line stays in
    force until a line is joined: '# c\na\nb' gives 'a b'."""
    kept: list[str] = []
    after_comment = False
    for line in text.split("\n"):
        if line.lstrip().startswith("#"):
            after_comment = True
        elif kept and after_comment:
            kept[-1] += " " + line
            after_comment = False
        else:
            kept.append(line)
    return "\n".join(kept)


def _weights(options) -> tuple[list[float], float]:
    """Each option's weight (a leading "2::" or "0.5::", else 1) over their sum, and the sum.
    ValueError where they add up to 0 (the pack divides by zero)."""
    weights = []
    for option in options:
        head, sep, _ = str(option).partition("::")
        weights.append(float(head.strip()) if sep and _NUMBER.match(head.strip()) else 1.0)
    total = sum(weights)
    if total == 0:
        raise ValueError("the weights add up to 0")
    return [w / total for w in weights], total


class WildcardText:
    """One run of the pack's wildcards.process(text, seed): numpy's default_rng(seed) drawn in
    the pack's order, so that a seed gives the pack's text."""

    def __init__(self, table: dict[str, list[str]], seed: int | None, input_name: str):
        import numpy as np

        self.table = table
        self.rng = np.random.default_rng(seed)
        self.input_name = input_name
        self.globbed: dict[str, list[str]] = {}  # matching()'s answers, for this run
        self.work_left = WORK_PER_RUN * nodes.strings.MAX_TEXT
        self.depth = 0  # replace_wildcards' recursion

    def fail(self, message: str):
        raise NodeInputError(self.input_name, message)

    def spend(self, characters: int) -> None:
        """Counts characters scanned or rebuilt: a text that would take too long is refused."""
        self.work_left -= characters
        if self.work_left < 0:
            self.fail(f"this text takes too much work to process (over {WORK_PER_RUN} times "
                      f"{nodes.strings.MAX_TEXT:,} characters scanned or rebuilt): fewer wildcards, "
                      "quantifiers or choices, or a shorter text")

    def weights(self, options, where: str) -> tuple[list[float], float]:
        try:
            return _weights(options)
        except ValueError as e:
            self.fail(f"{where}: {e}")

    def matching(self, keyword: str) -> list[str]:
        """The lines of every wildcard whose key (or key/) a * pattern matches (not to be changed:
        the answer is kept for the rest of the run)."""
        if keyword not in self.globbed:
            self.spend(sum(len(key) for key in self.table))
            found = []
            for key, lines in self.table.items():
                if glob_matches(keyword, key) or glob_matches(keyword, key + "/"):
                    found += lines
            self.globbed[keyword] = found
        return self.globbed[keyword]

    def options_of(self, text: str) -> list[str]:
        """The pack's get_wildcard_options: every line of the wildcards text names ({2$$__x__})."""
        options = []
        for match in _WILDCARD.findall(text):
            keyword = wildcard_key(match)
            if keyword in self.table:
                options += self.table[keyword]
            elif "*" in keyword:
                options += self.matching(keyword)
            elif "/" not in keyword:  # a bare name: looked for in every folder
                options += self.bare_name(self.options_of, text, match)
        return options

    def bare_name(self, retry, text: str, match: str):
        """retry(text with __match__ made __*/match__), as the pack retries a bare name: a pass
        over the whole text for each, so their number (the recursion's depth) is capped."""
        if self.depth >= MAX_UNKNOWN_NAMES:
            self.fail(f"more than {MAX_UNKNOWN_NAMES} wildcard names without a folder in one text "
                      f"(__{match}__ and others): each is looked for in every folder by another pass")
        self.spend(len(text))
        self.depth += 1
        try:
            return retry(text.replace(f"__{match}__", f"__*/{match}__", 1))
        finally:
            self.depth -= 1

    def choose(self, match: re.Match) -> str:
        """One {a|b|c}: n$$, a-b$$, -b$$ counts with an optional $$separator$$, weights a::."""
        options = match.group(1).split("|")
        parts = options[0].split("$$")
        select_range, separator = None, " "
        if len(parts) > 1:
            count = re.match(r"(\d+)(-(\d+))?", options[0])
            if count is not None:
                low = high = int(count.group(1))
                if count.group(3) is not None:
                    high = int(count.group(3))
            else:
                count = re.match(r"-(\d+)", options[0])
                if count is None:
                    self.fail(f"{{{match.group(1)}}}: a $$ choice needs a count first (2$$, 1-3$$ or -3$$)")
                low, high = 1, int(count.group(1))
            select_range = (low, high)
            if len(parts) in (2, 3):
                if len(parts) == 3:
                    separator = parts[1]
                pattern = parts[-1]
                if len(options) == 1 and _WILDCARD.search(pattern):
                    options = self.options_of(pattern)
                else:
                    options[0] = pattern
        probabilities, total = self.weights(options, f"{{{match.group(1)}}}")
        count = 1
        if select_range is not None:
            low, high = select_range
            top = min(high + 1, len(options) + 1) if high > 0 else len(options) + 1
            if max(top, low) <= 0:
                count = 0
            elif top == low:
                count = top
            else:
                try:
                    count = self.rng.integers(low=min(low, top), high=max(low, top), size=1)
                except ValueError as e:
                    self.fail(f"{{{match.group(1)}}}: {e}")
        try:
            if count > len(options) or total <= 1:  # the pack's rule: then every option, shuffled
                self.rng.shuffle(options)
                chosen = options
            else:
                chosen = self.rng.choice(options, p=probabilities, size=count, replace=False)
        except ValueError as e:  # weights of 0 that leave too few options, say
            self.fail(f"{{{match.group(1)}}}: {e}")
        size = len(separator) * len(chosen) + sum(len(str(x)) for x in chosen)
        fits(size, self.input_name)
        self.spend(size)
        chosen = separator.join(_WEIGHT_PREFIX.sub("", str(x), count=1) for x in chosen)
        self.pass_size += len(chosen) - len(match.group(0))  # the pass's text so far, not built yet
        fits(self.pass_size, self.input_name)
        return chosen

    def replace_options(self, text: str) -> tuple[str, bool]:
        self.spend(len(text))
        found = _OPTIONS.search(text) is not None
        self.pass_size = len(text)
        return _OPTIONS.sub(self.choose, text), found

    def put(self, text: str, match: str, line) -> str:
        """text with its first __match__ replaced by line (a result over MAX_TEXT refused first)."""
        line = str(line)
        fits(len(text) + len(line) - len(match) - 4, self.input_name)
        self.spend(len(text) + len(line))  # a text rebuilt per wildcard: many wildcards in a long text add up
        return text.replace(f"__{match}__", line, 1)

    def replace_wildcards(self, text: str) -> tuple[str, bool]:
        """The pack's replace_wildcard, step for step (a bare name is retried as */name over the
        whole text, and what it found stands for the whole pass, as there)."""
        replaced = False
        self.spend(len(text))
        for match in _WILDCARD.findall(text):
            keyword = wildcard_key(match)
            if keyword in self.table:
                lines = self.table[keyword]
                if not lines:
                    self.fail(f"wildcard __{match}__ has no lines")
                probabilities, _ = self.weights(lines, f"wildcard __{match}__")
                try:
                    picked = self.rng.choice(lines, p=probabilities, replace=False)
                except ValueError as e:  # a negative weight
                    self.fail(f"wildcard __{match}__: {e}")
                text = self.put(text, match, _WEIGHT_PREFIX.sub("", str(picked), count=1))
                replaced = True
            elif "*" in keyword:
                lines = self.matching(keyword)
                if lines:
                    text = self.put(text, match, self.rng.choice(lines))
                    replaced = True
            elif "/" not in keyword:
                text, replaced = self.bare_name(self.replace_wildcards, text, match)
        return text, replaced

    def expand_quantifiers(self, text: str) -> str:
        """3#__name__ -> __name__|__name__|__name__ (every such name, at the first one's count)."""
        for found in list(_QUANTIFIER.finditer(text)):
            keyword, times = found["keyword"].lower(), int(found["quantifier"])
            # the name as a literal (the pack escapes only its *: see the node's help)
            same = re.compile(rf"(?<!\d)\d+#__{re.escape(keyword)}__", re.IGNORECASE)
            replacement = times * (len(keyword) + 5) - 1  # __name__|__name__...
            self.spend(len(text))
            size = len(text) + sum(replacement - len(other[0]) for other in same.finditer(text))  # every one
            fits(size, self.input_name)
            self.spend(size)
            text = same.sub(lambda _: "__" + "__|__".join([keyword] * times) + "__", text)
        return text

    def process(self, text: str) -> str:
        text = remove_comments(text)
        for _ in range(MAX_ROUNDS):
            text = self.expand_quantifiers(text)
            text, options_found = self.replace_options(text)
            passes = 1
            while options_found:
                if passes > MAX_OPTION_PASSES:
                    self.fail(f"{{...}} choices nested more than {MAX_OPTION_PASSES} deep")
                fits(len(text), self.input_name)
                text, options_found = self.replace_options(text)
                passes += 1
            text, wildcards_found = self.replace_wildcards(text)
            fits(len(text), self.input_name)
            if not wildcards_found:  # options_found is always False here, as in the pack
                break
        return text


def process_wildcards(text: str, seed: int | None, input_name: str = "populated_text",
                      table: dict | None = None) -> str:
    """The pack's wildcards.process(text, seed) on the wildcard files."""
    return WildcardText(load_wildcards() if table is None else table, seed, input_name).process(text)


def populated(node) -> str:
    """What the pack's prompt hook leaves in populated_text: in populate mode, wildcard_text
    processed with the seed; in fixed and reproduce modes, populated_text as it is."""
    if node.mode == "populate":
        return process_wildcards(node.wildcard_text, node.seed, "wildcard_text")
    return node.populated_text


# -- <lora:...> tags -------------------------------------------------------------------------------


_LORA_TAG = re.compile(r"<lora:([^>]+)>")


def _tagged(text: str) -> tuple[str, str]:
    """text cut after its last ">": the part that may hold <lora:...> tags, and the rest. Scanning
    only the first part keeps the tag pattern linear (each "<lora:" with no ">" after it would
    otherwise be scanned to the end)."""
    end = text.rfind(">") + 1
    return text[:end], text[end:]


def lora_tag_entries(text: str) -> list[tuple[str, float, float, str | None, float | None, float | None]]:
    """(name, model weight, clip weight, block vector, A, B) of each <lora:name:w1:w2> in text, the
    first of each name: w1 defaults to 1, w2 to w1; an LBW=vector;A=a;B=b part (Inspire Pack's
    block weights; LBW=NAME:vector is read as LBW=vector) gives the last three, else None. A
    LOADER= part (nunchaku) is read past, with a warning."""
    tags, seen = [], set()
    for body in _LORA_TAG.findall(_tagged(text)[0]):
        body = re.sub(r"LBW=[A-Za-z][A-Za-z0-9_-]*:", "LBW=", body.strip(":"))
        name, *rest = body.split(":")
        weights = [float(part) for part in rest if _NUMBER.match(part)][:2]
        vector = lbw_a = lbw_b = None
        for part in rest:
            if part.startswith("LBW="):
                for item in part[4:].split(";"):
                    if item.startswith(("A=", "B=")):
                        value = float(item[2:].strip()) if _NUMBER.match(item[2:].strip()) else 1.0
                        lbw_a, lbw_b = (value, lbw_b) if item[0] == "A" else (lbw_a, value)
                    elif item.strip():
                        vector = item
        if any(part.startswith("LOADER=") for part in rest):
            warn(f"<lora:{body}>: LOADER= is not supported here; loaded as a plain LoRA")
        model_weight = weights[0] if weights else 1.0
        clip_weight = weights[1] if len(weights) > 1 else model_weight
        if name not in seen:
            tags.append((name, model_weight, clip_weight, vector, lbw_a, lbw_b))
            seen.add(name)
    return tags


def lora_tags(text: str) -> list[tuple[str, float, float]]:
    """(name, model weight, clip weight) of each <lora:...> tag in text (lora_tag_entries)."""
    return [entry[:3] for entry in lora_tag_entries(text)]


def lora_file(name: str, names: list[str]) -> str | None:
    """The pack's resolve_lora_name: .safetensors added where the name has no model extension,
    then the first LoRA file whose name ends with it (a path outside the loras folder is not
    looked at, unlike the pack)."""
    if not name.lower().endswith(LORA_EXTENSIONS):
        name += ".safetensors"
    return next((candidate for candidate in names if candidate.endswith(name)), None)


# -- wildcard nodes --------------------------------------------------------------------------------


class ImpactWildcardProcessor(Node):
    """Impact Pack's Wildcard Processor: write a prompt with {a|b|c} choices (2::a weighs a
    double, {2$$a|b|c} picks two joined by spaces, {1-3$$, $$a|b|c} one to three joined by ", "),
    __name__ wildcards (a random line of wildcards/name.txt, or of a key of a .yaml file, under
    the models folder; __*/name__ and __name*__ look in every folder; 3#__name__ is
    __name__|__name__|__name__), nested freely, and # comment lines. The seed draws as the pack
    draws (numpy's default_rng), so a seed gives the pack's text.

    mode populate: wildcard_text is processed with the seed (the pack's editor writes the result
    into populated_text); fixed: populated_text is used as it is; reproduce: as fixed (the
    pack's editor then switches to populate). Either way populated_text is then processed once
    more with the seed, as the pack's node does. "Select to add Wildcard" is the editor's list.

    Differences: wildcard files are read as UTF-8 (the pack reads them as ISO-8859-1, which garbles
    non-ASCII lines), in sorted order; a {count$$...} with a bad count is an error here (the pack
    crashes). In N#__name__ the name is taken as written (the pack runs it as a regular
    expression with only * escaped, so that . or + in it match other text or nothing). A text
    that would take too long is refused: {...} nested over 100 deep, over 100 names without a
    folder that no wildcard has (each costs the pack another pass over the text), or work over
    100 times the text limit (each wildcard rebuilds the whole text, as in the pack), and so are
    weights adding up to 0. With a seed linked from another node, its value is used (the pack's
    prompt hook only follows a few node types)."""
    category = "ImpactPack/Prompt"
    wildcard_text: str = Text("", multiline=True)
    populated_text: str = Text("", multiline=True)
    mode: str = Choice(MODES, "populate")
    seed: int = Int(0, min=0, max=SEED_MAX)
    select_to_add_wildcard: str = Text(WILDCARD_PROMPT)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("ImpactWildcardProcessor",), inputs={"Select to add Wildcard": "select_to_add_wildcard"},
                       values={"mode": OLD_MODES})

    @classmethod
    def fingerprint(cls, **widgets):
        return wildcards_state()

    def run(self):
        return process_wildcards(populated(self), self.seed)


def _lora_names() -> list[str]:
    return folders.list_models("loras")


class ImpactWildcardEncode(Node):
    """Impact Pack's Wildcard Encode: the Wildcard Processor's text (same syntax, modes and seed),
    then each <lora:name:model_weight:clip_weight> in it applied as LoraLoader applies it (name
    without extension: .safetensors; the first LoRA file whose name ends so; a missing one is
    skipped with a warning, as in the pack) and the tags removed; the rest is split at BREAK and
    each part encoded with CLIPTextEncode (at most 100 parts), the parts joined as
    ConditioningConcat joins them.
    Gives the model and CLIP with the LoRAs, the conditioning and the text with its tags.
    The two Select widgets are the editor's lists. A tag's LBW=vector;A=a;B=b part applies the
    LoRA with Inspire Pack's block weights (LoraLoaderBlockWeight //Inspire, inverse off, seed 0,
    as the pack calls it); LOADER= is not supported (a plain LoRA is loaded, with a warning)."""
    category = "ImpactPack/Prompt"
    model: MODEL
    clip: CLIP
    wildcard_text: str = Text("", multiline=True)
    populated_text: str = Text("", multiline=True)
    mode: str = Choice(MODES, "populate")
    select_to_add_lora: str = Text(LORA_PROMPT)
    select_to_add_wildcard: str = Text(WILDCARD_PROMPT)
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"model": MODEL, "clip": CLIP, "conditioning": CONDITIONING, "populated_text": STRING}
    comfy = ComfyAlias(("ImpactWildcardEncode",), inputs={"Select to add LoRA": "select_to_add_lora",
                                                           "Select to add Wildcard": "select_to_add_wildcard"},
                       values={"mode": OLD_MODES})

    @classmethod
    def fingerprint(cls, **widgets):
        return wildcards_state() + ":" + ",".join(_lora_names())

    def run(self):
        text = process_wildcards(populated(self), self.seed)
        return (*encode_with_loras(text, self.model, self.clip), text)


def encode_with_loras(text: str, model, clip, encode=None, input_name: str = "populated_text") -> tuple:
    """The pack's process_with_loras on a processed text: its <lora:...> tags applied to model and
    clip and removed, the rest split at BREAK and each part encoded (with encode(clip, text), by
    default CLIPTextEncode), the parts concatenated. Gives (model, clip, conditioning). Errors
    name input_name, the input the text came from."""
    names = _lora_names()
    for name, model_weight, clip_weight, vector, lbw_a, lbw_b in lora_tag_entries(text):
        found = lora_file(name, names)
        if found is None:
            warn(f"LoRA not found: {name}")
        elif vector is not None:  # Inspire Pack's LoRA Block Weight loader, as the pack calls it
            from nodes.pack_nodes_inspire_lbw import block_weight_lora
            model, clip, _ = block_weight_lora(model, clip, found, model_weight, clip_weight, False, 0, lbw_a, lbw_b,
                                               vector, input_name)
        else:
            model, clip = _apply_lora(model, clip, found, model_weight, clip_weight, input_name)
    tagged, rest = _tagged(text)
    parts = [part.strip() for part in (_LORA_TAG.sub("", tagged) + rest).split("BREAK", MAX_BREAK_PARTS)]
    if len(parts) > MAX_BREAK_PARTS:
        raise NodeInputError(input_name, f"more than {MAX_BREAK_PARTS} parts between BREAKs (each is one CLIP "
                                         "encoding)")
    parts = [part for part in parts if part] or [""]
    encode = encode or (lambda clip, part: _core(CLIPEncode, text=part, clip=clip))
    return model, clip, concat_all([encode(clip, part) for part in parts])


def concat_all(conditionings: list) -> list:
    """The first conditioning with each next one's first embedding appended as ConditioningConcat
    appends it, joined once (chained ConditioningConcats copy the growing embedding each time).
    For the parts of one text encoded by one CLIP, so all of one width."""
    import torch

    sources = [later[0][0] for later in conditionings[1:]]
    return [(torch.cat([cond, *(source.to(cond.dtype).expand(cond.shape[0], -1, -1) for source in sources)], dim=1),
             dict(options)) for cond, options in conditionings[0]]


# -- values and logic ------------------------------------------------------------------------------


class ImpactInt(Node):
    """A whole number, as Impact Pack's ImpactInt gives it."""
    category = "ImpactPack/Logic"
    value: int = Int(0, min=0, max=2**63 - 1)
    outputs = {"INT": INT}
    comfy = ComfyAlias(("ImpactInt",))

    def run(self):
        return self.value


class ImpactFloat(Node):
    """A number, as Impact Pack's ImpactFloat gives it."""
    category = "ImpactPack/Logic"
    value: float = Float(1.0, min=-3.402823466e38, max=3.402823466e38)
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("ImpactFloat",))

    def run(self):
        return self.value


class ImpactBoolean(Node):
    """True or false, as Impact Pack's ImpactBoolean gives it."""
    category = "ImpactPack/Logic"
    value: bool = Bool(False)
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("ImpactBoolean",))

    def run(self):
        return self.value


COMPARISONS = {"a = b": lambda a, b: a == b, "a <> b": lambda a, b: a != b, "a > b": lambda a, b: a > b,
               "a < b": lambda a, b: a < b, "a >= b": lambda a, b: a >= b, "a <= b": lambda a, b: a <= b,
               "tt": lambda a, b: True, "ff": lambda a, b: False}


class ImpactCompare(Node):
    """Compare a with b as Python does (tt: always true, ff: always false). Values that can't be
    ordered (a number and a text) are an error naming b."""
    category = "ImpactPack/Logic"
    cmp: str = Choice(tuple(COMPARISONS), "a = b")
    a: ANY
    b: ANY
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("ImpactCompare",))

    def run(self):
        try:
            return bool(COMPARISONS[self.cmp](self.a, self.b))
        except (TypeError, RuntimeError) as e:
            raise NodeInputError("b", f"can't compare {type(self.a).__name__} with {type(self.b).__name__}: {e}") \
                from None


class ImpactConditionalBranch(Node):
    """tt_value when cond is true, else ff_value. Both are computed (graphflow has no lazy
    inputs; the pack computes only the one chosen)."""
    category = "ImpactPack/Logic"
    cond: bool = Bool(False)
    tt_value: ANY
    ff_value: ANY
    outputs = {"*": ANY}
    comfy = ComfyAlias(("ImpactConditionalBranch",))

    def run(self):
        return self.tt_value if self.cond else self.ff_value


class ImpactConditionalBranchSelMode(Node):
    """tt_value when cond is true, else ff_value; either may be left unconnected (None)."""
    category = "ImpactPack/Logic"
    cond: bool = Bool(False)
    tt_value: ANY = None
    ff_value: ANY = None
    outputs = {"*": ANY}
    comfy = ComfyAlias(("ImpactConditionalBranchSelMode",))

    def run(self):
        return self.tt_value if self.cond else self.ff_value


class ImpactLogicalOperators(Node):
    """bool_a and / or / xor bool_b."""
    category = "ImpactPack/Logic"
    operator: str = Choice(("and", "or", "xor"), "and")
    bool_a: BOOLEAN
    bool_b: BOOLEAN
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("ImpactLogicalOperators",))

    def run(self):
        if self.operator == "and":
            return self.bool_a and self.bool_b
        if self.operator == "or":
            return self.bool_a or self.bool_b
        return self.bool_a != self.bool_b


class ImpactNeg(Node):
    """not value."""
    category = "ImpactPack/Logic"
    value: BOOLEAN
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("ImpactNeg",))

    def run(self):
        return not self.value


class ImpactMinMax(Node):
    """The larger (mode max) or smaller (min) of a and b, as Python's max/min give it."""
    category = "ImpactPack/Logic/_for_test"
    mode: bool = Bool(True)
    a: ANY
    b: ANY
    outputs = {"INT": INT}
    comfy = ComfyAlias(("ImpactMinMax",))

    def run(self):
        try:
            return max(self.a, self.b) if self.mode else min(self.a, self.b)
        except TypeError as e:
            raise NodeInputError("b", f"can't order {type(self.a).__name__} and {type(self.b).__name__}: {e}") from None


def _looks_numeric(text: str) -> bool:
    return re.match(r"^[-+]?[0-9]*\.?[0-9]+$", text) is not None


class ImpactConvertDataType(Node):
    """value as text, number, whole number and true/false, as the pack converts: a value that
    reads as a number is that number (its whole part for INT); any other is 1, or 0 for the
    text "false" (any case). A number too large for a float (over about 1.8e308) is an error
    (the pack fails on its whole part)."""
    category = "ImpactPack/Logic"
    value: ANY
    outputs = {"STRING": STRING, "FLOAT": FLOAT, "INT": INT, "BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("ImpactConvertDataType",))

    def run(self):
        text = str(self.value)
        number = float(text) if _looks_numeric(text) else float(text.lower() != "false")
        if number in (float("inf"), float("-inf")):
            raise NodeInputError("value", f"{text[:40]}... is too large a number (its whole part can't be taken)")
        return text, number, int(number), bool(number)


class ImpactIfNone(Node):
    """Passes signal on, with whether any_input is not None (connected and with a value)."""
    category = "ImpactPack/Logic"
    signal: ANY = None
    any_input: ANY = None
    outputs = {"signal_opt": ANY, "bool": BOOLEAN}
    comfy = ComfyAlias(("ImpactIfNone",))

    def run(self):
        return self.signal, self.any_input is not None


class ImpactValueSender(Node):
    """Passes signal_opt on. The pack's editor also copies value into the Value Receiver with the
    same link_id for the next run; that editor effect is not made here."""
    category = "ImpactPack/Logic"
    output_node = True
    value: ANY
    link_id: int = Int(0, min=0, max=2**63 - 1)
    signal_opt: ANY = None
    outputs = {"signal": ANY}
    comfy = ComfyAlias(("ImpactValueSender",))

    def run(self):
        return self.signal_opt


class ImpactValueReceiver(Node):
    """value (text) as typ: INT, FLOAT, BOOLEAN ("true" in any case is true) or STRING. The pack's
    editor fills value from a Value Sender; here it is the widget's value."""
    category = "ImpactPack/Logic"
    typ: str = Choice(("STRING", "INT", "FLOAT", "BOOLEAN"), "STRING")
    value: str = Text("")
    link_id: int = Int(0, min=0, max=2**63 - 1)
    outputs = {"*": ANY}
    comfy = ComfyAlias(("ImpactValueReceiver",))

    def run(self):
        try:
            if self.typ == "INT":
                return int(self.value)
            if self.typ == "FLOAT":
                return float(self.value)
        except ValueError:
            raise NodeInputError("value", f"{self.value!r} is not a {self.typ.lower()} number") from None
        if self.typ == "BOOLEAN":
            return self.value.lower() == "true"
        return self.value


class ImpactLogger(Node):
    """Shows data in the node's text as the pack's logger sends it there (f"{data}"); the log
    gets it with a tensor's shape first, as the pack logs it."""
    category = "ImpactPack/Debug"
    output_node = True
    data: ANY
    text: str = Text("", multiline=True)
    comfy = ComfyAlias(("ImpactLogger",))

    def run(self):
        shape = f"{tuple(self.data.shape)} / " if hasattr(self.data, "shape") else ""
        logging.getLogger(__name__).info("[IMPACT LOGGER]: %s%s", shape, self.data)
        show(text=[f"{self.data}"])


class ImpactDummyInput(Node):
    """The text "DUMMY", for an input that must be connected to something."""
    category = "ImpactPack/Debug"
    outputs = {"*": ANY}
    comfy = ComfyAlias(("ImpactDummyInput",))

    def run(self):
        return "DUMMY"


class ImpactStringSelector(Node):
    """One line of strings, number select (counted round: select mod the number of lines). With
    multiline, the parts that each begin at a line starting with # are chosen instead (the #
    dropped from the part chosen)."""
    category = "ImpactPack/Util"
    strings: str = Text("", multiline=True)
    multiline: bool = Bool(False)
    select: int = Int(0, min=0, max=2**63 - 1)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("ImpactStringSelector",))

    def run(self):
        lines = self.strings.split("\n")
        if not self.multiline:
            return lines[self.select % len(lines)]
        parts, current = [], ""
        for line in lines:
            if line.startswith("#") and current:
                parts.append(current.strip())
                current = ""
            current += line + "\n"
        if current:
            parts.append(current.strip())
        chosen = parts[self.select % len(parts)] if parts else self.strings
        return chosen[1:] if chosen.startswith("#") else chosen


class StringListToString(Node):
    """A list of texts joined with join_with (written \\n for a new line)."""
    category = "ImpactPack/Util"
    input_is_list = True
    join_with: str = Text("\\n")
    string_list: STRING
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("StringListToString",))

    def run(self):
        separator = self.join_with[0]
        separator = "\n" if separator == "\\n" else separator
        fits(sum(len(s) for s in self.string_list) + len(separator) * len(self.string_list), "string_list")
        return separator.join(str(s) for s in self.string_list)


class ImpactImageInfo(Node):
    """An image batch's count, height, width and channels."""
    category = "ImpactPack/Logic/_for_test"
    value: IMAGE
    outputs = {"batch": INT, "height": INT, "width": INT, "channel": INT}
    comfy = ComfyAlias(("ImpactImageInfo",))

    def run(self):
        return tuple(int(n) for n in self.value.shape[:4])


class ImpactLatentInfo(Node):
    """A latent's count, pixel height and width (its size times 8) and channels."""
    category = "ImpactPack/Logic/_for_test"
    value: LATENT
    outputs = {"batch": INT, "height": INT, "width": INT, "channel": INT}
    comfy = ComfyAlias(("ImpactLatentInfo",))

    def run(self):
        shape = self.value["samples"].shape
        return int(shape[0]), int(shape[2]) * 8, int(shape[3]) * 8, int(shape[1])


EXTRA_SCHEDULERS = ("None", "AYS SDXL", "AYS SD1", "AYS SVD", "GITS[coeff=1.2]")


class ImpactSchedulerAdapter(Node):
    """scheduler, or extra_scheduler when that is not None. Impact's own schedulers (AYS, GITS)
    pass on as names: the Inspire Pack's samplers (KSampler //Inspire and its kin) take them; the
    core samplers don't offer them, so a core sampler given one refuses it."""
    category = "ImpactPack/Util"
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    extra_scheduler: str = Choice(EXTRA_SCHEDULERS, "None")
    outputs = {"scheduler": STRING}
    comfy = ComfyAlias(("ImpactSchedulerAdapter",))

    def run(self):
        return self.scheduler if self.extra_scheduler == "None" else self.extra_scheduler


# -- switches --------------------------------------------------------------------------------------

SWITCH_INPUTS = 30  # the pack's editor adds inputs as they are linked (up to 199); inputs written out below
LIST_INPUTS = 20


def _numbered(node, prefix: str, count: int) -> list[tuple[str, object]]:
    """(name, value) of the inputs prefix1 ... prefix<count> that are connected."""
    named = ((f"{prefix}{i}", getattr(node, f"{prefix}{i}")) for i in range(1, count + 1))
    return [(name, value) for name, value in named if value is not None]


class ImpactSwitch(Node):
    """input<select> passed on, with its label (the input's name: labels given in the editor
    are not read) and select; nothing when that input is not connected. Every connected input is
    computed (the pack computes only the chosen one); sel_mode makes no difference here. This node
    takes input1 ... input30."""
    category = "ImpactPack/Util"
    select: int = Int(1, min=1, max=999999)
    sel_mode: bool = Bool(False)
    input1: ANY = None
    input2: ANY = None
    input3: ANY = None
    input4: ANY = None
    input5: ANY = None
    input6: ANY = None
    input7: ANY = None
    input8: ANY = None
    input9: ANY = None
    input10: ANY = None
    input11: ANY = None
    input12: ANY = None
    input13: ANY = None
    input14: ANY = None
    input15: ANY = None
    input16: ANY = None
    input17: ANY = None
    input18: ANY = None
    input19: ANY = None
    input20: ANY = None
    input21: ANY = None
    input22: ANY = None
    input23: ANY = None
    input24: ANY = None
    input25: ANY = None
    input26: ANY = None
    input27: ANY = None
    input28: ANY = None
    input29: ANY = None
    input30: ANY = None
    outputs = {"selected_value": ANY, "selected_label": STRING, "selected_index": INT}
    comfy = ComfyAlias(("ImpactSwitch",))

    def run(self):
        name = f"input{self.select}"
        value = getattr(self, name, None)
        if value is None:
            warn(f"ImpactSwitch: {name} is not connected")
            return None, "", self.select
        return value, name, self.select


class LatentSwitch(Node):
    """latent<select> passed on; latent1 when that one is not connected (as the pack does).
    Takes latent1 ... latent20."""
    category = "ImpactPack/Util"
    select: int = Int(1, min=1, max=99999)
    latent1: LATENT
    latent2: LATENT = None
    latent3: LATENT = None
    latent4: LATENT = None
    latent5: LATENT = None
    latent6: LATENT = None
    latent7: LATENT = None
    latent8: LATENT = None
    latent9: LATENT = None
    latent10: LATENT = None
    latent11: LATENT = None
    latent12: LATENT = None
    latent13: LATENT = None
    latent14: LATENT = None
    latent15: LATENT = None
    latent16: LATENT = None
    latent17: LATENT = None
    latent18: LATENT = None
    latent19: LATENT = None
    latent20: LATENT = None
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("LatentSwitch",))

    def run(self):
        chosen = getattr(self, f"latent{self.select}", None)
        return self.latent1 if chosen is None else chosen


class ImageMaskSwitch(Node):
    """images<select> and mask<select> passed on (select 1 to 4)."""
    category = "ImpactPack/Util"
    select: int = Int(1, min=1, max=4)
    images1: IMAGE
    mask1_opt: MASK = None
    images2_opt: IMAGE = None
    mask2_opt: MASK = None
    images3_opt: IMAGE = None
    mask3_opt: MASK = None
    images4_opt: IMAGE = None
    mask4_opt: MASK = None
    outputs = {"IMAGE": IMAGE, "MASK": MASK}
    comfy = ComfyAlias(("ImageMaskSwitch",))

    def run(self):
        if self.select == 1:
            return self.images1, self.mask1_opt
        return getattr(self, f"images{self.select}_opt"), getattr(self, f"mask{self.select}_opt")


class ImpactInversedSwitch(Node):
    """input passed on at output <select>; the other outputs give nothing. This node has 30
    outputs (the pack's editor shows as many as are linked)."""
    category = "ImpactPack/Util"
    select: int = Int(1, min=1, max=SWITCH_INPUTS)
    input: ANY
    sel_mode: bool = Bool(False)
    outputs = {f"output{i}": ANY for i in range(1, SWITCH_INPUTS + 1)}
    comfy = ComfyAlias(("ImpactInversedSwitch",))

    def run(self):
        return tuple(self.input if i == self.select else None for i in range(1, SWITCH_INPUTS + 1))


# -- lists and batches -----------------------------------------------------------------------------


def join_images(images: list, first_name: str):
    """Images joined into one batch, each resized to the first's size as the pack does
    (ComfyUI's common_upscale: lanczos, centre-cropped to the first's aspect)."""
    import torch

    first = images[0]
    parts = [first]
    for name, image in images[1:]:
        if image.shape[-1] != first.shape[-1]:
            raise NodeInputError(name, f"has {image.shape[-1]} channels; {first_name} has {first.shape[-1]}")
        if image.shape[1:] != first.shape[1:]:
            image = _resize_image(image, first.shape[2], first.shape[1], "lanczos", crop=True)
        parts.append(image.to(first.dtype))
    return torch.cat(parts, dim=0)


class ImpactMakeImageList(Node):
    """The connected images (image1 ... image20) as a list: what follows runs once per image."""
    category = "ImpactPack/Util"
    image1: IMAGE
    image2: IMAGE = None
    image3: IMAGE = None
    image4: IMAGE = None
    image5: IMAGE = None
    image6: IMAGE = None
    image7: IMAGE = None
    image8: IMAGE = None
    image9: IMAGE = None
    image10: IMAGE = None
    image11: IMAGE = None
    image12: IMAGE = None
    image13: IMAGE = None
    image14: IMAGE = None
    image15: IMAGE = None
    image16: IMAGE = None
    image17: IMAGE = None
    image18: IMAGE = None
    image19: IMAGE = None
    image20: IMAGE = None
    outputs = {"IMAGE": ListOf(IMAGE)}
    comfy = ComfyAlias(("ImpactMakeImageList",))

    def run(self):
        return [image for _, image in _numbered(self, "image", LIST_INPUTS)]


class ImpactMakeImageBatch(Node):
    """The connected images (image1 ... image20) joined into one batch; each is resized to
    image1's size (lanczos, centre-cropped) as the pack does."""
    category = "ImpactPack/Util"
    image1: IMAGE
    image2: IMAGE = None
    image3: IMAGE = None
    image4: IMAGE = None
    image5: IMAGE = None
    image6: IMAGE = None
    image7: IMAGE = None
    image8: IMAGE = None
    image9: IMAGE = None
    image10: IMAGE = None
    image11: IMAGE = None
    image12: IMAGE = None
    image13: IMAGE = None
    image14: IMAGE = None
    image15: IMAGE = None
    image16: IMAGE = None
    image17: IMAGE = None
    image18: IMAGE = None
    image19: IMAGE = None
    image20: IMAGE = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImpactMakeImageBatch",))

    def run(self):
        named = _numbered(self, "image", LIST_INPUTS)
        return join_images([named[0][1], *named[1:]], "image1")


class ImageListToImageBatch(Node):
    """A list of images joined into one batch, each resized to the first's size (lanczos,
    centre-cropped) as the pack does."""
    category = "ImpactPack/Operation"
    input_is_list = True
    images: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageListToImageBatch",))

    def run(self):
        if not self.images:
            raise NodeInputError("images", "the list is empty")
        return join_images([self.images[0], *(("images", image) for image in self.images[1:])], "images")


class ImageBatchToImageList(Node):
    """Each image of a batch as one item of a list: what follows runs once per image."""
    category = "ImpactPack/Util"
    image: IMAGE
    outputs = {"IMAGE": ListOf(IMAGE)}
    comfy = ComfyAlias(("ImageBatchToImageList",))

    def run(self):
        return [self.image[i:i + 1] for i in range(self.image.shape[0])]


class ImpactMakeAnyList(Node):
    """The connected values (value1 ... value20) as a list: what follows runs once per value."""
    category = "ImpactPack/Util"
    value1: ANY = None
    value2: ANY = None
    value3: ANY = None
    value4: ANY = None
    value5: ANY = None
    value6: ANY = None
    value7: ANY = None
    value8: ANY = None
    value9: ANY = None
    value10: ANY = None
    value11: ANY = None
    value12: ANY = None
    value13: ANY = None
    value14: ANY = None
    value15: ANY = None
    value16: ANY = None
    value17: ANY = None
    value18: ANY = None
    value19: ANY = None
    value20: ANY = None
    outputs = {"*": ListOf(ANY)}
    comfy = ComfyAlias(("ImpactMakeAnyList",))

    def run(self):
        return [value for _, value in _numbered(self, "value", LIST_INPUTS)]


class ImpactConcatConditionings(Node):
    """conditioning1, with each next connected one (conditioning2 ... conditioning20) appended
    as ConditioningConcat appends it."""
    category = "ImpactPack/Util"
    conditioning1: CONDITIONING
    conditioning2: CONDITIONING = None
    conditioning3: CONDITIONING = None
    conditioning4: CONDITIONING = None
    conditioning5: CONDITIONING = None
    conditioning6: CONDITIONING = None
    conditioning7: CONDITIONING = None
    conditioning8: CONDITIONING = None
    conditioning9: CONDITIONING = None
    conditioning10: CONDITIONING = None
    conditioning11: CONDITIONING = None
    conditioning12: CONDITIONING = None
    conditioning13: CONDITIONING = None
    conditioning14: CONDITIONING = None
    conditioning15: CONDITIONING = None
    conditioning16: CONDITIONING = None
    conditioning17: CONDITIONING = None
    conditioning18: CONDITIONING = None
    conditioning19: CONDITIONING = None
    conditioning20: CONDITIONING = None
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("ImpactConcatConditionings",))

    def run(self):
        result = self.conditioning1
        for name, conditioning in _numbered(self, "conditioning", LIST_INPUTS)[1:]:
            result = concat_conditioning(result, conditioning, name)
        return result


class ImpactCombineConditionings(Node):
    """The connected conditionings (conditioning1 ... conditioning20) combined in order, as
    ConditioningCombine combines two."""
    category = "ImpactPack/Util"
    conditioning1: CONDITIONING
    conditioning2: CONDITIONING = None
    conditioning3: CONDITIONING = None
    conditioning4: CONDITIONING = None
    conditioning5: CONDITIONING = None
    conditioning6: CONDITIONING = None
    conditioning7: CONDITIONING = None
    conditioning8: CONDITIONING = None
    conditioning9: CONDITIONING = None
    conditioning10: CONDITIONING = None
    conditioning11: CONDITIONING = None
    conditioning12: CONDITIONING = None
    conditioning13: CONDITIONING = None
    conditioning14: CONDITIONING = None
    conditioning15: CONDITIONING = None
    conditioning16: CONDITIONING = None
    conditioning17: CONDITIONING = None
    conditioning18: CONDITIONING = None
    conditioning19: CONDITIONING = None
    conditioning20: CONDITIONING = None
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("ImpactCombineConditionings",))

    def run(self):
        return [entry for _, conditioning in _numbered(self, "conditioning", LIST_INPUTS) for entry in conditioning]


# -- pipes -----------------------------------------------------------------------------------------


class ToBasicPipe(Node):
    """model, clip, vae, positive and negative in one basic_pipe."""
    category = "ImpactPack/Pipe"
    model: MODEL
    clip: CLIP
    vae: VAE
    positive: CONDITIONING
    negative: CONDITIONING
    outputs = {"basic_pipe": BASIC_PIPE}
    comfy = ComfyAlias(("ToBasicPipe",))

    def run(self):
        return (self.model, self.clip, self.vae, self.positive, self.negative)


def _pipe(value, input_name: str = "basic_pipe") -> tuple:
    if not (isinstance(value, tuple) and len(value) == 5):
        raise NodeInputError(input_name, "expected a basic_pipe (model, clip, vae, positive, negative)")
    return value


class FromBasicPipe(Node):
    """A basic_pipe's model, clip, vae, positive and negative."""
    category = "ImpactPack/Pipe"
    basic_pipe: BASIC_PIPE
    outputs = {"model": MODEL, "clip": CLIP, "vae": VAE, "positive": CONDITIONING, "negative": CONDITIONING}
    comfy = ComfyAlias(("FromBasicPipe",))

    def run(self):
        return _pipe(self.basic_pipe)


class FromBasicPipeV2(Node):
    """The basic_pipe itself, then its model, clip, vae, positive and negative."""
    category = "ImpactPack/Pipe"
    basic_pipe: BASIC_PIPE
    outputs = {"basic_pipe": BASIC_PIPE, "model": MODEL, "clip": CLIP, "vae": VAE, "positive": CONDITIONING,
               "negative": CONDITIONING}
    comfy = ComfyAlias(("FromBasicPipe_v2",))

    def run(self):
        return (self.basic_pipe, *_pipe(self.basic_pipe))


class EditBasicPipe(Node):
    """The basic_pipe with the parts that are connected here put in."""
    category = "ImpactPack/Pipe"
    basic_pipe: BASIC_PIPE
    model: MODEL = None
    clip: CLIP = None
    vae: VAE = None
    positive: CONDITIONING = None
    negative: CONDITIONING = None
    outputs = {"basic_pipe": BASIC_PIPE}
    comfy = ComfyAlias(("EditBasicPipe",))

    def run(self):
        new = (self.model, self.clip, self.vae, self.positive, self.negative)
        return tuple(old if part is None else part for old, part in zip(_pipe(self.basic_pipe), new))


class ImpactKSamplerBasicPipe(Node):
    """KSampler on the basic_pipe's model and prompts; gives the pipe back, the latent and the
    pipe's vae. Impact's own schedulers (AYS, GITS) and scheduler_func_opt are not offered."""
    category = "ImpactPack/sampling"
    basic_pipe: BASIC_PIPE
    seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    latent_image: LATENT
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"basic_pipe": BASIC_PIPE, "latent": LATENT, "vae": VAE}
    comfy = ComfyAlias(("ImpactKSamplerBasicPipe",))
    estimate = classmethod(_estimate)

    def run(self):
        model, _, vae, positive, negative = _pipe(self.basic_pipe)
        latent = _core(KSampler, model=model, positive=positive, negative=negative, latent_image=self.latent_image,
                       seed=self.seed, steps=self.steps, cfg=self.cfg, sampler_name=self.sampler_name,
                       scheduler=self.scheduler, denoise=self.denoise)
        return self.basic_pipe, latent, vae


class ImpactKSamplerAdvancedBasicPipe(Node):
    """KSamplerAdvanced on the basic_pipe's model and prompts; gives the pipe back, the latent and
    the pipe's vae. Impact's own schedulers (AYS, GITS) and scheduler_func_opt are not offered."""
    category = "ImpactPack/sampling"
    basic_pipe: BASIC_PIPE
    add_noise: bool = Bool(True)
    noise_seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    latent_image: LATENT
    start_at_step: int = Int(0, min=0, max=10000)
    end_at_step: int = Int(10000, min=0, max=10000)
    return_with_leftover_noise: bool = Bool(False)
    outputs = {"basic_pipe": BASIC_PIPE, "latent": LATENT, "vae": VAE}
    comfy = ComfyAlias(("ImpactKSamplerAdvancedBasicPipe",))
    estimate = classmethod(_estimate)

    def run(self):
        model, _, vae, positive, negative = _pipe(self.basic_pipe)
        on_off = {True: "enable", False: "disable"}
        latent = _core(KSamplerAdvanced, model=model, positive=positive, negative=negative,
                       latent_image=self.latent_image, noise_seed=self.noise_seed, steps=self.steps, cfg=self.cfg,
                       sampler_name=self.sampler_name, scheduler=self.scheduler,
                       add_noise=on_off[self.add_noise], start_at_step=self.start_at_step,
                       end_at_step=self.end_at_step,
                       return_with_leftover_noise=on_off[self.return_with_leftover_noise])
        return self.basic_pipe, latent, vae
