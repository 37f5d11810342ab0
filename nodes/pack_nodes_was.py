"""WAS Node Suite's (WASasquatch/was-node-suite-comfyui, WAS_Node_Suite.py at commit
c6cadcca870488fdb1f82d2f1082e0d4de64eb53, the suite's version 2.2.2 layout) model-free nodes, under
the pack's class names, inputs, defaults and outputs.

Later layouts: workflows saved from mid-2023 on use the suite's later WAS_Node_Suite.py, read here
from the class sources quoted by a documentation mirror of the suite's nodes (no commit given
there; the 2024-2025 source). These nodes follow it: Text Concatenate (delimiter,
clean_whitespace, optional text_a .. text_d; 2.2.2 saves with linebreak_addition still read and
join as they did), Text Find and Replace (the replacement count as NUMBER / FLOAT / INT outputs
after the text), Text Multiline (tokens filled in), Seed (its later name, and NUMBER / FLOAT / INT
outputs after the SEED; Seed (Legacy) read too), KSampler (WAS) (KSampler (Legacy) read too), and
the later nodes Logic Comparison AND / OR / XOR, Logic NOT, Boolean To Text, Text Contains and
Text Shuffle. Compared and unchanged: Text Random Line, Random Number, Text Parse Tokens,
CLIPTextEncode (NSP), Checkpoint Loader, Save Text File, Text Load Line From File. The other nodes
follow 2.2.2.

Held here: Text Multiline, Text String, Text Concatenate, Text Find and Replace (a regular
expression), Text Find and Replace Input, Text Find and Replace by Dictionary, Text Random Line,
Text Shuffle, Text Contains, Text String Truncate, Text to Number, Text to String, String to Text,
Text Input Switch, Text List, Text List Concatenate, Text Dictionary Update, Text Compare, Text Add
Tokens, Text Add Token by Input, Text Parse Tokens (custom tokens last while graphflow runs, not in
the pack's settings file), Text Parse A1111 Embeddings, Text to Conditioning, Load Text File, Text
Load Line From File, Save Text File; Constant Number, Random Number, Number Operation, Number Input
Switch, Number Input Condition, Number Multiple Of, Number PI, Number to Int / Float / String / Text
/ Seed, Seed (Seed (Legacy) in 2.2.2), Logic Boolean, Logic Comparison AND / OR / XOR, Logic NOT,
Boolean To Text, Integer place counter; Image Size to Number, Latent Size to Number, Image Aspect
Ratio; the Image / Latent / Conditioning / Model / VAE / CLIP / Upscale Model Input Switches;
Checkpoint Loader (Simple), Checkpoint Loader and Lora Loader / Load Lora. The input switches (Text,
Number, Image, Latent, Conditioning, Model, VAE, CLIP, Upscale Model) read both of the pack's layouts:
boolean_number (a NUMBER, on when it rounds to 1: 2.2.2 and 2023) and boolean (a BOOLEAN, forceInput:
the later source), whichever a save links (first_chosen); KSampler (WAS) (KSampler
(Legacy) in 2.2.2) and CLIPTextEncode (NSP) for plain prompts; Text to Console and Debug Number to
Console. The image nodes are in nodes/pack_nodes_was_image.py.

Left out: nodes needing model weights or services (BLIP, CLIPSeg, SAM, MiDaS, Rembg, Text Random
Prompt's lexica.art, True Random.org); Text File History Loader and Image History Loader (the pack's
history database); Text Parse Noodle Soup Prompts and CLIPTextEncode (NSP)'s expansion (the NSP
pantry is downloaded from the web, the wildcards are the pack's own files); Image Blending Mode and
Image Style Filter (they need the pilgram package); Number Counter (it counts per node, by an id the
node API doesn't give); and, not built yet, Text Sort (its weight-aware ordering: the later source
was not readable), KSampler Cycle, the video and cache nodes, and the other image filters and
generators. (Mask Crop / Paste Region, the dominant / minority / arbitrary / smooth region masks,
Image Gradient Map, Image Generate Gradient and Image Paste Crop by Location are in
nodes/pack_nodes_was_more.py, whose docstring names what it leaves out.)
"""

from __future__ import annotations

import io
import logging
import math
import os
import random
import re
import socket
import time

from graphflow.api import BOOLEAN, CLIP, CONDITIONING, FLOAT, IMAGE, INT, LATENT, MODEL, STRING, VAE, Bool, Choice, \
    ComfyAlias, Float, Int, Node, NodeInputError, Text, folders, safe_join, show, socket_type, warn
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from graphflow.folders import UnsafePathError
from nodes.conditioning import CLIPEncode
from nodes.loaders import DEMO_CHECKPOINT, LoadCheckpoint, LoadLoRA
from nodes.pack_nodes import POWER_LIMIT, _core
from nodes.sampling import KSampler
from nodes.strings import MAX_TEXT, fits, _guarded
from nodes.upscale import UPSCALE_MODEL

COMFY_PACK = "WAS Node Suite"  # the custom node pack this module's ComfyUI classes come from

NUMBER = socket_type("NUMBER", "#4db6ac", "WAS Node Suite's number: an int or a float")
SEED = socket_type("SEED", "#9e9e9e", "WAS Node Suite's seed: {'seed': int}")
DICT = socket_type("DICT", "#9e9e9e", "WAS Node Suite's dictionary: {name: [lines]}")
LIST = socket_type("LIST", "#9e9e9e", "WAS Node Suite's list of texts")

# the input switches' two layouts, read both ways (first_chosen): the later boolean (forceInput, what
# export writes for a new switch) and the 2023 boolean_number, each optional since a save links one;
# the current pack lacks boolean_number, so a UI export writes it only where linked or saved (legacy)
SWITCH_LAYOUTS = {"force_input": ("boolean",), "optional": ("boolean", "boolean_number"),
                  "legacy": ("boolean_number",)}

NUMBER_LIMIT = 18446744073709551615  # the pack's FLOAT widgets' bounds (±2**64 - 1)
SEED_MAX = 0xFFFFFFFFFFFFFFFF


# -- text ---------------------------------------------------------------------------------------


def uncommented_lines(text: str) -> list[str]:
    """The text's lines (split at "\\n" only, as the pack reads them) without their line ends,
    those whose first non-blank character is '#' left out: the pack's comment lines."""
    return [line.rstrip("\n") for line in io.StringIO(text, newline="\n") if not line.strip().startswith("#")]


class WasTextMultiline(Node):
    """Multi-line text, as WAS's Text Multiline gives it: lines starting with '#' (after blanks)
    are comments and left out, then the pack's tokens ([time], [hostname], [user], [time(FORMAT)]
    and Text Add Tokens' own) are filled in, as the suite's later versions do (2.2.2 left them)."""
    category = "WAS Suite/Text"
    text: str = Text("", multiline=True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Text Multiline",))

    def run(self):
        return parse_tokens("\n".join(uncommented_lines(self.text)))


class WasTextString(Node):
    """Up to four one-line texts, given on as they are (WAS's Text String)."""
    category = "WAS Suite/Text"
    text: str = Text("")
    text_b: str = Text("")
    text_c: str = Text("")
    text_d: str = Text("")
    outputs = {"STRING": STRING, "STRING_2": STRING, "STRING_3": STRING, "STRING_4": STRING}
    comfy = ComfyAlias(("Text String",), optional=("text_b", "text_c", "text_d"))

    def run(self):
        return self.text, self.text_b, self.text_c, self.text_d


def concatenate_widgets(values: list) -> list:
    """Text Concatenate's widgets_values; a 2023 save holds just linebreak_addition ("true" /
    "false"), which becomes the later layout's delimiter (a line break / nothing), no whitespace
    cleaning, and the old input itself, so that the old joining is kept."""
    if len(values) == 1 and values[0] in ("true", "false"):
        return ["\n" if values[0] == "true" else "", "false", values[0]]
    return values


class WasTextConcatenate(Node):
    """The connected texts text_a .. text_d, in that order, joined by delimiter ("\\n" typed as
    two characters is a line break), as WAS's later Text Concatenate does: with clean_whitespace
    "true" each text is stripped first; empty texts are left out.
    Older saves (the 2.2.2 layout: text_a and text_b, linebreak_addition) are read too: their
    linebreak_addition keeps the old joining, text_a and text_b always (even empty), text_c and
    text_d when not empty, with a line break between them when "true", nothing when "false"."""
    category = "WAS Suite/Text"
    delimiter: str = Text(", ")
    clean_whitespace: str = Choice(("true", "false"), "true")
    text_a: STRING = None
    text_b: STRING = None
    text_c: STRING = None
    text_d: STRING = None
    # the 2.2.2 layout's only widget, kept so its saves join as they did ("": a later save)
    linebreak_addition: str = Choice(("", "false", "true"), "")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Text Concatenate",), force_input=("text_a", "text_b", "text_c", "text_d"),
                       optional=("linebreak_addition",), widgets=concatenate_widgets)

    def run(self):
        given = [self.text_a, self.text_b, self.text_c, self.text_d]
        if self.linebreak_addition:
            texts = [t or "" for t in given[:2]] + [t for t in given[2:] if t]
            delimiter = "\n" if self.linebreak_addition == "true" else ""
        else:
            texts = [t.strip() if self.clean_whitespace == "true" else t for t in given if isinstance(t, str)]
            texts = [t for t in texts if t != ""]
            delimiter = "\n" if self.delimiter == "\\n" else self.delimiter
        fits(sum(len(t) + len(delimiter) for t in texts), "delimiter")
        return delimiter.join(texts)


def regex_sub(text: str, find: str, replace: str) -> tuple[str, int]:
    """re.subn(find, replace, text), as WAS's Text Find and Replace runs it: the new text and how
    many replacements were made; the expression is run guarded (a pattern that backtracks
    without end is stopped) and the result's size checked."""
    try:
        pattern = re.compile(find)
    except (re.error, ValueError, OverflowError, RecursionError) as e:
        raise NodeInputError("find", f"not a regular expression: {find!r} ({e})") from None
    try:
        pattern.sub(replace, "")  # re reads the template before matching: a bad one fails with no match too
    except (re.error, IndexError) as e:
        raise NodeInputError("replace", f"not a valid replacement for {find!r}: {e}") from None
    size = [len(text)]

    def expand(match):
        filled = match.expand(replace)
        size[0] += len(filled) - (match.end() - match.start())
        fits(size[0], "replace")
        return filled

    return _guarded(pattern, text, every_match=True, input_name="find").subn(expand, text)


class WasTextFindAndReplace(Node):
    """Replace every match of the regular expression `find` (Python syntax) in the text by
    `replace` (which may use \\1 ...), as WAS's Text Find and Replace does with re.subn; also
    gives how many replacements were made, as a NUMBER, a FLOAT and an INT (the suite's later
    outputs; the 2.2.2 layout gave the text only, at the same place)."""
    category = "WAS Suite/Text/Search"
    text: STRING
    find: str = Text("")
    replace: str = Text("")
    outputs = {"result_text": STRING, "replacement_count_number": NUMBER, "replacement_count_float": FLOAT,
               "replacement_count_int": INT}
    comfy = ComfyAlias(("Text Find and Replace",), force_input=("text",))

    def run(self):
        text, count = regex_sub(self.text, self.find, self.replace)
        return text, count, float(count), count


def replace_one_by_one(text: str, find: str, replace: str) -> str:
    """WAS's Text Find and Replace Input: as many times as `find` occurs in the text, its first
    occurrence is replaced, each time searching the new text from its start (so a replacement
    that makes a new match may be replaced again). No match can start more than len(find) - 1
    characters before the last replacement (the text before it held none): so the search goes
    on from there, and each replacement costs about its own size, not the text's."""
    width = len(find)
    count = text.count(find)
    fits(len(text) + count * max(0, len(replace) - width), "replace")
    if not find:  # "" is first found at the very start, every time
        return replace * count + text
    done, pending, pos = [], "", 0  # the text is "".join(done) + pending + text[pos:]
    for _ in range(count):
        window = pending + text[pos:pos + width - 1]  # every match starting in pending lies inside it
        at = window.find(find)
        if 0 <= at < len(pending):
            pending, pos = window[:at] + replace + window[at + width:], min(pos + width - 1, len(text))
        else:
            found = text.find(find, pos)
            if found < 0:
                break
            pending, pos, at = pending + text[pos:found] + replace, found + width, len(pending) + found - pos
        start = at - width + 1  # where the next match may start, at the earliest
        if start < 0:  # before pending: take those characters back from done
            before = "".join(done)
            cut = max(len(before) + start, 0)
            done, pending, start = [before[:cut]], before[cut:] + pending, 0
        done.append(pending[:start])
        pending = pending[start:]
    return "".join(done) + pending + text[pos:]


class WasTextFindAndReplaceInput(Node):
    """Replace `find` by `replace` in the text, all three linked in, as WAS's Text Find and
    Replace Input does: as many times as `find` occurs, its first occurrence is replaced (a
    replacement that makes a new match may be replaced again, as in the pack)."""
    category = "WAS Suite/Text/Search"
    text: STRING
    find: STRING
    replace: STRING
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Text Find and Replace Input",))

    def run(self):
        return replace_one_by_one(self.text, self.find, self.replace)


class WasTextFindAndReplaceByDictionary(Node):
    """Replace each <key>TERM<key> (replacement_key around a dictionary's term) by a line of that
    term drawn at random, as WAS's Text Find and Replace by Dictionary does: Python's random
    seeded with seed, each draw after the first reseeded with seed + 1, + 2 ... unless seed is 0.
    Each term's value must be a list of texts (as Load Text File gives). The markers of a term
    are replaced in one pass: a drawn line that holds the term's own marker keeps it (the pack
    would replace it in turn, in place of a later marker of the text)."""
    category = "WAS Suite/Text/Search"
    text: STRING
    dictionary: DICT
    replacement_key: str = Text("__")
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Text Find and Replace by Dictionary",), force_input=("text",))

    def run(self):
        if not isinstance(self.dictionary, dict):
            raise NodeInputError("dictionary", f"expected a dictionary of lists, got {type(self.dictionary).__name__}")
        seed, draw = self.seed, random.Random(self.seed)
        text = self.text
        for term, lines in self.dictionary.items():
            marker = f"{self.replacement_key}{term}{self.replacement_key}"
            if not marker:
                raise NodeInputError("replacement_key", "an empty key and an empty term mark nothing to replace")
            if not isinstance(lines, (list, tuple)) or not all(isinstance(line, str) for line in lines):
                raise NodeInputError("dictionary", f"{term!r} holds {type(lines).__name__}: expected a list of texts")
            if not lines and marker in text:
                raise NodeInputError("dictionary", f"{term!r} has no lines to draw for {marker}")
            size = len(text)

            def drawn(match):
                nonlocal seed, size
                choice = draw.choice(lines)
                size += len(choice) - len(marker)
                fits(size, "dictionary")
                if seed != 0:
                    seed += 1
                    draw.seed(seed)
                return choice

            # one pass, markers left to right in the pack's draw order (its replace(marker, choice, 1)
            # per marker was quadratic in the text's length)
            text = re.sub(re.escape(marker), drawn, text)
        return text


class WasTextRandomLine(Node):
    """One line of the text, drawn with Python's random seeded with seed, as WAS's Text Random
    Line draws it (the same seed gives the same line)."""
    category = "WAS Suite/Text"
    text: STRING
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Text Random Line",), force_input=("text",))

    def run(self):
        return random.Random(self.seed).choice(self.text.split("\n"))


class WasTextContains(Node):
    """Whether sub_text occurs in text, ignoring case (both lower-cased) when case_insensitive
    is on (WAS's Text Contains)."""
    category = "WAS Suite/Logic"
    text: str = Text("")
    sub_text: str = Text("")
    case_insensitive: bool = Bool(True)
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("Text Contains",), optional=("case_insensitive",))

    def run(self):
        if self.case_insensitive:
            return self.sub_text.lower() in self.text.lower()
        return self.sub_text in self.text


class WasTextShuffle(Node):
    """The text's parts between separators in a shuffled order, joined by the separator again,
    as WAS's Text Shuffle does: Python's random.shuffle seeded with seed (the same seed gives the
    same order)."""
    category = "WAS Suite/Text/Operations"
    text: STRING
    separator: str = Text(",")
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Text Shuffle",), force_input=("text",))

    def run(self):
        if self.separator == "":
            raise NodeInputError("separator", "expected a separator to split the text at, got an empty one")
        parts = self.text.split(self.separator)
        random.Random(self.seed).shuffle(parts)
        return self.separator.join(parts)


def truncate(text: str, keep: int, side: str, by: str) -> str:
    """WAS's Text String Truncate of one text: "beginning" keeps the first `keep` characters or
    words, "end" the last ones (words are joined by single spaces)."""
    if by == "characters":
        return text[:keep] if side == "beginning" else text[-keep:]
    words = text.split()
    return " ".join(words[:keep] if side == "beginning" else words[-keep:])


class WasTextStringTruncate(Node):
    """Shorten up to four texts to truncate_to characters or words, keeping the beginning or the
    end, as WAS's Text String Truncate does (texts not linked give "")."""
    category = "WAS Suite/Text/Operations"
    text: STRING
    truncate_by: str = Choice(("characters", "words"), "characters")
    truncate_from: str = Choice(("end", "beginning"), "end")
    truncate_to: int = Int(10, min=1, max=99999999)
    text_b: STRING = None
    text_c: STRING = None
    text_d: STRING = None
    outputs = {"STRING": STRING, "STRING_2": STRING, "STRING_3": STRING, "STRING_4": STRING}
    comfy = ComfyAlias(("Text String Truncate",), force_input=("text",))

    def run(self):
        return tuple(truncate(t or "", self.truncate_to, self.truncate_from, self.truncate_by)
                     for t in (self.text, self.text_b, self.text_c, self.text_d))


COMPARE_CELLS = 2_000_000  # Text Compare walks a table of len(a) x len(b) cells in Python: larger is refused


def _word_around(text: str, start: int, end: int) -> str:
    """text[start:end] widened to whole words (to the spaces either side)."""
    while end < len(text) and text[end] != " ":
        end += 1
    return text[_word_start(text, start):end]


def compare_texts(a: str, b: str, tolerance: float, difference: bool) -> tuple[float, list[str]]:
    """WAS's Text Compare: the edit distance table of a against b, and (score, words). In
    "difference" mode, words are a's pieces split at the spaces the walk back through the table
    finds changed, and the score 1 - (distance - pieces) / longer length; in "similarity" mode,
    the score is 1 - distance / longer length (1 for two empty texts) and words are the whole
    words around cells whose distance is at most tolerance (and after matching spaces) that
    appear in the other text."""
    m, n = len(a), len(b)
    table = [[0] * (n + 1) for _ in range(m + 1)]
    found: dict[str, None] = {}  # an ordered set: the pack's set, whose order varies run to run
    for i in range(m + 1):
        for j in range(n + 1):
            if i == 0 or j == 0:
                table[i][j] = i + j
            elif a[i - 1] == b[j - 1]:
                table[i][j] = table[i - 1][j - 1]
                if not difference and i > 1 and j > 1 and a[i - 2] == " " and b[j - 2] == " ":
                    # the word before the space, with the space, as the pack slices it
                    word_a, word_b = a[_word_start(a, i - 2):i - 1], b[_word_start(b, j - 2):j - 1]
                    if word_a in b or word_b in a:
                        found.update({word_a: None, word_b: None})
            else:
                table[i][j] = 1 + min(table[i][j - 1], table[i - 1][j], table[i - 1][j - 1])
            if not difference and i > 0 and j > 0 and table[i][j] <= tolerance:
                word_a = _word_around(a, max(0, i - table[i][j]), i)
                word_b = _word_around(b, max(0, j - table[i][j]), j)
                if word_a in b or word_b in a:
                    found.update({word_a: None, word_b: None})
    if not difference:
        return (1 - table[m][n] / max(m, n) if max(m, n) else 1.0), list(found)
    changed, i, j = [], m, n
    while i > 0 and j > 0:
        if a[i - 1] != b[j - 1]:
            changed.append(i - 1)
        i, j = i - 1, (j - 1 if a[i - 1] == b[j - 1] else j)  # the pack's walk: a's side steps back each time
    pieces, start = [], 0
    for at in reversed(changed):
        if a[at] == " ":
            pieces.append(a[start:at])
            start = at + 1
    pieces.append(a[start:m])
    return (1 - (table[m][n] - len(pieces)) / max(m, n) if max(m, n) else 1.0), pieces[::-1]


def _word_start(text: str, at: int) -> int:
    while at > 0 and text[at - 1] != " ":
        at -= 1
    return at


class WasTextCompare(Node):
    """Compare two texts, as WAS's Text Compare does: passes both on, gives 1 when they are equal
    (else 0), a score from their edit distance, and the words found: in "similarity" mode the
    words of each found in the other (near matches within tolerance edits), in "difference" mode
    text_a's pieces around the changes. The pack lists the similar words in Python's set order,
    which varies from run to run; here they come in the order found, last first. Texts whose
    lengths multiply past COMPARE_CELLS (2 million) are refused: the pack's table is walked
    cell by cell."""
    category = "WAS Suite/Text/Search"
    text_a: STRING
    text_b: STRING
    mode: str = Choice(("similarity", "difference"), "similarity")
    tolerance: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    outputs = {"TEXT_A_PASS": STRING, "TEXT_B_PASS": STRING, "BOOL_NUMBER": NUMBER, "SCORE_NUMBER": NUMBER,
               "COMPARISON_TEXT": STRING}
    comfy = ComfyAlias(("Text Compare",), force_input=("text_a", "text_b"))

    def run(self):
        if (len(self.text_a) + 1) * (len(self.text_b) + 1) > COMPARE_CELLS:
            raise NodeInputError("text_b", f"texts of {len(self.text_a)} and {len(self.text_b)} characters are too "
                                           f"long to compare (their lengths may multiply to {COMPARE_CELLS})")
        score, words = compare_texts(self.text_a, self.text_b, self.tolerance, self.mode == "difference")
        found = " ".join(" ".join(words[::-1]).split())
        return self.text_a, self.text_b, int(self.text_a == self.text_b), float(score), found


def text_to_number(text: str) -> int | float:
    """WAS's Text to Number: a text of digits and dots is a float (so "3" gives 3.0), anything
    else is read as a whole number ("-3" gives -3)."""
    try:
        return float(text) if text.replace(".", "").isnumeric() else int(text)
    except ValueError:
        raise NodeInputError("text", f"expected a number, got {text[:60]!r}") from None


class WasTextToNumber(Node):
    """The number a text holds, as WAS's Text to Number reads it: digits with dots give a float
    ("3" gives 3.0), other texts a whole number ("-3"); anything else is an error."""
    category = "WAS Suite/Text/Operations"
    text: STRING
    outputs = {"NUMBER": NUMBER}
    comfy = ComfyAlias(("Text to Number",))

    def run(self):
        return text_to_number(self.text)


class WasTextToString(Node):
    """The text given on (WAS's Text to String: the pack's TEXT type as a STRING)."""
    category = "WAS Suite/Text/Operations"
    text: STRING
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Text to String",))

    def run(self):
        return self.text


class WasStringToText(Node):
    """The text given on (WAS's String to Text)."""
    category = "WAS Suite/Text/Operations"
    string: str = Text("")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("String to Text",))

    def run(self):
        return self.string


class WasTextList(Node):
    """A list of text_a and those of text_b ... text_g that are linked and not empty, in order
    (WAS's Text List)."""
    category = "WAS Suite/Text"
    text_a: STRING
    text_b: STRING = None
    text_c: STRING = None
    text_d: STRING = None
    text_e: STRING = None
    text_f: STRING = None
    text_g: STRING = None
    outputs = {"LIST": LIST}
    comfy = ComfyAlias(("Text List",))

    def run(self):
        rest = (self.text_b, self.text_c, self.text_d, self.text_e, self.text_f, self.text_g)
        return [self.text_a] + [t for t in rest if t]


class WasTextListConcatenate(Node):
    """list_a followed by list_b, as WAS's Text List Concatenate gives them. list_c and list_d
    are accepted but, as in the pack (which builds their sum and drops it), not added."""
    category = "WAS Suite/Text"
    list_a: LIST
    list_b: LIST
    list_c: LIST = None
    list_d: LIST = None
    outputs = {"LIST": LIST}
    comfy = ComfyAlias(("Text List Concatenate",))

    def run(self):
        for name in ("list_a", "list_b"):
            if not isinstance(getattr(self, name), list):
                raise NodeInputError(name, f"expected a list of texts, got {type(getattr(self, name)).__name__}")
        return self.list_a + self.list_b


class WasTextDictionaryUpdate(Node):
    """dictionary_a updated with dictionary_b, then c and d when linked (later keys win), as
    WAS's Text Dictionary Update does."""
    category = "WAS Suite/Text"
    dictionary_a: DICT
    dictionary_b: DICT
    dictionary_c: DICT = None
    dictionary_d: DICT = None
    outputs = {"DICT": DICT}
    comfy = ComfyAlias(("Text Dictionary Update",))

    def run(self):
        merged = {}
        for name in ("dictionary_a", "dictionary_b", "dictionary_c", "dictionary_d"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, dict):
                raise NodeInputError(name, f"expected a dictionary, got {type(value).__name__}")
            merged.update(value or {})
        return merged


# Text Add Tokens' custom tokens {token: value}, used by every token parse after the built-in ones;
# the pack keeps them in its settings file, here they last while graphflow runs
CUSTOM_TOKENS: dict[str, str] = {}
# the process-wide tables (custom tokens, Load Line / Load Image Batch counters) are shared by every
# graph run: each keeps at most this many entries, the oldest set dropped first, and names this long
MAX_REMEMBERED = 1000
MAX_NAME = 256


def remember(table: dict, name: str, value, input_name: str) -> None:
    """table[name] = value, as the newest entry; refused for a name over MAX_NAME characters, and
    the oldest entries dropped past MAX_REMEMBERED."""
    if len(name) > MAX_NAME:
        raise NodeInputError(input_name, f"{len(name):,} characters: expected a name of up to {MAX_NAME}")
    table.pop(name, None)
    table[name] = value
    while len(table) > MAX_REMEMBERED:
        del table[next(iter(table))]


def parse_tokens(text: str, now: float | None = None, input_name: str = "text") -> str:
    """WAS's text tokens replaced: [time] (seconds since 1970), [hostname], [user] (the login
    name, else "null"), then the custom tokens of Text Add Tokens, then [time(FORMAT)] as
    time.strftime(FORMAT) of the local time. The pack's [cuda_device] / [cuda_name] are not known
    here and stay as written."""
    now = time.time() if now is None else now
    try:
        user = os.getlogin() or "null"
    except OSError:
        user = "null"
    builtin = {"[time]": str(int(now)), "[hostname]": socket.gethostname(), "[user]": user}
    for token, value in {**builtin, **CUSTOM_TOKENS}.items():
        if not token.startswith("[time("):
            fits(len(text) + text.count(token) * max(len(value) - len(token), 0), input_name)
            text = text.replace(token, value)
    try:
        return "\n".join(_fill_time_formats(line, time.localtime(now)) for line in text.split("\n"))
    except ValueError as e:
        raise NodeInputError(input_name, f"a [time(...)] format time.strftime can't use: {e}") from None


def _fill_time_formats(line: str, local) -> str:
    """Each [time(FORMAT)] of one line (FORMAT up to the first ")]", as the pack's lazy regex
    takes it) as time.strftime(FORMAT). A scan, not that regex: the regex retries from every
    unclosed "[time(" to the line's end, quadratic in the line's length."""
    out, at = [], 0
    while (start := line.find("[time(", at)) != -1 and (end := line.find(")]", start + 6)) != -1:
        out += [line[at:start], time.strftime(line[start + 6:end], local)]
        at = end + 2
    return "".join(out) + line[at:]


class WasTextAddTokens(Node):
    """Add custom tokens for the token parsers (Text Parse Tokens, the file nodes' paths and
    prefixes), one "token: value" a line, as WAS's Text Add Tokens does (the value ends at the
    next ':', as in the pack; blank lines are skipped). The pack keeps them in its settings
    file; here they last while graphflow runs, shared by all graphs: up to 1000 tokens (the
    oldest set dropped first), names of up to 256 characters. print_current_tokens "true" logs
    them all."""
    category = "WAS Suite/Text/Tokens"
    output_node = True
    tokens: str = Text("[hello]: world", multiline=True)
    print_current_tokens: str = Choice(("false", "true"), "false")
    outputs = {}
    comfy = ComfyAlias(("Text Add Tokens",))

    @classmethod
    def fingerprint(cls, **widgets):
        return random.random()  # the pack runs it every time

    def run(self):
        added = {}
        for line in self.tokens.split("\n"):
            if not line.strip():
                continue
            parts = line.split(":")
            if len(parts) < 2 or not parts[0].strip():
                raise NodeInputError("tokens", f"expected \"token: value\" lines, got {line[:60]!r}")
            added[parts[0].strip()] = parts[1].strip()
        for token, value in added.items():
            remember(CUSTOM_TOKENS, token, value, "tokens")
        _log_tokens(self.print_current_tokens)
        return ()


class WasTextAddTokenByInput(Node):
    """Add one custom token from linked texts, as WAS's Text Add Token by Input does (see Text
    Add Tokens)."""
    category = "WAS Suite/Text/Tokens"
    output_node = True
    token_name: STRING
    token_value: STRING
    print_current_tokens: str = Choice(("false", "true"), "false")
    outputs = {}
    comfy = ComfyAlias(("Text Add Token by Input",), force_input=("token_name", "token_value"))

    @classmethod
    def fingerprint(cls, **widgets):
        return random.random()

    def run(self):
        if not self.token_name.strip():
            raise NodeInputError("token_name", "empty: a token needs a name")
        fits(len(self.token_value), "token_value")
        remember(CUSTOM_TOKENS, self.token_name, self.token_value, "token_name")
        _log_tokens(self.print_current_tokens)
        return ()


def _log_tokens(print_current_tokens: str) -> None:
    if print_current_tokens == "true":
        logging.getLogger(__name__).info("Current Custom Tokens: %s", CUSTOM_TOKENS)


class WasTextParseTokens(Node):
    """The text with WAS's tokens filled in: [time], [hostname], [user], the custom tokens of
    Text Add Tokens (added earlier while graphflow runs) and [time(%Y-%m-%d)] (any
    time.strftime format). [cuda_device] / [cuda_name] are not known here and stay as written.
    Runs anew each time, as the pack does."""
    category = "WAS Suite/Text/Tokens"
    text: STRING
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Text Parse Tokens",))

    @classmethod
    def fingerprint(cls, **widgets):
        return random.random()  # the time changes: the pack runs it every time

    def run(self):
        return parse_tokens(self.text)


class WasTextParseA1111Embeddings(Node):
    """Write each word that names an embedding file (its name without extension, as a whole
    word) as embedding:name, as WAS's Text Parse A1111 Embeddings does for the files directly in
    the embeddings folder."""
    category = "WAS Suite/Text/Parse"
    text: STRING
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Text Parse A1111 Embeddings",))

    def run(self):
        text = self.text
        for name in folders.list_models("embeddings"):
            if "/" in name:
                continue  # the pack lists the folder itself, not its subfolders
            stem = os.path.splitext(name)[0]
            # the name is escaped: a literal word, not a user's expression
            text = re.sub(rf"\b{re.escape(stem)}\b", lambda m: f"embedding:{stem}", text)
            fits(len(text), "text")
        return text


class WasTextToConditioning(Node):
    """Encode the text with the text encoder, as WAS's Text to Conditioning does (the core
    CLIPTextEncode's encoding; the pack's old version gave no pooled output, which SDXL needs:
    here it is kept)."""
    category = "WAS Suite/Text/Operations"
    clip: CLIP
    text: STRING
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("Text to Conditioning",))

    def run(self):
        return _core(CLIPEncode, text=self.text, clip=self.clip)


class WasTextInputSwitch(Node):
    """text_a when boolean is true (or, in the 2023 layout, boolean_number rounds to 1), else text_b
    (WAS's Text Input Switch)."""
    category = "WAS Suite/Logic"
    text_a: STRING
    text_b: STRING
    boolean: BOOLEAN = None
    boolean_number: NUMBER = None
    outputs = {"STRING": STRING}
    # the pack marks text_a and text_b forceInput too (as STRING, its usual TEXT_TYPE)
    comfy = ComfyAlias(("Text Input Switch",), force_input=("text_a", "text_b", "boolean"),
                       optional=SWITCH_LAYOUTS["optional"], legacy=SWITCH_LAYOUTS["legacy"])

    def run(self):
        return self.text_a if first_chosen(self) else self.text_b


# -- text files ---------------------------------------------------------------------------------


def input_text_file(name: str, input_name: str = "file_path"):
    """A text file of the input folder: WAS's file_path, which there is any path on the machine,
    is here a name inside the input folder (subfolders allowed); names leaving it are refused."""
    if not name.strip():
        raise NodeInputError(input_name, "no file given: expected a file name inside the input folder")
    try:
        path = safe_join(folders.inputs, name)
    except UnsafePathError as e:
        raise NodeInputError(input_name, f"{e} (files are read from the input folder only)") from None
    if not path.is_file():
        raise NodeInputError(input_name, f"no file {name!r} in the input folder")
    return path


def read_text(path, name: str, input_name: str = "file_path") -> str:
    """The file's text; refused past MAX_TEXT bytes, before reading it."""
    try:
        if path.stat().st_size > MAX_TEXT:
            raise NodeInputError(input_name, f"{name!r} is {path.stat().st_size:,} bytes: expected at most "
                                             f"{MAX_TEXT:,}")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise NodeInputError(input_name, f"can't read {name!r}: {e}") from None


def dictionary_key(file_name: str, dictionary_name: str) -> str:
    """The pack's name for a file's lines: dictionary_name, or for "[filename]" the file's name
    up to its first dot."""
    return os.path.basename(file_name).split(".", 1)[0] if dictionary_name == "[filename]" else dictionary_name


class WasLoadTextFile(Node):
    """Read a text file of the input folder, as WAS's Load Text File does: its lines, those
    starting with '#' left out, as one text, and a dictionary {name: lines} (name:
    dictionary_name, or the file's name up to its first dot). The pack reads any path; here
    file_path names a file inside the input folder, of up to 10,000,000 bytes."""
    category = "WAS Suite/IO"
    file_path: str = Text("")
    dictionary_name: str = Text("[filename]")
    outputs = {"STRING": STRING, "DICT": DICT}
    comfy = ComfyAlias(("Load Text File",))

    @classmethod
    def fingerprint(cls, file_path="", **widgets):
        try:
            return input_text_file(file_path).stat().st_mtime_ns
        except (NodeInputError, OSError):
            return None  # run() names the problem

    def run(self):
        lines = [line.rstrip("\r") for line in
                 uncommented_lines(read_text(input_text_file(self.file_path), self.file_path))]
        return "\n".join(lines), {dictionary_key(self.file_path, self.dictionary_name): lines}


# Text Load Line From File's "automatic" counters, per label, as the pack keeps them in its
# database: {label: (the file or text read, next line)}; kept while the process runs
LINE_COUNTERS: dict[str, tuple[str, int]] = {}


class WasTextLoadLineFromFile(Node):
    """One line of a text file of the input folder (or of multiline_text when linked), as WAS's
    Text Load Line From File gives it: mode "index" the line at index, "automatic" the next line
    each run, counted per label and starting again after the last (a counter restarts when the
    label's file changes; counters last while graphflow runs, not in a database as in the pack;
    the 1000 labels used last are kept, of up to 256 characters).
    Also gives {dictionary_name: lines}. The file's lines are stripped of blanks; the pack reads
    any path, here file_path names a file inside the input folder, of up to 10,000,000 bytes; an
    empty file is refused."""
    category = "WAS Suite/Text"
    file_path: str = Text("")
    dictionary_name: str = Text("[filename]")
    label: str = Text("TextBatch")
    mode: str = Choice(("automatic", "index"), "automatic")
    index: int = Int(0, min=0)
    multiline_text: STRING = None
    outputs = {"line_text": STRING, "dictionary": DICT}
    comfy = ComfyAlias(("Text Load Line From File",))

    @classmethod
    def fingerprint(cls, mode="automatic", file_path="", **widgets):
        if mode != "index":
            return random.random()  # the next line each run
        try:
            return input_text_file(file_path).stat().st_mtime_ns
        except (NodeInputError, OSError):
            return None

    def run(self):
        if self.multiline_text is not None:
            source, lines = "<multiline_text>", self.multiline_text.strip().split("\n")
            if self.mode == "index" and self.index >= len(lines):
                raise NodeInputError("index", f"multiline_text has {len(lines)} lines: expected an index below that")
        else:
            path = input_text_file(self.file_path)
            text = read_text(path, self.file_path)
            # a last line end starts no line, as the pack reads the file line by line
            source, lines = str(path), [line.strip() for line in text.removesuffix("\n").split("\n")]
            if not text:  # no line to give (a file of one line end has one empty line, as in the pack)
                raise NodeInputError("file_path", f"{self.file_path!r} is empty: expected a file with lines")
        name = self.dictionary_name
        if self.mode == "index":
            line = lines[self.index % len(lines)]
        else:
            read, at = LINE_COUNTERS.get(self.label, (source, 0))
            at = at if read == source else 0
            line = lines[at % len(lines)]
            remember(LINE_COUNTERS, self.label, (source, (at + 1) % len(lines)), "label")
        return line, {name: lines}


def output_folder(path: str, input_name: str, pack_starts: tuple[str, ...] = (), blanks: tuple[str, ...] = ("",)):
    """A WAS output path (Save Text File's path, Image Save's output_path) as a folder of graphflow's
    output folder: tokens filled in; a relative path taken inside the output folder, after any of
    pack_starts (the pack's own spellings of that folder); one of blanks, or ".", the folder itself;
    an absolute path only when it lies inside the output folder; '..' and links leading out never."""
    path = parse_tokens(path, input_name=input_name).replace("\\", "/").strip()
    base = folders.outputs.resolve()
    outside = NodeInputError(input_name, f"{path!r} is outside the output folder: expected a folder inside it")
    if re.match(r"[A-Za-z]:", path):  # a Windows drive
        raise outside
    if path.startswith("/"):
        inside = os.path.realpath(path)
        if inside != str(base) and not inside.startswith(str(base) + os.sep):
            raise outside
        path = os.path.relpath(inside, base)
    for start in pack_starts:
        if path == start or path.startswith(start + "/"):
            path = path[len(start):]
            break
    path = path.strip("/").removeprefix("./")
    if path in blanks or path == ".":
        return base
    try:
        return safe_join(base, path)
    except UnsafePathError as e:
        raise NodeInputError(input_name, f"{e} (files are written inside the output folder only)") from None


def next_numbered_name(folder, prefix: str, delimiter: str, padding: int, extension: str) -> str:
    """The pack's next file name: prefix, delimiter and a number one past the highest numbered
    file of that prefix (of exactly `padding` digits), padded to `padding` digits."""
    pattern = re.compile(f"{re.escape(prefix)}{re.escape(delimiter)}(\\d{{{padding}}})")
    numbers = [int(m.group(1)) for m in (pattern.match(n) for n in os.listdir(folder)) if m]
    counter = max(numbers, default=0) + 1
    while os.path.lexists(folder / f"{prefix}{delimiter}{counter:0{padding}}{extension}"):  # links too
        counter += 1
    return f"{prefix}{delimiter}{counter:0{padding}}{extension}"


class WasSaveTextFile(Node):
    """Write the text to a new numbered .txt file, as WAS's Save Text File does: the file is
    prefix + delimiter + the next number (padded to filename_number_padding digits) in `path`,
    whose tokens ([time(%Y-%m-%d)], [time], [hostname], [user]) are filled in. The pack writes
    anywhere; here path is a folder inside the output folder ("./ComfyUI/output/..." is read as
    the output folder), made when missing; '..' and absolute paths outside the output folder are
    refused. Always runs."""
    category = "WAS Suite/IO"
    output_node = True
    text: STRING
    path: str = Text("./ComfyUI/output/[time(%Y-%m-%d)]")
    filename_prefix: str = Text("ComfyUI")
    filename_delimiter: str = Text("_")
    filename_number_padding: int = Int(4, min=2, max=9)
    outputs = {}
    comfy = ComfyAlias(("Save Text File",), force_input=("text",))

    @classmethod
    def fingerprint(cls, **widgets):
        return random.random()  # writing is the point: never skipped as cached

    def run(self):
        # the pack's path is relative to ComfyUI's folder: its output folder spelt out is ours
        folder = output_folder(self.path, "path", pack_starts=("./ComfyUI/output", "ComfyUI/output", "./output",
                                                               "output"))
        prefix = parse_tokens(self.filename_prefix, input_name="filename_prefix")
        for name, value in (("filename_prefix", prefix), ("filename_delimiter", self.filename_delimiter)):
            if "/" in value or "\\" in value or "\x00" in value or value in (".", ".."):
                raise NodeInputError(name, f"{value!r} would leave the folder: expected a plain file name part")
        if not self.text.strip():
            warn("Save Text File: the text is empty")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a name part too long, a file in the way ...
            raise NodeInputError("path", f"can't make the folder: {e.strerror}") from None
        try:
            while True:  # created exclusively: two runs at once never take one number, nor write through a link
                name = next_numbered_name(folder, prefix, self.filename_delimiter, self.filename_number_padding,
                                          ".txt")
                try:
                    with open(folder / name, "x", encoding="utf-8", newline="\n") as f:
                        f.write(self.text)
                    break
                except FileExistsError:
                    continue
        except OSError as e:  # a name too long, a folder in the way ...
            raise NodeInputError("filename_prefix", f"can't write the file: {e.strerror}") from None
        show(string=[self.text])
        return ()


# -- numbers and logic --------------------------------------------------------------------------


def switch_on(boolean_number) -> bool:
    """The pack's 2023 switches: on when boolean_number rounds to 1."""
    try:
        return int(round(boolean_number)) == 1
    except (TypeError, ValueError, OverflowError):
        raise NodeInputError("boolean_number", f"expected a number, got {boolean_number!r}") from None


def first_chosen(node) -> bool:
    """Whether a WAS input switch gives its _a input. The suite's switches took boolean_number (a
    NUMBER, on when it rounds to 1) until 2024, then boolean (a BOOLEAN, forceInput); a switch here
    declares both, optional (SWITCH_LAYOUTS), and reads whichever is linked: boolean when both are."""
    if node.boolean is not None:
        return bool(node.boolean)
    if node.boolean_number is not None:
        return switch_on(node.boolean_number)
    raise NodeInputError("boolean", "link boolean (or, as the 2023 layout did, boolean_number) to choose")


def whole(number, input_name: str) -> int:
    """int(number), with an error naming the input for NaN or infinity."""
    try:
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise NodeInputError(input_name, f"expected a finite number, got {number!r}") from None


def number_outputs(value, input_name: str = "number"):
    """The pack's (NUMBER, FLOAT, INT) of a value."""
    return value, float(value), whole(value, input_name)


class WasConstantNumber(Node):
    """A number, as WAS's Constant Number gives it: "integer" the whole number (cut toward 0),
    "bool" 1 when that whole number is above 0 else 0, "float" the number as it is. (The pack
    gives only its NUMBER output for integer and bool; here FLOAT and INT carry the value too.)"""
    category = "WAS Suite/Number"
    number_type: str = Choice(("integer", "float", "bool"), "integer")
    number: float = Float(0, min=-NUMBER_LIMIT, max=NUMBER_LIMIT)
    outputs = {"NUMBER": NUMBER, "FLOAT": FLOAT, "INT": INT}
    comfy = ComfyAlias(("Constant Number",))

    def run(self):
        value = self.number
        if self.number_type == "integer":
            value = whole(self.number, "number")
        elif self.number_type == "bool":
            value = 1 if whole(self.number, "number") > 0 else 0
        return number_outputs(value)


class WasRandomNumber(Node):
    """A number drawn with Python's random seeded with seed, as WAS's Random Number draws it:
    "integer" randint(minimum, maximum) (both must be whole), "float" uniform(minimum, maximum),
    "bool" random() (a float in [0, 1); its INT is 0). The same seed gives the same number."""
    category = "WAS Suite/Number"
    number_type: str = Choice(("integer", "float", "bool"), "integer")
    minimum: float = Float(0, min=-NUMBER_LIMIT, max=NUMBER_LIMIT)
    maximum: float = Float(0, min=-NUMBER_LIMIT, max=NUMBER_LIMIT)
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"NUMBER": NUMBER, "FLOAT": FLOAT, "INT": INT}
    comfy = ComfyAlias(("Random Number",))

    def run(self):
        draw = random.Random(self.seed)
        if self.number_type == "integer":
            for name in ("minimum", "maximum"):
                if not float(getattr(self, name)).is_integer():
                    raise NodeInputError(name, f"{getattr(self, name)} is not whole: an integer is drawn between "
                                               "whole numbers")
            if self.minimum > self.maximum:
                raise NodeInputError("maximum", f"{self.maximum} is below minimum {self.minimum}")
            number = draw.randint(int(self.minimum), int(self.maximum))
        elif self.number_type == "float":
            number = draw.uniform(self.minimum, self.maximum)
        else:
            number = draw.random()
        return number_outputs(number)


def number_operation(a, b, operation: str):
    """WAS's Number Operation of a and b; comparisons give 1 or 0."""
    if operation in ("division", "floor division", "modulus") and b == 0:
        raise NodeInputError("number_b", f"{operation} by 0")
    if operation == "exponentiation":
        if abs(b) > POWER_LIMIT:
            raise NodeInputError("number_b", f"{b} is too big an exponent (at most {POWER_LIMIT})")
        if a == 0 and b < 0:
            raise NodeInputError("number_b", "0 to a negative power")
        result = a ** b
        if isinstance(result, complex):
            raise NodeInputError("number_b", f"{a} ** {b} is not a real number")
        return result
    table = {
        "addition": lambda: a + b, "subtraction": lambda: a - b, "division": lambda: a / b,
        "floor division": lambda: a // b, "multiplication": lambda: a * b, "modulus": lambda: a % b,
        "greater-than": lambda: int(a > b), "greater-than or equals": lambda: int(a >= b),
        "less-than": lambda: int(a < b), "less-than or equals": lambda: int(a <= b),
        "equals": lambda: int(a == b), "does not equal": lambda: int(a != b),
    }
    return table[operation]() if operation in table else a


def _numbers(node, *names):
    for name in names:
        value = getattr(node, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise NodeInputError(name, f"expected a number, got {type(value).__name__}")
    return [getattr(node, n) for n in names]


class WasNumberOperation(Node):
    """number_a and number_b combined, as WAS's Number Operation does: + - / // * ** %, or a
    comparison giving 1 or 0. Gives the result, as a float, and cut toward 0 as an INT."""
    category = "WAS Suite/Number/Operations"
    number_a: NUMBER
    number_b: NUMBER
    operation: str = Choice(("addition", "subtraction", "division", "floor division", "multiplication",
                             "exponentiation", "modulus", "greater-than", "greater-than or equals", "less-than",
                             "less-than or equals", "equals", "does not equal"), "addition")
    outputs = {"NUMBER": NUMBER, "FLOAT": FLOAT, "INT": INT}
    comfy = ComfyAlias(("Number Operation",))

    def run(self):
        a, b = _numbers(self, "number_a", "number_b")
        try:
            result = number_operation(a, b, self.operation)
            return result, float(result), whole(result, "number_b")
        except OverflowError:
            raise NodeInputError("number_b", f"{self.operation} of {a} and {b} is too big") from None


class WasNumberInputSwitch(Node):
    """number_a when boolean is true (or, in the 2023 layout, boolean_number rounds to 1), else
    number_b, as a NUMBER, FLOAT and INT (WAS's Number Input Switch)."""
    category = "WAS Suite/Logic"
    number_a: NUMBER
    number_b: NUMBER
    boolean: BOOLEAN = None
    boolean_number: NUMBER = None
    outputs = {"NUMBER": NUMBER, "FLOAT": FLOAT, "INT": INT}
    comfy = ComfyAlias(("Number Input Switch",), **SWITCH_LAYOUTS)

    def run(self):
        chosen, name = (self.number_a, "number_a") if first_chosen(self) else (self.number_b, "number_b")
        return number_outputs(chosen, name)


def is_prime(n) -> bool:
    if n <= 1:
        return False
    if n <= 3:
        return True
    if n % 2 == 0 or n % 3 == 0:
        return False
    return all(n % i and n % (i + 2) for i in range(5, math.isqrt(int(n)) + 1, 6))


CONDITIONS = {
    "and": lambda a, b: a != 0 and b != 0, "or": lambda a, b: a != 0 or b != 0,
    "greater-than": lambda a, b: a > b, "greater-than or equals": lambda a, b: a >= b,
    "less-than": lambda a, b: a < b, "less-than or equals": lambda a, b: a <= b,
    "equals": lambda a, b: a == b, "does not equal": lambda a, b: a != b,
    "divisible by": lambda a, b: b % a == 0, "if A odd": lambda a, b: a % 2 != 0,
    "if A even": lambda a, b: a % 2 == 0, "if A prime": lambda a, b: is_prime(a),
    "factor of": lambda a, b: b % a == 0,
}
PRIME_LIMIT = 10 ** 16  # trial division up to its square root stays under a second or so


class WasNumberInputCondition(Node):
    """Test number_a against number_b, as WAS's Number Input Condition does: with return_boolean
    "true" gives 1 or 0, else number_a when the test holds and number_b when not. "divisible by"
    and "factor of" both test number_b % number_a == 0, as in the pack."""
    category = "WAS Suite/Logic"
    number_a: NUMBER
    number_b: NUMBER
    return_boolean: str = Choice(("false", "true"), "false")
    comparison: str = Choice(tuple(CONDITIONS), "and")
    outputs = {"NUMBER": NUMBER, "FLOAT": FLOAT, "INT": INT}
    comfy = ComfyAlias(("Number Input Condition",))

    def run(self):
        a, b = _numbers(self, "number_a", "number_b")
        if self.comparison in ("divisible by", "factor of") and a == 0:
            raise NodeInputError("number_a", f"{self.comparison} with number_a 0 divides by 0")
        if self.comparison == "if A prime" and not math.isfinite(a):
            raise NodeInputError("number_a", f"{a} can't be tested for a prime: expected a finite number")
        if self.comparison == "if A prime" and a > PRIME_LIMIT:
            raise NodeInputError("number_a", f"{a} is too big to test for a prime (at most {PRIME_LIMIT})")
        holds = CONDITIONS[self.comparison](a, b)
        result = int(holds) if self.return_boolean == "true" else (a if holds else b)
        return number_outputs(result)


class WasNumberMultipleOf(Node):
    """The number rounded up to a multiple of `multiple`, as WAS's Number Multiple Of does (a
    number already a multiple is given as it is). The pack gives only its NUMBER output when
    rounding; here FLOAT and INT carry the value too."""
    category = "WAS Suite/Number/Functions"
    number: NUMBER
    multiple: int = Int(8, min=-NUMBER_LIMIT, max=NUMBER_LIMIT)
    outputs = {"NUMBER": NUMBER, "FLOAT": FLOAT, "INT": INT}
    comfy = ComfyAlias(("Number Multiple Of",))

    def run(self):
        (number,) = _numbers(self, "number")
        if self.multiple == 0:
            raise NodeInputError("multiple", "a multiple of 0: expected a non-zero multiple")
        if number % self.multiple != 0:
            number = (number // self.multiple) * self.multiple + self.multiple
        return number_outputs(number)


class WasNumberPI(Node):
    """π as a NUMBER and a FLOAT (WAS's Number PI)."""
    category = "WAS Suite/Number"
    outputs = {"NUMBER": NUMBER, "FLOAT": FLOAT}
    comfy = ComfyAlias(("Number PI",))

    def run(self):
        return math.pi, math.pi


class _NumberConversion(Node):
    category = "WAS Suite/Number/Operations"
    number: NUMBER


class WasNumberToInt(_NumberConversion):
    """The number cut toward 0 (WAS's Number to Int: int(number))."""
    outputs = {"INT": INT}
    comfy = ComfyAlias(("Number to Int",))

    def run(self):
        return whole(self.number, "number")


class WasNumberToFloat(_NumberConversion):
    """The number as a float (WAS's Number to Float)."""
    outputs = {"FLOAT": FLOAT}
    comfy = ComfyAlias(("Number to Float",))

    def run(self):
        (number,) = _numbers(self, "number")
        try:
            return float(number)
        except OverflowError:
            raise NodeInputError("number", f"{number} is too big for a float") from None


class WasNumberToString(_NumberConversion):
    """The number written as Python writes it ("3", "2.5"), as WAS's Number to String does."""
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Number to String",))

    def run(self):
        return str(self.number)


class WasNumberToText(_NumberConversion):
    """The number written as Python writes it, as WAS's Number to Text does."""
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Number to Text",))

    def run(self):
        return str(self.number)


class WasNumberToSeed(_NumberConversion):
    """The number as the pack's SEED ({"seed": number}), as WAS's Number to Seed gives it."""
    outputs = {"SEED": SEED}
    comfy = ComfyAlias(("Number to Seed",))

    def run(self):
        return {"seed": self.number}


class WasSeed(Node):
    """A seed as the pack's SEED ({"seed": seed}), and as a NUMBER, FLOAT and INT, as WAS's Seed
    gives it (Seed (Legacy) in 2.2.2 gave the SEED only, at the same place)."""
    category = "WAS Suite/Number"
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"seed": SEED, "number": NUMBER, "float": FLOAT, "int": INT}
    comfy = ComfyAlias(("Seed", "Seed (Legacy)"))  # the later suite's name first

    def run(self):
        return {"seed": self.seed}, self.seed, float(self.seed), self.seed


class WasLogicBoolean(Node):
    """0 or 1 as a NUMBER and an INT (WAS's Logic Boolean)."""
    category = "WAS Suite/Logic"
    boolean_number: int = Int(1, min=0, max=1)
    outputs = {"NUMBER": NUMBER, "INT": INT}
    comfy = ComfyAlias(("Logic Boolean",))

    def run(self):
        return self.boolean_number, self.boolean_number


class _LogicComparison(Node):
    category = "WAS Suite/Logic"
    boolean_a: bool = Bool(False)
    boolean_b: bool = Bool(False)
    outputs = {"BOOLEAN": BOOLEAN}


class WasLogicComparisonAnd(_LogicComparison):
    """True when both booleans are (WAS's Logic Comparison AND)."""
    comfy = ComfyAlias(("Logic Comparison AND",))

    def run(self):
        return self.boolean_a and self.boolean_b


class WasLogicComparisonOr(_LogicComparison):
    """True when either boolean is, or both (WAS's Logic Comparison OR)."""
    comfy = ComfyAlias(("Logic Comparison OR",))

    def run(self):
        return self.boolean_a or self.boolean_b


class WasLogicComparisonXor(_LogicComparison):
    """True when exactly one of the booleans is (WAS's Logic Comparison XOR)."""
    comfy = ComfyAlias(("Logic Comparison XOR",))

    def run(self):
        return self.boolean_a != self.boolean_b


class WasLogicNot(Node):
    """The boolean inverted (WAS's Logic NOT)."""
    category = "WAS Suite/Logic"
    boolean: bool = Bool(False)
    outputs = {"BOOLEAN": BOOLEAN}
    comfy = ComfyAlias(("Logic NOT",))

    def run(self):
        return not self.boolean


class WasBooleanToText(Node):
    """"True" or "False" (WAS's Boolean To Text)."""
    category = "WAS Suite/Logic"
    boolean: bool = Bool(False)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Boolean To Text",))

    def run(self):
        return "True" if self.boolean else "False"


class WasIntegerPlaceCounter(Node):
    """How many digits the whole number has (WAS's Integer place counter: len(str(n)))."""
    category = "WAS Suite/Integer"
    int_input: int = Int(0, min=0, max=10000000)
    outputs = {"INT_PLACES": INT}
    comfy = ComfyAlias(("Integer place counter",))

    def run(self):
        return len(str(self.int_input))


# -- sizes --------------------------------------------------------------------------------------


class WasImageSizeToNumber(Node):
    """The image's width and height as NUMBERs, FLOATs and INTs (WAS's Image Size to Number; a
    batch's first image, all being one size)."""
    category = "WAS Suite/Number/Operations"
    image: IMAGE
    outputs = {"width_num": NUMBER, "height_num": NUMBER, "width_float": FLOAT, "height_float": FLOAT,
               "width_int": INT, "height_int": INT}
    comfy = ComfyAlias(("Image Size to Number",))

    def run(self):
        height, width = self.image.shape[1], self.image.shape[2]
        return width, height, float(width), float(height), width, height


class WasLatentSizeToNumber(Node):
    """The latent's width and height in latent cells (an 8th of the pixels for SD), as NUMBERs,
    FLOATs and INTs (WAS's Latent Size to Number)."""
    category = "WAS Suite/Number/Operations"
    samples: LATENT
    outputs = {"tensor_w_num": NUMBER, "tensor_h_num": NUMBER, "FLOAT": FLOAT, "FLOAT_2": FLOAT, "INT": INT,
               "INT_2": INT}
    comfy = ComfyAlias(("Latent Size to Number",))

    def run(self):
        height, width = self.samples["samples"].shape[-2:]
        return width, height, float(width), float(height), width, height


class WasImageAspectRatio(Node):
    """The aspect ratio of the image, or of width and height when both are given and not 0, as
    WAS's Image Aspect Ratio works it out: width / height, 1 when landscape else 0, the ratio in
    lowest terms ("16:9") and "landscape", "portrait" or "square"."""
    category = "WAS Suite/Logic"
    image: IMAGE = None
    width: NUMBER = None
    height: NUMBER = None
    outputs = {"aspect_number": NUMBER, "aspect_float": FLOAT, "is_landscape_bool": NUMBER,
               "aspect_ratio_common": STRING, "aspect_type": STRING}
    comfy = ComfyAlias(("Image Aspect Ratio",))

    def run(self):
        if self.width and self.height:
            width, height = self.width, self.height
            for name, value in (("width", width), ("height", height)):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
                    raise NodeInputError(name, f"expected a whole number of pixels, got {value!r}")
            width, height = int(width), int(height)
        elif self.image is not None:
            height, width = self.image.shape[1], self.image.shape[2]
        else:
            raise NodeInputError("image", "expected an image, or both width and height")
        ratio = width / height
        kind = "landscape" if ratio > 1 else "portrait" if ratio < 1 else "square"
        gcd = math.gcd(width, height)
        return ratio, ratio, int(kind == "landscape"), f"{width // gcd}:{height // gcd}", kind


# -- switches -----------------------------------------------------------------------------------


def switch_node(kind, socket, comfy_name: str, module: str = __name__):
    """A WAS input switch: <kind>_a when boolean is true (or boolean_number rounds to 1), else <kind>_b;
    `module`: the one defining it (the registry takes a module's own classes)."""
    def run(self):
        return getattr(self, f"{kind}_a") if first_chosen(self) else getattr(self, f"{kind}_b")

    namespace = {
        "__annotations__": {f"{kind}_a": socket, f"{kind}_b": socket, "boolean": BOOLEAN, "boolean_number": NUMBER},
        "boolean": None, "boolean_number": None,
        "__doc__": f"{kind}_a when boolean is true (or, in the 2023 layout, boolean_number rounds to 1), else "
                   f"{kind}_b (WAS's {comfy_name}).",
        "__module__": module, "category": "WAS Suite/Logic", "outputs": {socket_name(socket): socket},
        "comfy": ComfyAlias((comfy_name,), **SWITCH_LAYOUTS), "run": run,
    }
    return type(f"Was{comfy_name.title().replace(' ', '')}", (Node,), namespace)


def socket_name(socket) -> str:
    return socket.__metadata__[0].type.name


WasImageInputSwitch = switch_node("image", IMAGE, "Image Input Switch")
WasLatentInputSwitch = switch_node("latent", LATENT, "Latent Input Switch")
WasConditioningInputSwitch = switch_node("conditioning", CONDITIONING, "Conditioning Input Switch")
WasModelInputSwitch = switch_node("model", MODEL, "Model Input Switch")
WasVaeInputSwitch = switch_node("vae", VAE, "VAE Input Switch")
WasClipInputSwitch = switch_node("clip", CLIP, "CLIP Input Switch")
WasUpscaleModelSwitch = switch_node("upscale_model", UPSCALE_MODEL, "Upscale Model Switch")


# -- console ------------------------------------------------------------------------------------


class WasTextToConsole(Node):
    """Write the text to graphflow's log under its label (or "Text to Console") and give it on,
    as WAS's Text to Console prints it to ComfyUI's console."""
    category = "WAS Suite/Debug"
    output_node = True
    text: STRING
    label: str = Text("Text Output")
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Text to Console",), force_input=("text",))

    def run(self):
        logging.getLogger(__name__).info("%s:\n%s", self.label.strip() or "Text to Console", self.text)
        return self.text


class WasDebugNumberToConsole(Node):
    """Write the number to graphflow's log under its label (or "Debug to Console") and give it
    on, as WAS's Debug Number to Console prints it."""
    category = "WAS Suite/Debug"
    output_node = True
    number: NUMBER
    label: str = Text("Debug to Console")
    outputs = {"NUMBER": NUMBER}
    comfy = ComfyAlias(("Debug Number to Console",))

    def run(self):
        logging.getLogger(__name__).info("%s:\n%s", self.label.strip() or "Debug to Console", self.number)
        return self.number


# -- conditioning and sampling -------------------------------------------------------------------


class WasKSampler(Node):
    """Sample as the core KSampler does, its seed given as the pack's SEED ({"seed": n}, from
    Seed or Number to Seed), as WAS's KSampler (WAS) does (KSampler (Legacy) in 2.2.2)."""
    category = "WAS Suite/Sampling"
    model: MODEL
    seed: SEED
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    positive: CONDITIONING
    negative: CONDITIONING
    latent_image: LATENT
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("KSampler (WAS)", "KSampler (Legacy)"))  # the later suite's name first

    @classmethod
    def estimate(cls, widgets, inputs):
        return KSampler.estimate(widgets, inputs)

    def run(self):
        seed = self.seed.get("seed") if isinstance(self.seed, dict) else None
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
            raise NodeInputError("seed", f"expected the pack's SEED {{'seed': 0 to {SEED_MAX}}}, got {self.seed!r}")
        return _core(KSampler, model=self.model, seed=seed, steps=self.steps, cfg=self.cfg,
                     sampler_name=self.sampler_name, scheduler=self.scheduler, positive=self.positive,
                     negative=self.negative, latent_image=self.latent_image, denoise=self.denoise)


def has_choice(text: str) -> bool:
    """Whether the text holds a {a|b} choice: a {...} without braces inside that holds '|'. Found
    in one pass: a regex with the '|' in it backtracks quadratically on "{" + "|" * n."""
    return any("|" in m.group(1) for m in re.finditer(r"\{([^{}]*)\}", text))


class WasNSPCLIPTextEncode(Node):
    """Encode the text as CLIPTextEncode does, giving the text used and the text given, as WAS's
    CLIPTextEncode (NSP) does for a plain prompt. Its Noodle Soup Prompts (the pack downloads
    their pantry from the web), wildcards (files in the pack's own folder), {a|b} choices and
    $variables are not available here: a text using noodle_key, {...|...} or $ is refused
    rather than encoded unparsed."""
    category = "WAS Suite/Conditioning"
    output_node = True
    mode: str = Choice(("Noodle Soup Prompts", "Wildcards"), "Noodle Soup Prompts")
    noodle_key: str = Text("__")
    seed: int = Int(0, min=0, max=SEED_MAX)
    text: str = Text("", multiline=True)
    clip: CLIP
    outputs = {"conditioning": CONDITIONING, "parsed_text": STRING, "raw_text": STRING}
    comfy = ComfyAlias(("CLIPTextEncode (NSP)",))

    def run(self):
        if self.noodle_key and self.noodle_key in self.text or "$" in self.text or has_choice(self.text):
            raise NodeInputError("text", "uses Noodle Soup Prompts, wildcards, {a|b} choices or $variables, which "
                                         "graphflow can't expand (the pack's pantry and wildcard files): expected "
                                         "a plain prompt")
        show(string=[self.text])
        return _core(CLIPEncode, text=self.text, clip=self.clip), self.text, self.text


# -- loaders ------------------------------------------------------------------------------------


def _stem(file_name: str) -> str:
    return os.path.splitext(os.path.basename(file_name))[0]


class WasCheckpointLoaderSimple(LoadCheckpoint):
    """Load a checkpoint as CheckpointLoaderSimple does, also giving its file name without folder
    and extension, as WAS's Checkpoint Loader (Simple) does."""
    category = "WAS Suite/Loaders"
    outputs = {"MODEL": LoadCheckpoint.outputs["model"], "CLIP": LoadCheckpoint.outputs["clip"],
               "VAE": LoadCheckpoint.outputs["vae"], "NAME_STRING": STRING}
    comfy = ComfyAlias(("Checkpoint Loader (Simple)",), inputs={"ckpt_name": "checkpoint"})

    def run(self):
        return (*super().run(), _stem(self.checkpoint))


class WasCheckpointLoader(Node):
    """Load a checkpoint, as WAS's Checkpoint Loader does, also giving its file name without
    folder and extension. config_name (a model config file) is kept, as saved workflows place it
    first, but not used: the architecture is detected from the weights."""
    category = "WAS Suite/Loaders/Advanced"
    config_name: str = Text("v1-inference.yaml")
    checkpoint: str = Choice(lambda: folders.list_models("checkpoints"), DEMO_CHECKPOINT, model_folder="checkpoints")
    outputs = WasCheckpointLoaderSimple.outputs
    comfy = ComfyAlias(("Checkpoint Loader",), inputs={"ckpt_name": "checkpoint"})

    @classmethod
    def fingerprint(cls, checkpoint=DEMO_CHECKPOINT, **widgets):
        return LoadCheckpoint.fingerprint(checkpoint)

    def run(self):
        return (*_core(LoadCheckpoint, checkpoint=self.checkpoint), _stem(self.checkpoint))


def _lora_choices() -> list[str]:
    return ["None"] + folders.list_models("loras")


class WasLoraLoader(LoadLoRA):
    """Apply a LoRA as LoraLoader does, also giving its file name without folder and extension,
    as WAS's Lora Loader (and Load Lora) does. "None" (the pack's first entry) or both strengths
    0 give the model and text encoder unchanged (the pack fails on "None", and then gives no
    name: here the name is "None" or the file's)."""
    category = "WAS Suite/Loaders"
    clip: CLIP
    lora_name: str = Choice(_lora_choices, "None", model_folder="loras", not_files=("None",))
    strength_model: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    strength_clip: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    outputs = {"MODEL": MODEL, "CLIP": CLIP, "NAME_STRING": STRING}
    comfy = (ComfyAlias(("Lora Loader",)), ComfyAlias(("Load Lora",)))

    @classmethod
    def fingerprint(cls, lora_name="None", **widgets):
        return None if lora_name == "None" else super().fingerprint(lora_name)

    def run(self):
        if self.lora_name == "None" or self.strength_model == 0 and self.strength_clip == 0:
            return self.model, self.clip, _stem(self.lora_name)
        return (*super().run(), _stem(self.lora_name))
