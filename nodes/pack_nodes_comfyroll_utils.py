"""Comfyroll Studio's (Suzie1/ComfyUI_Comfyroll_CustomNodes) utility nodes, under the pack's class
names, inputs, defaults and outputs, each with the pack's trailing `show_help` output: its text
nodes (CR Prompt Text, CR Combine Prompt, CR SDXL Prompt Mix Presets, CR SDXL Style Text, CR Text,
CR Multiline Text, CR Text Concatenate, CR Text Replace, CR Text Blacklist, CR Text Operation, CR
Text Length, CR Split String); lists (CR Text List, CR Prompt List, CR Simple List, CR Integer Range
List, CR Float Range List: the nodes after them run once per value; CR Text List To String and CR
Batch Images From List gather a list back); conversions and values (CR Integer To String, CR Float
To Integer, CR Float To String, CR String To Number, CR String To Combo, CR Integer Multiple, CR
Value, CR Clamp Value, CR Math Operation, CR Set Value On Boolean / On Binary / on String, CR Index,
CR Index Increment / Multiply / Reset, CR Trigger); seeded random values (CR Random Hex Color, CR
Random RGB, CR Random Multiline Values / Colors, CR Random Panel Codes, CR Random RGB Gradient:
Python's random seeded by the seed input, so the pack's values); and the image-layout nodes that
draw no text (CR Color Panel, CR Image Border, CR Feathered Border, CR Image Panel, CR Image Grid
Panel, CR Overlay Transparent Image). The pack's other nodes are in nodes/pack_nodes_comfyroll.py,
whose docstring says which are left out and why.

Read from the pack's source as the search index stores it: nodes_core.py (its newest stored text,
index file 3443833355, with CR Combine Prompt), sdxl.py at 1a757776, nodes_utils_text.py (its newest
stored text, index file 56726386158, which imports io and has the Multiline Text, Blacklist,
Operation and Length nodes; 0f453cd8 before it), nodes_utils_other.py and nodes_utils_conversion.py
at 14391b2b, nodes_utils_index.py and nodes_utils_random.py at 1b2fbfde, nodes_list.py at 235c3008
(CR Text List; CR Prompt List from the newer text quoted in index file 41242654911; the range lists,
CR Simple List, CR Text List To String and CR Batch Images From List from the newer text in index
file 2887105057), nodes_graphics_layout.py at 14391b2b with the helpers of functions_graphics.py
(index file 25767735156) and config.py at 60202e5b (the colour table). The graphics nodes draw
through 8-bit Pillow pictures, as the pack does, giving its values to the bit.

A socket-only input of the pack (forceInput: CR Text Concatenate's texts, CR Integer To String's
int_ ...) takes a link here, as the pack's editor makes it. An editor before ComfyUI frontend 1.16
kept a value for it (the hidden widget's default): in a UI save's widgets_values that value is
left out, as the current editor reads such a save; in an API prompt a value for a text or number
socket is run, as ComfyUI's backend runs it (converted as its validation converts the input's type:
str for STRING, int for INT ...); a literal value for another socket-only input is refused."""

from __future__ import annotations

import math
import random
import string

from graphflow.api import ANY, BOOLEAN, FLOAT, IMAGE, INT, STRING, Bool, Choice, ComfyAlias, Estimate, Float, Int, \
    ListOf, Node, NodeInputError, Size, Text
from nodes.pack_nodes import _list_fits
from nodes.pack_nodes_comfyroll import CR_LIMIT, _help
from nodes.sampling import SEED_MAX
from nodes.strings import fits, replaced_in_turn

COMFY_PACK = "ComfyUI_Comfyroll_CustomNodes"  # the custom node pack this module's ComfyUI classes come from

# -- text -------------------------------------------------------------------------------------


def _text(value, input_name: str) -> str:
    """A STRING socket's value, which must be text: an ANY output (CR Value's, a list's item) links
    into it unchecked before the run."""
    if not isinstance(value, str):
        raise NodeInputError(input_name, f"expected text, got {type(value).__name__} {value!r:.60}")
    return value


class CRPromptText(Node):
    """A prompt typed in a box, given on as text, as Comfyroll's CR Prompt Text does."""
    category = "Comfyroll Studio/Essential/Core"
    prompt: str = Text("prompt", multiline=True)
    outputs = {"prompt": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR Prompt Text",))

    def run(self):
        return self.prompt, _help("Core-Nodes", "cr-prompt-text")


class CRCombinePrompt(Node):
    """part1 to part4 joined by the separator, empty parts included (so "a", "", "", "b" with ","
    gives "a,,,b"), as Comfyroll's CR Combine Prompt joins them."""
    category = "Comfyroll Studio/Essential/Core"
    part1: str = Text("", multiline=True)
    part2: str = Text("", multiline=True)
    part3: str = Text("", multiline=True)
    part4: str = Text("", multiline=True)
    separator: str = Text(",")
    outputs = {"prompt": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR Combine Prompt",), optional=("part1", "part2", "part3", "part4", "separator"))

    def run(self):
        parts = (self.part1, self.part2, self.part3, self.part4)
        fits(sum(map(len, parts)) + 3 * len(self.separator), "separator")
        return self.separator.join(parts), _help("Core-Nodes", "cr-prompt-parts")


# preset -> which texts make (pos_g, pos_l, pos_r, neg_g, neg_l, neg_r): P/N the prompts, S/T the styles
MIX_PRESETS = {
    "default with no style text": ("P", "P", "P", "N", "N", "N"),
    "default with style text": ("PS", "PS", "PS", "NT", "NT", "NT"),
    "style boost 1": ("P", "S", "P", "N", "T", "N"),
    "style boost 2": ("S", "P", "S", "T", "N", "T"),
    "style text to refiner": ("P", "P", "S", "N", "N", "T"),
}


class CRSDXLPromptMixPresets(Node):
    """Route the prompts and style texts to SDXL's G, L and refiner prompts by a preset, as
    Comfyroll's CR SDXL Prompt Mix Presets does: "default with no style text" the prompts
    everywhere; "default with style text" each prompt followed directly by its style text; "style
    boost 1" the styles to L; "style boost 2" the styles to G and the refiner; "style text to
    refiner" the styles to the refiner only."""
    category = "Comfyroll Studio/Essential/SDXL"
    prompt_positive: str = Text("prompt_pos", multiline=True)
    prompt_negative: str = Text("prompt_neg", multiline=True)
    style_positive: str = Text("style_pos", multiline=True)
    style_negative: str = Text("style_neg", multiline=True)
    preset: str = Choice(tuple(MIX_PRESETS), "default with no style text")
    outputs = {"pos_g": STRING, "pos_l": STRING, "pos_r": STRING, "neg_g": STRING, "neg_l": STRING,
               "neg_r": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR SDXL Prompt Mix Presets",),
                       optional=("prompt_positive", "prompt_negative", "style_positive", "style_negative", "preset"))

    def run(self):
        texts = {"P": self.prompt_positive, "N": self.prompt_negative, "S": self.style_positive,
                 "T": self.style_negative}
        return (*("".join(texts[part] for part in parts) for parts in MIX_PRESETS[self.preset]),
                _help("SDXL-Nodes", "cr-sdxl-prompt-mix-presets"))


class CRSDXLStyleText(Node):
    """A positive and a negative style text to link into SDXL's L prompts, as Comfyroll's CR SDXL
    Style Text gives them."""
    category = "Comfyroll Studio/Essential/SDXL"
    positive_style: str = Text("POS_STYLE", multiline=True)
    negative_style: str = Text("NEG_STYLE", multiline=True)
    outputs = {"positive_prompt_text_l": STRING, "negative_prompt_text_l": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR SDXL Style Text",))

    def run(self):
        return self.positive_style, self.negative_style, _help("SDXL-Nodes", "cr-sdxl-style-text")


class CRText(Node):
    """Text typed in a box, given on, as Comfyroll's CR Text does."""
    category = "Comfyroll Studio/Utils/Text"
    text: str = Text("", multiline=True)
    outputs = {"text": ANY, "show_help": STRING}
    comfy = ComfyAlias(("CR Text",))

    def run(self):
        return self.text, _help("Other-Nodes", "cr-text")


class CRTextConcatenate(Node):
    """text1, the separator, then text2, as Comfyroll's CR Text Concatenate joins them (an
    unconnected text counts as empty)."""
    category = "Comfyroll Studio/Utils/Text"
    text1: STRING = None
    text2: STRING = None
    separator: str = Text("")
    outputs = {"STRING": ANY, "show_help": STRING}
    comfy = ComfyAlias(("CR Text Concatenate",), force_input=("text1", "text2"),
                       optional=("text1", "text2", "separator"))

    def run(self):
        first = "" if self.text1 is None else _text(self.text1, "text1")
        second = "" if self.text2 is None else _text(self.text2, "text2")
        fits(len(first) + len(self.separator) + len(second), "separator")
        return first + self.separator + second, _help("List-Nodes", "cr-text-concatenate")


class CRTextReplace(Node):
    """Replace find1 by replace1 in the text, then find2 by replace2, then find3 by replace3, as
    Comfyroll's CR Text Replace does with Python's str.replace: plain text, every occurrence. An
    empty find with a non-empty replace inserts the replacement between every character, as there."""
    category = "Comfyroll Studio/Utils/Text"
    text: STRING
    find1: str = Text("")
    replace1: str = Text("")
    find2: str = Text("")
    replace2: str = Text("")
    find3: str = Text("")
    replace3: str = Text("")
    outputs = {"STRING": ANY, "show_help": STRING}
    comfy = ComfyAlias(("CR Text Replace",), force_input=("text",),
                       optional=("find1", "replace1", "find2", "replace2", "find3", "replace3"))

    def run(self):
        pairs = [(getattr(self, f"find{i}"), getattr(self, f"replace{i}")) for i in (1, 2, 3)]
        text = replaced_in_turn(_text(self.text, "text"), pairs, ("replace1", "replace2", "replace3"))
        return text, _help("List-Nodes", "cr-text-replace")


class CRSplitString(Node):
    """The text split at each delimiter: the first four parts, stripped of surrounding spaces,
    missing ones empty, as Comfyroll's CR Split String gives them (an empty delimiter is refused,
    as Python's split refuses it there)."""
    category = "Comfyroll Studio/Utils/Text"
    text: str = Text("text")
    delimiter: str = Text(",")
    outputs = {"string_1": ANY, "string_2": ANY, "string_3": ANY, "string_4": ANY, "show_help": STRING}
    comfy = ComfyAlias(("CR Split String",), optional=("delimiter",))

    def run(self):
        if self.delimiter == "":
            raise NodeInputError("delimiter", "is empty; give the text to split at")
        parts = [part.strip() for part in self.text.split(self.delimiter)[:4]]
        return (*parts, *[""] * (4 - len(parts)), _help("Other-Nodes", "cr-split-string"))


def multiline_text(text: str, convert_from_csv: bool, csv_quote_char: str, remove_chars: bool,
                   chars_to_remove: str, split_string: bool) -> str:
    """Comfyroll's CR Multiline Text: trailing commas dropped; then the CSV values (one a line) when
    converting from CSV, and/or the items of a list-like text ('a', 'b' / "a", "b" / a, b) when
    splitting; with neither, the lines not starting with # (chars_to_remove taken out of each when
    remove_chars). The results joined by line breaks."""
    import csv
    import io

    text = text.rstrip(",")
    lines = []
    if convert_from_csv:
        try:
            for row in csv.reader(io.StringIO(text), quotechar=csv_quote_char):
                lines.extend(row)
        except TypeError as e:
            raise NodeInputError("csv_quote_char", f"must be one character: {e}") from None
        except csv.Error as e:
            raise NodeInputError("text", f"not CSV: {e}") from None
    if split_string:
        if text.startswith("'") and text.endswith("'"):
            lines.extend(value.strip() for value in text[1:-1].split("', '"))
        elif text.startswith('"') and text.endswith('"'):
            lines.extend(value.strip() for value in text[1:-1].split('", "'))
        elif "," in text and text.count("'") % 2 == 0:
            lines.extend(value.strip() for value in text.replace("'", "").split(","))
        elif "," in text and text.count('"') % 2 == 0:
            lines.extend(value.strip() for value in text.replace('"', "").split(","))
    if not convert_from_csv and not split_string:
        for line in io.StringIO(text):
            if line.strip().startswith("#"):
                continue
            line = line.replace("\n", "")
            lines.append(line.replace(chars_to_remove, "") if remove_chars else line)
    return "\n".join(lines)


class CRMultilineText(Node):
    """Text typed in a box, tidied as Comfyroll's CR Multiline Text does: trailing commas dropped,
    and either the lines not starting with # (with chars_to_remove taken out when remove_chars),
    or with convert_from_csv the CSV's values one a line (csv_quote_char quoting), or with
    split_string a list-like text ('a', 'b' or a, b) one item a line."""
    category = "Comfyroll Studio/Utils/Text"
    text: str = Text("", multiline=True)
    convert_from_csv: bool = Bool(False)
    csv_quote_char: str = Text("'")
    remove_chars: bool = Bool(False)
    chars_to_remove: str = Text("")
    split_string: bool = Bool(False)
    outputs = {"multiline_text": ANY, "show_help": STRING}
    comfy = ComfyAlias(("CR Multiline Text",))

    def run(self):
        return (multiline_text(self.text, self.convert_from_csv, self.csv_quote_char, self.remove_chars,
                               self.chars_to_remove, self.split_string), _help("Other-Nodes", "cr-multiline-text"))


class CRTextBlacklist(Node):
    """Each non-empty line of blacklist_words (stripped) replaced in the text by replacement_text,
    in turn, as Comfyroll's CR Text Blacklist does (plain text, every occurrence)."""
    category = "Comfyroll Studio/Utils/Text"
    text: STRING
    blacklist_words: str = Text("", multiline=True)
    replacement_text: str = Text("")
    outputs = {"STRING": ANY, "show_help": STRING}
    comfy = ComfyAlias(("CR Text Blacklist",), force_input=("text",), optional=("replacement_text",))

    def run(self):
        text = _text(self.text, "text")
        for line in self.blacklist_words.split("\n"):
            word = line.strip()
            if word:
                fits(len(text) + text.count(word) * (len(self.replacement_text) - len(word)), "replacement_text")
                text = text.replace(word, self.replacement_text)
        return text, _help("List-Nodes", "cr-text-blacklist")


TEXT_OPERATIONS = {"uppercase": str.upper, "lowercase": str.lower, "capitalize": str.capitalize,
                   "invert_case": str.swapcase, "reverse": lambda t: t[::-1], "trim": str.strip,
                   "remove_spaces": lambda t: t.replace(" ", "")}


class CRTextOperation(Node):
    """The text upper- or lowercased, capitalized, case-inverted, reversed, trimmed or without
    spaces, as Comfyroll's CR Text Operation does with Python's string methods."""
    category = "Comfyroll Studio/Utils/Text"
    text: STRING
    operation: str = Choice(tuple(TEXT_OPERATIONS), "uppercase")
    outputs = {"STRING": ANY, "show_help": STRING}
    comfy = ComfyAlias(("CR Text Operation",), force_input=("text",))

    def run(self):
        return TEXT_OPERATIONS[self.operation](_text(self.text, "text")), _help("List-Nodes", "cr-text_operation")


class CRTextLength(Node):
    """The number of characters in the text, as Comfyroll's CR Text Length counts them."""
    category = "Comfyroll Studio/Utils/Text"
    text: STRING
    outputs = {"INT": INT, "show_help": STRING}
    comfy = ComfyAlias(("CR Text Length",))

    def run(self):
        return len(_text(self.text, "text")), _help("List-Nodes", "cr-text-length")


def list_rows(text: str, start_index: int, max_rows: int) -> list[str]:
    """The pack's list rows: the text's lines from start_index (moved back onto the last line
    when past it) for at most max_rows."""
    lines = text.split("\n")
    start = max(0, min(start_index, len(lines) - 1))
    return lines[start:min(start + max_rows, len(lines))]


class CRTextList(Node):
    """The text's lines from start_index, at most max_rows of them, as a list (the nodes after it
    run once per line), as Comfyroll's CR Text List gives them."""
    category = "Comfyroll Studio/Essential/List"
    multiline_text: str = Text("text")
    start_index: int = Int(0, min=0, max=9999)
    max_rows: int = Int(1000, min=1, max=9999)
    outputs = {"STRING": ListOf(STRING), "show_help": STRING}
    comfy = ComfyAlias(("CR Text List",))

    def run(self):
        return list_rows(self.multiline_text, self.start_index, self.max_rows), _help("Other-Nodes", "cr-text-list")


class CRPromptList(Node):
    """The text's lines from start_index, at most max_rows of them, as lists: each line between
    prepend_text and append_text (`prompt`) and as it is (`body_text`); the nodes after it run once
    per line, as with Comfyroll's CR Prompt List."""
    category = "Comfyroll Studio/Essential/List"
    prepend_text: str = Text("")
    multiline_text: str = Text("body_text", multiline=True)
    append_text: str = Text("")
    start_index: int = Int(0, min=0, max=9999)
    max_rows: int = Int(1000, min=1, max=9999)
    outputs = {"prompt": ListOf(STRING), "body_text": ListOf(STRING), "show_help": STRING}
    comfy = ComfyAlias(("CR Prompt List",))

    def run(self):
        rows = list_rows(self.multiline_text, self.start_index, self.max_rows)
        fits(sum(map(len, rows)) + len(rows) * (len(self.prepend_text) + len(self.append_text)), "append_text")
        return ([self.prepend_text + row + self.append_text for row in rows], rows,
                _help("List-Nodes", "cr-prompt-list"))


def ping_pong_loops(values: list, loops: int, ping_pong: bool) -> list:
    """The values once per loop, every second loop reversed when ping-ponging, as the pack's range
    lists repeat them."""
    out = []
    for i in range(loops):
        out += values[::-1] if ping_pong and i % 2 == 1 else values
    return out


class CRIntegerRangeList(Node):
    """The whole numbers of Python's range(start, end, step) (end left out), once per loop, every
    second loop reversed with ping_pong, as a list (the nodes after it run once per value), as
    Comfyroll's CR Integer Range List gives them."""
    category = "Comfyroll Studio/Essential/List"
    start: int = Int(0, min=-99999, max=99999)
    end: int = Int(0, min=-99999, max=99999)
    step: int = Int(1, min=1, max=99999)
    loops: int = Int(1, min=1, max=999)
    ping_pong: bool = Bool(False)
    outputs = {"INT": ListOf(INT), "show_help": STRING}
    comfy = ComfyAlias(("CR Integer Range List",))

    def run(self):
        values = list(range(self.start, self.end, self.step))
        _list_fits(len(values) * self.loops, "loops")
        return ping_pong_loops(values, self.loops, self.ping_pong), _help("List-Nodes", "cr-list-schedule")


FLOAT_RANGE_OPERATIONS = {"none": lambda x: x, "sin": math.sin, "cos": math.cos, "tan": math.tan}


def float_range(start: float, end: float, step: float, operation: str, decimal_places: int,
                ignore_first_value: bool, max_values_per_loop: int, loops: int, ping_pong: bool) -> list[float]:
    """Comfyroll's CR Float Range List: numpy's arange(start, end + step, step) (the step turned
    negative when end < start), each value through the operation and rounded; per loop the first
    value dropped when ignore_first_value (the last, on a ping-pong loop's reversed run), then at
    most max_values_per_loop kept."""
    import numpy as np

    if end < start and step > 0:
        step = -step
    if step == 0:
        raise NodeInputError("step", "is 0: the range would never reach its end")
    try:
        count = max(0, math.ceil((end + step - start) / step))
    except (OverflowError, ValueError):  # a step so small the count is infinite, or not a number
        raise NodeInputError("step", f"{step} gives no countable range from {start} to {end}") from None
    _list_fits(count, "step")
    values = [round(float(FLOAT_RANGE_OPERATIONS[operation](v)), decimal_places)
              for v in np.arange(start, end + step, step)]
    out = []
    for i in range(loops):
        reversed_run = ping_pong and i % 2 == 1
        run = (values[:-1] if reversed_run else values[1:]) if ignore_first_value else values
        run = run[:max_values_per_loop]
        out += run[::-1] if reversed_run else run
        _list_fits(len(out), "loops")
    return out


class CRFloatRangeList(Node):
    """Numbers from start to end (end included when the steps reach it) by step, each through
    sin, cos or tan if asked and rounded to decimal_places, repeated over loops (ping-ponging if
    asked), as a list (the nodes after it run once per value), as Comfyroll's CR Float Range List
    gives them: the first value of each loop left out with ignore_first_value, at most
    max_values_per_loop a loop."""
    category = "Comfyroll Studio/Essential/List"
    start: float = Float(0.0, min=-99999.99, max=99999.99, step=0.01)
    end: float = Float(1.0, min=-99999.99, max=99999.99, step=0.01)
    step: float = Float(1.0, min=-99999.99, max=99999.99, step=0.01)
    operation: str = Choice(tuple(FLOAT_RANGE_OPERATIONS), "none")
    decimal_places: int = Int(2, min=0, max=10)
    ignore_first_value: bool = Bool(True)
    max_values_per_loop: int = Int(128, min=1, max=99999)
    loops: int = Int(1, min=1, max=999)
    ping_pong: bool = Bool(False)
    outputs = {"FLOAT": ListOf(FLOAT), "show_help": STRING}
    comfy = ComfyAlias(("CR Float Range List",))

    def run(self):
        return (float_range(self.start, self.end, self.step, self.operation, self.decimal_places,
                            self.ignore_first_value, self.max_values_per_loop, self.loops, self.ping_pong),
                _help("List-Nodes", "cr-float-range-list"))


class CRSimpleList(Node):
    """The text's non-empty lines, stripped, as a list (the nodes after it run once per line), as
    Comfyroll's CR Simple List gives them."""
    category = "Comfyroll Studio/Essential/List"
    list_values: str = Text("text", multiline=True)
    outputs = {"LIST": ListOf(ANY), "show_help": STRING}
    comfy = ComfyAlias(("CR Simple List",))

    def run(self):
        return [line.strip() for line in self.list_values.split("\n") if line.strip()], \
            _help("List-Nodes", "cr-simple-list")


class CRTextListToString(Node):
    """A list of texts joined into one, a line each, as Comfyroll's CR Text List To String joins
    them."""
    category = "Comfyroll Studio/Essential/List/Utils"
    input_is_list = True
    text_list: STRING
    outputs = {"STRING": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR Text List To String",))

    def run(self):
        texts = [_text(text, "text_list") for text in self.text_list]
        fits(sum(len(t) + 1 for t in texts), "text_list")
        return "\n".join(texts), _help("List-Nodes", "cr-text-list-to-string")


class CRBatchImagesFromList(Node):
    """A list of images (each a batch) joined into one batch, in order, as Comfyroll's CR Batch
    Images From List joins them; all must be one size."""
    category = "Comfyroll Studio/Essential/List/Utils"
    input_is_list = True
    image_list: IMAGE
    outputs = {"image_batch": IMAGE, "show_help": STRING}
    comfy = ComfyAlias(("CR Batch Images From List",))

    def run(self):
        import torch

        if not self.image_list:
            raise NodeInputError("image_list", "is an empty list: there are no images to batch")
        first = self.image_list[0]
        for k, images in enumerate(self.image_list):
            if images.shape[1:] != first.shape[1:]:
                raise NodeInputError("image_list", f"image {k} is {tuple(images.shape[1:])} [H, W, C] but the first "
                                                   f"is {tuple(first.shape[1:])}; a batch takes one size")
        return torch.cat(self.image_list), _help("List-Nodes", "cr-binary-to-list")


# -- conversions and values ------------------------------------------------------------------


class CRIntegerToString(Node):
    """A whole number written as text, as Comfyroll's CR Integer To String writes it."""
    category = "Comfyroll Studio/Utils/Conversion"
    int_: INT
    outputs = {"STRING": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR Integer To String",))

    def run(self):
        return f"{self.int_}", _help("Conversion-Nodes", "cr-integer-to-string")


class CRFloatToInteger(Node):
    """A number's whole part (truncated toward zero: -2.7 gives -2), as Comfyroll's CR Float To
    Integer gives it."""
    category = "Comfyroll Studio/Utils/Conversion"
    float_value: FLOAT
    outputs = {"INT": INT, "show_help": STRING}
    comfy = ComfyAlias(("CR Float To Integer",), inputs={"_float": "float_value"})

    def run(self):
        return _whole(self.float_value, "float_value"), _help("Conversion-Nodes", "cr-float-to-integer")


class CRFloatToString(Node):
    """A number written as text as Python writes it (1.0 gives "1.0"), as Comfyroll's CR Float To
    String does."""
    category = "Comfyroll Studio/Utils/Conversion"
    float_: FLOAT
    outputs = {"STRING": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR Float To String",))

    def run(self):
        return f"{self.float_}", _help("Conversion-Nodes", "cr-float-to-string")


def _whole(value, input_name: str) -> int:
    """int(value), as the pack converts; infinity and NaN have none."""
    if isinstance(value, float) and not math.isfinite(value):
        raise NodeInputError(input_name, f"{value} has no whole number")
    return int(value)


class CRIntegerMultiple(Node):
    """integer times multiple, truncated to a whole number, as Comfyroll's CR Integer Multiple
    computes it (despite its name, a product, not a rounding to a multiple)."""
    category = "Comfyroll Studio/Utils/Other"
    integer: int = Int(1, min=-CR_LIMIT, max=CR_LIMIT)
    multiple: float = Float(8.0, min=1.0, max=CR_LIMIT)
    outputs = {"INT": INT, "show_help": STRING}
    comfy = ComfyAlias(("CR Integer Multiple",))

    def run(self):
        return _whole(self.integer * self.multiple, "multiple"), _help("Other-Nodes", "cr-integer-multiple")


class CRValue(Node):
    """A number given on as a float and as its whole part (truncated), as Comfyroll's CR Value."""
    category = "Comfyroll Studio/Utils/Other"
    value: float = Float(1.0)
    outputs = {"FLOAT": FLOAT, "INT": INT, "show_help": STRING}
    comfy = ComfyAlias(("CR Value",))

    def run(self):
        return float(self.value), _whole(self.value, "value"), _help("Other-Nodes", "cr-value")


MATH_OPERATIONS = ("sin", "cos", "tan", "sqrt", "exp", "log", "neg", "abs")


def cr_math(a: float, operation: str) -> float:
    """Comfyroll's CR Math Operation before rounding. Its "tan" computes cos(a) (the pack's code
    does so), kept so workflows give the pack's numbers."""
    functions = {"sin": math.sin, "cos": math.cos, "tan": math.cos, "sqrt": math.sqrt, "exp": math.exp,
                 "log": math.log, "neg": lambda x: -x, "abs": abs}
    return functions[operation](a)


class CRMathOperation(Node):
    """sin, cos, sqrt, exp, log (natural), neg or abs of a, rounded to decimal_places, as
    Comfyroll's CR Math Operation computes it. Its "tan" gives cos(a), as the pack's code does."""
    category = "Comfyroll Studio/Utils/Other"
    a: float = Float(1.0)
    operation: str = Choice(MATH_OPERATIONS, "sin")
    decimal_places: int = Int(2, min=0, max=10)
    outputs = {"a": FLOAT, "show_help": STRING}
    comfy = ComfyAlias(("CR Math Operation",))

    def run(self):
        try:
            result = cr_math(self.a, self.operation)
        except (ValueError, OverflowError) as e:
            raise NodeInputError("a", f"{self.operation}({self.a}) has no value: {e}") from None
        return round(result, self.decimal_places), _help("Other-Nodes", "cr-math-operation")


class CRSetValueOnBoolean(Node):
    """value_if_true or value_if_false by the boolean, as a whole number (truncated) and as a
    float, as Comfyroll's CR Set Value On Boolean gives it."""
    category = "Comfyroll Studio/Utils/Conditional"
    boolean: BOOLEAN
    value_if_true: float = Float(1.0, min=-CR_LIMIT, max=CR_LIMIT)
    value_if_false: float = Float(0.0, min=-CR_LIMIT, max=CR_LIMIT)
    outputs = {"INT": INT, "FLOAT": FLOAT, "show_help": STRING}
    comfy = ComfyAlias(("CR Set Value On Boolean",), force_input=("boolean",))

    def run(self):
        name = "value_if_true" if self.boolean is True else "value_if_false"  # the pack tests `== True`
        value = getattr(self, name)
        return _whole(value, name), value, _help("Other-Nodes", "cr-set-value-on-boolean")


class CRClampValue(Node):
    """a limited to range_min .. range_max (max(range_min, min(a, range_max)): range_min wins
    when the range is reversed), as Comfyroll's CR Clamp Value computes it."""
    category = "Comfyroll Studio/Utils/Other"
    a: float = Float(1.0, min=-CR_LIMIT, max=CR_LIMIT)
    range_min: float = Float(1.0, min=-CR_LIMIT, max=CR_LIMIT)
    range_max: float = Float(1.0, min=-CR_LIMIT, max=CR_LIMIT)
    outputs = {"a": FLOAT, "show_help": STRING}
    comfy = ComfyAlias(("CR Clamp Value",))

    def run(self):
        return max(self.range_min, min(self.a, self.range_max)), _help("Other-Nodes", "cr-clamp-value")


class CRSetValueOnBinary(Node):
    """value_if_1 when binary is 1, else value_if_0, as a whole number (truncated) and as a float,
    as Comfyroll's CR Set Value On Binary gives it."""
    category = "Comfyroll Studio/Utils/Conditional"
    binary: INT
    value_if_1: float = Float(1.0, min=-CR_LIMIT, max=CR_LIMIT)
    value_if_0: float = Float(0.0, min=-CR_LIMIT, max=CR_LIMIT)
    outputs = {"INT": INT, "FLOAT": FLOAT, "show_help": STRING}
    comfy = ComfyAlias(("CR Set Value On Binary",), force_input=("binary",))

    def run(self):
        name = "value_if_1" if self.binary == 1 else "value_if_0"
        value = getattr(self, name)
        return _whole(value, name), value, _help("Other-Nodes", "cr-set-value-on-boolean")


class CRSetValueOnString(Node):
    """value_if_true when test_string occurs in the text (an empty test_string always does), else
    value_if_false, with that test's result, as Comfyroll's CR Set Value on String gives them."""
    category = "Comfyroll Studio/Utils/Conditional"
    text: STRING
    test_string: str = Text("")
    value_if_true: str = Text("")
    value_if_false: str = Text("")
    outputs = {"STRING": ANY, "BOOLEAN": BOOLEAN, "show_help": STRING}
    comfy = ComfyAlias(("CR Set Value on String",), force_input=("text",),
                       optional=("test_string", "value_if_true", "value_if_false"))

    def run(self):
        found = self.test_string in _text(self.text, "text")
        return (self.value_if_true if found else self.value_if_false), found, \
            _help("List-Nodes", "cr-set-value-on-string")


ROUNDINGS = ("round", "round down", "round up")


def string_to_number(text: str, round_integer: str) -> tuple[int, float]:
    """Comfyroll's CR String To Number: digits with at most one point, a leading minus allowed; the
    whole number by Python's round (halves to even), or as the pack's "round down" / "round up"
    compute them: the whole part, one lower for a negative number when rounding down, one higher
    for a positive one when rounding up (so 2.0 rounds up to 3, as there)."""
    negative = text.startswith("-") and text[1:].replace(".", "", 1).isdigit()
    if not negative and not text.replace(".", "", 1).isdigit():
        raise NodeInputError("text", f"{text!r:.60} is not a number (digits with at most one point)")
    try:
        value = -float(text[1:]) if negative else float(text)
    except ValueError:  # digits Python's float() doesn't read, as "²"
        raise NodeInputError("text", f"{text!r:.60} is not a number float() reads") from None
    if round_integer == "round up":
        whole = int(value) if text.startswith("-") else int(value) + 1
    elif round_integer == "round down":
        whole = int(value) - 1 if text.startswith("-") else int(value)
    else:
        whole = round(value)
    return whole, value


class CRStringToNumber(Node):
    """A number written as text, as a whole number and as a float, as Comfyroll's CR String To
    Number reads it (see its rounding: "round up" adds one to a positive number's whole part even
    when it has none to round, as the pack does)."""
    category = "Comfyroll Studio/Utils/Conversion"
    text: STRING
    round_integer: str = Choice(ROUNDINGS, "round")
    outputs = {"INT": INT, "FLOAT": FLOAT, "show_help": STRING}
    comfy = ComfyAlias(("CR String To Number",), force_input=("text",))

    def run(self):
        return (*string_to_number(_text(self.text, "text"), self.round_integer),
                _help("Conversion-Nodes", "cr-string-to-number"))


class CRStringToCombo(Node):
    """The text up to its first comma, to link into a list input (a sampler name, say), as
    Comfyroll's CR String To Combo gives it; an empty text has no value to give."""
    category = "Comfyroll Studio/Utils/Conversion"
    text: STRING
    outputs = {"any": ANY, "show_help": STRING}
    comfy = ComfyAlias(("CR String To Combo",))

    def run(self):
        if _text(self.text, "text") == "":
            raise NodeInputError("text", "is empty: there is no value to give")
        return self.text.split(",")[0], _help("Conversion-Nodes", "cr-string-to-combo")


INDEX = "Comfyroll Studio/Utils/Index"


class CRIndex(Node):
    """An index to link into other nodes, as Comfyroll's CR Index gives it (its print_to_console
    printed the index to the server's console; here it changes nothing)."""
    category = INDEX
    index: int = Int(1, min=0, max=10000)
    print_to_console: str = Choice(("Yes", "No"), "Yes")
    outputs = {"INT": INT, "show_help": STRING}
    comfy = ComfyAlias(("CR Index",))

    def run(self):
        return self.index, _help("Index-Nodes", "cr-index")


class CRIndexIncrement(Node):
    """index + interval, with the interval, as Comfyroll's CR Index Increment computes it (the
    pack's code leaves the interval output out, putting its help link there; here each output
    gives what it is named)."""
    category = INDEX
    index: int = Int(1, min=-10000, max=10000)
    interval: int = Int(1, min=-10000, max=10000)
    outputs = {"index": INT, "interval": INT, "show_help": STRING}
    comfy = ComfyAlias(("CR Index Increment",))

    def run(self):
        return self.index + self.interval, self.interval, _help("Index-Nodes", "cr-index-increment")


class CRIndexMultiply(Node):
    """index times factor, with the factor, as Comfyroll's CR Index Multiply computes it."""
    category = INDEX
    index: int = Int(1, min=0, max=10000)
    factor: int = Int(1, min=0, max=10000)
    outputs = {"index": INT, "factor": INT, "show_help": STRING}
    comfy = ComfyAlias(("CR Index Multiply",))

    def run(self):
        return self.index * self.factor, self.factor, _help("Index-Nodes", "cr-index-multiply")


class CRIndexReset(Node):
    """reset_to as the index (the index input is ignored), as Comfyroll's CR Index Reset gives it."""
    category = INDEX
    index: int = Int(1, min=0, max=10000)
    reset_to: int = Int(1, min=0, max=10000)
    outputs = {"index": INT, "reset_to": INT, "show_help": STRING}
    comfy = ComfyAlias(("CR Index Reset",))

    def run(self):
        return self.reset_to, self.reset_to, _help("Index-Nodes", "cr-index-reset")


class CRTrigger(Node):
    """The index, and whether it equals trigger_value, as Comfyroll's CR Trigger gives them."""
    category = INDEX
    index: int = Int(0, min=0, max=9999)
    trigger_value: int = Int(1, min=0, max=10000)
    outputs = {"index": INT, "trigger": BOOLEAN, "show_help": STRING}
    comfy = ComfyAlias(("CR Trigger",))

    def run(self):
        return self.index, self.index == self.trigger_value, _help("Index-Nodes", "cr-trigger")


# -- seeded random values ---------------------------------------------------------------------

RANDOM = "Comfyroll Studio/Utils/Random"
VALUE_CHARACTERS = {"binary": "01", "decimal": "0123456789", "natural": "123456789",
                    "hexadecimal": "0123456789ABCDEF", "alphabetic": string.ascii_letters,
                    "alphanumeric": string.ascii_letters + string.digits}


def _drawer(seed: int) -> random.Random:
    """Python's Mersenne Twister seeded as the pack seeds the global one (random.seed(seed)): the
    same draws, without touching the process's own generator."""
    return random.Random(seed)


class CRRandomHexColor(Node):
    """Four colours drawn from the seed as "#rrggbb" (each channel randint(0, 255) in turn), as
    Comfyroll's CR Random Hex Color draws them with Python's random seeded by `seed`."""
    category = RANDOM
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"hex_color1": STRING, "hex_color2": STRING, "hex_color3": STRING, "hex_color4": STRING,
               "show_help": STRING}
    comfy = ComfyAlias(("CR Random Hex Color",))

    def run(self):
        draw = _drawer(self.seed)
        colors = ["#{:02x}{:02x}{:02x}".format(*(draw.randint(0, 255) for _ in range(3))) for _ in range(4)]
        return (*colors, _help("Other-Nodes", "cr-random-hex-color"))


class CRRandomRGB(Node):
    """Four colours drawn from the seed as "r,g,b", as Comfyroll's CR Random RGB draws them."""
    category = RANDOM
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"rgb_1": STRING, "rgb_2": STRING, "rgb_3": STRING, "rgb_4": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR Random RGB",))

    def run(self):
        draw = _drawer(self.seed)
        colors = ["{},{},{}".format(*(draw.randint(0, 255) for _ in range(3))) for _ in range(4)]
        return (*colors, _help("Other-Nodes", "cr-random-rgb"))


class CRRandomMultilineValues(Node):
    """`rows` lines, each prepend_text then string_length characters drawn from the seed among the
    value type's (binary, decimal, natural 1-9, hexadecimal, letters, letters and digits, or
    custom_values), as Comfyroll's CR Random Multiline Values draws them."""
    category = RANDOM
    seed: int = Int(0, min=0, max=SEED_MAX)
    value_type: str = Choice((*VALUE_CHARACTERS, "custom"), "binary")
    rows: int = Int(5, min=1, max=2048)
    string_length: int = Int(5, min=1, max=1024)
    custom_values: str = Text("123ABC")
    prepend_text: str = Text("")
    outputs = {"multiline_text": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR Random Multiline Values",))

    def run(self):
        characters = self.custom_values if self.value_type == "custom" else VALUE_CHARACTERS[self.value_type]
        if not characters:
            raise NodeInputError("custom_values", "is empty: there are no characters to draw from")
        fits(self.rows * (len(self.prepend_text) + self.string_length + 1), "prepend_text")
        draw = _drawer(self.seed)
        lines = [self.prepend_text + "".join(draw.choice(characters) for _ in range(self.string_length))
                 for _ in range(self.rows)]
        return "\n".join(lines), _help("Other-Nodes", "cr-random-multiline-values")


class CRRandomMultilineColors(Node):
    """`rows` colours drawn from the seed, one a line: "rgb" as r,g,b, "hex color" as #RRGGBB or
    "matplotlib xkcd" as a name of the xkcd colour survey (matplotlib's XKCD_COLORS, its 949 names in
    its order, shipped as graphflow/data/xkcd_colors), as Comfyroll's CR Random Multiline Colors
    draws them."""
    category = RANDOM
    seed: int = Int(0, min=0, max=SEED_MAX)
    value_type: str = Choice(("rgb", "hex color", "matplotlib xkcd"), "rgb")
    rows: int = Int(5, min=1, max=2048)
    outputs = {"multiline_text": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR Random Multiline Colors",))

    def run(self):
        draw = _drawer(self.seed)
        if self.value_type == "rgb":
            lines = [f"{draw.randint(0, 255)},{draw.randint(0, 255)},{draw.randint(0, 255)}" for _ in range(self.rows)]
        elif self.value_type == "hex color":
            lines = ["#" + "".join(draw.choice("0123456789ABCDEF") for _ in range(6)) for _ in range(self.rows)]
        else:
            from nodes.pack_nodes_layerstyle4 import xkcd_colors
            names = list(xkcd_colors())
            lines = [draw.choice(names) for _ in range(self.rows)]
        return "\n".join(lines), _help("Other-Nodes", "cr-random-multiline-colors")


class CRRandomPanelCodes(Node):
    """`rows` panel codes drawn from the seed, as Comfyroll's CR Random Panel Codes draws them: one
    letter H or V for all, then string_length characters of `values` each."""
    category = RANDOM
    seed: int = Int(0, min=0, max=SEED_MAX)
    rows: int = Int(5, min=1, max=2048)
    string_length: int = Int(5, min=1, max=1024)
    values: str = Text("123")
    outputs = {"multiline_text": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR Random Panel Codes",))

    def run(self):
        if not self.values:
            raise NodeInputError("values", "is empty: there are no characters to draw from")
        draw = _drawer(self.seed)
        letter = draw.choice("HV")
        draw.choice(self.values)  # the pack draws one value it never uses: kept, so the codes are its codes
        codes = [letter + "".join(draw.choice(self.values) for _ in range(self.string_length))
                 for _ in range(self.rows)]
        return "\n".join(codes), _help("Other-Nodes", "cr-random-panel-codes")


class CRRandomRGBGradient(Node):
    """Gradient stops drawn from the seed, one a line as "position:r,g,b" with positions rising
    from 0 to at most 99, as Comfyroll's CR Random RGB Gradient draws them (each position between
    the last one + 1 and its share of what is left; rows that no longer fit are left out)."""
    category = RANDOM
    seed: int = Int(0, min=0, max=SEED_MAX)
    rows: int = Int(5, min=1, max=2048)
    outputs = {"multiline_text": STRING, "show_help": STRING}
    comfy = ComfyAlias(("CR Random RGB Gradient",))

    def run(self):
        draw = _drawer(self.seed)
        low, text = 0, ""
        for i in range(1, self.rows + 1):
            if low <= 99 - self.rows + i:
                position = draw.randint(low, min(99, low + (99 - low) // (self.rows - i + 1)))
                text += f"{position}:{draw.randint(0, 255)},{draw.randint(0, 255)},{draw.randint(0, 255)}\n"
                low = position + 1
        return text, _help("Other-Nodes", "cr-random-RGB-gradient")


# -- graphics ---------------------------------------------------------------------------------

# The pack's colour names and their RGB (its config.py); "custom" takes the *_hex input instead.
COLOR_MAPPING = {
    "white": (255, 255, 255), "black": (0, 0, 0), "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
    "yellow": (255, 255, 0), "cyan": (0, 255, 255), "magenta": (255, 0, 255), "orange": (255, 165, 0),
    "purple": (128, 0, 128), "pink": (255, 192, 203), "brown": (160, 85, 15), "gray": (128, 128, 128),
    "lightgray": (211, 211, 211), "darkgray": (169, 169, 169), "olive": (128, 128, 0), "lime": (0, 128, 0),
    "teal": (0, 128, 128), "navy": (0, 0, 128), "maroon": (128, 0, 0), "fuchsia": (255, 0, 128),
    "aqua": (0, 255, 128), "silver": (192, 192, 192), "gold": (255, 215, 0), "turquoise": (64, 224, 208),
    "lavender": (230, 230, 250), "violet": (238, 130, 238), "coral": (255, 127, 80), "indigo": (75, 0, 130),
}
COLORS = ("custom", *COLOR_MAPPING)


def cr_color(name: str, hex_color: str, hex_input: str) -> tuple[int, int, int]:
    """The pack's get_color_values: a named colour's RGB, or for "custom" the hex input's
    (#rrggbb, the # optional)."""
    if name != "custom":
        return COLOR_MAPPING[name]
    digits = hex_color.lstrip("#")
    try:
        if len(digits) < 6:
            raise ValueError("too short")
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    except ValueError:
        raise NodeInputError(hex_input, f"expected a colour as #rrggbb, got {hex_color!r}") from None


def _pil_frames(images, input_name: str) -> list:
    from graphflow.images import image_to_pil
    if getattr(images, "ndim", 0) != 4 or images.shape[-1] != 3:
        raise NodeInputError(input_name, f"expected an RGB IMAGE [B, H, W, 3], got shape "
                                         f"{tuple(getattr(images, 'shape', ()))}")
    return [image_to_pil(frame) for frame in images]


class CRColorPanel(Node):
    """An image of one colour (a named one, or fill_color_hex for "custom"), as Comfyroll's CR
    Color Panel makes it."""
    category = "Comfyroll Studio/Graphics/Layout"
    panel_width: int = Int(512, min=8, max=4096, resource="width")
    panel_height: int = Int(512, min=8, max=4096, resource="height")
    fill_color: str = Choice(COLORS, "custom")
    fill_color_hex: str = Text("#000000")
    outputs = {"image": IMAGE, "show_help": STRING}
    comfy = ComfyAlias(("CR Color Panel",), optional=("fill_color_hex",))

    def run(self):
        import torch
        color = torch.tensor(cr_color(self.fill_color, self.fill_color_hex, "fill_color_hex"), dtype=torch.float32)
        image = (color / 255.0).expand(1, self.panel_height, self.panel_width, 3).clone()
        return image, _help("Layout-Nodes", "cr-color-panel")


def _bordered_estimate(widgets, inputs, ring: str) -> Estimate:
    """The image's size grown by the four border thicknesses and, on every side, the `ring`
    widget's width (an outline or a feather); the image's own size while a widget is linked."""
    size = inputs.get("image")
    try:
        ring_width = 2 * widgets[ring]
        return Estimate(Size(size.batch,
                             size.height + ring_width + widgets["top_thickness"] + widgets["bottom_thickness"],
                             size.width + ring_width + widgets["left_thickness"] + widgets["right_thickness"]))
    except (AttributeError, KeyError, TypeError):
        return Estimate(size)


class CRImageBorder(Node):
    """Each image framed as Comfyroll's CR Image Border frames it (through 8-bit pictures, as
    there): first an outline of outline_thickness on every side in outline_color (Pillow's colour
    of that name, as the pack passes the name to Pillow), then borders of the given thickness on
    each side in border_color (the pack's colour table, or border_color_hex for "custom")."""
    category = "Comfyroll Studio/Graphics/Layout"
    image: IMAGE
    top_thickness: int = Int(0, min=0, max=4096)
    bottom_thickness: int = Int(0, min=0, max=4096)
    left_thickness: int = Int(0, min=0, max=4096)
    right_thickness: int = Int(0, min=0, max=4096)
    border_color: str = Choice(COLORS, "custom")
    outline_thickness: int = Int(0, min=0, max=1024)
    outline_color: str = Choice(COLORS[1:], "white")
    border_color_hex: str = Text("#000000")
    outputs = {"image": IMAGE, "show_help": STRING}
    comfy = ComfyAlias(("CR Image Border",), optional=("border_color_hex",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return _bordered_estimate(widgets, inputs, "outline_thickness")

    def run(self):
        import torch
        from PIL import ImageOps

        from graphflow.images import pil_to_image

        border = cr_color(self.border_color, self.border_color_hex, "border_color_hex")
        sides = (self.left_thickness, self.top_thickness, self.right_thickness, self.bottom_thickness)
        frames = []
        for picture in _pil_frames(self.image, "image"):
            if self.outline_thickness > 0:
                picture = ImageOps.expand(picture, self.outline_thickness, fill=self.outline_color)
            if any(sides):
                picture = ImageOps.expand(picture, sides, fill=border)
            frames.append(pil_to_image(picture)[0])
        return torch.stack(frames), _help("Layout-Nodes", "cr-image-border")


class CROverlayTransparentImage(Node):
    """Paste the overlay onto the back image as Comfyroll's CR Overlay Transparent Image does,
    with Pillow through 8-bit pictures: the overlay made see-through by `transparency` (0 opaque),
    rotated by rotation_angle degrees (counter-clockwise, canvas grown to fit, nearest
    neighbour), scaled by overlay_scale_factor (Lanczos), then centred on the back image and moved
    by offset_x / offset_y. The pack takes one image of each; here each back image takes the
    overlay of the same index, or the overlay's only one."""
    category = "Comfyroll Studio/Graphics/Layout"
    back_image: IMAGE
    overlay_image: IMAGE
    transparency: float = Float(0.0, min=0.0, max=1.0, step=0.1)
    offset_x: int = Int(0, min=-4096, max=4096)
    offset_y: int = Int(0, min=-4096, max=4096)
    rotation_angle: float = Float(0.0, min=-360.0, max=360.0, step=0.1)
    overlay_scale_factor: float = Float(1.0, min=0.0, max=100.0, step=0.001)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("CR Overlay Transparent Image",))

    @classmethod
    def estimate(cls, widgets, inputs):
        back, overlay = inputs.get("back_image"), inputs.get("overlay_image")
        scale = widgets.get("overlay_scale_factor")
        if overlay is None or not isinstance(scale, (int, float)):
            return Estimate(back)
        # the rotated overlay's canvas (at most twice each side) scaled, as 8-bit RGBA
        return Estimate(back, memory=int(4 * overlay.pixels * 4 * scale * scale))

    def run(self):
        import torch
        from PIL import Image

        from graphflow.images import pil_to_image

        backs = _pil_frames(self.back_image, "back_image")
        overlays = _pil_frames(self.overlay_image, "overlay_image")
        if len(overlays) not in (1, len(backs)):
            raise NodeInputError("overlay_image", f"has {len(overlays)} images for {len(backs)} back images: give one, "
                                                  f"or one for each")
        frames = []
        for i, back in enumerate(backs):
            overlay = overlays[i if len(overlays) > 1 else 0]
            overlay.putalpha(int(255 * (1 - self.transparency)))
            overlay = overlay.rotate(self.rotation_angle, expand=True)
            size = (int(overlay.width * self.overlay_scale_factor), int(overlay.height * self.overlay_scale_factor))
            if size[0] < 1 or size[1] < 1:
                raise NodeInputError("overlay_scale_factor", f"makes the overlay {size[0]}x{size[1]} pixels")
            overlay = overlay.resize(size, Image.LANCZOS)
            position = (back.width // 2 - overlay.width // 2 + self.offset_x,
                        back.height // 2 - overlay.height // 2 + self.offset_y)
            back.paste(overlay, position, overlay)
            frames.append(pil_to_image(back)[0])
        return torch.stack(frames)


def _one_picture(images, input_name: str):
    """The pack's panels read each input as one picture (its tensor2pil squeezes the batch)."""
    pictures = _pil_frames(images, input_name)
    if len(pictures) != 1:
        raise NodeInputError(input_name, f"takes one image, as the pack's panel does; got a batch of {len(pictures)}")
    return pictures[0]


def _framed(pictures: list, outline_thickness: int, outline_color: str, border_thickness: int, border) -> list:
    """Each picture with an outline in Pillow's colour of that name, then a border, as the pack's
    apply_outline_and_border draws them."""
    from PIL import ImageOps

    framed = []
    for picture in pictures:
        if outline_thickness > 0:
            picture = ImageOps.expand(picture, outline_thickness, fill=outline_color)
        if border_thickness > 0:
            picture = ImageOps.expand(picture, border_thickness, fill=border)
        framed.append(picture)
    return framed


class CRImagePanel(Node):
    """Up to four images framed (an outline in outline_color, then a border in border_color) and
    laid side by side or one above the other on a black canvas (top- or left-aligned), as
    Comfyroll's CR Image Panel lays them out. Each input is one image, as there."""
    category = "Comfyroll Studio/Graphics/Layout"
    image_1: IMAGE
    border_thickness: int = Int(0, min=0, max=1024)
    border_color: str = Choice(COLORS, "custom")
    outline_thickness: int = Int(0, min=0, max=1024)
    outline_color: str = Choice(COLORS[1:], "white")
    layout_direction: str = Choice(("horizontal", "vertical"), "horizontal")
    image_2: IMAGE = None
    image_3: IMAGE = None
    image_4: IMAGE = None
    border_color_hex: str = Text("#000000")
    outputs = {"image": IMAGE, "show_help": STRING}
    comfy = ComfyAlias(("CR Image Panel",), optional=("image_2", "image_3", "image_4", "border_color_hex"))

    @classmethod
    def estimate(cls, widgets, inputs):
        sizes = [inputs[name] for name in ("image_1", "image_2", "image_3", "image_4") if name in inputs]
        try:
            frame = 2 * (widgets["border_thickness"] + widgets["outline_thickness"])
            widths, heights = [s.width + frame for s in sizes], [s.height + frame for s in sizes]
            if widgets["layout_direction"] == "horizontal":
                return Estimate(Size(1, max(heights), sum(widths)))
            return Estimate(Size(1, sum(heights), max(widths)))
        except (AttributeError, KeyError, TypeError, ValueError):  # a size or widget unknown before the run
            return Estimate()

    def run(self):
        from PIL import Image

        from graphflow.images import pil_to_image

        border = cr_color(self.border_color, self.border_color_hex, "border_color_hex")
        pictures = [_one_picture(getattr(self, name), name) for name in ("image_1", "image_2", "image_3", "image_4")
                    if getattr(self, name) is not None]
        pictures = _framed(pictures, self.outline_thickness, self.outline_color, self.border_thickness, border)
        horizontal = self.layout_direction == "horizontal"
        widths, heights = [p.width for p in pictures], [p.height for p in pictures]
        canvas = Image.new("RGB", (sum(widths), max(heights)) if horizontal else (max(widths), sum(heights)))
        offset = 0
        for picture in pictures:
            canvas.paste(picture, (offset, 0) if horizontal else (0, offset))
            offset += picture.width if horizontal else picture.height
        return pil_to_image(canvas), _help("Layout-Nodes", "cr-image-panel")


class CRImageGridPanel(Node):
    """The batch's images framed (an outline, then a border) and laid in rows of max_columns on a
    black canvas, as Comfyroll's CR Image Grid Panel lays them out."""
    category = "Comfyroll Studio/Graphics/Layout"
    images: IMAGE
    border_thickness: int = Int(0, min=0, max=1024)
    border_color: str = Choice(COLORS, "custom")
    outline_thickness: int = Int(0, min=0, max=1024)
    outline_color: str = Choice(COLORS[1:], "white")
    max_columns: int = Int(5, min=0, max=256)
    border_color_hex: str = Text("#000000")
    outputs = {"image": IMAGE, "show_help": STRING}
    comfy = ComfyAlias(("CR Image Grid Panel",), optional=("border_color_hex",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        try:
            frame = 2 * (widgets["border_thickness"] + widgets["outline_thickness"])
            columns = min(widgets["max_columns"], size.batch)
            rows = -(-size.batch // widgets["max_columns"])
            return Estimate(Size(1, rows * (size.height + frame), columns * (size.width + frame)))
        except (AttributeError, KeyError, TypeError, ZeroDivisionError):
            return Estimate()

    def run(self):
        from PIL import Image

        from graphflow.images import pil_to_image

        if self.max_columns < 1:
            raise NodeInputError("max_columns", "must be at least 1")
        border = cr_color(self.border_color, self.border_color_hex, "border_color_hex")
        pictures = _framed(_pil_frames(self.images, "images"), self.outline_thickness, self.outline_color,
                           self.border_thickness, border)
        width, height = pictures[0].size  # one batch: all the same size
        rows = -(-len(pictures) // self.max_columns)
        canvas = Image.new("RGB", (width * min(self.max_columns, len(pictures)), height * rows))
        for i, picture in enumerate(pictures):
            canvas.paste(picture, ((i % self.max_columns) * width, (i // self.max_columns) * height))
        return pil_to_image(canvas), _help("Layout-Nodes", "cr-image-grid-panel")


class CRFeatheredBorder(Node):
    """Each image with a feathered edge, then borders, as Comfyroll's CR Feathered Border draws
    them with Pillow: the image is set on a canvas of border_color feather_amount wider on each
    side, whose outer band (up to three times feather_amount in) is replaced by its Gaussian blur
    (radius feather_amount / 2) fading in over the inner part of that band; then borders of the
    given thickness on each side in border_color."""
    category = "Comfyroll Studio/Graphics/Layout"
    image: IMAGE
    top_thickness: int = Int(0, min=0, max=4096)
    bottom_thickness: int = Int(0, min=0, max=4096)
    left_thickness: int = Int(0, min=0, max=4096)
    right_thickness: int = Int(0, min=0, max=4096)
    border_color: str = Choice(COLORS, "custom")
    feather_amount: int = Int(0, min=0, max=1024)
    border_color_hex: str = Text("#000000")
    outputs = {"image": IMAGE, "show_help": STRING}
    comfy = ComfyAlias(("CR Feathered Border",), optional=("border_color_hex",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return _bordered_estimate(widgets, inputs, "feather_amount")

    def run(self):
        import torch
        from PIL import Image, ImageDraw, ImageFilter, ImageOps

        from graphflow.images import pil_to_image

        border = cr_color(self.border_color, self.border_color_hex, "border_color_hex")
        radius, sides = self.feather_amount, (self.left_thickness, self.top_thickness, self.right_thickness,
                                              self.bottom_thickness)
        frames = []
        for picture in _pil_frames(self.image, "image"):
            back = Image.new("RGB", (picture.width + 2 * radius, picture.height + 2 * radius), border)
            back.paste(picture, (radius, radius))
            # the paste mask: opaque over the outer `radius` rings, then fading to nothing over 2 * radius more
            mask = Image.new("L", back.size, 0)
            draw = ImageDraw.Draw(mask)
            for d in range(3 * radius):
                if back.width - 1 - d < d or back.height - 1 - d < d:  # the rings met in the middle (Pillow
                    break  # refuses the inverted rectangles the pack would draw on)
                alpha = 255 if d < radius else int(255 * (3 * radius - d) / (2 * radius))
                draw.rectangle([d, d, back.width - 1 - d, back.height - 1 - d], outline=alpha)
            back.paste(back.filter(ImageFilter.GaussianBlur(radius / 2)), mask=mask)
            if any(sides):
                back = ImageOps.expand(back, sides, fill=border)
            frames.append(pil_to_image(back)[0])
        return torch.stack(frames), _help("Layout-Nodes", "cr-feathered-border")
