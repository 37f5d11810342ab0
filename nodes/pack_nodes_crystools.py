"""crystian's ComfyUI-Crystools' workflow nodes, under the pack's class names (" [Crystools]"),
inputs, defaults and outputs, as read from crystian/ComfyUI-Crystools: nodes/_names.py at
be9eb625f8fb6affbe85b5a0cf7b9198e5a905d6, nodes/switch.py at 6630279f, nodes/parameters.py at
d47f670e, nodes/image.py at c0d5d4cd, nodes/metadata.py at 681ae566, nodes/utils.py at ebc57d3d,
nodes/debugger.py at 28781b3f, nodes/list.py at b936fb0b, nodes/pipe.py and nodes/primitive.py
at 4c972647, core/common.py at 613e0eab, core/types.py at 5a7f3acf; the node list as version
1.27.4's __init__.py registers it (29 nodes).

Held here: the primitives (boolean, string, string multiline, integer, float); Show any, Show
any to JSON; List of any, List of strings; Switch from any and the switches (any, string,
conditioning, image, mask, latent); Pipe to/edit any and Pipe from any (six slots); Load image
with metadata, Get resolution, Preview from image, Preview from metadata, Save image with extra
metadata; Metadata extractor, Metadata comparator, JSON comparator; Stats system; Read JSON
file and JSON extractor. That is every node of the pack's backend: its resource monitor,
progress bar and Show Metadata (a virtual node of its editor, never queued) are editor-side.
Where a node differs from the pack, its help says so (lazy switches, the comparators' lists, the
preview caches, the JSON file's folder, file names relative to their folder, refused metadata
keys)."""

import json
import logging
import os
import random
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

from graphflow.api import ANY, BOOLEAN, CONDITIONING, FLOAT, IMAGE, INT, LATENT, MASK, STRING, Bool, Choice, \
    ComfyAlias, Float, Int, ListOf, Node, NodeInputError, Text, folders, safe_join, show, socket_type, \
    subfolder_name, warn, workflow_texts
from graphflow.folders import UnsafePathError, split_annotation
from nodes.image import _load_picture, _next_counter, _save_new

COMFY_PACK = "ComfyUI-Crystools"  # the custom node pack this module's ComfyUI classes come from

MAIN = "crystools 🪛"
JSON = socket_type("JSON", "#b39ddb", "Crystools' JSON: a dict or list, or JSON text")
METADATA_RAW = socket_type("METADATA_RAW", "#8d6e63", "Crystools' metadata of a picture file: fileinfo "
                                                      "(filename, resolution, date, size), prompt, workflow, "
                                                      "its other text chunks or EXIF tags")
PIPE = socket_type("CPipeAny", "#7e57c2", "Crystools' pipe: a list of six values of any kind")
LIST_STRING = socket_type("ListString", "#26a69a", "Crystools' list of strings")

INDENT = 2  # the pack's CONFIG["indent"] (its CRYSTOOLS_INDENT environment variable, default 2)
INACTIVE = "inactive"  # the pack's TEXTS.INACTIVE_MSG
INVALID_METADATA = "Invalid metadata raw"  # the pack's TEXTS.INVALID_METADATA_MSG
NESTED_TOO_DEEPLY = "nested too deeply (dicts and lists inside each other past Python's recursion limit)"


# -- primitives ---------------------------------------------------------------------------------


class CrystoolsBoolean(Node):
    """A true/false value to link into several inputs, as Crystools' Primitive boolean gives."""
    category = MAIN + "/Primitive"
    boolean: bool = Bool(True)
    outputs = {"boolean": BOOLEAN}
    comfy = ComfyAlias(("Primitive boolean [Crystools]",))

    def run(self):
        return self.boolean


class CrystoolsString(Node):
    """A line of text to link into several inputs, as Crystools' Primitive string gives."""
    category = MAIN + "/Primitive"
    string: str = Text("")
    outputs = {"string": STRING}
    comfy = ComfyAlias(("Primitive string [Crystools]",))

    def run(self):
        return self.string


class CrystoolsStringMultiline(Node):
    """Text of several lines to link into several inputs, as Crystools' Primitive string
    multiline gives."""
    category = MAIN + "/Primitive"
    string: str = Text("", multiline=True)
    outputs = {"string": STRING}
    comfy = ComfyAlias(("Primitive string multiline [Crystools]",))

    def run(self):
        return self.string


class CrystoolsInteger(Node):
    """A whole number to link into several inputs, as Crystools' Primitive integer gives."""
    category = MAIN + "/Primitive"
    int: int = Int(1, min=-sys.maxsize, max=sys.maxsize)
    outputs = {"int": INT}
    comfy = ComfyAlias(("Primitive integer [Crystools]",))

    def run(self):
        return self.int


class CrystoolsFloat(Node):
    """A real number to link into several inputs, as Crystools' Primitive float gives."""
    category = MAIN + "/Primitive"
    float: float = Float(1.0, min=-sys.float_info.max, max=sys.float_info.max, step=0.01)
    outputs = {"float": FLOAT}
    comfy = ComfyAlias(("Primitive float [Crystools]",))

    def run(self):
        return self.float


# -- debugger -----------------------------------------------------------------------------------


def _first(values, default=None):
    """The first item of an input read whole as a list (input_is_list), or the default."""
    if isinstance(values, list):
        return values[0] if values else default
    return default if values is None else values


class CrystoolsShowAny(Node):
    """Show any value as text in the editor (display) and write it to the console (console,
    after prefix and ": "; the server's log here), as Crystools' Show any does: the items of
    the value's list written one after another with nothing between them; "inactive" when
    display is off. The editor's text box is a display only."""
    category = MAIN + "/Debugger"
    output_node = True
    input_is_list = True
    any_value: ANY = None
    console: bool = Bool(False)
    display: bool = Bool(True)
    prefix: str = Text("")
    comfy = ComfyAlias(("Show any [Crystools]",), optional=("any_value", "console", "display", "prefix"))

    def run(self):
        console, display, prefix = _first(self.console, False), _first(self.display, True), _first(self.prefix, "")
        text = "".join(_as_text(item) for item in self.any_value) if isinstance(self.any_value, list) else ""
        if console:
            logging.getLogger(__name__).info("%s", f"{prefix}: {text}" if prefix else text)
        show(text=[console, display, prefix, text if display else INACTIVE])


def _as_text(value) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a value whose str() fails: the pack's words for it
        return "source exists, but could not be serialized.\n"


class CrystoolsShowAnyToJSON(Node):
    """Show a value as JSON (a dict or list, indented by 2) or as text (anything else), and give
    that text on, as Crystools' Show any to JSON does; only the first item of a list of values
    is shown, and "inactive" when nothing is linked."""
    category = MAIN + "/Debugger"
    output_node = True
    input_is_list = True
    any_value: ANY = None
    outputs = {"string": STRING}
    comfy = ComfyAlias(("Show any to JSON [Crystools]",), optional=("any_value",))

    def run(self):
        text = INACTIVE
        if isinstance(self.any_value, list) and self.any_value:
            item = self.any_value[0]
            if isinstance(item, (dict, list)):
                try:
                    text = json.dumps(item, indent=INDENT)
                except (TypeError, ValueError, RecursionError):  # the pack catches any error here
                    kind = "dict" if isinstance(item, dict) else "list"
                    text = f"The input is a {kind}, but could not be serialized.\n"
            else:
                text = _as_text(item)
        show(text=[text])
        return text


# -- lists --------------------------------------------------------------------------------------


class CrystoolsListOfAny(Node):
    """Gather up to eight values into one list, as Crystools' List of any does: the linked
    inputs in order (those not linked, or giving None, left out). The pack's output is a list
    (OUTPUT_IS_LIST) of one item, this list: the nodes after it get the list as one value."""
    category = MAIN + "/List"
    any_1: ANY = None
    any_2: ANY = None
    any_3: ANY = None
    any_4: ANY = None
    any_5: ANY = None
    any_6: ANY = None
    any_7: ANY = None
    any_8: ANY = None
    outputs = {"any_list": ListOf(ANY)}
    comfy = ComfyAlias(("List of any [Crystools]",), optional=tuple(f"any_{i}" for i in range(1, 9)))

    def run(self):
        values = [getattr(self, f"any_{i}") for i in range(1, 9)]
        return [[value for value in values if value is not None]]


class CrystoolsListOfStrings(Node):
    """Gather up to eight texts, as Crystools' List of strings does: the non-empty ones joined by
    delimiter, and the list of them (as the pack, a list output of one item, this list)."""
    category = MAIN + "/List"
    string_1: str = Text("")
    string_2: str = Text("")
    string_3: str = Text("")
    string_4: str = Text("")
    string_5: str = Text("")
    string_6: str = Text("")
    string_7: str = Text("")
    string_8: str = Text("")
    delimiter: str = Text(" ")
    outputs = {"concatenated": STRING, "list_string": ListOf(LIST_STRING)}
    comfy = ComfyAlias(("List of strings [Crystools]",),
                       optional=tuple(f"string_{i}" for i in range(1, 9)) + ("delimiter",))

    def run(self):
        texts = [getattr(self, f"string_{i}") for i in range(1, 9)]
        texts = [text for text in texts if text]
        return self.delimiter.join(texts), [texts]


# -- switches -----------------------------------------------------------------------------------


class CrystoolsSwitchFromAny(Node):
    """Send a value down one of two ways, as Crystools' Switch from any does: on_true gives it
    when boolean is true, on_false when false; the other gives None."""
    category = MAIN + "/Switch"
    any: ANY
    boolean: bool = Bool(True)
    outputs = {"on_true": ANY, "on_false": ANY}
    comfy = ComfyAlias(("Switch from any [Crystools]",))

    def run(self):
        return (self.any, None) if self.boolean else (None, self.any)


class _Switch:
    """What Crystools' switches share: on_true when boolean is true, else on_false. The pack's
    inputs are lazy (only the chosen one is computed); graphflow computes both when both are
    linked, and the one not chosen may be left unlinked."""
    category = MAIN + "/Switch"

    def run(self):
        name = "on_true" if self.boolean else "on_false"
        value = getattr(self, name)
        if value is None:
            raise NodeInputError(name, f"not linked, but boolean is {self.boolean}: expected a value to give on")
        return value


class CrystoolsSwitchAny(_Switch, Node):
    """Give on_true when boolean is true, else on_false, as Crystools' Switch any does. The pack
    computes only the chosen input (lazy inputs); graphflow computes both when both are linked."""
    on_true: ANY = None
    on_false: ANY = None
    boolean: bool = Bool(True)
    outputs = {"*": ANY}
    comfy = ComfyAlias(("Switch any [Crystools]",))


class CrystoolsSwitchString(_Switch, Node):
    """Give the text on_true when boolean is true, else on_false, as Crystools' Switch string
    does (both are text boxes that may be linked)."""
    on_true: str = Text("")
    on_false: str = Text("")
    boolean: bool = Bool(True)
    outputs = {"string": STRING}
    comfy = ComfyAlias(("Switch string [Crystools]",))


class CrystoolsSwitchConditioning(_Switch, Node):
    """Give on_true when boolean is true, else on_false, as Crystools' Switch conditioning does.
    The pack computes only the chosen input (lazy inputs); graphflow computes both when both are
    linked."""
    on_true: CONDITIONING = None
    on_false: CONDITIONING = None
    boolean: bool = Bool(True)
    outputs = {"conditioning": CONDITIONING}
    comfy = ComfyAlias(("Switch conditioning [Crystools]",))


class CrystoolsSwitchImage(_Switch, Node):
    """Give on_true when boolean is true, else on_false, as Crystools' Switch image does. The
    pack computes only the chosen input (lazy inputs); graphflow computes both when both are
    linked."""
    on_true: IMAGE = None
    on_false: IMAGE = None
    boolean: bool = Bool(True)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("Switch image [Crystools]",))


class CrystoolsSwitchMask(_Switch, Node):
    """Give on_true when boolean is true, else on_false, as Crystools' Switch mask does. The
    pack computes only the chosen input (lazy inputs); graphflow computes both when both are
    linked."""
    on_true: MASK = None
    on_false: MASK = None
    boolean: bool = Bool(True)
    outputs = {"mask": MASK}
    comfy = ComfyAlias(("Switch mask [Crystools]",))


class CrystoolsSwitchLatent(_Switch, Node):
    """Give on_true when boolean is true, else on_false, as Crystools' Switch latent does. The
    pack computes only the chosen input (lazy inputs); graphflow computes both when both are
    linked."""
    on_true: LATENT = None
    on_false: LATENT = None
    boolean: bool = Bool(True)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("Switch latent [Crystools]",))


# -- pipes --------------------------------------------------------------------------------------

PIPE_SLOTS = 6  # the pack's pipe.py: any_1 to any_6


class CrystoolsPipeToAny(Node):
    """Put up to six values in a pipe, or change some of a pipe's, as Crystools' Pipe to/edit
    any does: each linked any_N replaces the pipe's Nth value, the others are kept (None when
    no pipe comes in). Six slots, as the pack's pipe.py has them."""
    category = MAIN + "/Pipe"
    CPipeAny: PIPE = None
    any_1: ANY = None
    any_2: ANY = None
    any_3: ANY = None
    any_4: ANY = None
    any_5: ANY = None
    any_6: ANY = None
    outputs = {"CPipeAny": PIPE}
    comfy = ComfyAlias(("Pipe to/edit any [Crystools]",),
                       optional=("CPipeAny",) + tuple(f"any_{i}" for i in range(1, PIPE_SLOTS + 1)))

    def run(self):
        old = _pipe_values(self.CPipeAny)
        new = [getattr(self, f"any_{i}") for i in range(1, PIPE_SLOTS + 1)]
        return [value if value is not None else kept for value, kept in zip(new, old)]


def _pipe_values(pipe) -> list:
    if pipe is None:
        return [None] * PIPE_SLOTS
    if not isinstance(pipe, (list, tuple)) or len(pipe) != PIPE_SLOTS:
        raise NodeInputError("CPipeAny", f"expected a Crystools pipe of {PIPE_SLOTS} values, got "
                                         f"{type(pipe).__name__}")
    return list(pipe)


class CrystoolsPipeFromAny(Node):
    """Take a pipe's six values out, as Crystools' Pipe from any does; the pipe itself is given
    on too."""
    category = MAIN + "/Pipe"
    CPipeAny: PIPE
    outputs = {"CPipeAny": PIPE, **{f"any_{i}": ANY for i in range(1, PIPE_SLOTS + 1)}}
    comfy = ComfyAlias(("Pipe from any [Crystools]",))

    def run(self):
        return (self.CPipeAny, *_pipe_values(self.CPipeAny))


# -- picture metadata ---------------------------------------------------------------------------


def file_size_text(size: int) -> str:
    """A file's size as the pack writes it: bytes, then KB, MB, GB rounded to 2 places."""
    for unit, power in (("GB", 3), ("MB", 2), ("KB", 1)):
        if size >= 1024 ** power:
            return f"{round(size / 1024 ** power, 2)} {unit}"
    return f"{size} bytes"


def picture_metadata(path: Path) -> tuple[dict, dict]:
    """(prompt, metadata) of a picture file, as the pack's buildMetadata reads them: fileinfo
    (the file's name, WxH, modification date, size); of a PNG, its text chunks and other info
    (workflow and prompt parsed as JSON, others parsed as JSON where they are, else as text); of
    a JPEG, its EXIF tags by name and each EXIF IFD as a dict of its tags. Other kinds (WebP
    among them) give fileinfo only."""
    from PIL import Image

    with Image.open(path) as picture:
        return _picture_metadata(picture, path)


def _picture_metadata(picture, path: Path) -> tuple[dict, dict]:
    from PIL.ExifTags import GPSTAGS, IFD, TAGS

    metadata = {"fileinfo": {"filename": file_name(path), "resolution": f"{picture.width}x{picture.height}",
                             "date": str(datetime.fromtimestamp(os.path.getmtime(path))),
                             "size": file_size_text(os.path.getsize(path))}}
    prompt = {}
    if picture.format == "PNG":
        for key, value in picture.info.items():
            if key in ("workflow", "prompt"):
                try:
                    metadata[key] = json.loads(value)
                except (TypeError, ValueError):
                    continue  # the pack logs it and leaves the key out
                if key == "prompt":
                    prompt = metadata[key]
            else:
                try:
                    metadata[str(key)] = json.loads(value)
                except (TypeError, ValueError):
                    metadata[str(key)] = str(value)
    elif picture.format == "JPEG":
        exif = picture.getexif()
        for tag, value in exif.items():
            if value is not None:
                metadata[str(TAGS.get(tag, tag))] = str(value)
        for ifd in IFD:
            names = GPSTAGS if ifd == IFD.GPSInfo else TAGS
            try:
                tags = exif.get_ifd(ifd)
            except KeyError:
                continue
            metadata[ifd.name] = {str(names.get(tag, tag)): str(value) for tag, value in tags.items()}
    return prompt, metadata


def file_name(path: Path) -> str:
    """A picture's name as fileinfo writes it: relative to its inputs folder (the user's or the
    bundled examples', as LoadImage names it), or annotated with its folder as ComfyUI annotates
    names ("x.png [output]", "crystools/x.png [temp]"). The pack writes the absolute path; here
    the server's folders stay out of what the editor is sent."""
    path = Path(path).resolve()
    bases = [(base, "") for base in folders.input_dirs()] + [(folders.outputs, " [output]"), (folders.temp, " [temp]")]
    for base, annotation in bases:
        base = Path(base).resolve()
        if base in path.parents:
            return path.relative_to(base).as_posix() + annotation
    return path.name


def preview_text(metadata: dict) -> str:
    """The pack's lines about a file (buildPreviewText)."""
    info = metadata["fileinfo"]
    return f"File: {info['filename']}\nResolution: {info['resolution']}\nDate: {info['date']}\nSize: {info['size']}\n"


def _png_chunks(with_workflow: bool = True, extra: dict | None = None):
    """PNG text chunks: the running workflow's (prompt, workflow and ours) when with_workflow,
    then each extra key as JSON text, as ComfyUI's SaveImage writes extra_pnginfo's keys."""
    from PIL import PngImagePlugin

    texts = dict(workflow_texts()) if with_workflow else {}
    texts.update({str(key): json.dumps(value) for key, value in (extra or {}).items()})
    info = PngImagePlugin.PngInfo()
    for key, text in texts.items():
        info.add_text(key, text)
    return info


def _save_pngs(images, folder: Path, stem: str, chunks, compress_level: int) -> list[str]:
    """Each image of the batch as stem_NNNNN_.png in folder (numbered as SaveImage numbers)."""
    from graphflow.images import image_to_pil

    folder.mkdir(parents=True, exist_ok=True)
    counter, names = _next_counter(folder, stem), []
    for image in images:
        name, counter = _save_new(image_to_pil(image), folder, stem, counter, pnginfo=chunks,
                                  compress_level=compress_level)
        names.append(name)
        counter += 1
    return names


class CrystoolsLoadImageWithMetadata(Node):
    """Load an image from the inputs folder with what its file says about itself, as Crystools'
    Load image with metadata does: the image (its first frame, read as LoadImage reads
    pictures, turned as its EXIF says), its mask (1 - alpha; an empty 64x64 one without
    alpha), its prompt (the ComfyUI API graph a PNG carries, {} otherwise) and its metadata
    (fileinfo, and a PNG's text chunks or a JPEG's EXIF tags). For a WebP the pack's own
    reading ends in an error it catches: prompt {} and fileinfo only, as here. fileinfo's
    filename is the file's name in its inputs folder (the user's or the bundled examples'),
    where the pack writes the server's absolute path."""
    category = MAIN + "/Image"
    output_node = True
    image: str = Choice(folders.list_inputs, upload="image", description="a file in the inputs folder")
    outputs = {"image": IMAGE, "mask": MASK, "prompt": JSON, "Metadata RAW": METADATA_RAW}
    comfy = ComfyAlias(("Load image with metadata [Crystools]",), folders={"image": "input"})

    @classmethod
    def fingerprint(cls, image):
        import hashlib
        try:
            return hashlib.sha256(folders.input_path(image).read_bytes()).hexdigest()
        except (OSError, ValueError):
            return None  # run() reports it

    def run(self):
        try:
            path = folders.input_path(self.image)
        except UnsafePathError as e:
            raise NodeInputError("image", str(e)) from None
        if not path.is_file():  # said here: the open error would name the server's absolute path
            raise NodeInputError("image", f"no file {self.image!r} in the inputs folders")
        image, mask = _load_picture(path, self.image)
        prompt, metadata = picture_metadata(path)
        return image[:1], mask[:1], prompt, metadata


class CrystoolsGetResolution(Node):
    """An image's width and height, shown as WxH, as Crystools' Get resolution gives them."""
    category = MAIN + "/Image"
    output_node = True
    image: IMAGE
    outputs = {"width": INT, "height": INT}
    comfy = ComfyAlias(("Get resolution [Crystools]",))

    def run(self):
        height, width = self.image.shape[1], self.image.shape[2]
        show(text=[f"{width}x{height}"])
        return width, height


class CrystoolsPreviewFromImage(Node):
    """Show images as PreviewImage does (PNGs in the temp folder, crystools/ subfolder, with the
    running workflow embedded) and give the first one's metadata as Crystools' Preview from
    image does, read back from its file; its text shows the file's details and the running
    prompt. fileinfo's filename is "crystools/name.png [temp]", as ComfyUI annotates a temp
    file (the pack writes the server's absolute path). Nothing linked shows "Source: Empty"
    and gives "". (The pack also gives its last result again when nothing is linked, from a
    cache in the node's instance; graphflow keeps no such cache.)"""
    category = MAIN + "/Image"
    output_node = True
    image: IMAGE = None
    outputs = {"Metadata RAW": METADATA_RAW}
    comfy = ComfyAlias(("Preview from image [Crystools]",), optional=("image",))

    def run(self):
        if self.image is None:
            show(text=["Source: Empty"], images=[])
            return ""
        suffix = "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))  # the pack's letters
        folder = folders.temp / "crystools"
        names = _save_pngs(self.image, folder, f"i_{suffix}", _png_chunks(), compress_level=1)
        prompt, metadata = picture_metadata(folder / names[0])
        text = "Source: Image link \n" + preview_text(metadata)
        text += "Current prompt (NO FROM IMAGE!):\n" + json.dumps(prompt, indent=INDENT)
        show(text=[text], images=[{"filename": names[0], "subfolder": "crystools", "type": "temp"}])
        return metadata


class CrystoolsPreviewFromMetadata(Node):
    """Show a picture's details and prompt from its metadata (Load image with metadata's, or
    another Crystools node's), and the picture itself when its file is in an inputs folder (the
    user's or the bundled examples'; fileinfo's filename relative to it, or an absolute path
    inside it as the pack writes it), as Crystools' Preview from metadata does; the metadata is
    given on. Nothing linked shows "Source: Empty" and gives "". (The pack also gives its last
    result again when nothing is linked, from a cache in the node's instance; graphflow keeps
    no such cache.)"""
    category = MAIN + "/Image"
    output_node = True
    metadata_raw: METADATA_RAW = None
    outputs = {"Metadata RAW": METADATA_RAW}
    comfy = ComfyAlias(("Preview from metadata [Crystools]",), optional=("metadata_raw",))

    def run(self):
        if self.metadata_raw is None or self.metadata_raw == "":
            show(text=["Source: Empty"], images=[])
            return ""
        metadata = _metadata(self.metadata_raw, "metadata_raw")
        if not isinstance(metadata.get("fileinfo"), dict) or "filename" not in metadata["fileinfo"]:
            raise NodeInputError("metadata_raw", "no fileinfo with a filename: expected the metadata of a "
                                                 "Crystools image node")
        try:
            text = "Source: Metadata RAW\n" + preview_text(metadata)
        except KeyError as e:
            raise NodeInputError("metadata_raw", f"its fileinfo lacks {e}") from None
        text += "Prompt from image:\n" + json.dumps(metadata.get("prompt", {}), indent=INDENT)
        show(text=[text], images=_input_picture(str(metadata["fileinfo"]["filename"])))
        return metadata


def _metadata(value, input_name: str) -> dict:
    if not isinstance(value, dict):
        raise NodeInputError(input_name, f"{INVALID_METADATA}: expected the metadata dict of a Crystools image "
                                         f"node, got {type(value).__name__}")
    return value


def _input_picture(filename: str) -> list[dict]:
    """The editor's image item of a file in an inputs folder; [] (with a warning, as the pack
    logs one) for a file elsewhere ("x.png [output]" among them), which is neither shown nor
    looked at."""
    invalid = f"fileinfo's filename {filename!r} is not a valid file name"
    if "\x00" in filename:
        raise NodeInputError("metadata_raw", invalid)
    plain, folder = split_annotation(filename)
    try:
        located = _in_input_dirs(plain) if folder in (None, "input") else None
        found = located is not None and located[1].is_file()
    except (OSError, ValueError):  # a name the file system refuses (too long, ...)
        raise NodeInputError("metadata_raw", invalid) from None
    if located is None:
        warn(f"{filename!r} is not in an inputs folder: it is not shown")
        return []
    if not found:
        raise NodeInputError("metadata_raw", f"File not found! (no {plain!r} in the inputs folders)")
    base, path = located
    return [{"filename": path.name, "subfolder": subfolder_name(base, path.parent), "type": "input"}]


def _in_input_dirs(name: str) -> tuple[Path, Path] | None:
    """(folder, path) of a name in the inputs folders: a relative name is looked for in each (the
    user's first; where none holds it, the user's), an absolute path must lie inside one; None
    for a name that leads outside them."""
    bases = [Path(base).resolve() for base in folders.input_dirs()]
    if Path(name).is_absolute():
        path = Path(os.path.normpath(name)).resolve()
        return next(((base, path) for base in bases if base in path.parents), None)
    try:
        paths = [(base, safe_join(base, name)) for base in bases]
    except UnsafePathError:
        return None
    return next(((base, path) for base, path in paths if path.is_file()), paths[0])


# the pack's metadata_extra default, as its INPUT_TYPES writes it (json.dumps, indent 2, "\/" as "/")
EXTRA_METADATA_DEFAULT = json.dumps({
    "Title": "Image generated by Crystian", "Description": "More info: https://www.instagram.com/crystian.ia",
    "Author": "crystian.ia", "Software": "ComfyUI", "Category": "StableDiffusion", "Rating": 5,
    "UserComment": "", "Keywords": [""], "Copyrights": ""}, indent=INDENT)


class CrystoolsSaveImageWithExtraMetadata(Node):
    """Save images as SaveImage does (PNGs in the outputs folder, prefix_00001_.png), adding the
    keys of metadata_extra (a JSON object) as PNG text chunks, each as JSON text, as Crystools'
    Save image with extra metadata does; with_workflow off leaves the workflow and prompt out.
    metadata_extra that isn't JSON is written as one chunk "extra" (its text, as JSON); JSON
    that isn't an object adds nothing. Each key must be a PNG keyword (1 to 79 Latin-1
    characters, printable, no leading, trailing or double spaces). A key "graphflow", and with
    with_workflow on "prompt" or "workflow", is refused: the pack lets such keys replace the
    running graph's chunks, which would make the file reopen (in graphflow or ComfyUI) as
    another graph. Shows the first saved image, as the pack does, and gives the first file's
    metadata, read back from it (fileinfo's filename "name.png [output]", as ComfyUI annotates
    an output file, where the pack writes the server's absolute path)."""
    category = MAIN + "/Image"
    output_node = True
    image: IMAGE
    filename_prefix: str = Text("ComfyUI", file_name=True)
    with_workflow: bool = Bool(True)
    metadata_extra: str = Text(EXTRA_METADATA_DEFAULT, multiline=True)
    outputs = {"Metadata RAW": METADATA_RAW}
    comfy = ComfyAlias(("Save image with extra metadata [Crystools]",), optional=("metadata_extra",))

    def run(self):
        extra = {}
        if self.metadata_extra is not None and self.metadata_extra != "undefined":  # the editor's unlinked text
            try:
                parsed = json.loads(self.metadata_extra)
            except ValueError:
                warn("metadata_extra is not JSON: it is written as one chunk, \"extra\"")
                parsed = {"extra": str(self.metadata_extra)}
            extra = parsed if isinstance(parsed, dict) else {}
        _check_chunk_keys(extra, self.with_workflow)
        try:
            folder, stem = folders.output_location(self.filename_prefix)
        except ValueError as e:
            raise NodeInputError("filename_prefix", str(e)) from None
        names = _save_pngs(self.image, folder, stem, _png_chunks(self.with_workflow, extra), compress_level=4)
        subfolder = subfolder_name(folders.outputs, folder)
        show(images=[{"filename": names[0], "subfolder": subfolder, "type": "output"}])  # the pack shows the first
        return picture_metadata(folder / names[0])[1]


def _check_chunk_keys(extra: dict, with_workflow: bool):
    """Refuse metadata_extra keys that aren't PNG keywords (a NUL would end the keyword early and
    forge another chunk's name) or that would replace the graph chunks written with the image."""
    graph_chunks = ("graphflow", "prompt", "workflow") if with_workflow else ("graphflow",)
    for key in extra:
        problem = _keyword_problem(key)
        if problem:
            raise NodeInputError("metadata_extra", f"key {key!r} {problem}: expected a PNG text keyword of 1 to 79 "
                                                   "printable Latin-1 characters, without leading, trailing or "
                                                   "double spaces")
        if key in graph_chunks:
            raise NodeInputError("metadata_extra", f"key {key!r} would replace the {key!r} chunk of the running "
                                                   "graph, so the file would reopen as another graph: use another "
                                                   "key" + ("" if key == "graphflow" else " or turn with_workflow off"))


def _keyword_problem(key: str) -> str:
    """What breaks the PNG rule for a text chunk's keyword, or "" (the PNG specification, 11.3.4)."""
    if not 1 <= len(key) <= 79:
        return f"has {len(key)} characters"
    bad = [c for c in key if not (32 <= ord(c) <= 126 or 161 <= ord(c) <= 255)]
    if bad:
        return f"holds {bad[0]!r}, not a printable Latin-1 character"
    if key != key.strip(" ") or "  " in key:
        return "has leading, trailing or double spaces"
    return ""


# -- metadata and JSON --------------------------------------------------------------------------


class CrystoolsMetadataExtractor(Node):
    """Take a picture's metadata apart, as Crystools' Metadata extractor does: its prompt,
    workflow and fileinfo as JSON text ({} when missing), the whole as JSON text, as
    "key"=value lines (a dict value JSON-encoded twice, as the pack writes it) and as
    tab-separated "key" value rows under a "key" "value" heading."""
    category = MAIN + "/Metadata"
    metadata_raw: METADATA_RAW
    outputs = {"prompt": JSON, "workflow": JSON, "file info": JSON, "raw to JSON": JSON,
               "raw to property": STRING, "raw to csv": STRING}
    comfy = ComfyAlias(("Metadata extractor [Crystools]",))

    def run(self):
        raw = self.metadata_raw
        parts, properties, rows = {}, "", ""
        if raw is not None and not isinstance(raw, dict):
            warn(INVALID_METADATA)
        try:
            if isinstance(raw, dict):
                for key, value in raw.items():
                    value = json.dumps(json.dumps(value)) if isinstance(value, dict) else json.dumps(value)
                    properties += f"\"{key}\"={value}\n"
                    rows += f"\"{key}\"\t{value.replace(chr(10), ' ')}\n"
                rows = "\"key\"\t\"value\"\n" + rows if rows else rows
                parts = raw
            dumped = [json.dumps(parts.get(key, {}), indent=INDENT) for key in ("prompt", "workflow", "fileinfo")]
            return (*dumped, json.dumps(raw, indent=INDENT), properties, rows)
        except (TypeError, ValueError) as e:
            raise NodeInputError("metadata_raw", f"can't be written as JSON ({e}): expected the metadata of a "
                                                 "Crystools image node") from None
        except RecursionError:
            raise NodeInputError("metadata_raw", NESTED_TOO_DEEPLY) from None


def json_diff(old, new) -> dict:
    """What changed from old to new, in DeepDiff's words (verbose level 2) as the pack keeps them:
    values_changed {path: {new_value, old_value}}, dictionary_item_removed {path: value},
    dictionary_item_added {path: value}, in that order, paths as root['key'][0]. A value whose
    type changed (1 to "1") is not listed: DeepDiff files it under type_changes, which the pack
    drops. Lists holding the same items in any order are equal (ignore_order); lists that differ
    are one values_changed of the whole list (DeepDiff pairs up their items instead: graphflow
    has no DeepDiff)."""
    changed, removed, added = {}, {}, {}

    def walk(a, b, path):
        if type(a) is not type(b):
            return
        if isinstance(a, dict):
            for key in a:
                if key not in b:
                    removed[f"{path}[{key!r}]"] = a[key]
            for key in b:
                if key not in a:
                    added[f"{path}[{key!r}]"] = b[key]
                else:
                    walk(a[key], b[key], f"{path}[{key!r}]")
        elif isinstance(a, list):
            if not _same_items(a, b):
                changed[path] = {"new_value": b, "old_value": a}
        elif a != b:
            changed[path] = {"new_value": b, "old_value": a}

    walk(old, new, "root")
    found = {"values_changed": changed, "dictionary_item_removed": removed, "dictionary_item_added": added}
    return {kind: entries for kind, entries in found.items() if entries}


def nesting_depth(value) -> int:
    """How deep dicts and lists sit inside each other in value (0 for anything else), counted
    without recursion, so that it works where recursing fails."""
    depth, level = 0, [value]
    while level:
        level = [item for v in level if isinstance(v, (dict, list))
                 for item in (v.values() if isinstance(v, dict) else v)]
        depth += 1
    return depth - 1


def deepest(**values) -> str:
    """The name of the value nesting deepest: the input a RecursionError is blamed on."""
    return max(values, key=lambda name: nesting_depth(values[name]))


def _same_items(a: list, b: list) -> bool:
    """Whether two lists hold the same items in any order (as many of each): their items as
    JSON text counted, so that long lists compare in linear time."""
    def counted(items):
        return Counter(json.dumps(item, sort_keys=True, default=repr) for item in items)

    return len(a) == len(b) and counted(a) == counted(b)


class CrystoolsMetadataComparator(Node):
    """Compare two pictures' metadata, as Crystools' Metadata comparator does: their prompts,
    workflows or fileinfos (what), the differences as JSON text (json_diff's: values changed,
    keys removed, keys added), also shown. Metadata that isn't a dict gives "Invalid metadata
    raw"."""
    category = MAIN + "/Metadata"
    output_node = True
    metadata_raw_old: METADATA_RAW
    metadata_raw_new: METADATA_RAW
    what: str = Choice(("Prompt", "Workflow", "Fileinfo"), "Prompt")
    outputs = {"diff": JSON}
    comfy = ComfyAlias(("Metadata comparator [Crystools]",))

    def run(self):
        old, new = self.metadata_raw_old, self.metadata_raw_new
        if isinstance(old, dict) and isinstance(new, dict):
            key = self.what.lower()
            try:
                diff = json.dumps(json_diff(old.get(key, {}), new.get(key, {})), indent=INDENT)
            except RecursionError:
                name = deepest(metadata_raw_old=old.get(key), metadata_raw_new=new.get(key))
                raise NodeInputError(name, f"its {key} is {NESTED_TOO_DEEPLY}") from None
        else:
            warn(INVALID_METADATA)
            diff = INVALID_METADATA
        show(text=[diff])
        return diff


class CrystoolsJSONComparator(Node):
    """Compare two JSON values, as Crystools' JSON comparator does: the differences as JSON text
    (json_diff's: values changed, keys removed, keys added). JSON text is compared as text, as
    the pack compares it; a value JSON can't hold is written as Python prints it. A value nested
    past Python's recursion limit is an error naming its input."""
    category = MAIN + "/Utils"
    output_node = True
    json_old: JSON
    json_new: JSON
    outputs = {"json_compared": JSON}
    comfy = ComfyAlias(("JSON comparator [Crystools]",))

    def run(self):
        try:
            return json.dumps(json_diff(self.json_old, self.json_new), indent=INDENT, default=str)
        except RecursionError:
            raise NodeInputError(deepest(json_old=self.json_old, json_new=self.json_new), NESTED_TOO_DEEPLY) from None


def ram_use() -> tuple[int, int] | None:
    """(used, total) bytes of RAM: psutil's where it is installed (the pack's source), else the
    system's total less its available memory, as the server's system stats read them; None
    where neither is known."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        ram = psutil.virtual_memory()
        return ram.used, ram.total
    from graphflow.resource_limits import memory_figures

    ram = memory_figures()
    if "ram_total" not in ram or "ram_available" not in ram:
        return None
    return ram["ram_total"] - ram["ram_available"], ram["ram_total"]


def system_stats() -> list[str]:
    """RAM, VRAM and disk lines as the pack writes them (from WAS's Samples Passthrough), the VRAM
    of graphflow's compute device (GRAPHFLOW_DEVICE, else the first CUDA device). Where that isn't
    a CUDA device (where the pack fails) the VRAM line says so."""
    import shutil

    import torch

    from graphflow.device import compute_device

    gib = 1024 ** 3
    ram = ram_use()
    lines = [f"Used RAM: {ram[0] / gib:.2f} GB / Total RAM: {ram[1] / gib:.2f} GB" if ram else "Used RAM: unknown"]
    device = compute_device()
    if device.type == "cuda":
        used, total = torch.cuda.memory_allocated(device), torch.cuda.get_device_properties(device).total_memory
        lines.append(f"Used VRAM: {used / gib:.2f} GB / Total VRAM: {total / gib:.2f} GB")
    else:
        lines.append(f"Used VRAM: no CUDA device (graphflow computes on {device.type})")
    disk = shutil.disk_usage("/")
    lines.append(f"Used Space: {disk.used / gib:.2f} GB / Total Space: {disk.total / gib:.2f} GB")
    return lines


class CrystoolsStatsSystem(Node):
    """Pass a latent on and show the machine's RAM, VRAM and disk use at that moment, as
    Crystools' Stats system does (the pack fails without a CUDA device; here the VRAM line says
    there is none)."""
    category = MAIN + "/Utils"
    cacheable = False  # the point is the moment's figures
    latent: LATENT
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("Stats system [Crystools]",))

    def run(self):
        show(text=["Samples Passthrough:\n" + "".join(line + "\n" for line in system_stats())])
        return self.latent


class CrystoolsReadJSONFile(Node):
    """Read a JSON file, as Crystools' Read JSON file does, showing it (indented by 2) and giving
    its value; an empty path gives {}. The pack reads any path on the machine; here the file must
    be in the inputs folder (a name inside it, subfolders allowed), and a file that can't be read
    or isn't JSON (or nests too deeply to read) is an error (the pack shows the error and gives
    {}). Read anew on every run, so an edited file is read again; the pack's IS_CHANGED gives
    the same True each time, which ComfyUI takes as unchanged, so there it runs again only when
    its path changes."""
    category = MAIN + "/Utils"
    path_to_json: str = Text("")
    outputs = {"json": JSON}
    comfy = ComfyAlias(("Read JSON file [Crystools]",), optional=("path_to_json",))

    @classmethod
    def fingerprint(cls, **widgets):
        return random.random()  # never equal: the file is read anew each run (unlike the pack, see the help)

    def run(self):
        if not self.path_to_json:
            show(text=[""])
            return {}
        try:
            path = safe_join(folders.inputs, self.path_to_json)
        except UnsafePathError as e:
            raise NodeInputError("path_to_json", f"{e}: expected a JSON file in the inputs folder") from None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            text = json.dumps(data, indent=INDENT)
        except FileNotFoundError:
            raise NodeInputError("path_to_json", f"no file {self.path_to_json!r} in the inputs folder") from None
        except OSError as e:  # its strerror: str(e) would name the server's absolute path
            raise NodeInputError("path_to_json", f"can't read {self.path_to_json!r}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise NodeInputError("path_to_json", f"can't read {self.path_to_json!r}: {e}") from None
        except ValueError as e:
            raise NodeInputError("path_to_json", f"{self.path_to_json!r} is not JSON: {e}") from None
        except RecursionError:
            raise NodeInputError("path_to_json", f"{self.path_to_json!r} is {NESTED_TOO_DEEPLY}") from None
        show(text=[text])
        return data


def nested_value(data, dotted_key: str, default):
    """The value at a dotted key (a.b.c: dict keys only), JSON text on the way parsed first, or
    the default where a key is missing, as the pack's get_nested_value finds it."""
    for key in dotted_key.split("."):
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except RecursionError:
                raise NodeInputError("json", f"the text before {key!r} is JSON {NESTED_TOO_DEEPLY}") from None
            except ValueError as e:
                raise NodeInputError("key", f"the value before {key!r} is text that isn't JSON ({e}): expected "
                                            "JSON or a key that ends there") from None
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


def _converted(value, convert):
    try:
        return convert(value)
    except (TypeError, ValueError, AttributeError, OverflowError, RecursionError):
        return value  # the pack gives the value unconverted (it catches any error)


class CrystoolsJSONExtractor(Node):
    """A value from JSON by a dotted key (a.b.c), as Crystools' JSON extractor finds it: given as
    it is, as text, as int, as float and as boolean (text "true", any case); a conversion that
    fails gives the value unconverted, as in the pack. A missing key gives default; an empty key
    gives "" (the pack's, not default). Shows what it found."""
    category = MAIN + "/Utils"
    json: JSON
    key: str = Text("")
    default: str = Text("")
    outputs = {"any": ANY, "string": STRING, "int": INT, "float": FLOAT, "boolean": BOOLEAN}
    comfy = ComfyAlias(("JSON extractor [Crystools]",), optional=("key", "default"))

    def run(self):
        if self.key:
            value = nested_value(self.json, self.key, self.default)
            found = "Key found, return value" if value != self.default else "Key no found, return default value"
        else:
            value, found = "", "Key is empty, return default value"
        try:
            shown = f"{found}: '{value}'"
        except RecursionError:
            raise NodeInputError("json", f"the value at {self.key!r} is {NESTED_TOO_DEEPLY}") from None
        show(text=[shown])
        return (value, _converted(value, str), _converted(value, int), _converted(value, float),
                _converted(value, lambda v: v.lower() == "true"))
