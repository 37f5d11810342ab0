"""Text utilities, as ComfyUI's utils/string nodes: join, cut, measure, change case, trim,
replace, compare, and regular expressions (search, extract, replace).

Regular expressions run with Python's `re`, as ComfyUI's: its syntax, its matches. Each is first
run in a child process, which can be stopped: one that takes longer than REGEX_SECONDS on its text
(catastrophic backtracking, like (a+)+$ or (a|aa)+$) is stopped and reported instead of hanging
the server. An invalid pattern is an error naming the input, where
ComfyUI quietly gives False or empty text. A result longer than MAX_TEXT characters is refused before it is built
(an empty `find` or a chain of concatenations would otherwise fill the server's memory)."""

from __future__ import annotations

import re
import warnings

from graphflow.api import BOOLEAN, INT, STRING, Bool, Choice, ComfyAlias, Int, Node, NodeInputError, Text
from graphflow.regex_trial import backtracks

REGEX_SECONDS = 1.0
MAX_TEXT = 10_000_000  # characters in a node's text result


def fits(length: int, input_name: str) -> None:
    """Refuse, naming input_name, a text result of length characters over MAX_TEXT (before it is built)."""
    if length > MAX_TEXT:
        raise NodeInputError(input_name, f"the result would be {length:,} characters long; the limit is "
                                         f"{MAX_TEXT:,}")


def replaced_in_turn(text: str, pairs, input_names) -> str:
    """text with each (find, replace) of pairs applied in turn by str.replace (every occurrence;
    an empty find puts the replacement between every character), each result's size checked
    first and a too long one named by that pair's input."""
    for (find, replace), name in zip(pairs, input_names):
        fits(len(text) + text.count(find) * (len(replace) - len(find)), name)
        text = text.replace(find, replace)
    return text


def _multiline(default: str = ""):
    return Text(default, multiline=True)


class StringConcatenate(Node):
    """string_a, then the delimiter, then string_b."""
    category = "utils/string"
    string_a: str = _multiline()
    string_b: str = _multiline()
    delimiter: str = Text("")
    outputs = {"string": STRING}
    comfy = ComfyAlias(("StringConcatenate",))

    def run(self):
        fits(len(self.string_a) + len(self.delimiter) + len(self.string_b), "string_b")
        return self.delimiter.join((self.string_a, self.string_b))


class StringSubstring(Node):
    """The characters from `start` up to (not including) `end`, counted from 0; negative
    positions count from the end, as Python's slices do (end 0 gives empty text)."""
    category = "utils/string"
    string: str = _multiline()
    start: int = Int(0)
    end: int = Int(0)
    outputs = {"string": STRING}
    comfy = ComfyAlias(("StringSubstring",))

    def run(self):
        return self.string[self.start:self.end]


class StringLength(Node):
    """The number of characters in the text."""
    category = "utils/string"
    string: str = _multiline()
    outputs = {"length": INT}
    comfy = ComfyAlias(("StringLength",))

    def run(self):
        return len(self.string)


class CaseConverter(Node):
    """UPPERCASE, lowercase, Capitalize (first character upper, the rest lower) or Title Case
    (each word's first letter upper, the rest lower)."""
    category = "utils/string"
    string: str = _multiline()
    mode: str = Choice(["UPPERCASE", "lowercase", "Capitalize", "Title Case"], "UPPERCASE")
    outputs = {"string": STRING}
    comfy = ComfyAlias(("CaseConverter",))

    def run(self):
        convert = {"UPPERCASE": str.upper, "lowercase": str.lower, "Capitalize": str.capitalize,
                   "Title Case": str.title}[self.mode]
        return convert(self.string)


class StringTrim(Node):
    """Remove whitespace (spaces, tabs, line breaks) from both ends, the left or the right."""
    category = "utils/string"
    string: str = _multiline()
    mode: str = Choice(["Both", "Left", "Right"], "Both")
    outputs = {"string": STRING}
    comfy = ComfyAlias(("StringTrim",))

    def run(self):
        trim = {"Both": str.strip, "Left": str.lstrip, "Right": str.rstrip}[self.mode]
        return trim(self.string)


class StringReplace(Node):
    """Replace every occurrence of `find` (plain text, case-sensitive) with `replace`."""
    category = "utils/string"
    string: str = _multiline()
    find: str = _multiline()
    replace: str = _multiline()
    outputs = {"string": STRING}
    comfy = ComfyAlias(("StringReplace",))

    def run(self):
        found = self.string.count(self.find)
        fits(len(self.string) + found * (len(self.replace) - len(self.find)), "replace")
        return self.string.replace(self.find, self.replace)


class StringContains(Node):
    """Whether `substring` occurs in the text."""
    category = "utils/string"
    string: str = _multiline()
    substring: str = _multiline()
    case_sensitive: bool = Bool(True)
    outputs = {"contains": BOOLEAN}
    comfy = ComfyAlias(("StringContains",))

    def run(self):
        if self.case_sensitive:
            return self.substring in self.string
        return self.substring.lower() in self.string.lower()


class StringCompare(Node):
    """Whether string_a starts with, ends with or equals string_b."""
    category = "utils/string"
    string_a: str = _multiline()
    string_b: str = _multiline()
    mode: str = Choice(["Starts With", "Ends With", "Equal"], "Starts With")
    case_sensitive: bool = Bool(True)
    outputs = {"boolean": BOOLEAN}
    comfy = ComfyAlias(("StringCompare",))

    def run(self):
        a, b = (self.string_a, self.string_b) if self.case_sensitive else (self.string_a.lower(), self.string_b.lower())
        if self.mode == "Equal":
            return a == b
        return a.startswith(b) if self.mode == "Starts With" else a.endswith(b)


def _compile(pattern: str, case_insensitive: bool, multiline: bool, dotall: bool) -> re.Pattern:
    flags = ((re.IGNORECASE if case_insensitive else 0) | (re.MULTILINE if multiline else 0)
             | (re.DOTALL if dotall else 0))
    try:
        with warnings.catch_warnings():  # "possible nested set": re reads [[:x:]] as a plain set, as ComfyUI's does
            warnings.simplefilter("ignore", FutureWarning)
            return re.compile(pattern, flags)
    except (re.error, ValueError, OverflowError, RecursionError) as e:
        raise NodeInputError("regex_pattern", f"not a valid regular expression: {e}") from None


def _guarded(pattern: re.Pattern, text: str | list[str], every_match: bool,
             input_name: str = "regex_pattern") -> re.Pattern:
    """`pattern`, once `re` itself has run it over `text` (its first match, or every match)
    within REGEX_SECONDS in a child process (graphflow.regex_trial): a pattern that backtracks
    without end ((a+)+$ or (a|aa)+$ on "aaa...b") is stopped there, as an error naming
    input_name, instead of holding the server. A list of texts: each is searched in turn, all
    within the one time limit (for a caller that searches each of them)."""
    texts = [text] if isinstance(text, str) else list(text)
    if backtracks(pattern, texts, REGEX_SECONDS, every_match):
        raise NodeInputError(input_name, f"matching took longer than {REGEX_SECONDS:g} s on this text and "
                                         "was stopped: the pattern backtracks too much (nested repeats "
                                         "like (a+)+ or overlapping alternatives like (a|aa)+); "
                                         "make it more specific")
    return pattern


class RegexMatch(Node):
    """Whether the regular expression matches anywhere in the text (Python syntax).
    multiline: ^ and $ match at each line; dotall: . matches line breaks too."""
    category = "utils/string"
    string: str = _multiline()
    regex_pattern: str = _multiline()
    case_insensitive: bool = Bool(True)
    multiline: bool = Bool(False)
    dotall: bool = Bool(False)
    outputs = {"matches": BOOLEAN}
    comfy = ComfyAlias(("RegexMatch",))

    def run(self):
        pattern = _compile(self.regex_pattern, self.case_insensitive, self.multiline, self.dotall)
        return _guarded(pattern, self.string, every_match=False).search(self.string) is not None


class RegexExtract(Node):
    """Text found by a regular expression (Python syntax), as ComfyUI extracts it:
    First Match: the first match; All Matches: every match, one per line (the first group of
    each when the pattern has groups); First Group: group `group_index` of the first match;
    All Groups: group `group_index` of every match, one per line. Empty text when nothing
    matches, or the pattern has fewer groups than group_index (a group that took no part in
    the match gives empty text)."""
    category = "utils/string"
    string: str = _multiline()
    regex_pattern: str = _multiline()
    mode: str = Choice(["First Match", "All Matches", "First Group", "All Groups"], "First Match")
    case_insensitive: bool = Bool(True)
    multiline: bool = Bool(False)
    dotall: bool = Bool(False)
    group_index: int = Int(1, min=0, max=100)
    outputs = {"string": STRING}
    comfy = ComfyAlias(("RegexExtract",))

    def run(self):
        pattern = _compile(self.regex_pattern, self.case_insensitive, self.multiline, self.dotall)
        index = self.group_index
        if self.mode == "All Matches":
            found = _guarded(pattern, self.string, every_match=True).findall(self.string)
            return "\n".join(m[0] if isinstance(m, tuple) else m for m in found)
        if self.mode == "All Groups":
            found = _guarded(pattern, self.string, every_match=True).finditer(self.string)
            return "\n".join(m.group(index) or "" for m in found if m.groups() and len(m.groups()) >= index)
        match = _guarded(pattern, self.string, every_match=False).search(self.string)
        if match is None:
            return ""
        if self.mode == "First Match":
            return match.group(0)
        return (match.group(index) or "") if len(match.groups()) >= index else ""


class RegexReplace(Node):
    """Replace what a regular expression (Python syntax) matches: `replace` may refer to groups
    as \\1 or \\g<name>. count: at most this many replacements (0: all)."""
    category = "utils/string"
    string: str = _multiline()
    regex_pattern: str = _multiline()
    replace: str = _multiline()
    case_insensitive: bool = Bool(True)
    multiline: bool = Bool(False)
    dotall: bool = Bool(False, description="When enabled, the dot (.) character will match any character "
                                           "including newline characters. When disabled, dots won't match newlines.")
    count: int = Int(0, min=0, max=100, description="Maximum number of replacements to make. Set to 0 to replace "
                                                    "all occurrences (default). Set to 1 to replace only the first "
                                                    "match, 2 for the first two matches, etc.")
    outputs = {"string": STRING}
    comfy = ComfyAlias(("RegexReplace",), optional=("case_insensitive", "multiline", "dotall", "count"))

    def run(self):
        pattern = _compile(self.regex_pattern, self.case_insensitive, self.multiline, self.dotall)
        growth = [len(self.string)]

        def expand(match):  # the template filled in, its size counted as the result grows
            text = match.expand(self.replace)
            growth[0] += len(text) - (match.end() - match.start())
            fits(growth[0], "replace")
            return text

        try:
            return _guarded(pattern, self.string, every_match=True).sub(expand, self.string, count=self.count)
        except (re.error, IndexError) as e:
            raise NodeInputError("replace", f"not a valid replacement for this pattern: {e}") from None
