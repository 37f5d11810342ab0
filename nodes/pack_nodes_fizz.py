"""FizzleDorf's ComfyUI_FizzNodes: prompt and value schedules over the frames of an animation
(AnimateDiff's usual way of changing the prompt over a video), under the pack's class names, inputs
and outputs.

Read from the pack's stored source: ScheduledNodes.py and BatchFuncs.py at
51a29ce041f504583efdd3b9488ee6144dfda7de, ScheduleFuncs.py (addWeighted, pad_with_zeros,
PoolAnimConditioning, process_input_text) at a50ae2b8eae5baf7468401f5e88a23dbb4929dae,
ScheduleTypes.py at 0e05436071d18db18900a6e796c1358a4e9b10a3, ValueFuncs.py at
d32d37cf9576cd1c902df30da07fa47d726c2fbe, WaveNodes.py at 7f7a95350cd7f7574fdc515fc4152d4194b8ae8e,
FrameNodes.py at 2baf910f8ad9204017635fabadf473d9b0ec8ef7, HelperNodes.py at
0d39ed1172a06a16c29b7b545379276fe9979958 and the class table of __init__.py at
ccdc15f6f829f193b9b20ee1badbce2a0aadb6b8.

Held here: BatchPromptSchedule, PromptSchedule, BatchPromptScheduleLatentInput, the SDXL schedules
(PromptScheduleEncodeSDXL, BatchPromptScheduleEncodeSDXL, BatchPromptScheduleSDXLLatentInput: as the
pack's code at 51a29ce runs them, text_l's schedule taking over text_g's from its first keyframe and
one text going to both encoders; see their help), ValueSchedule, BatchValueSchedule,
BatchValueScheduleLatentInput, StringSchedule, BatchStringSchedule, ImagesFromBatchSchedule,
PromptScheduleNodeFlow, PromptScheduleNodeFlowEnd, Init FizzFrame, FizzFrame, FizzFrameConcatenate,
ConcatStringSingle, convertKeyframeKeysToBatchKeys, CalculateFrameOffset and the wave nodes (Lerp,
SinWave, InvSinWave, CosWave, InvCosWave, SquareWave, SawtoothWave, TriangleWave, AbsCosWave,
AbsSinWave).

Left out: BatchPromptScheduleNodeFlowEnd and BatchGLIGENSchedule (commented out of the pack's class
table), and the pack's StringConcatenate: ComfyUI's own StringConcatenate (string_a, string_b,
delimiter) has taken that class name, and ComfyUI loads no custom class under a core name, so a save
naming it is read as the core node (nodes/strings.py).

Widgets the pack marks forceInput (pre_text, app_text, pw_a..pw_d, PromptSchedule's and ValueSchedule's
current_frame ...) are widgets here, as in the editor its community saves come from (converted
widgets: widgets_values holds a value for each, sent when the input is not linked); a save without
those values (an editor making them bare sockets) gets the pack's defaults in their places, and
Batch Prompt Schedule's earlier layouts (without end_frame, without start_frame) are read too. pw_a..pw_d
take by link a number or a list of one per frame (Batch Value Schedule's), as the pack does.

Expressions (the pack's numexpr) are never evaluated by Python: `schedule_expression` walks the
parsed formula under an allow-list (numbers; the names t, max_f and pw_a..pw_d where the pack has
them; + - * / % ** << >> & | ^ ~ and comparisons; where, sin, cos, tan, arcsin, arccos, arctan,
arctan2, sinh, cosh, tanh, arcsinh, arccosh, arctanh, log, log10, log1p, exp, expm1, sqrt, abs,
floor, ceil), with exponents and whole numbers bounded (an int64, as numexpr's; a power or shift
whose result would be past it is refused before it is worked out). A run's formulas are parsed once
and may take 20 million steps in all (FORMULA_WORK), and a schedule's texts with formulas, 10 million
characters over its frames (nodes.strings' MAX_TEXT).

Where this differs from the pack, all where it fails or reads text by accident: the pack puts the
frame number in place of every letter t of a `formula` (so sqrt, tan and atan break there); here t
is a name. A formula that divides by zero or leaves a function's domain is an error naming the frame
(numexpr gives inf or nan). Batch rows of different token lengths are centre-padded to the longest
(the pack fails to stack them). A Value Schedule may end in a comma and start after frame 0 (the pack
fails on both). The latent-input nodes count the latent's samples (the pack adds a noise mask's rows).
print_output prints nothing; start_frame and end_frame are the pack's print range only.

A batch schedule's CONDITIONING has one row per frame; the sampler gives latent row i the
conditioning's row i (graphflow.sampling.guidance's repeat_to_batch, as ComfyUI's
repeat_to_batch_size: a shorter batch of rows repeats, a longer one is cut), and context windows
(AnimateDiff's context options, ContextWindowsManual) cut those rows to each window's frames."""

from __future__ import annotations

import ast
import bisect
import functools
import inspect
import json
import math
import operator
import re
from dataclasses import dataclass, field

from graphflow.api import CLIP, CONDITIONING, FLOAT, IMAGE, INT, LATENT, STRING, Bool, ComfyAlias, Estimate, \
    Float, Int, Node, NodeInputError, Size, Text, check_run_memory, run_limits, socket_type, warn
from nodes.pack_nodes import _COMPARE, POWER_LIMIT, _core
from nodes.strings import fits

COMFY_PACK = "ComfyUI_FizzNodes"  # the custom node pack this module's ComfyUI classes come from

SCHEDULE = "FizzNodes 📅🅕🅝/ScheduleNodes"
BATCH_SCHEDULE = "FizzNodes 📅🅕🅝/BatchScheduleNodes"
FRAME_NODES = "FizzNodes 📅🅕🅝/FrameNodes"
HELPER_NODES = "FizzNodes 📅🅕🅝/HelperNodes"
WAVE_NODES = "FizzNodes 📅🅕🅝/WaveNodes"

MAX_FRAMES = 999999  # the pack's max_frames bound
# the pack's default texts (ScheduledNodes.py at 51a29ce)
DEFAULT_PROMPT = "\n".join(f'"{f}" :""' + ("," if f < 119 else "") for f in (0, 11, 23, 35, 47, 59, 71, 83, 95,
                                                                             107, 119)) + "\n"
DEFAULT_VALUE = ",\n".join(f"{f}:(0)" for f in (0, 11, 23, 35, 47, 59, 71, 83, 95, 107, 119)) + "\n"


def _pw():
    """pw_a..pw_d: a number for the prompts' formulas; by link also a list of one per frame
    (BatchValueSchedule's), as the pack takes it."""
    return Float(0.0, min=-9999.0, max=9999.0, step=0.1, linked_list=True, force_input=True)


def _socket_text():
    """A text the pack marks forceInput (pre_text, app_text ...): its editor shows a socket only."""
    return Text("", multiline=True, force_input=True)


def _force_input_layout(full: int, forced: dict, older: dict | None = None):
    """ComfyAlias.widgets of a class some of whose widgets the pack marks forceInput. The editors its
    community saves come from keep a value for each of those (converted widgets, sent when not
    linked): the `full` layout, our widgets in order. An editor making them bare sockets saves
    none: a save that much shorter gets the pack's defaults ({place: default}) put back; `older`:
    {length: {place: default}} for the pack's earlier layouts."""
    def widgets(raw: list) -> list:
        missing = forced if len(raw) == full - len(forced) else (older or {}).get(len(raw))
        if not missing:
            return raw
        out = list(raw)
        for place in sorted(missing):
            out.insert(place, missing[place])
        return out

    return widgets


_PW_PLACES = 4  # pw_a..pw_d
# the inputs the pack lists as optional (ComfyUI clients may leave them out)
_OPTIONAL = ("pre_text", "app_text", "pw_a", "pw_b", "pw_c", "pw_d")
_OPTIONAL_BATCH = (*_OPTIONAL, "start_frame", "end_frame")
_OPTIONAL_SDXL = ("pre_text_G", "app_text_G", "pre_text_L", "app_text_L", "pw_a", "pw_b", "pw_c", "pw_d")


def _texts_and_weights(pre: int, pw: int) -> dict:
    """{place: default} of pre_text, app_text (from `pre`) and pw_a..pw_d (from `pw`)."""
    return {pre: "", pre + 1: "", **{pw + k: 0.0 for k in range(_PW_PLACES)}}


# -- expressions --------------------------------------------------------------------------------

INT64 = 2 ** 63  # numexpr computes whole numbers as int64: results past it are refused here

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.Pow: operator.pow, ast.Mod: operator.mod, ast.LShift: operator.lshift, ast.RShift: operator.rshift,
           ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}
# numexpr's functions: name -> (argument count, function)
FUNCTIONS = {
    "where": (3, lambda test, yes, no: yes if test else no),
    **{name: (1, getattr(math, name)) for name in ("sin", "cos", "tan", "sinh", "cosh", "tanh", "log", "log10",
                                                    "log1p", "exp", "expm1", "sqrt")},
    "floor": (1, lambda x: float(math.floor(x))),  # numexpr's are floats
    "ceil": (1, lambda x: float(math.ceil(x))),
    **{f"arc{name}": (1, getattr(math, f"a{name}")) for name in ("sin", "cos", "tan", "sinh", "cosh", "tanh")},
    "arctan2": (2, math.atan2),
    "abs": (1, abs),
}


def schedule_expression(text: str | ast.expr, names: dict):
    """The value of a schedule's formula (the pack's numexpr.evaluate), walked node by node:
    numbers, `names`, numexpr's operators and FUNCTIONS; `text` may be parsed already
    (formula_tree). Raises ValueError (or NameError, ZeroDivisionError, OverflowError,
    SyntaxError) with what is wrong."""
    def value(node):
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
                return whole_checked(node.value)  # a long literal would make ** and << slow
            raise ValueError(f"{node.value!r} is not a number")
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise NameError(f"unknown name {node.id!r} (known here: {', '.join(names) or 'none'})")
            return names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return whole_checked(binary(node.op, value(node.left), value(node.right)))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return whole_checked(_UNARY[type(node.op)](value(node.operand)))
        if isinstance(node, ast.Compare):
            left = value(node.left)
            for op, right in zip(node.ops, node.comparators):
                if type(op) not in _COMPARE:
                    raise ValueError(f"the comparison {type(op).__name__} is not numexpr's")
                right = value(right)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            if node.func.id not in FUNCTIONS:
                raise NameError(f"unknown function {node.func.id!r}")
            count, function = FUNCTIONS[node.func.id]
            if len(node.args) != count:
                raise ValueError(f"{node.func.id}() takes {count} argument{'s' if count > 1 else ''}")
            return function(*[value(a) for a in node.args])
        raise ValueError(f"{type(node).__name__} is not part of numexpr's grammar")

    def binary(op, left, right):
        if isinstance(op, ast.Pow) and abs(right) > POWER_LIMIT:
            raise ValueError(f"the exponent {right} is too big (at most {POWER_LIMIT})")
        if isinstance(op, (ast.LShift, ast.RShift)) and not 0 <= right < 64:
            raise ValueError(f"a shift of {right} is outside 0..63")
        # Whole numbers past int64 are refused after the operation; refuse before it where the result
        # surely is, so that no big-number power (one long C call, not interruptible) runs.
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            bits = abs(left).bit_length()  # abs(left) >= 2 ** (bits - 1)
            past = (bits - 1) * right >= 64 if isinstance(op, ast.Pow) else (
                bits and bits - 1 + right >= 64 if isinstance(op, ast.LShift) else False)
            if past:
                raise OverflowError("the whole number is past int64")
        return _BINARY[type(op)](left, right)

    def whole_checked(result):
        if isinstance(result, int) and not -INT64 <= result < INT64:
            raise OverflowError("the whole number is past int64")
        if isinstance(result, complex):
            raise ValueError("the result is not a real number")
        return result

    return value(formula_tree(text) if isinstance(text, str) else text)


def formula_tree(text: str) -> ast.expr:
    return ast.parse(text.strip(), mode="eval").body


FORMULA_WORK = 20_000_000  # parts of formulas worked out in one run (about half a minute)


class Formulas:
    """A run's formulas, each parsed once (a schedule works one out at many frames), and the work
    they take counted: past FORMULA_WORK parts in all, the run is refused."""

    def __init__(self):
        self.parsed = {}  # text -> (tree, its part count)
        self.work = 0

    def value(self, text: str, names: dict, input_name: str, where):
        """The formula's value, its errors named by the input and `where` in it (a line, a frame;
        a function giving that text, worked out only for an error)."""
        try:
            if text not in self.parsed:
                tree = formula_tree(text)
                self.parsed[text] = (tree, sum(isinstance(n, ast.expr) for n in ast.walk(tree)))
            tree, parts = self.parsed[text]
            self.work += parts
            if self.work > FORMULA_WORK:
                raise NodeInputError(input_name, f"the formulas take more than {FORMULA_WORK:,} steps to work out "
                                                 f"at every frame: use fewer frames or shorter formulas")
            return schedule_expression(tree, names)
        except SyntaxError as e:
            raise NodeInputError(input_name, f"{_where(where)}: {_shown(text)} is not a formula ({e.msg})") from None
        except (ValueError, NameError, TypeError, ZeroDivisionError, OverflowError) as e:
            raise NodeInputError(input_name, f"{_where(where)}: {_shown(text)} can't be worked out: {e}") from None
        except (RecursionError, MemoryError):
            raise NodeInputError(input_name, f"{_where(where)}: {_shown(text)} is nested too deeply to be "
                                             f"worked out") from None


def _where(where) -> str:
    return where() if callable(where) else where


def _shown(text: str, most: int = 80) -> str:
    """A user's text in an error message: quoted, cut to `most` characters."""
    return repr(text[:most] + "..." if len(text) > most else text)


def _evaluated(text: str, names: dict, input_name: str, where):
    """A formula's value, its errors named by the input and where in it (a line, a frame)."""
    return Formulas().value(text, names, input_name, where)


def key_frame(key: str, max_f: int, input_name: str, where=None) -> int:
    """A keyframe's frame: a whole number, or a formula of max_f, cut toward 0 (as the pack's int());
    `where`: the line it is on, for an error."""
    def refused(why: str):
        return NodeInputError(input_name, (f"{_where(where)}: " if where else "") + f"keyframe {_shown(key)} {why}")

    if _is_number(key):
        if not re.fullmatch(r"[+-]?\d+", key) or len(key) > 20:  # int64's digits at most
            raise refused("is not a whole frame number")
        return int(key)
    number = _evaluated(key, {"max_f": max_f}, input_name, where or f"keyframe {_shown(key)}")
    if not math.isfinite(number):
        raise refused(f"works out to {number}, not a frame")
    return int(number)


_NUMBER = re.compile(r"^(?=.)([+-]?([0-9]*)(\.([0-9]+))?)$")  # the pack's check_is_number


def _is_number(text: str) -> bool:
    """The pack's check_is_number, less a lone sign (which it then fails to read)."""
    return _NUMBER.match(text) is not None and any(c.isdigit() for c in text)


def _doc(doc: str, extra: str) -> str:
    """A node's help: its own text, then the schedule syntax it shares with others."""
    return inspect.cleandoc(doc) + "\n\n" + extra


def _line_of(text: str, index: int) -> str:
    """'line N (its text)' for a character index of text."""
    line = text.count("\n", 0, index) + 1
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", start)
    shown = text[start:end if end >= 0 else len(text)].strip()
    return f"line {line} ({shown[:60]!r})"


# -- prompt schedules -----------------------------------------------------------------------------


_TRAILING_COMMA = re.compile(r",\s*}")


def _position_in_text(text: str, joined: str, pos: int) -> int:
    """The index in text of the character at `pos` of prompt_keyframes' cleaned text (joined with
    its trailing commas dropped), for an error's line: worked out only then, as it walks the text."""
    for m in _TRAILING_COMMA.finditer(joined):  # back to joined's index: past each dropped stretch
        if pos < m.start():
            break
        pos += m.end() - 1 - m.start()
    pos -= 1  # joined's "{"
    for m in re.finditer("\n", text):  # past each newline removed before it
        if m.start() > pos:
            break
        pos += 1
    return min(max(pos, 0), len(text))


def prompt_keyframes(text: str, input_name: str = "text") -> dict:
    """The schedule's {key: prompt}, read as the pack reads it: newlines removed, the text put in
    braces, a comma before the closing brace dropped, then JSON. A mistake is named by its line."""
    joined = "{" + text.replace("\n", "") + "}"
    cleaned = _TRAILING_COMMA.sub("}", joined)  # the pack's re.sub(r',\s*}', '}')
    try:
        parsed = json.loads(cleaned)
    except RecursionError:
        raise NodeInputError(input_name, "is nested too deeply to be read as a schedule") from None
    except json.JSONDecodeError as e:
        at = _position_in_text(text, joined, e.pos)
        raise NodeInputError(input_name, f"{_line_of(text, at)}: {e.msg}; expected lines like "
                                         f"\"0\": \"a cat\", (each key and prompt in double quotes, "
                                         f"separated by commas)") from None
    for key, prompt in parsed.items():
        if not isinstance(prompt, str):
            raise NodeInputError(input_name, f"{_line_of(text, max(text.find(json.dumps(key)), 0))}: the prompt of "
                                             f"keyframe {key!r} is {json.dumps(prompt)[:40]}, not text in quotes")
    return parsed


def split_negative(text: str, input_name: str) -> tuple[str, str]:
    """pre_text / app_text's (positive, negative) parts around --neg."""
    parts = text.split("--neg")
    if len(parts) > 2:
        raise NodeInputError(input_name, "has --neg more than once (the pack fails on it)")
    return parts[0], parts[1] if len(parts) == 2 else ""


def with_pre_and_app(keyframes: dict, pre_text: str, app_text: str) -> tuple[dict, dict]:
    """Each keyframe's (positive, negative) prompt as the pack's batch_split_weighted_subprompts
    makes it: its text split at --neg, pre_text's and app_text's parts around it with a space each
    side; a prompt ending in "0" loses that character, as in the pack."""
    pre_pos, pre_neg = split_negative(pre_text, "pre_text")
    app_pos, app_neg = split_negative(app_text, "app_text")
    pos, neg = {}, {}
    for key, prompt in keyframes.items():
        parts = prompt.split("--neg")
        positive, negative = parts[0], parts[1] if len(parts) > 1 else ""
        pos[key] = f"{pre_pos} {positive} {app_pos}"
        neg[key] = f"{pre_neg} {negative} {app_neg}"
        for side in (pos, neg):
            if side[key].endswith("0"):
                side[key] = side[key][:-1]
    return pos, neg


@dataclass
class PromptSeries:
    """Per frame: the current keyframe's prompt, the next one's, and the current one's weight."""
    current: list[str]
    following: list[str]
    weights: list[float]


def interpolated_prompts(prompts: dict, max_frames: int, input_name: str = "text") -> PromptSeries:
    """The pack's interpolate_prompt_seriesA: keyframes sorted by frame (a key that is not a
    number is a formula of max_f = max_frames); a keyframe 0 and one at max_frames added with the
    first and last prompts where missing; frame f between keyframes a < b takes a's prompt,
    b's, and a's weight 1 - (f - a) / (b - a)."""
    keyed = []
    for key, prompt in prompts.items():
        number = key_frame(key, max_frames, input_name)
        # the pack keys a formula's frame by the int, never equal to "0"
        keyed.append((number, key if _is_number(key) else number, prompt))
    if not keyed:
        raise NodeInputError(input_name, "no keyframes: expected lines like \"0\": \"a cat\",")
    keyed.sort(key=lambda k: k[0])
    if keyed[0][1] != "0":
        keyed.insert(0, (0, "0", keyed[0][2]))
    if keyed[-1][1] != str(max_frames):
        keyed.append((max_frames, str(max_frames), keyed[-1][2]))
    current, following, weights = [None] * max_frames, [None] * max_frames, [None] * max_frames
    for (start, _, prompt), (end, _, next_prompt) in zip(keyed, keyed[1:]):
        if start >= end:
            if (start, end) != (0, 0):  # the added keyframe 0 beside a key that works out to 0
                warn(f"{input_name}: keyframes {start} and {end} are not increasing; the later one is skipped")
            continue
        step = 1 / (end - start)
        for f in range(max(start, 0), min(end, max_frames)):
            current[f], following[f], weights[f] = prompt, next_prompt, 1 - step * (f - start)
    if None in weights:  # the added first and last keyframes cover every frame
        raise AssertionError(f"frame {weights.index(None)} was left without a keyframe")
    return PromptSeries(current, following, weights)


def _frame_values(values, name: str, frames: int) -> list:
    """pw_a..pw_d for each frame: a number for every frame, or a list with one per frame
    (BatchValueSchedule's)."""
    if values is None:
        return [0] * frames
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        return [values] * frames
    if hasattr(values, "tolist"):
        values = values.tolist()
    if isinstance(values, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 for v in values):
        if len(values) < frames:
            raise NodeInputError(name, f"{len(values)} values for {frames} frames: expected one per frame")
        return list(values)
    raise NodeInputError(name, f"expected a number or a list of numbers, got {type(values).__name__}")


_BACKTICKS = re.compile(r"`.*?`")


def with_formulas(prompt: str, frame: int, max_frames: int, weights: dict, input_name: str = "text",
                  formulas: Formulas | None = None) -> str:
    """The prompt with each `formula` replaced by its value at this frame (t; max_f = max_frames - 1;
    pw_a..pw_d), then stripped (the pack's prepare_batch_promptA)."""
    if "`" not in prompt:
        return prompt.strip()
    names = {"t": frame, "max_f": max_frames - 1, **{k: v[frame] for k, v in weights.items()}}
    formulas = formulas or Formulas()

    def value(match):
        return str(formulas.value(match.group(0)[1:-1], names, input_name, f"frame {frame}"))

    return _BACKTICKS.sub(value, prompt).strip()


class _Filler:
    """Each frame's prompt with its formulas filled in (with_formulas): a prompt without formulas is
    the same text every frame, one string for all of them; those with formulas are new text each
    frame, their total held to nodes.strings' MAX_TEXT (many frames of a long prompt would fill the
    memory)."""

    def __init__(self, max_frames: int, weights: dict, input_name: str):
        self.max_frames, self.weights, self.input_name = max_frames, weights, input_name
        self.plain = {}
        self.formulas = Formulas()
        self.total = 0

    def __call__(self, prompt: str, frame: int) -> str:
        if "`" not in prompt:
            return self.plain.setdefault(prompt, prompt.strip())
        text = with_formulas(prompt, frame, self.max_frames, self.weights, self.input_name, self.formulas)
        self.total += len(text)
        fits(self.total, self.input_name)
        return text


@dataclass
class Schedule:
    """A prompt schedule worked out per frame: each side's (current prompt, next prompt) with the
    formulas filled in, and the current prompt's weight."""
    positive: list[tuple[str, str]]
    negative: list[tuple[str, str]]
    weights: list[float]


def prompt_schedule(text: str, max_frames: int, pre_text: str, app_text: str, pw: dict,
                    frames=None) -> Schedule:
    """The schedule of these frames (all by default), as the pack's prompt nodes work it out."""
    frames = range(max_frames) if frames is None else frames
    pos, neg = with_pre_and_app(prompt_keyframes(text), pre_text or "", app_text or "")
    weights = {name: _frame_values(values, name, max_frames) for name, values in pw.items()}
    sides = []
    filled = _Filler(max_frames, weights, "text")
    for prompts in (pos, neg):
        series = interpolated_prompts(prompts, max_frames)
        sides.append([(filled(series.current[f], f), filled(series.following[f], f)) for f in frames])
    return Schedule(sides[0], sides[1], [series.weights[f] for f in frames])


def _centre_padded(cond, length: int):
    """cond [B, T, D] with zero tokens added to `length`, half before and half after (the pack's
    pad_with_zeros: the extra one after)."""
    import torch.nn.functional as F

    missing = length - cond.shape[1]
    return cond if missing <= 0 else F.pad(cond, (0, 0, missing // 2, missing - missing // 2))


class _Encoder:
    """clip.encode of each distinct text once (the pack encodes every frame's two prompts; the
    same text gives the same encoding)."""

    def __init__(self, clip):
        if clip is None:
            raise NodeInputError("clip", "no text encoder: the checkpoint has none; load one separately")
        self.clip = clip
        self.done = {}

    def __call__(self, text: str):
        if text not in self.done:
            cond, pooled = self.clip.encode(text)[:2]
            self.done[text] = (cond, pooled)
        return self.done[text]


def blended(current, following, weight: float, length: int):
    """The pack's addWeighted: current * weight + next * (1 - weight), both centre-padded to
    `length` tokens; the pooled output is the next prompt's."""
    (cond_to, _), (cond_from, pooled_from) = current, following
    length = max(length, cond_to.shape[1], cond_from.shape[1])
    following = _centre_padded(cond_from, length).to(cond_to.dtype)
    return _centre_padded(cond_to, length) * weight + following * (1 - weight), pooled_from


def batch_conditioning(pairs: list[tuple[str, str]], weights: list[float], encode: _Encoder) -> list:
    """One CONDITIONING row per frame, as the pack's BatchPoolAnimConditioning: every frame's blend
    padded to the longest prompt's tokens, the next prompts' pooled outputs stacked."""
    import torch

    encoded = [(encode(cur), encode(nxt)) for cur, nxt in pairs]
    length = max(max(c[0].shape[1], n[0].shape[1]) for c, n in encoded)
    rows = [blended(c, n, w, length) for (c, n), w in zip(encoded, weights)]
    options = {}
    if all(pooled is not None for _, pooled in rows):
        options["pooled_output"] = torch.cat([pooled for _, pooled in rows])
    return [(torch.cat([cond for cond, _ in rows]), options)]


def frame_conditioning(pair: tuple[str, str], weight: float, encode: _Encoder) -> list:
    """One frame's CONDITIONING, as the pack's PoolAnimConditioning: the current prompt's own
    encoding when both prompts are the same or its weight is 1, the next one's at weight 0, else
    their blend (padded to the longer, the next prompt's pooled output)."""
    current, following = pair
    if current == following or weight == 1:
        cond, pooled = encode(current)
    elif weight == 0:
        cond, pooled = encode(following)
    else:
        cond, pooled = blended(encode(current), encode(following), weight, 0)
    return [(cond, {} if pooled is None else {"pooled_output": pooled})]


def _conditioning_estimate(frames, width: int = 768) -> Estimate:
    """At least 77 tokens of `width` floats per frame and side (SD1's CLIP 768; SDXL's 2048)."""
    return Estimate(None, memory=frames * 2 * 77 * width * 4 if isinstance(frames, int) else 0)


def latent_frames(latent, name: str = "num_latents") -> int:
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if samples is None or not hasattr(samples, "shape") or samples.ndim < 1:
        raise NodeInputError(name, "expected a LATENT (a dict with samples)")
    if samples.shape[0] < 1:
        raise NodeInputError(name, "the latent batch is empty")
    return int(samples.shape[0])


SCHEDULE_HELP = """The schedule: lines "frame": "prompt", (keys and prompts in double quotes, commas
between; a trailing comma is fine). Between two keyframes each frame blends the two prompts'
encodings, the earlier one weighted 1 - (f - a) / (b - a); a key may be a formula of max_f (the
frame count). In a prompt `formula` is replaced by its value at the frame: t (the frame), max_f
(max_frames - 1), pw_a..pw_d, numbers, + - * / % **, and sin, cos, tan, arc..., log, exp, sqrt, abs,
floor, ceil, where(test, a, b). Text after --neg goes to NEG; pre_text and app_text (each may hold
a --neg part) are put before and after every keyframe's prompt, with a space; as in the pack, a
prompt that then ends in "0" loses that character. print_output is accepted and prints nothing."""


class _PromptWeights:
    """A prompt node's pw_a..pw_d, for its prompts' `formulas`."""

    def prompt_weights(self) -> dict:
        return {"pw_a": self.pw_a, "pw_b": self.pw_b, "pw_c": self.pw_c, "pw_d": self.pw_d}


class BatchPromptSchedule(Node, _PromptWeights):
    """A prompt schedule as a batch of conditionings, one row per frame (max_frames rows), as
    FizzNodes' Batch Prompt Schedule: sample it with a latent batch of as many frames (a longer
    batch repeats the rows, a shorter one takes the first), with AnimateDiff or without.
    start_frame and end_frame are the pack's print range (print only, as its labels say).
    """
    __doc__ = _doc(__doc__, SCHEDULE_HELP)
    category = BATCH_SCHEDULE
    text: str = Text(DEFAULT_PROMPT, multiline=True)
    clip: CLIP
    max_frames: int = Int(120, min=1, max=MAX_FRAMES)
    print_output: bool = Bool(False)
    pre_text: str = _socket_text()
    app_text: str = _socket_text()
    start_frame: int = Int(0, min=0, max=9999)
    end_frame: int = Int(0, min=0, max=9999)
    pw_a: float = _pw()
    pw_b: float = _pw()
    pw_c: float = _pw()
    pw_d: float = _pw()
    outputs = {"POS": CONDITIONING, "NEG": CONDITIONING}
    # older layouts: without end_frame, then without start_frame too; each with the forceInput values
    # (converted widgets) or without them (bare sockets)
    comfy = ComfyAlias(("BatchPromptSchedule",), optional=_OPTIONAL_BATCH, widgets=_force_input_layout(
        11, _texts_and_weights(3, 7), {10: {6: 0}, 9: {5: 0, 6: 0}, 4: {**_texts_and_weights(3, 7), 6: 0},
                                       3: {**_texts_and_weights(3, 7), 5: 0, 6: 0}}))

    @classmethod
    def estimate(cls, widgets, inputs):
        return _conditioning_estimate(widgets.get("max_frames"))

    def run(self):
        encode = _Encoder(self.clip)
        schedule = prompt_schedule(self.text, self.max_frames, self.pre_text, self.app_text, self.prompt_weights())
        return (batch_conditioning(schedule.positive, schedule.weights, encode),
                batch_conditioning(schedule.negative, schedule.weights, encode))


class BatchPromptScheduleLatentInput(Node, _PromptWeights):
    """Batch Prompt Schedule with max_frames taken from a latent batch (its frames), which is
    passed on as INPUT_LATENTS; as FizzNodes' Batch Prompt Schedule (Latent Input). (The pack
    counts the rows of every tensor in the latent, a noise mask's too; here the samples' frames.)
    """
    __doc__ = _doc(__doc__, SCHEDULE_HELP)
    category = BATCH_SCHEDULE
    text: str = Text(DEFAULT_PROMPT, multiline=True)
    clip: CLIP
    num_latents: LATENT
    print_output: bool = Bool(False)
    pre_text: str = _socket_text()
    app_text: str = _socket_text()
    start_frame: int = Int(0, min=0, max=9999)
    end_frame: int = Int(0, min=0, max=9999)
    pw_a: float = _pw()
    pw_b: float = _pw()
    pw_c: float = _pw()
    pw_d: float = _pw()
    outputs = {"POS": CONDITIONING, "NEG": CONDITIONING, "INPUT_LATENTS": LATENT}
    # older: without end_frame, with the forceInput values (converted widgets) or without (bare sockets)
    comfy = ComfyAlias(("BatchPromptScheduleLatentInput",), optional=_OPTIONAL_BATCH, widgets=_force_input_layout(
        10, _texts_and_weights(2, 6), {9: {5: 0}, 3: {**_texts_and_weights(2, 6), 5: 0}}))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("num_latents")
        return Estimate(size, memory=_conditioning_estimate(size.batch if size else None).memory)

    def run(self):
        frames = latent_frames(self.num_latents)
        encode = _Encoder(self.clip)
        schedule = prompt_schedule(self.text, frames, self.pre_text, self.app_text, self.prompt_weights())
        return (batch_conditioning(schedule.positive, schedule.weights, encode),
                batch_conditioning(schedule.negative, schedule.weights, encode), self.num_latents)


class PromptSchedule(Node, _PromptWeights):
    """One frame of a prompt schedule (current_frame, taken modulo max_frames) as a conditioning,
    as FizzNodes' Prompt Schedule: between keyframes the two prompts' encodings blended (the next
    one's pooled output), on a keyframe its prompt's own encoding.
    """
    __doc__ = _doc(__doc__, SCHEDULE_HELP)
    category = SCHEDULE
    text: str = Text(DEFAULT_PROMPT, multiline=True)
    clip: CLIP
    max_frames: int = Int(120, min=1, max=MAX_FRAMES)
    current_frame: int = Int(0, min=0, max=MAX_FRAMES, force_input=True)
    print_output: bool = Bool(False)
    pre_text: str = _socket_text()
    app_text: str = _socket_text()
    pw_a: float = _pw()
    pw_b: float = _pw()
    pw_c: float = _pw()
    pw_d: float = _pw()
    outputs = {"POS": CONDITIONING, "NEG": CONDITIONING}
    comfy = ComfyAlias(("PromptSchedule",), optional=_OPTIONAL,
                       widgets=_force_input_layout(10, {2: 0, **_texts_and_weights(4, 6)}))

    def run(self):
        return scheduled_frame(self, self.text)


def _whole(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NodeInputError(name, f"expected a whole frame number (0 or more), got {value!r}")
    return value


def scheduled_frame(node, text: str) -> tuple:
    """PromptSchedule's (and NodeFlowEnd's) POS and NEG at node.current_frame."""
    frame = _whole(node.current_frame, "current_frame") % node.max_frames
    encode = _Encoder(node.clip)
    schedule = prompt_schedule(text, node.max_frames, node.pre_text, node.app_text, node.prompt_weights(), [frame])
    weight = schedule.weights[0]
    return (frame_conditioning(schedule.positive[0], weight, encode),
            frame_conditioning(schedule.negative[0], weight, encode))


class StringSchedule(Node, _PromptWeights):
    """One frame's prompt text of a schedule (current_frame modulo max_frames), as FizzNodes'
    String Schedule: the current keyframe's prompt with its `formulas` worked out at the frame
    (POS; NEG the text after --neg). No blending: text can't be mixed.
    """
    __doc__ = _doc(__doc__, SCHEDULE_HELP)
    category = SCHEDULE
    text: str = Text(DEFAULT_PROMPT, multiline=True)
    max_frames: int = Int(120, min=1, max=MAX_FRAMES)
    current_frame: int = Int(0, min=0, max=MAX_FRAMES)
    print_output: bool = Bool(False)
    pre_text: str = _socket_text()
    app_text: str = _socket_text()
    pw_a: float = _pw()
    pw_b: float = _pw()
    pw_c: float = _pw()
    pw_d: float = _pw()
    outputs = {"POS": STRING, "NEG": STRING}
    comfy = ComfyAlias(("StringSchedule",), optional=_OPTIONAL,
                       widgets=_force_input_layout(10, _texts_and_weights(4, 6)))

    def run(self):
        frame = self.current_frame % self.max_frames
        schedule = prompt_schedule(self.text, self.max_frames, self.pre_text, self.app_text, self.prompt_weights(),
                                   [frame])
        return schedule.positive[0][0], schedule.negative[0][0]


class BatchStringSchedule(Node, _PromptWeights):
    """Every frame's prompt text of a schedule, as FizzNodes' Batch String Schedule: POS and NEG
    are each one list of max_frames texts (the pack's one series value, not a list of outputs).
    """
    __doc__ = _doc(__doc__, SCHEDULE_HELP)
    category = BATCH_SCHEDULE
    text: str = Text(DEFAULT_PROMPT, multiline=True)
    max_frames: int = Int(120, min=1, max=MAX_FRAMES)
    print_output: bool = Bool(False)
    pre_text: str = _socket_text()
    app_text: str = _socket_text()
    pw_a: float = _pw()
    pw_b: float = _pw()
    pw_c: float = _pw()
    pw_d: float = _pw()
    outputs = {"POS": STRING, "NEG": STRING}
    comfy = ComfyAlias(("BatchStringSchedule",), optional=_OPTIONAL,
                       widgets=_force_input_layout(9, _texts_and_weights(3, 5)))

    def run(self):
        schedule = prompt_schedule(self.text, self.max_frames, self.pre_text, self.app_text, self.prompt_weights())
        return [cur for cur, _ in schedule.positive], [cur for cur, _ in schedule.negative]


# -- SDXL prompt schedules ---------------------------------------------------------------------


@dataclass
class _SDXLPairs:
    """One tower's keyframe pairs (a < b, in order) as the pack's BatchInterpolatePromptsSDXL loop
    writes them into its series: pair a, b writes every frame from a on (between a and b a's and
    b's prompts, pre_text and app_text put around them once more, at weight 1 - (f - a) / (b - a);
    from b on the same prompts at weight 0), so a frame ends with the last pair starting at or
    before it, and text_l's pairs (written after text_g's) win where one does. Worked out per
    frame here, where the pack fills every frame from each keyframe on."""
    starts: list[int]
    pairs: list[tuple[int, int, str, str]]

    @classmethod
    def of(cls, keyed: list, pre: str, app: str) -> "_SDXLPairs":
        pairs = [(start, end, f"{pre} {prompt} {app}", f"{pre} {next_prompt} {app}")
                 for (start, prompt), (end, next_prompt) in zip(keyed, keyed[1:]) if start < end]
        return cls([max(start, 0) for start, *_ in pairs], pairs)

    def at(self, f: int) -> list | None:
        """[current, next, weight] at frame f, None before the first pair."""
        index = bisect.bisect_right(self.starts, f) - 1
        if index < 0:
            return None
        start, end, current, following = self.pairs[index]
        return [current, following, 1 - (f - start) / (end - start) if f < end else 0.0]


def _sdxl_keyed(prompts: dict, max_frames: int, input_name: str) -> list:
    keyed = [(key_frame(key, max_frames, input_name), prompt)
             for key, prompt in prompts.items()]
    return sorted(keyed, key=lambda k: k[0])


def sdxl_schedule(node, max_frames: int, frames=None) -> Schedule:
    """The SDXL schedules' prompts per frame as the pack (BatchFuncs.py at 51a29ce) works them out:
    its G and L series are one object, so text_l's keyframes (from its first on) replace
    text_g's, and the one text each frame gets goes to both encoders."""
    frames = range(max_frames) if frames is None else frames
    weights = {name: _frame_values(values, name, max_frames) for name, values in node.prompt_weights().items()}
    sides = {}
    for tower in ("g", "l"):
        pre, app = (getattr(node, f"{kind}_text_{tower.upper()}") or "" for kind in ("pre", "app"))
        name = f"text_{tower}"
        pos, neg = with_pre_and_app(prompt_keyframes(getattr(node, name), name), pre, app)
        sides[tower] = (pre, app, _sdxl_keyed(pos, max_frames, name), _sdxl_keyed(neg, max_frames, name))
    if len(sides["l"][2]) == 1:
        raise NodeInputError("text_l", "has one keyframe; the pack fails on that (it needs none or two or more)")
    result = []
    filled = _Filler(max_frames, weights, "text_g")
    for side in (2, 3):
        towers = [_SDXLPairs.of(sides[tower][side], *sides[tower][:2]) for tower in ("g", "l")]
        if not any(t.starts and t.starts[0] == 0 for t in towers):  # each tower covers frames from its first on
            raise NodeInputError("text_g", "frame 0 comes before the schedule's keyframes (the pack encodes "
                                           "the text 'nan' there): start the schedule at frame 0, with at least two "
                                           "keyframes")
        rows = []
        for f in frames:
            current, following, weight = towers[1].at(f) or towers[0].at(f)
            rows.append((filled(current, f), filled(following, f), weight))
        result.append(rows)
    return Schedule([r[:2] for r in result[0]], [r[:2] for r in result[1]], [r[2] for r in result[0]])


class _SDXLEncoder(_Encoder):
    """CLIPTextEncodeSDXL's encoding of a text given to both towers, with the node's sizes."""

    def __init__(self, node):
        super().__init__(node.clip)
        self.sizes = {k: getattr(node, k) for k in ("width", "height", "crop_w", "crop_h", "target_width",
                                                     "target_height")}

    def __call__(self, text: str):
        from nodes.conditioning import CLIPEncodeSDXL

        if text not in self.done:
            cond, options = _core(CLIPEncodeSDXL, clip=self.clip, text_g=text, text_l=text, **self.sizes)[0]
            self.done[text] = (cond, options.get("pooled_output"))
        return self.done[text]


SDXL_HELP = """As in the pack (BatchFuncs.py at 51a29ce), text_g's and text_l's schedules fill one
series: from text_l's first keyframe on its prompts replace text_g's (text_g's with its pre/app texts
before it), and each frame's text goes to both CLIP-G and CLIP-L (CLIPTextEncodeSDXL with the sizes);
a text_l of one keyframe fails in the pack and is refused here, as is a frame before every keyframe
(the pack encodes 'nan' there). pre_text and app_text are put around each prompt twice, as in the pack.
No keyframe 0 or max_frames is added: after the last keyframe its prompt holds. Between keyframes
the two prompts' encodings blend by the earlier one's weight, the pooled output the next one's.
Formulas as in Batch Prompt Schedule (t, max_f, pw_a..pw_d)."""


def _sdxl_batch(node, frames: int) -> tuple:
    """The batch SDXL schedules' POS and NEG: one row per frame (rows padded to the longest, where the
    pack fails on different lengths), only the pooled outputs as options, as the pack gives them."""
    encode = _SDXLEncoder(node)
    schedule = sdxl_schedule(node, frames)
    return tuple(batch_conditioning(pairs, schedule.weights, encode) for pairs in (schedule.positive,
                                                                                  schedule.negative))


SDXL_WIDTH = 2048  # CLIP-G's 1280 and CLIP-L's 768 floats per token, side by side


def _size(default: int):
    return Int(default, min=0, max=8192)  # the pack's MAX_RESOLUTION


class BatchPromptScheduleEncodeSDXL(Node, _PromptWeights):
    """An SDXL prompt schedule as a batch of conditionings, one row per frame, as FizzNodes' Batch
    Prompt Schedule SDXL."""
    __doc__ = _doc(__doc__, SDXL_HELP)
    category = BATCH_SCHEDULE
    width: int = _size(1024)
    height: int = _size(1024)
    crop_w: int = _size(0)
    crop_h: int = _size(0)
    target_width: int = _size(1024)
    target_height: int = _size(1024)
    text_g: str = Text("", multiline=True)
    clip: CLIP
    text_l: str = Text("", multiline=True)
    max_frames: int = Int(120, min=1, max=MAX_FRAMES)
    print_output: bool = Bool(False)
    pre_text_G: str = _socket_text()
    app_text_G: str = _socket_text()
    pre_text_L: str = _socket_text()
    app_text_L: str = _socket_text()
    pw_a: float = _pw()
    pw_b: float = _pw()
    pw_c: float = _pw()
    pw_d: float = _pw()
    outputs = {"POS": CONDITIONING, "NEG": CONDITIONING}
    comfy = ComfyAlias(("BatchPromptScheduleEncodeSDXL",), optional=_OPTIONAL_SDXL, widgets=_force_input_layout(
        18, {10: "", 11: "", 12: "", 13: "", **{14 + k: 0.0 for k in range(_PW_PLACES)}}))

    @classmethod
    def estimate(cls, widgets, inputs):
        return _conditioning_estimate(widgets.get("max_frames"), SDXL_WIDTH)

    def run(self):
        return _sdxl_batch(self, self.max_frames)


class BatchPromptScheduleSDXLLatentInput(Node, _PromptWeights):
    """Batch Prompt Schedule SDXL with max_frames taken from a latent batch (its frames), which is
    passed on (the pack names that output POS_CUR); as FizzNodes' Batch Prompt Schedule SDXL
    (Latent Input)."""
    __doc__ = _doc(__doc__, SDXL_HELP)
    category = BATCH_SCHEDULE
    width: int = _size(1024)
    height: int = _size(1024)
    crop_w: int = _size(0)
    crop_h: int = _size(0)
    target_width: int = _size(1024)
    target_height: int = _size(1024)
    text_g: str = Text("", multiline=True)
    clip: CLIP
    text_l: str = Text("", multiline=True)
    num_latents: LATENT
    print_output: bool = Bool(False)
    pre_text_G: str = _socket_text()
    app_text_G: str = _socket_text()
    pre_text_L: str = _socket_text()
    app_text_L: str = _socket_text()
    pw_a: float = _pw()
    pw_b: float = _pw()
    pw_c: float = _pw()
    pw_d: float = _pw()
    outputs = {"POS": CONDITIONING, "NEG": CONDITIONING, "POS_CUR": LATENT}
    comfy = ComfyAlias(("BatchPromptScheduleSDXLLatentInput",), optional=_OPTIONAL_SDXL, widgets=_force_input_layout(
        17, {9: "", 10: "", 11: "", 12: "", **{13 + k: 0.0 for k in range(_PW_PLACES)}}))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("num_latents")
        return Estimate(size, memory=_conditioning_estimate(size.batch if size else None, SDXL_WIDTH).memory)

    def run(self):
        return (*_sdxl_batch(self, latent_frames(self.num_latents)), self.num_latents)


class PromptScheduleEncodeSDXL(Node, _PromptWeights):
    """One frame of an SDXL prompt schedule (current_frame modulo max_frames) as a conditioning, as
    FizzNodes' Prompt Schedule SDXL: the current and next prompts' encodings blended by the current
    one's weight (padded to the longer), with the current one's sizes and the next one's pooled
    output."""
    __doc__ = _doc(__doc__, SDXL_HELP)
    category = SCHEDULE
    width: int = _size(1024)
    height: int = _size(1024)
    crop_w: int = _size(0)
    crop_h: int = _size(0)
    target_width: int = _size(1024)
    target_height: int = _size(1024)
    text_g: str = Text("", multiline=True)
    clip: CLIP
    text_l: str = Text("", multiline=True)
    max_frames: int = Int(120, min=1, max=MAX_FRAMES)
    current_frame: int = Int(0, min=0, max=MAX_FRAMES)
    print_output: bool = Bool(False)
    pre_text_G: str = _socket_text()
    app_text_G: str = _socket_text()
    pre_text_L: str = _socket_text()
    app_text_L: str = _socket_text()
    pw_a: float = _pw()
    pw_b: float = _pw()
    pw_c: float = _pw()
    pw_d: float = _pw()
    outputs = {"POS": CONDITIONING, "NEG": CONDITIONING}
    comfy = ComfyAlias(("PromptScheduleEncodeSDXL",), optional=_OPTIONAL_SDXL, widgets=_force_input_layout(
        19, {11: "", 12: "", 13: "", 14: "", **{15 + k: 0.0 for k in range(_PW_PLACES)}}))

    def run(self):
        frame = self.current_frame % self.max_frames
        encode = _SDXLEncoder(self)
        schedule = sdxl_schedule(self, self.max_frames, [frame])
        sizes = dict(encode.sizes)
        out = []
        for pair in (schedule.positive[0], schedule.negative[0]):
            cond, pooled = blended(encode(pair[0]), encode(pair[1]), schedule.weights[0], 0)
            out.append([(cond, {**sizes, **({} if pooled is None else {"pooled_output": pooled})})])
        return tuple(out)


# -- image selection ------------------------------------------------------------------------------


MAX_PICKS = 100_000  # images ImagesFromBatchSchedule may pick where the server sets no max_batch


def selected_images(spec: str, count: int, most: int = MAX_PICKS) -> list[int]:
    """The batch positions an index list picks, as the pack's selectImages (from SLAPaper's
    ComfyUI-Image-Selector): comma-separated 1-based numbers (one past the batch picks nothing; 0
    picks the last, as the pack's -1) and ranges a:b (a to b - 1), a: (a to the end), :b (up to
    b - 1), with Python's slicing; a part that is not a number or range is skipped. More than `most`
    picks, or a number before the batch's first (below 1 - count), is an error naming text."""
    every = list(range(count))
    picked = []
    for part in spec.strip().split(","):
        if len(picked) > most:
            break
        try:
            if ":" in part:
                start, end = (p.strip() for p in part.strip().split(":", 1))
                if start and end:
                    picked.extend(every[int(start) - 1:int(end) - 1])
                elif start:
                    picked.extend(every[int(start) - 1:])
                elif end:
                    picked.extend(every[:int(end) - 1])
            else:
                index = int(part.strip()) - 1
        except ValueError:  # the pack skips what it can't read
            continue
        if ":" not in part:
            if index < -count:
                raise NodeInputError("text", f"the image number {index + 1} is before the batch's first "
                                             f"(a batch of {count}: 1..{count}, or 0..{1 - count} from its end)")
            if index < count:
                picked.append(index)
    if len(picked) > most:
        raise NodeInputError("text", f"picks more than {most} images (the most allowed here)")
    return picked


class ImagesFromBatchSchedule(Node):
    """Pick images from a batch by a schedule of index lists, as FizzNodes' Image Select Schedule:
    the keyframe text current at current_frame (keyframes "frame": "1,3:5" as in a prompt schedule,
    no blending; `formulas` of t and max_f worked out) lists the images, 1-based: numbers and ranges
    a:b (a to b - 1), a:, :b; parts that are not numbers are skipped, and when nothing is picked the
    whole batch passes (the pack then gives its first image only, a slip). current_frame must be
    below max_frames (the pack fails past it). The picks are held to the server's max_batch (else
    100 000) and the memory."""
    category = SCHEDULE
    images: IMAGE
    text: str = Text(DEFAULT_PROMPT, multiline=True)
    current_frame: int = Int(0, min=0, max=MAX_FRAMES)
    max_frames: int = Int(120, min=1, max=MAX_FRAMES)
    print_output: bool = Bool(False)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImagesFromBatchSchedule",))

    def run(self):
        if self.current_frame >= self.max_frames:
            raise NodeInputError("current_frame", f"{self.current_frame} is not below max_frames ({self.max_frames})")
        series = interpolated_prompts(prompt_keyframes(self.text), self.max_frames)
        spec = with_formulas(series.current[self.current_frame], self.current_frame, self.max_frames,
                             {name: [0] * self.max_frames for name in ("pw_a", "pw_b", "pw_c", "pw_d")})
        most = run_limits().max_batch
        picked = selected_images(spec, len(self.images), MAX_PICKS if most is None else most)
        if picked:
            check_run_memory("text", "the picked images", images=Size(len(picked), *self.images.shape[1:3]))
        return self.images[picked] if picked else self.images


# -- node flow ----------------------------------------------------------------------------------


class PromptScheduleNodeFlow(Node):
    """Add a keyframe to a schedule built node by node, as FizzNodes' Prompt Schedule NodeFlow:
    in_text (the previous node's schedule, a trailing comma dropped) gets "N": "text" added, N
    being max_frames (the previous node's frame) + num_frames, or 0 when max_frames is 0; gives
    N as INT for the next node's max_frames."""
    category = SCHEDULE
    text: str = Text("", multiline=True)
    num_frames: int = Int(24, min=0, max=9999)
    in_text: str = Text("")
    max_frames: int = Int(0, min=0, max=MAX_FRAMES)
    outputs = {"INT": INT, "STRING": STRING}
    comfy = ComfyAlias(("PromptScheduleNodeFlow",), optional=("in_text", "max_frames"))

    def run(self):
        in_text = self.in_text.rstrip(",")
        new_max = self.num_frames + self.max_frames
        key = self.max_frames if self.max_frames == 0 else new_max
        return new_max, in_text + (", " if in_text else "") + f'"{key}": "{self.text}"'


class PromptScheduleNodeFlowEnd(Node, _PromptWeights):
    """The end of a node-flow schedule: one frame's conditioning, as Prompt Schedule, from the
    schedule text the NodeFlow nodes built (a comma at its end dropped), as FizzNodes' Prompt
    Schedule NodeFlow End. (The pack empties a text that starts with a comma and then fails; here
    that comma is dropped too.)"""
    __doc__ = _doc(__doc__, SCHEDULE_HELP)
    category = SCHEDULE
    text: str = Text("", force_input=True)
    clip: CLIP
    max_frames: int = Int(0, min=0, max=MAX_FRAMES)
    print_output: bool = Bool(False)
    current_frame: int = Int(0, min=0, max=MAX_FRAMES, force_input=True)
    pre_text: str = _socket_text()
    app_text: str = _socket_text()
    pw_a: float = _pw()
    pw_b: float = _pw()
    pw_c: float = _pw()
    pw_d: float = _pw()
    outputs = {"POS": CONDITIONING, "NEG": CONDITIONING}
    comfy = ComfyAlias(("PromptScheduleNodeFlowEnd",), optional=_OPTIONAL,
                       widgets=_force_input_layout(10, {0: "", 3: 0, **_texts_and_weights(4, 6)}))

    def run(self):
        if self.max_frames < 1:
            raise NodeInputError("max_frames", "expected at least 1 frame (the pack divides by it)")
        if not isinstance(self.text, str):
            raise NodeInputError("text", f"expected text, got {type(self.text).__name__}")
        text = self.text[:-1] if self.text.endswith(",") else self.text
        return scheduled_frame(self, text[1:] if text.startswith(",") else text)


# -- value schedules ------------------------------------------------------------------------------

VALUE_HELP = """The schedule: keyframes frame:(value) separated by commas (a trailing comma is fine).
Between two keyframes holding numbers the value goes linearly; a keyframe holding a formula is worked
out at every frame from it to the next keyframe, with t (the frame; i too, as the pack's), max_f
(max_frames - 1), max_frames, numbers, + - * / % ** and sin, cos, tan, arc..., log, exp, sqrt, abs, floor, ceil, where(test, a, b)
(no commas inside a value: they separate keyframes, as in the pack). A key may be a formula of
max_f. The last frame takes the last keyframe's value; frames before the first keyframe take its
value (the pack fails without a keyframe 0). print_output is accepted and prints nothing."""


def value_keyframes(text: str, max_frames: int, input_name: str = "text") -> dict[int, tuple]:
    """{frame: (value text, where: a function naming its line)} of a value schedule, read as the
    pack's batch_parse_key_frames. (Line numbers are worked out only for an error: counting them
    for every entry would take time growing with the square of the text's length.)"""
    text = re.sub(r",\s*$", "", text)
    frames = {}
    offset = 0
    for entry in text.split(","):
        where = functools.partial(_line_of, text, offset + len(entry) - len(entry.lstrip()))
        offset += len(entry) + 1
        parts = entry.split(":")
        if len(parts) < 2:
            raise NodeInputError(input_name, f"{where()}: expected frame:(value), got {_shown(entry.strip())}")
        key = parts[0].strip()
        plain = _unquoted(key)
        frame = key_frame(plain if _is_number(plain) else _outer_quotes_dropped(key), max_frames - 1, input_name,
                          where)
        frames[frame] = (parts[1].strip(), where)
    return frames


def _unquoted(text: str) -> str:
    """The pack's sanitize_value: quotes and brackets removed."""
    return re.sub(r"['\"()]", "", text)


def _outer_quotes_dropped(key: str) -> str:
    """A key's first and last quote (single or double, one of each at most) dropped, as the pack does."""
    key = key.replace("'", "", 1).replace('"', "", 1)[::-1]
    return key.replace("'", "", 1).replace('"', "", 1)[::-1]


def value_series(text: str, max_frames: int, input_name: str = "text") -> list[float]:
    """The value at every frame (the pack's batch_get_inbetweens, linear)."""
    keyframes = value_keyframes(text, max_frames, input_name)
    formulas = Formulas()
    series: list[float | None] = [None] * max_frames
    formula = None  # (value text, where) of the last keyframe holding a formula, until the next keyframe
    for f in range(max_frames):
        if f in keyframes:
            value, where = keyframes[f]
            formula = None
            if _is_number(_unquoted(value)):
                series[f] = float(_unquoted(value))
            else:
                formula = (value, where)
        if formula is not None:
            # the pack's numexpr also sees its loop's i (the frame) and max_frames
            names = {"t": f, "max_f": max_frames - 1, "i": f, "max_frames": max_frames}
            result = formulas.value(formula[0], names, input_name, formula[1])
            series[f] = float(result)
    known = [f for f, v in enumerate(series) if v is not None]
    if not known:
        raise NodeInputError(input_name, f"no keyframe below max_frames ({max_frames}): expected lines like 0:(1.0),")
    series[0], series[-1] = series[known[0]], series[known[-1]]
    known = [f for f, v in enumerate(series) if v is not None]
    for a, b in zip(known, known[1:]):  # pandas' linear interpolate over the frames in between
        for f in range(a + 1, b):
            series[f] = series[a] + (series[b] - series[a]) * (f - a) / (b - a)
    return series


def _ints(values: list[float], input_name: str) -> list[int]:
    for f, v in enumerate(values):
        if not math.isfinite(v):
            raise NodeInputError(input_name, f"frame {f}'s value is {v}, which has no whole number")
    return [int(v) for v in values]


class ValueSchedule(Node):
    """The value of a value schedule at current_frame (modulo max_frames), as FizzNodes' Value
    Schedule: FLOAT, and INT (cut toward 0).
    """
    __doc__ = _doc(__doc__, VALUE_HELP)
    category = SCHEDULE
    text: str = Text(DEFAULT_VALUE, multiline=True)
    max_frames: int = Int(120, min=1, max=MAX_FRAMES)
    current_frame: int = Int(0, min=0, max=MAX_FRAMES, force_input=True)
    print_output: bool = Bool(False)
    outputs = {"FLOAT": FLOAT, "INT": INT}
    comfy = ComfyAlias(("ValueSchedule",), widgets=_force_input_layout(4, {2: 0}))

    def run(self):
        frame = _whole(self.current_frame, "current_frame") % self.max_frames
        value = value_series(self.text, self.max_frames)[frame]
        return value, _ints([value], "text")[0]


class BatchValueSchedule(Node):
    """Every frame's value of a value schedule, as FizzNodes' Batch Value Schedule: FLOAT is one
    list of max_frames numbers and INT one list of them cut toward 0 (the pack's one series value,
    which its prompt schedules' pw_a..pw_d take a value per frame from).
    """
    __doc__ = _doc(__doc__, VALUE_HELP)
    category = BATCH_SCHEDULE
    text: str = Text(DEFAULT_VALUE, multiline=True)
    max_frames: int = Int(120, min=1, max=MAX_FRAMES)
    print_output: bool = Bool(False)
    outputs = {"FLOAT": FLOAT, "INT": INT}
    comfy = ComfyAlias(("BatchValueSchedule",))

    def run(self):
        values = value_series(self.text, self.max_frames)
        return values, _ints(values, "text")


class BatchValueScheduleLatentInput(Node):
    """Batch Value Schedule with max_frames taken from a latent batch (its frames), which is
    passed on; as FizzNodes' Batch Value Schedule (Latent Input). (The pack counts the rows of
    every tensor in the latent, a noise mask's too; here the samples' frames.)
    """
    __doc__ = _doc(__doc__, VALUE_HELP)
    category = BATCH_SCHEDULE
    text: str = Text(DEFAULT_VALUE, multiline=True)
    num_latents: LATENT
    print_output: bool = Bool(False)
    outputs = {"FLOAT": FLOAT, "INT": INT, "LATENT": LATENT}
    comfy = ComfyAlias(("BatchValueScheduleLatentInput",))

    def run(self):
        values = value_series(self.text, latent_frames(self.num_latents))
        return values, _ints(values, "text"), self.num_latents


# -- frame text ---------------------------------------------------------------------------------

FIZZFRAME = socket_type("FIZZFRAME", "#8d6e63", "FizzNodes' node frames: keyframe texts gathered node by node")


@dataclass(frozen=True)
class FizzFrames:
    """The keyframes gathered so far ({frame: its texts}, in the order they were added), the last
    one's texts, and the text encoder they share."""
    frames: dict = field(default_factory=dict)
    this_frame: dict = field(default_factory=dict)
    clip: object = None


def _frame_conditionings(clip, positive: str, negative: str) -> tuple:
    encode = _Encoder(clip)
    return tuple([(cond, {} if pooled is None else {"pooled_output": pooled})]
                 for cond, pooled in (encode(positive), encode(negative)))


def _added(previous: FizzFrames | None, frame: int, texts: dict, clip) -> FizzFrames:
    """previous's keyframes with this one (a frame given again keeps its place, as in the pack's dict)."""
    frames = dict(previous.frames) if previous is not None else {}
    frames[frame] = texts
    return FizzFrames(frames, texts, clip)


class InitFizzFrame(Node):
    """Start (or restart) a chain of node frames, as FizzNodes' Init Node Frame: this keyframe's
    positive and negative text, each followed by ", " and the general text (general_positive /
    general_negative here, else the previous frame's), encoded with clip (else the previous
    frame's) as POS and NEG. Frame Concatenate turns the chain into a schedule's text. (The pack
    fails where no general text is given; here it is empty. A branch of the chain gathers its own
    frames, where the pack's frames share one dict.)"""
    category = FRAME_NODES
    frame: int = Int(0, min=0)
    positive_text: str = Text("", multiline=True)
    negative_text: str = Text("", multiline=True)
    general_positive: str = Text("", multiline=True)
    general_negative: str = Text("", multiline=True)
    previous_frame: FIZZFRAME = None
    clip: CLIP = None
    outputs = {"FIZZFRAME": FIZZFRAME, "POS": CONDITIONING, "NEG": CONDITIONING}
    comfy = ComfyAlias(("Init FizzFrame",), optional=("negative_text", "general_positive", "general_negative",
                                                      "previous_frame", "clip"))

    def run(self):
        previous = self.previous_frame
        inherited = previous.this_frame if previous is not None else {}
        texts = {"positive_text": self.positive_text, "negative_text": self.negative_text,
                 "general_positive": self.general_positive or inherited.get("general_positive", ""),
                 "general_negative": self.general_negative or inherited.get("general_negative", "")}
        clip = self.clip if self.clip is not None else previous.clip if previous is not None else None
        pos, neg = _frame_conditionings(clip, f"{texts['positive_text']}, {texts['general_positive']}",
                                        f"{texts['negative_text']}, {texts['general_negative']}")
        return _added(previous, self.frame, texts, clip), pos, neg


class FizzFrame(Node):
    """A further keyframe of a node-frame chain, as FizzNodes' Node Frame: its positive and
    negative text each followed by ", " and the chain's general text, encoded with the chain's
    text encoder as POS and NEG."""
    category = FRAME_NODES
    frame: int = Int(0, min=0)
    previous_frame: FIZZFRAME
    positive_text: str = Text("", multiline=True)
    negative_text: str = Text("", multiline=True)
    outputs = {"FIZZFRAME": FIZZFRAME, "POS": CONDITIONING, "NEG": CONDITIONING}
    comfy = ComfyAlias(("FizzFrame",), optional=("negative_text",))

    def run(self):
        previous = self.previous_frame
        if not isinstance(previous, FizzFrames):
            raise NodeInputError("previous_frame", "expected an Init Node Frame's or Node Frame's FIZZFRAME")
        general = previous.this_frame
        texts = {"positive_text": self.positive_text, "negative_text": self.negative_text,
                 "general_positive": general.get("general_positive", ""),
                 "general_negative": general.get("general_negative", "")}
        pos, neg = _frame_conditionings(previous.clip, f"{self.positive_text}, {texts['general_positive']}",
                                        f"{self.negative_text}, {texts['general_negative']}")
        return _added(previous, self.frame, texts, previous.clip), pos, neg


class FizzFrameConcatenate(Node):
    """A node-frame chain as a prompt schedule's text, as FizzNodes' Frame Concatenate: a line
    "frame": "positive, general positive, --neg , negative, general negative", per keyframe (the
    general and negative parts where not empty), the last line without its comma."""
    category = FRAME_NODES
    frame: FIZZFRAME
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("FizzFrameConcatenate",))

    def run(self):
        if not isinstance(self.frame, FizzFrames):
            raise NodeInputError("frame", "expected an Init Node Frame's or Node Frame's FIZZFRAME")
        lines = []
        for number, texts in self.frame.frames.items():
            line = f'"{number}": "{texts["positive_text"]}'
            if texts.get("general_positive"):
                line += f', {texts["general_positive"]}'
            if texts.get("negative_text") or texts.get("general_negative"):
                line += ", --neg "
                if texts.get("negative_text"):
                    line += f', {texts["negative_text"]}'
                if texts.get("general_negative"):
                    line += f', {texts["general_negative"]}'
            lines.append(line + '",\n')
        return "".join(lines)[:-2]


# -- helpers ------------------------------------------------------------------------------------


class ConcatStringSingle(Node):
    """string_a followed by string_b, as FizzNodes' Concat String (Single)."""
    category = HELPER_NODES
    string_a: str = _socket_text()
    string_b: str = _socket_text()
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("ConcatStringSingle",), widgets=_force_input_layout(2, {0: "", 1: ""}))

    def run(self):
        for name in ("string_a", "string_b"):
            if not isinstance(getattr(self, name), str):
                raise NodeInputError(name, f"expected text, got {type(getattr(self, name)).__name__}")
        return self.string_a + self.string_b


class ConvertKeyframeKeysToBatchKeys(Node):
    """input * num_latents - 1, as FizzNodes' Keyframe Keys To Batch Keys (a keyframe counted in
    latent batches to its last frame)."""
    category = HELPER_NODES
    input: int = Int(0, force_input=True)
    num_latents: int = Int(16)
    outputs = {"INT": INT}
    comfy = ComfyAlias(("convertKeyframeKeysToBatchKeys",), widgets=_force_input_layout(2, {0: 0}))

    def run(self):
        if isinstance(self.input, bool) or not isinstance(self.input, int):
            raise NodeInputError("input", f"expected a whole number, got {type(self.input).__name__}")
        return self.input * self.num_latents - 1


class CalculateFrameOffset(Node):
    """The frame of a latent input of a windowed run, as FizzNodes' Calculate Frame Offset:
    index when current_frame is 0, else ((current_frame - 1) * (num_latent_inputs - 1) +
    num_latent_inputs - 1 + index) modulo max_frames."""
    category = HELPER_NODES
    current_frame: int = Int(0, min=0)
    max_frames: int = Int(18, min=0)
    num_latent_inputs: int = Int(4, min=0)
    index: int = Int(4, min=0)
    outputs = {"INT": INT}
    comfy = ComfyAlias(("CalculateFrameOffset",))

    def run(self):
        if self.current_frame == 0:
            return self.index
        if self.max_frames == 0:
            raise NodeInputError("max_frames", "must be at least 1 (the offset is taken modulo it)")
        start = (self.current_frame - 1) * (self.num_latent_inputs - 1) + (self.num_latent_inputs - 1)
        return (start + self.index) % self.max_frames


# -- waves --------------------------------------------------------------------------------------


def _wave_output(value: float, name: str = "current_frame") -> tuple[float, int]:
    if not math.isfinite(value):
        raise NodeInputError(name, f"the wave's value here is {value}, not a finite number")
    return float(value), int(value)


class _Wave(Node):
    """phase, amplitude, x_translation, y_translation and current_frame, as the pack's waves have them."""
    category = WAVE_NODES
    phase: float = Float(1.0, min=0.0, max=9999.0, step=1.0)
    amplitude: float = Float(0.5, min=0.0, max=9999.0, step=0.1)
    x_translation: float = Float(0.0, min=0.0, max=9999.0, step=1.0)
    y_translation: float = Float(0.5, min=0.0, max=9999.0, step=0.05)
    current_frame: int = Int(1, min=0, max=9999)
    outputs = {"FLOAT": FLOAT, "INT": INT}

    def run(self):
        if self.phase == 0:
            raise NodeInputError("phase", "must not be 0 (the frame is divided by it)")
        return _wave_output(self.wave(self.current_frame))

    def wave(self, f: int) -> float:
        """The value at frame f (the pack's formula, in its order of operations)."""
        raise NotImplementedError


class SinWave(_Wave):
    """y_translation + amplitude * sin(2 pi current_frame / phase - x_translation), as FizzNodes'
    SinWave; FLOAT and INT (cut toward 0)."""
    comfy = ComfyAlias(("SinWave",))

    def wave(self, f):
        return self.y_translation + self.amplitude * math.sin(2 * math.pi * f / self.phase - self.x_translation)


class InvSinWave(_Wave):
    """y_translation - amplitude * sin(-(2 pi current_frame / phase - x_translation)), as
    FizzNodes' InvSinWave (the pack's formula; the same as SinWave's); FLOAT and INT."""
    comfy = ComfyAlias(("InvSinWave",))

    def wave(self, f):
        return self.y_translation + self.amplitude * -math.sin(-(2 * math.pi * f / self.phase - self.x_translation))


class CosWave(_Wave):
    """y_translation + amplitude * cos(2 pi current_frame / phase - x_translation), as FizzNodes'
    CosWave; FLOAT and INT (cut toward 0)."""
    comfy = ComfyAlias(("CosWave",))

    def wave(self, f):
        return self.y_translation + self.amplitude * math.cos(2 * math.pi * f / self.phase - self.x_translation)


class InvCosWave(_Wave):
    """y_translation - amplitude * cos(-(2 pi current_frame / phase - x_translation)), as
    FizzNodes' InvCosWave; FLOAT and INT (cut toward 0)."""
    comfy = ComfyAlias(("InvCosWave",))

    def wave(self, f):
        return self.y_translation + self.amplitude * -math.cos(-(2 * math.pi * f / self.phase - self.x_translation))


class SquareWave(_Wave):
    """y_translation + amplitude where sin(pi current_frame / phase - x_translation) is below 0,
    else y_translation, as FizzNodes' SquareWave (the pack's 0**0**(0 - sin(...)) in numpy);
    FLOAT and INT (cut toward 0)."""
    comfy = ComfyAlias(("SquareWave",))

    def wave(self, f):
        below = math.sin(math.pi * f / self.phase - self.x_translation) < 0
        return self.y_translation + self.amplitude * (1 if below else 0)


class TriangleWave(_Wave):
    """y_translation + amplitude / pi * arcsin(sin(2 pi current_frame / phase - x_translation)),
    as FizzNodes' TriangleWave; FLOAT and INT (cut toward 0)."""
    comfy = ComfyAlias(("TriangleWave",))

    def wave(self, f):
        return self.y_translation + self.amplitude / math.pi * math.asin(
            math.sin(2 * math.pi * f / self.phase - self.x_translation))


class SawtoothWave(Node):
    """start_value + step_increment * (current_frame mod phase) - x_translation, as FizzNodes'
    SawtoothWave; FLOAT and INT (cut toward 0)."""
    category = WAVE_NODES
    phase: float = Float(1.0, min=0.0, max=9999.0, step=1.0)
    step_increment: float = Float(0.5, min=0.0, max=9999.0, step=0.1)
    x_translation: float = Float(0.0, min=0.0, max=9999.0, step=1.0)
    start_value: float = Float(0.5, min=0.0, max=9999.0, step=0.05)
    current_frame: int = Int(1, min=0, max=9999)
    outputs = {"FLOAT": FLOAT, "INT": INT}
    comfy = ComfyAlias(("SawtoothWave",))

    def run(self):
        if self.phase == 0:
            raise NodeInputError("phase", "must not be 0 (the frame is taken modulo it)")
        return _wave_output(self.start_value + (self.step_increment * (self.current_frame % self.phase)
                                                - self.x_translation))


class _AbsWave(Node):
    category = WAVE_NODES
    phase: float = Float(1.0, min=0.0, max=9999.0, step=1.0)
    amplitude: float = Float(0.5, min=0.0, max=9999.0, step=0.1)
    x_translation: float = Float(0.0, min=0.0, max=9999.0, step=1.0)
    max_value: float = Float(0.5, min=0.0, max=9999.0, step=0.05)
    current_frame: int = Int(1, min=0, max=9999)
    outputs = {"FLOAT": FLOAT, "INT": INT}

    def run(self):
        if self.phase == 0:
            raise NodeInputError("phase", "must not be 0 (the frame is divided by it)")
        return _wave_output(self.max_value - abs(self.wave(self.current_frame / self.phase)) * self.amplitude)


class AbsCosWave(_AbsWave):
    """max_value - |cos(current_frame / phase)| * amplitude, as FizzNodes' AbsCosWave
    (x_translation unused, as in the pack); FLOAT and INT (cut toward 0)."""
    comfy = ComfyAlias(("AbsCosWave",))
    wave = staticmethod(math.cos)


class AbsSinWave(_AbsWave):
    """max_value - |sin(current_frame / phase)| * amplitude, as FizzNodes' AbsSinWave
    (x_translation unused, as in the pack); FLOAT and INT (cut toward 0)."""
    comfy = ComfyAlias(("AbsSinWave",))
    wave = staticmethod(math.sin)


class Lerp(Node):
    """strength - strength / num_Images * current_frame, as FizzNodes' Lerp (a straight fall
    from strength at frame 0 to 0 at frame num_Images); FLOAT and INT (cut toward 0)."""
    category = WAVE_NODES
    num_Images: float = Float(1.0, min=0.0, max=9999.0, step=1.0)
    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)
    current_frame: int = Int(1, min=0, max=9999)
    outputs = {"FLOAT": FLOAT, "INT": INT}
    comfy = ComfyAlias(("Lerp",))

    def run(self):
        if self.num_Images == 0:
            raise NodeInputError("num_Images", "must not be 0 (strength is divided by it)")
        return _wave_output(self.strength - self.strength / self.num_Images * self.current_frame)
