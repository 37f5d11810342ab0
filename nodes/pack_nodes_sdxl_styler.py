"""twri's SDXL Prompt Styler (sdxl_prompt_styler), under the pack's class names, inputs and outputs,
as read at twri/sdxl_prompt_styler: sdxl_prompt_styler.py at 2631e88c227d8b104d8ffb3ba7d7a5815dd50170
(SDXLPromptStyler, SDXLPromptStylerAdvanced: one `style` list from every *.json beside the code) and
at 66f4f131eaa9afb44e1bc5b0680913c62c0986b5 (the category stylers: one node per data/<folder>, a
Perfection Styler of eleven folders, each with an Advanced twin).

- SDXL Prompt Styler: a style's "prompt" template with {prompt} replaced by text_positive, its
  "negative_prompt" joined with text_negative by ", "; style_positive / style_negative off keep
  that side's text as given; log_prompt logs what was made.
- SDXL Prompt Styler Advanced: the template split at its first " . " into a G part and an L part,
  text_positive_l joined to the L part, copy_to_l merging G's tokens into L, negative_prompt_to
  choosing which of the G / L negatives get the negative.
- Artist / Camera / Composition / Depth / Environment / Filter / Focus / Lighting / Milehigh / Mood
  / Subject / Theme / Timeofday / Perfection Styler (and each "Advanced"): a list per data folder,
  the chosen templates applied one after another.

The style data: the pack's MIT-licensed sdxl_styles.json (at ff89f24baaa1ae6eb5e1e77e455456e75d75cb70:
its 104 sai-, ads-, artstyle-, futuristic-, game-, misc-, papercraft- and photo- styles),
sdxl_styles_base.json and sdxl_styles_diva.json are shipped in graphflow/data/sdxl_prompt_styler
(byte for byte, with the pack's LICENSE); more style files in the pack's shape (a JSON list of
{"name", "prompt", "negative_prompt"}) are read from the `styles` folder (models/styles/*.json), so
the pack's other style files work when dropped there. A style needs a text name and prompt (an
entry without them is left out on its own, with a warning; the pack drops the whole file); a
missing or null negative_prompt is empty, as the pack reads it. The category stylers are the pack's
fixed folders (the thirteen above and the Perfection Styler): each reads
models/styles/<folder>/*.json, where the pack's data/ folders (Artists.json alone is a megabyte, so
none is shipped) are used by copying them; a folder of the user's own there gets no node, as in
the pack. Left out: nothing of the nodes' behaviour; the pack reads its files in the order the
file system lists them, here shipped files then the folder's, each in name order (which decides
which of two same-named styles gets the "_1" suffix).
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from importlib import resources
from pathlib import Path

from graphflow.api import STRING, Bool, Choice, ComfyAlias, Node, NodeInputError, Text, closest_choices, \
    folders, warn
from graphflow.folders import DATA_KINDS, UnsafePathError

COMFY_PACK = "sdxl_prompt_styler"  # the custom node pack this module's ComfyUI classes come from

log = logging.getLogger(__name__)

STYLES_KIND = "styles"  # models/styles: the user's style files (graphflow/folders.py DATA_KINDS)
SHIPPED = Path(str(resources.files("graphflow").joinpath("data", "sdxl_prompt_styler")))
MAX_STYLE_FILE = 32 * 2 ** 20  # bytes read from one style file (the pack's largest, Artists.json, is 1 MB)


# -- reading style files ----------------------------------------------------------------------------


def style_file_state(path: Path) -> tuple:
    """A style file's cache key: its path, modification time and size (Mikey's and comfy_mtb's
    style readers key their caches by it too)."""
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


def _style_files(subfolder: str | None = None) -> list[Path]:
    """The shipped style files (for the main styler), then the `styles` folder's: its top level
    for the main styler, <subfolder>/ for a category styler, each in name order."""
    shipped = sorted(SHIPPED.glob("*.json")) if subfolder is None else []
    user = []
    for name in folders.list_files_inside(STYLES_KIND, DATA_KINDS[STYLES_KIND]):
        folder, _, _ = name.rpartition("/")
        if folder == (subfolder or ""):
            try:
                user.append(folders.find_model(STYLES_KIND, name, inside=True))
            except (FileNotFoundError, UnsafePathError):
                continue
    return [*shipped, *user]


def _style_problem(item) -> str | None:
    """Why one entry of a style file is not a style, or None."""
    if not isinstance(item, dict):
        return f"a {type(item).__name__}, not an object"
    for key in ("name", "prompt"):
        if not isinstance(item.get(key), str):
            return f"its {key!r} is {'missing' if key not in item else type(item[key]).__name__}, not text"
    if not isinstance(item.get("negative_prompt", ""), str | None):
        return f"its 'negative_prompt' is {type(item['negative_prompt']).__name__}, not text"
    return None


def _read_templates(state: tuple) -> list[dict]:
    """A style file's templates: each entry with a text name and prompt, its negative_prompt text
    (missing or null read as "", as the pack's template.get(...) and its joins read them); an entry
    that is not such a style is left out on its own, with a warning (the pack's loader drops the
    whole file for one entry missing a key, and fails at run time on a non-text prompt). A file
    that isn't a JSON list, can't be read or is too large is left out with a warning."""
    path = Path(state[0])
    if state[2] > MAX_STYLE_FILE:
        warn(f"style file {path.name} is larger than {MAX_STYLE_FILE:,} bytes: left out")
        return []
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        warn(f"style file {path.name} could not be read: {e}")
        return []
    if not isinstance(content, list):
        warn(f"style file {path.name} is a JSON {type(content).__name__}, not a list of styles: left out")
        return []
    templates, skipped = [], []
    for index, item in enumerate(content):
        problem = _style_problem(item)
        if problem is not None:
            skipped.append(f"entry {index} ({problem})")
            continue
        templates.append({**item, "negative_prompt": item.get("negative_prompt") or ""})
    if skipped:
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        warn(f"style file {path.name}: left out {', '.join(skipped[:3])}{more}: a style needs a text "
             f"name and prompt")
    return templates


@lru_cache(maxsize=8)
def _combined(states: tuple) -> dict[str, dict]:
    """{style name: template} of these files, in order; a name seen before is given the first free
    suffix _1, _2 ..., as the pack renames duplicates."""
    styles: dict[str, dict] = {}
    next_suffix: dict[str, int] = {}  # per name, the suffix to try first: those below it are taken
    for state in states:
        for template in _read_templates(state):
            name = base = template["name"]
            suffix = next_suffix.get(base, 1)
            while name in styles:
                name = f"{base}_{suffix}"
                suffix += 1
            next_suffix[base] = suffix
            styles[name] = template
    return styles


@lru_cache(maxsize=32)
def _grouped(states: tuple) -> dict[str, dict]:
    """{style name: template} of a category folder's files: a later same name replaces the
    earlier one's template where it stands, as the pack's per-folder dictionary does."""
    styles: dict[str, dict] = {}
    for state in states:
        for template in _read_templates(state):
            styles[template["name"]] = template
    return styles


def all_styles() -> dict[str, dict]:
    """The main stylers' styles: shipped files, then the `styles` folder's top level."""
    return _combined(tuple(style_file_state(p) for p in _style_files()))


def category_styles(folder: str) -> dict[str, dict]:
    """A category styler's styles: the `styles` folder's <folder>/*.json."""
    return _grouped(tuple(style_file_state(p) for p in _style_files(folder)))


def style_names() -> list[str]:
    return list(all_styles())


def find_style(styles: dict[str, dict], name: str, input_name: str, where: str) -> dict:
    """The template of a style name, else a NodeInputError naming the input and the closest names."""
    if name in styles:
        return styles[name]
    close = closest_choices(name, list(styles))  # as a refused choice names them
    hint = f"; closest: {', '.join(map(repr, close))}" if close else ""
    raise NodeInputError(input_name, f"no style {name!r} in {where}{hint}")


# -- the pack's template rules ------------------------------------------------------------------------


def join_negative(template_negative: str, negative: str) -> str:
    """The template's negative and the given one, joined by ", " when both are there."""
    return ", ".join(text for text in (template_negative, negative) if text)


def style_prompt(template: dict, positive: str, negative: str) -> tuple[str, str]:
    """SDXL Prompt Styler's rule: every {prompt} in the template replaced by the positive text (a
    template without {prompt} gives itself: the positive text is dropped), the negatives joined."""
    return template["prompt"].replace("{prompt}", positive), join_negative(template["negative_prompt"], negative)


def split_g_l(template_prompt: str) -> tuple[str, str]:
    """The Advanced styler's split: the G part before the first " . ", the L part after it, both
    stripped; a template with no " . " is all G."""
    if " . " not in template_prompt:
        return template_prompt, ""
    g_part, l_part = template_prompt.split(" . ", 1)
    return g_part.strip(), l_part.strip()


def merge_tokens(first: str, second: str) -> str:
    """copy_to_l's merge: the comma-separated tokens of first, then those of second that first
    lacks (each of first's tokens taken out of second once), joined by ", "."""
    if not second or not first:
        return first or second
    tokens_first = [t.strip() for t in first.split(",")]
    tokens_second = [t.strip() for t in second.split(",")]
    for token in tokens_first:
        if token in tokens_second:
            tokens_second.remove(token)
    return ", ".join(tokens_first + tokens_second)


def negatives_to(negative: str, negative_prompt_to: str) -> tuple[str, str]:
    """(G negative, L negative): the negative where negative_prompt_to sends it, else empty."""
    return (negative if negative_prompt_to in ("Both", "G only") else "",
            negative if negative_prompt_to in ("Both", "L only") else "")


def _log(lines: dict) -> None:
    for key, value in lines.items():
        log.info("%s: %s", key, value)


# -- the main stylers -------------------------------------------------------------------------------


class _MainStyler(Node):
    """The two main stylers' re-run rule: their style files' paths, times and sizes."""

    @classmethod
    def fingerprint(cls, **widgets):
        return repr(tuple(style_file_state(p) for p in _style_files()))


class SDXLPromptStyler(_MainStyler):
    """Style a prompt with a template, as twri's SDXL Prompt Styler: the style's "prompt" with
    every {prompt} replaced by text_positive (a template without {prompt} is used as it is, the
    text dropped), its "negative_prompt" and text_negative joined by ", " (either alone if the
    other is empty). style_positive / style_negative off give that text unstyled; log_prompt logs
    the texts. Styles: the pack's SAI (sai-...), base and Diva styles, and every style file (a JSON list of
    {"name", "prompt", "negative_prompt"}) in models/styles (an entry without a text name and prompt
    is left out; a missing or null negative_prompt is empty); a name met again gets _1, _2 ... An
    unknown style is refused, naming the closest ones."""
    category = "utils"
    text_positive: str = Text("", multiline=True)
    text_negative: str = Text("", multiline=True)
    style: str = Choice(style_names)
    log_prompt: bool = Bool(True, label_on="yes", label_off="no")
    style_positive: bool = Bool(True, label_on="yes", label_off="no")
    style_negative: bool = Bool(True, label_on="yes", label_off="no")
    outputs = {"text_positive": STRING, "text_negative": STRING}
    comfy = ComfyAlias(("SDXLPromptStyler",))

    def run(self):
        template = find_style(all_styles(), self.style, "style", "the style files (shipped and models/styles)")
        positive, negative = style_prompt(template, self.text_positive, self.text_negative)
        if not self.style_positive:
            positive = self.text_positive
        if not self.style_negative:
            negative = self.text_negative
        if self.log_prompt:
            _log({"style": self.style, "text_positive": self.text_positive, "text_negative": self.text_negative,
                  "text_positive_styled": positive, "text_negative_styled": negative})
        return positive, negative


ADVANCED_OUTPUTS = {"text_positive_g": STRING, "text_positive_l": STRING, "text_positive": STRING,
                    "text_negative_g": STRING, "text_negative_l": STRING, "text_negative": STRING}
NEGATIVE_TO = ("Both", "G only", "L only")


class SDXLPromptStylerAdvanced(_MainStyler):
    """Style SDXL's two prompts, as twri's SDXL Prompt Styler Advanced: the style's "prompt" is
    split at its first " . " into a G part and an L part. text_positive_g = the G part with
    {prompt} replaced by text_positive_g; text_positive_l = the L part (its {prompt} replaced by
    text_positive_g) and text_positive_l joined by ", "; with copy_to_l (and text_positive_g given,
    the L part without {prompt}) the G result's comma tokens are put before L's, L's repeats
    dropped. text_positive = G + " . " + L (G alone when L is empty). The negative is the
    template's and text_negative joined by ", ", given as text_negative, and as the G / L negative
    where negative_prompt_to says (else empty)."""
    category = "utils"
    text_positive_g: str = Text("", multiline=True)
    text_positive_l: str = Text("", multiline=True)
    text_negative: str = Text("", multiline=True)
    style: str = Choice(style_names)
    negative_prompt_to: str = Choice(NEGATIVE_TO, "Both")
    copy_to_l: bool = Bool(False, label_on="yes", label_off="no")
    log_prompt: bool = Bool(False, label_on="yes", label_off="no")
    outputs = ADVANCED_OUTPUTS
    comfy = ComfyAlias(("SDXLPromptStylerAdvanced",))

    def run(self):
        template = find_style(all_styles(), self.style, "style", "the style files (shipped and models/styles)")
        g_template, l_template = split_g_l(template["prompt"])
        positive_g = g_template.replace("{prompt}", self.text_positive_g)
        l_filled = l_template.replace("{prompt}", self.text_positive_g)
        # joined when the L template (before filling) and text_positive_l are both there, as the pack
        positive_l = f"{l_filled}, {self.text_positive_l}" if l_template and self.text_positive_l \
            else l_filled or self.text_positive_l
        if self.copy_to_l and self.text_positive_g and "{prompt}" not in l_template:
            positive_l = merge_tokens(positive_g, positive_l)
        positive = f"{positive_g} . {positive_l}" if positive_l else positive_g
        negative = join_negative(template["negative_prompt"], self.text_negative)
        negative_g, negative_l = negatives_to(negative, self.negative_prompt_to)
        if self.log_prompt:
            _log({"style": self.style, "text_positive_g": self.text_positive_g,
                  "text_positive_l": self.text_positive_l, "text_negative": self.text_negative,
                  "text_positive_g_styled": positive_g, "text_positive_l_styled": positive_l,
                  "text_positive_styled": positive, "text_negative_g_styled": negative_g,
                  "text_negative_l_styled": negative_l, "text_negative_styled": negative})
        return positive_g, positive_l, positive, negative_g, negative_l, negative


# -- the category stylers -------------------------------------------------------------------------------

# the pack's data/ folders, one styler each, and its Perfection Styler's eleven, in its order
CATEGORY_FOLDERS = ("artist", "camera", "composition", "depth", "environment", "filter", "focus", "lighting",
                    "milehigh", "mood", "subject", "theme", "timeofday")
PERFECTION_FOLDERS = ("camera", "composition", "depth", "environment", "filter", "focus", "lighting", "mood",
                      "subject", "theme", "timeofday")


def split_g_l_at_prompt(template_prompt: str) -> tuple[str, str]:
    """The category Advanced stylers' split: at the first "{prompt} .", the G part ending in
    " {prompt}", the L part the rest, stripped; a template without it is all G."""
    if "{prompt} ." not in template_prompt:
        return template_prompt, ""
    g_part, l_part = template_prompt.split("{prompt} .", 1)
    return g_part.strip() + " {prompt}", l_part.strip()


class _CategoryStyler(Node):
    """The category stylers' run: each menu's template applied in turn to the texts so far."""
    menus = ()  # the data folders whose lists the class shows (set by _category_node)

    @classmethod
    def fingerprint(cls, **widgets):
        return repr(tuple(style_file_state(p) for folder in cls.menus for p in _style_files(folder)))

    def chosen(self):
        for folder in self.menus:
            yield folder, find_style(category_styles(folder), getattr(self, folder), folder,
                                     f"models/styles/{folder}/*.json")

    def run(self):
        positive, negative = self.text_positive, self.text_negative
        for _, template in self.chosen():
            positive, negative = style_prompt(template, positive, negative)
        if self.log_prompt:
            _log({**{folder: getattr(self, folder) for folder in self.menus}, "text_positive": self.text_positive,
                  "text_negative": self.text_negative, "text_positive_styled": positive,
                  "text_negative_styled": negative})
        return positive, negative


class _CategoryStylerAdvanced(_CategoryStyler):
    def run(self):
        positive_g, positive_l, negative = self.text_positive_g, self.text_positive_l, self.text_negative
        positive = negative_g = negative_l = ""
        for _, template in self.chosen():
            # the pack hands the L text so far in as G and the G text as L (its call's argument
            # order), so a chosen style swaps what goes where: kept, as workflows rely on its results
            g_in, l_in = positive_l, positive_g
            g_template, l_template = split_g_l_at_prompt(template["prompt"])
            positive_g = g_template.replace("{prompt}", g_in)
            positive_l = ", ".join(t for t in (l_template, l_in) if t)
            positive = f"{positive_g} . {positive_l}" if positive_l else positive_g
            negative = join_negative(template["negative_prompt"], negative)
            negative_g, negative_l = negatives_to(negative, self.negative_prompt_to)
        if self.log_prompt:
            _log({**{folder: getattr(self, folder) for folder in self.menus},
                  "text_positive_g": self.text_positive_g, "text_positive_l": self.text_positive_l,
                  "text_negative": self.text_negative, "text_positive_g_styled": positive_g,
                  "text_positive_l_styled": positive_l, "text_positive_styled": positive,
                  "text_negative_g_styled": negative_g, "text_negative_l_styled": negative_l,
                  "text_negative_styled": negative})
        return positive_g, positive_l, positive, negative_g, negative_l, negative


def _menu(folder: str):
    # an empty list (no files copied yet) is refused saying where the pack's styles go
    return Choice(lambda: list(category_styles(folder)),
                  if_empty=f"no style files: copy the pack's data/{folder} folder into models/styles/{folder}")


def _category_node(title: str, menus: tuple[str, ...], advanced: bool) -> type[Node]:
    """One category styler class, its inputs in the pack's order (the menus after the texts)."""
    class_name = title.replace(" ", "") + ("Advanced" if advanced else "")
    where = ", ".join(f"models/styles/{m}/" for m in menus)
    if advanced:
        texts = {"text_positive_g": Text("", multiline=True), "text_positive_l": Text("", multiline=True),
                 "text_negative": Text("", multiline=True)}
        tail = {"negative_prompt_to": Choice(NEGATIVE_TO, "Both"), "log_prompt": Bool(True, label_on="Yes",
                                                                                      label_off="No")}
        doc = (f"The pack's {title} (Advanced): for each list ({', '.join(menus)}) in turn, the chosen "
               f"style's template split at its first \"{{prompt}} .\" into G and L parts; as the pack, the "
               f"L text so far fills G's {{prompt}} and the G text so far is joined to the L part by \", \" "
               f"(a second style swaps them back); negatives joined by \", \" and sent to G / L as "
               f"negative_prompt_to says. Styles: the JSON files in {where} (copy the pack's data/ folders "
               f"there).")
    else:
        texts = {"text_positive": Text("", multiline=True), "text_negative": Text("", multiline=True)}
        tail = {"log_prompt": Bool(True, label_on="Yes", label_off="No")}
        doc = (f"The pack's {title}: for each list ({', '.join(menus)}) in turn, the chosen style's "
               f"{{prompt}} replaced by the text so far and its negative joined to the negative so far by "
               f"\", \". Styles: the JSON files in {where} (copy the pack's data/ folders there).")
    fields = {**texts, **{m: _menu(m) for m in menus}, **tail}
    annotations = {name: (bool if name == "log_prompt" else str) for name in fields}
    namespace = {"__module__": __name__, "__doc__": doc, "__annotations__": annotations, **fields,
                 "category": "ali1234/stylers", "menus": menus,
                 "outputs": ADVANCED_OUTPUTS if advanced else {"text_positive": STRING, "text_negative": STRING},
                 "comfy": ComfyAlias((class_name,))}
    return type(class_name, (_CategoryStylerAdvanced if advanced else _CategoryStyler,), namespace)


CATEGORY_NODES = {f"{folder.title()} Styler": (folder,) for folder in CATEGORY_FOLDERS}
CATEGORY_NODES["Perfection Styler"] = PERFECTION_FOLDERS
for _title, _menus in CATEGORY_NODES.items():
    for _advanced in (False, True):
        _cls = _category_node(_title, _menus, _advanced)
        globals()[_cls.__name__] = _cls  # module attributes: the registry finds the classes there
