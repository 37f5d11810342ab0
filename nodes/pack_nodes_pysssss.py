"""ComfyUI-Custom-Scripts' (pysssss's) backend nodes, under the pack's class names, inputs and
outputs: Checkpoint Loader and Lora Loader (the core loaders with the pack's example picker),
String Function, Math Expression, Constrain Image (and for Video), Repeater, Load Text and Save
Text, Play Sound and System Notification (editor effects: the backend only passes values on),
and Reroute Primitive. (Its Show Text is ShowLinkedText in nodes/primitives.py.)"""

from __future__ import annotations

import ast
import json
import math
import operator
import random
import re

from graphflow.api import ANY, FLOAT, IMAGE, INT, STRING, Bool, Choice, ComfyAlias, Float, Int, ListOf, Node, \
    NodeInputError, Text, folders, safe_join, show, warn, workflow_texts
from graphflow.folders import UnsafePathError
from nodes.image import MAX_SIZE
from nodes.loaders import LoadCheckpoint, LoadLoRA
from nodes.pack_nodes import _BINARY, _COMPARE, POWER_LIMIT, _operator, image_or_latent_size
from nodes.strings import _guarded, fits

COMFY_PACK = "ComfyUI-Custom-Scripts (pysssss)"  # the custom node pack this module's ComfyUI classes come from

# -- loaders ------------------------------------------------------------------------------------


class PysssssCheckpointLoader(LoadCheckpoint):
    """Load a checkpoint as CheckpointLoaderSimple does, as pysssss's Checkpoint Loader does. The
    pack's editor adds an `example` list of the prompts saved next to the checkpoint and a
    `prompt` box showing the chosen one; the prompt's text is given on as `example` (the list
    itself does nothing here, and a picture shown in the file list is the editor's)."""
    example: str = Text("[none]")
    prompt: str = Text("", multiline=True)
    outputs = {"MODEL": LoadCheckpoint.outputs["model"], "CLIP": LoadCheckpoint.outputs["clip"],
               "VAE": LoadCheckpoint.outputs["vae"], "example": STRING}
    comfy = ComfyAlias(("CheckpointLoader|pysssss",), inputs={"ckpt_name": "checkpoint"})

    @classmethod
    def fingerprint(cls, checkpoint, **widgets):
        return super().fingerprint(checkpoint)

    def run(self):
        return (*super().run(), self.prompt)


class PysssssLoraLoader(LoadLoRA):
    """Apply a LoRA as LoraLoader does, as pysssss's Lora Loader does, also giving the LoRA's
    file name (the pack's versions before 2025 gave the chosen example's prompt there). The
    pack's editor adds an `example` list of the prompts saved next to the LoRA and a `prompt` box
    showing the chosen one; neither changes what is loaded."""
    example: str = Text("[none]")
    prompt: str = Text("", multiline=True)
    outputs = {"MODEL": LoadLoRA.outputs["model"], "CLIP": LoadLoRA.outputs["clip"], "lora_name": STRING}
    comfy = ComfyAlias(("LoraLoader|pysssss",))

    @classmethod
    def fingerprint(cls, lora_name, **widgets):
        return super().fingerprint(lora_name)

    def run(self):
        return (*super().run(), self.lora_name)


# -- text -------------------------------------------------------------------------------------


def string_function(action: str, tidy_tags: bool, a: str, b: str, c: str) -> str:
    """pysssss's String Function: "append" joins the non-empty texts (with ", " when tidying
    tags); "replace" replaces b in a by c, b being a regular expression when written /like this/.
    Tidying then folds double spaces, " ," and ",," once each, as the pack does. As strings.py's
    nodes, an expression that backtracks too long is stopped and a result over MAX_TEXT refused."""
    if action == "append":
        out = (", " if tidy_tags else "").join(t for t in (a, b, c) if t)
    elif b.startswith("/") and b.endswith("/"):  # a lone "/" too: the empty expression, as in the pack
        out = regex_replace(a, b[1:-1], c)
    else:
        fits(len(a) + a.count(b) * (len(c) - len(b)), "text_c")  # "" is found between every character
        out = a.replace(b, c)
    if tidy_tags:
        out = out.replace("  ", " ").replace(" ,", ",").replace(",,", ",").replace(",,", ",")
    return out


def regex_replace(text: str, expression: str, replace: str, expression_input: str = "text_b",
                  replace_input: str = "text_c") -> str:
    """re.sub(expression, replace, text), as the pack runs it, guarded as RegexReplace is; errors
    name the inputs the expression and the replacement came from."""
    try:
        pattern = re.compile(expression)
    except (re.error, ValueError, OverflowError, RecursionError) as e:
        raise NodeInputError(expression_input, f"not a regular expression: /{expression}/ ({e})") from None
    try:
        pattern.sub(replace, "")  # re reads the template before matching: a bad one fails with no match too
    except (re.error, IndexError) as e:
        raise NodeInputError(replace_input, f"not a valid replacement for /{expression}/: {e}") from None
    growth = [len(text)]

    def expand(match):  # the template filled in, its size counted as the result grows
        filled = match.expand(replace)
        growth[0] += len(filled) - (match.end() - match.start())
        fits(growth[0], replace_input)
        return filled

    return _guarded(pattern, text, every_match=True, input_name=expression_input).sub(expand, text)


class PysssssStringFunction(Node):
    """Append or replace text, as pysssss's String Function does: "append" joins text_a, text_b
    and text_c (the empty ones left out; with tidy_tags by ", "), "replace" replaces text_b in
    text_a by text_c (text_b written /like this/ is a regular expression, text_c may then use
    \\1 ...). tidy_tags also folds double spaces and doubled commas. Shows and gives the result."""
    category = "utils"
    output_node = True
    action: str = Choice(("append", "replace"), "append")
    tidy_tags: str = Choice(("yes", "no"), "yes")
    text_a: str = Text("", multiline=True)
    text_b: str = Text("", multiline=True)
    text_c: str = Text("", multiline=True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("StringFunction|pysssss",))

    def run(self):
        # the pack's editor sends an unconnected converted text as "undefined"
        texts = ["" if t == "undefined" else t for t in (self.text_a, self.text_b, self.text_c)]
        out = string_function(self.action, self.tidy_tags == "yes", *texts)
        show(text=[out])
        return out


# -- Math Expression --------------------------------------------------------------------------


def _round(a, b=None):
    """round(a, b); for a whole number a, b is first raised to -(a.bit_length() // 3 + 2), past
    a's digits: the result is 0 all the same, without Python working out 10 ** -b (round(1,
    -10**8) would take minutes and gigabytes)."""
    if isinstance(a, int) and isinstance(b, int):
        b = max(b, -(a.bit_length() // 3 + 2))
    return round(a, b)


# name: (fewest, most arguments (None: any), function), as the pack allows them
MATH_FUNCTIONS = {
    "round": (1, 2, _round),
    "ceil": (1, 1, math.ceil),
    "floor": (1, 1, math.floor),
    "min": (2, None, min),
    "max": (2, None, max),
    "randomint": (2, 2, lambda a, b: random.randint(a, b)),
    "randomchoice": (2, None, lambda *args: random.choice(args)),
    "sqrt": (1, 1, math.sqrt),
    "int": (1, 1, int),
    "iif": (3, 3, lambda a, b, c: b if a else c),
}
# Math Expression's operators beyond SimpleMath+'s (whose + - * / // ** % it shares)
_MATH_BINARY = {**_BINARY, ast.BitXor: operator.xor, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
                ast.RShift: operator.rshift, ast.LShift: operator.lshift}
_MATH_UNARY = {ast.USub: operator.neg, ast.Invert: operator.invert, ast.Not: lambda a: 0 if a else 1}
SHIFT_LIMIT = 4096  # bigger left shifts make numbers too big to work with
MAX_BITS = 1 << 16  # the biggest whole number a power may give (about 20,000 digits)


def math_expression(expression: str, names: dict, widget=None):
    """The value of pysssss's Math Expression, walked node by node under the pack's grammar:
    numbers; a, b, c (numbers; an image or latent only as a.width / a.height, a latent's
    times 8); Node.widget for another node's widget value (`widget(node, name)`); + - * / // **
    % ^ & | << >> (whole numbers stay whole, others become floats), unary - ~ not; and/or of
    the first two operands (1 or 0); a comparison of the first two operands (1 or 0); calls of
    round ceil floor min max randomint randomchoice sqrt int iif. Anything else is an error;
    nothing is evaluated by Python itself. Unlike the pack, exponents above POWER_LIMIT, whole
    powers above MAX_BITS bits and shifts above SHIFT_LIMIT are refused."""
    def number(node):
        v = value(node)
        return v if isinstance(v, int) else float(v)

    def binary(op, left, right):
        left, right = number(left), number(right)
        # whole numbers grow without bound: refuse results of more than MAX_BITS bits
        if isinstance(op, ast.Pow) and (abs(right) > POWER_LIMIT or isinstance(left, int) and isinstance(right, int)
                                        and left.bit_length() * right > MAX_BITS) or \
                isinstance(op, ast.LShift) and isinstance(right, int) and right > SHIFT_LIMIT:
            raise ValueError(f"{right} is too big a power or shift")
        return _operator(_MATH_BINARY, op)(left, right)

    def value(node):
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
                return node.value
            raise ValueError(f"{node.value!r} is not a number")
        if isinstance(node, ast.BinOp):
            return binary(node.op, node.left, node.right)
        if isinstance(node, ast.BoolOp):  # the pack looks at the first two operands only
            left, right = number(node.values[0]), number(node.values[1])
            return int(bool(left and right) if isinstance(node.op, ast.And) else bool(left or right))
        if isinstance(node, ast.UnaryOp):
            return _operator(_MATH_UNARY, node.op)(value(node.operand))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in names and node.attr in ("width", "height"):
                return _size(names[node.value.id], node.value.id, node.attr)
            if widget is None:
                raise NameError(f"Node not found: {node.value.id}.{node.attr}")
            return widget(node.value.id, node.attr)
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise NameError(f"Name not found: {node.id}")
            given = names[node.id]
            if not isinstance(given, (int, float)):
                raise TypeError(f"{node.id} is not a number (an image or latent needs {node.id}.width or "
                                f"{node.id}.height)")
            return given
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id not in MATH_FUNCTIONS:
                raise NameError(f"Invalid function call: {node.func.id}")
            fewest, most, function = MATH_FUNCTIONS[node.func.id]
            if len(node.args) < fewest or most is not None and len(node.args) > most:
                span = " or more" if most is None else f" to {most}"
                raise ValueError(f"Invalid function call: {node.func.id} requires {fewest}{span} arguments")
            return function(*[value(a) for a in node.args])
        if isinstance(node, ast.Compare):  # the pack compares the first two operands only
            return int(_operator(_COMPARE, node.ops[0])(value(node.left), value(node.comparators[0])))
        raise ValueError(f"{type(node).__name__} is not part of Math Expression's grammar")

    return value(ast.parse(expression.replace("\n", " ").replace("\r", ""), mode="eval").body)


def _size(target, name: str, side: str) -> int:
    """An image's (or mask's) width or height, or a latent's times 8, for a.width / a.height."""
    size = image_or_latent_size(target)
    if size is None:
        raise TypeError(f"{name}.{side}: {name} is not an image or latent")
    return size[0 if side == "width" else 1]


def comfy_widgets():
    """widget(node_name, widget): the value of a widget of another node of the running workflow,
    found as Math Expression finds it: the first node of the editor's graph whose "Node name for
    S&R" (else class), or else title, is node_name; its input in the queued (API) graph. The
    workflow is parsed once, at the first widget read."""
    parsed = []

    def widget(node_name: str, name: str):
        if not parsed:
            texts = workflow_texts()
            parsed.extend((json.loads(texts.get("workflow") or "{}"), json.loads(texts.get("prompt") or "{}")))
        graph, prompt = parsed
        for node in graph.get("nodes") or []:
            found = (node.get("properties") or {}).get("Node name for S&R", node.get("type"))
            if found == node_name or node.get("title") == node_name:
                inputs = (prompt.get(str(node.get("id"))) or {}).get("inputs") or {}
                if name in inputs:
                    return inputs[name]
                raise NameError(f"Widget not found: {node_name}.{name}")
        raise NameError(f"Node not found: {node_name}.{name}")

    return widget


class PysssssMathExpression(Node):
    """Work out a formula, as pysssss's Math Expression does: numbers and a, b, c (numbers; an
    image or latent as a.width / a.height, a latent's size times 8), another node's widget as
    NodeName.widget (its "Node name for S&R", class or title), + - * / // ** % ^ & | << >>,
    unary - ~ not, and/or and comparisons giving 1 or 0 (of their first two operands, as in the
    pack), and round(x, dp) ceil floor sqrt int min max randomint(lo, hi) randomchoice(...)
    iif(test, yes, no). Shows the value and gives it as an integer (cut toward 0) and a float.
    A formula using random runs again every time."""
    category = "utils"
    output_node = True
    expression: str = Text("", multiline=True)
    a: ANY = None
    b: ANY = None
    c: ANY = None
    outputs = {"INT": INT, "FLOAT": FLOAT}
    comfy = ComfyAlias(("MathExpression|pysssss",))

    @classmethod
    def fingerprint(cls, expression="", **widgets):
        # random draws, and other nodes' widgets (not among this node's inputs), are read anew each run;
        # a name is tried from its start only (?<!\w), else a long run of letters takes quadratic time
        if "random" in expression or re.search(r"(?<!\w)[A-Za-z_]\w*\.(?!width\b|height\b)", expression):
            return random.random()
        return None

    def run(self):
        names = {"a": self.a, "b": self.b, "c": self.c}
        try:
            result = math_expression(self.expression, names, comfy_widgets())
            finite = isinstance(result, int) or isinstance(result, float) and math.isfinite(result)
            outputs = (int(result), float(result)) if finite else None  # float() of 2**1024 or more overflows
        except SyntaxError as e:
            raise NodeInputError("expression", f"not a formula: {self.expression!r} ({e.msg})") from None
        except (TypeError, ValueError, NameError, ZeroDivisionError, OverflowError, IndexError, KeyError) as e:
            raise NodeInputError("expression", f"{self.expression!r} can't be worked out: {e}") from None
        except (RecursionError, MemoryError):  # Python's parser reports very deep nesting as either
            raise NodeInputError("expression", f"{self.expression!r} is nested too deeply (or is too big) to be "
                                               "worked out") from None
        if outputs is None:
            raise NodeInputError("expression", f"{self.expression!r} gives {result!r}, not a finite number")
        show(value=[result])
        return outputs


# -- images -------------------------------------------------------------------------------------

def constrain_size(width: int, height: int, max_width: int, max_height: int, min_width: int, min_height: int,
                   crop: bool) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    """Constrain Image's (size to resize to, (left, top, right, bottom) crop or None) for a
    width x height image, with the pack's arithmetic (whole pixels cut toward 0)."""
    aspect = width / height
    new_width = max(min(width, min_width), max_width)
    new_height = max(min(height, min_height), max_height)
    if new_width / new_height > aspect:
        new_width = max(int(new_height * aspect), min_width)
        if crop:
            new_height = int(height / (width / new_width))
    else:
        new_height = max(int(new_width / aspect), min_height)
        if crop:
            new_width = int(width / (height / new_height))
    box = None
    if crop and (new_width > max_width or new_height > max_height):
        left, top = max((new_width - max_width) // 2, 0), max((new_height - max_height) // 2, 0)
        box = (left, top, min(new_width, max_width) + left, min(new_height, max_height) + top)
    return (new_width, new_height), box


def constrain_images(node, images) -> list:
    """Each image of the batch constrained (Constrain Image's sizes, Pillow's Lanczos on its 8-bit
    RGB picture, as the pack resizes), one [1, H, W, 3] tensor each."""
    from graphflow.images import pil_resize

    out = []
    for image in images:
        rgb = image[..., :3] if image.shape[-1] >= 3 else image[..., :1].expand(-1, -1, 3)
        try:
            (width, height), box = constrain_size(rgb.shape[1], rgb.shape[0], node.max_width, node.max_height,
                                                  node.min_width, node.min_height, node.crop_if_required == "yes")
        except ZeroDivisionError:
            raise NodeInputError("max_width", "the sizes give a side of 0 pixels: expected max_width and "
                                              "max_height above 0") from None
        if width < 1 or height < 1:
            raise NodeInputError("max_width", f"the {rgb.shape[1]}x{rgb.shape[0]} image would be resized to "
                                              f"{width}x{height}: expected at least 1x1")
        resized = pil_resize(rgb[None].movedim(-1, 1), width, height, "LANCZOS").movedim(1, -1)
        if box is not None:
            left, top, right, bottom = box
            resized = resized[:, top:bottom, left:right, :]
        out.append(resized)
    return out


class PysssssConstrainImage(Node):
    """Resize each image to the largest size of its aspect within max_width x max_height (a
    smaller one grows), at least min_width x min_height (the aspect then given up), as pysssss's
    Constrain Image does (Lanczos on its 8-bit RGB picture); with crop_if_required "yes", a
    side pushed past the box by a minimum is cut off about the middle instead. Gives a list of
    single images (their sizes may differ)."""
    category = "image/transform"
    images: IMAGE
    max_width: int = Int(1024, min=0, max=MAX_SIZE)
    max_height: int = Int(1024, min=0, max=MAX_SIZE)
    min_width: int = Int(0, min=0, max=MAX_SIZE)
    min_height: int = Int(0, min=0, max=MAX_SIZE)
    crop_if_required: str = Choice(("yes", "no"), "no")
    outputs = {"IMAGE": ListOf(IMAGE)}
    comfy = ComfyAlias(("ConstrainImage|pysssss",))

    def run(self):
        return constrain_images(self, self.images)


class PysssssConstrainImageForVideo(PysssssConstrainImage):
    """Constrain Image for a batch of frames, as pysssss's Constrain Image for Video does: each
    frame resized as Constrain Image resizes it, the frames given as one batch (so all of one
    size, as a video's frames are)."""
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ConstrainImageforVideo|pysssss",))

    def run(self):
        import torch

        frames = constrain_images(self, self.images)
        return torch.cat(frames, dim=0)


# -- lists and pass-throughs ----------------------------------------------------------------------

class PysssssRepeater(Node):
    """Repeat a value into a list, as pysssss's Repeater does: the nodes after it run once per
    item. output "single" gives one list of `repeats` items; "multi" (the pack's editor splits
    the node into copies when queueing) can't be done here and is refused. node_mode "create"
    makes the pack's editor copy the source node for each repeat, so random nodes draw anew;
    here the one value is repeated, with a warning."""
    category = "utils"
    source: ANY
    repeats: int = Int(2, min=0, max=5000)
    output: str = Choice(("single", "multi"), "single")
    node_mode: str = Choice(("reuse", "create"), "reuse")
    outputs = {"*": ListOf(ANY)}
    comfy = ComfyAlias(("Repeater|pysssss",))

    def run(self):
        if self.output == "multi":
            raise NodeInputError("output", "\"multi\" splits the node into copies in the pack's editor, which "
                                           "graphflow doesn't do: expected \"single\"")
        if self.node_mode == "create":
            warn("node_mode \"create\" copies the source node in the pack's editor; here its one value is repeated")
        return [self.source] * self.repeats


class _EditorEffect:
    """What Play Sound and System Notification share: their effect is the pack's editor's; the
    backend passes `any` on and always runs."""
    category = "utils"
    output_node = True
    input_is_list = True

    @classmethod
    def fingerprint(cls, **widgets):
        return random.random()  # the pack runs it every time, so the editor plays it every time

    def run(self):
        show(a=[])  # the message the pack's editor plays its sound or shows its notification on
        return self.any


class PysssssPlaySound(_EditorEffect, Node):
    """Play a sound in the editor when the run gets here, as pysssss's PlaySound does: the sound
    (mode, volume) is the pack's editor's effect; the backend passes `any` on and always runs."""
    any: ANY
    mode: str = Choice(("always", "on empty queue"), "always")
    volume: float = Float(0.5, min=0.0, max=1.0, step=0.1)
    outputs = {"*": ListOf(ANY)}
    comfy = ComfyAlias(("PlaySound|pysssss",))


class PysssssSystemNotification(_EditorEffect, Node):
    """Show a desktop notification when the run gets here, as pysssss's SystemNotification does:
    the notification (message, mode) is the pack's editor's effect; the backend passes `any` on
    and always runs."""
    message: str = Text("Your notification has triggered.")
    any: ANY
    mode: str = Choice(("always", "on empty queue"), "always")
    outputs = {"*": ListOf(ANY)}
    comfy = ComfyAlias(("SystemNotification|pysssss",))


class PysssssReroutePrimitive(Node):
    """Pass a value on, as pysssss's Reroute Primitive does. In the pack's editor a Reroute
    Primitive with nothing linked in holds a widget for what it feeds; such a one is read as
    that value, from a saved editor graph and from an API graph (as the Primitive of it)."""
    category = "utils"
    value: ANY
    outputs = {"*": ANY}
    comfy = ComfyAlias(("ReroutePrimitive|pysssss",))

    def run(self):
        return self.value


# -- text files ---------------------------------------------------------------------------------

# the pack's default user/text_file_dirs.json: the input, output and temp folders' *.txt files
TEXT_DIRS = ("input", "output", "temp")


def text_file(root_dir: str, name: str):
    """The file `name` in the folder root_dir names; names leaving the folder are refused. (The
    pack makes the folder here; Save Text makes it when it writes, so that planning a run, which
    reads Load Text's fingerprint, makes no folders.)"""
    base = {"input": folders.inputs, "output": folders.outputs, "temp": folders.temp}[root_dir]
    if not name or not name.strip() or name == "[none]":
        raise NodeInputError("file", "no file chosen: expected a file name")
    try:
        return safe_join(base, name)
    except UnsafePathError as e:
        raise NodeInputError("file", str(e)) from None


def text_and_name(path, name: str) -> tuple[str, str]:
    """A text file's contents and the pack's name for it (up to the first dot)."""
    try:
        return path.read_text(encoding="utf-8"), name.split(".")[0]
    except FileNotFoundError:
        raise NodeInputError("file", f"no file {name!r} in the folder") from None
    except (OSError, UnicodeDecodeError) as e:
        raise NodeInputError("file", f"can't read {name!r}: {e}") from None


class PysssssLoadText(Node):
    """Read a text file from the input, output or temp folder, as pysssss's Load Text does
    (names may hold subfolders, never leave the folder). Gives the text and the file's name up
    to its first dot."""
    category = "utils"
    root_dir: str = Choice(TEXT_DIRS, "input")
    file: str = Text("[none]")
    outputs = {"text": STRING, "file": STRING}
    comfy = ComfyAlias(("LoadText|pysssss",))

    @classmethod
    def fingerprint(cls, root_dir="input", file="[none]"):
        try:
            return text_file(root_dir, file).stat().st_mtime_ns
        except (NodeInputError, OSError):
            return None  # run() names the problem

    def run(self):
        return text_and_name(text_file(self.root_dir, self.file), self.file)


class PysssssSaveText(Node):
    """Write text to a file in the input, output or temp folder, as pysssss's Save Text does:
    "append" adds to its end (with insert, after a new line when the file isn't empty),
    "overwrite" replaces it, "new only" refuses a file that exists. Missing subfolders are made
    (the pack fails on them); names never leave the folder, and of the input folder's files
    (images, masks) only .txt files are appended to or overwritten. Gives the file's whole text
    and its name up to the first dot; always runs."""
    category = "utils"
    output_node = True
    root_dir: str = Choice(TEXT_DIRS, "input")
    file: str = Text("file.txt")
    append: str = Choice(("append", "overwrite", "new only"), "append")
    insert: bool = Bool(True)
    text: STRING
    outputs = {"text": STRING, "file": STRING}
    comfy = ComfyAlias(("SaveText|pysssss",))

    @classmethod
    def fingerprint(cls, **widgets):
        return random.random()  # writing is the point: never skipped as cached

    def run(self):
        path = text_file(self.root_dir, self.file)
        # the input folder holds the user's images and masks: of its files only text files (the
        # pack's lists show *.txt) may be appended to or overwritten
        if self.append != "new only" and folders.inputs.resolve() in path.parents and path.exists() \
                and not path.name.endswith(".txt"):
            raise NodeInputError("file", f"{self.file!r} is a file of the input folder that isn't a .txt file: "
                                         f"expected a .txt file to {self.append} (or another name)")
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = {"append": "a", "overwrite": "w"}.get(self.append, "x")  # "x": checks and creates in one step
        try:
            with open(path, mode, encoding="utf-8") as f:
                if f.tell() != 0 and self.insert:
                    f.write("\n")
                f.write(self.text)
        except FileExistsError:
            raise NodeInputError("file", f"{self.file!r} already exists and append is \"new only\"") from None
        except OSError as e:
            raise NodeInputError("file", f"can't write {self.file!r}: {e}") from None
        return text_and_name(path, self.file)
