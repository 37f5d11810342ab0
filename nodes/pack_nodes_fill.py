"""filliptm's ComfyUI_Fill-Nodes, round 1: its most-used model-free utilities and classic effects,
under the pack's class names (FL_...), display names, inputs (order, defaults, ranges), outputs and
categories. Read from the pack's nodes/*.py at these commits:
  5d9f67074ba74659e2bb3e2c757d0e15eeade220: FL_HalfTone.py, FL_Dither.py, FL_HexagonalPattern.py, FL_Ascii.py;
  13509480ac9c597d4cb75c6004194acc62888e3b: FL_Image_Dimension_Display.py, FL_Image_Randomizer.py, FL_ImageNotes.py;
  a05fccd1b25630af0c9d5980ddba123d97027024: FL_ApplyMask.py, FL_ImageSlicer.py;
  7f335ee7bab83ca9cc643f4618542b3b4012fbf9: FL_PixelSort.py, utils.py (tensor_to_pil);
  003fd21a70528c707c34178543948fa992458781: FL_Switch_Big.py and __init__.py (the class list);
  d8f010df4ba0de6efb86a6c832017a5bb128a673 FL_Padding.py, d165c0a775873adb3d3f726cdf7778fe7e3e2033 FL_Math.py,
  8716aa7286ead65e72c24d1c0809f66c4deda696 FL_Image_Pixelator.py, bd62c55dd36a7c5e0db8db8a3678687175c1500c
  FL_Switch.py, 40d4853393652bdd12f0693145b18bf64aa370e6 FL_ColorPicker.py, 469d0c28b538720149487095251f140f23f0bac8
  FL_ImageBatchToGrid.py, 5d0429a3a04f96c28290b7f4699b67513f33f126 FL_Image_AddToBatch.py,
  23d832b9f3f5dfd5d93d5e7a11bfa8a7a2555754 FL_PromptSelector.py, 7c9bd3fb169766e7be0ce9ad00e7e27e34bef509
  FL_PaddingRemover.py, e9eaa6fc2a4bf3482cb97f21ee499d7452333397 FL_Image_Caption_Saver.py,
  4b324edd1403a93942226a7e8dae858874959bb5 FL_ImageCollage.py;
  88056c54e5b1db57e5645a61cda244d211013d4b: nodes/vfx/FL_RetroEffect.py.

The layouts are those of the commits above. Where the pack has changed a node's widgets since
(FL_ImageRandomizer at 67977cbd1ea97e50af4566b25371090bfe1493ff, FL_ImageNotes at
1c99b736ab7607779eee763e8210279a33bc94df, FL_Ascii at 9bef9f6cf9de946767a55a9d82454cf1a31f728a), a
save in the later layout is refused with the version named, not misread.

Nodes here: FL_Padding, FL_PaddingRemover, FL_ApplyMask, FL_ImageBatchToGrid, FL_ImageAddToBatch,
FL_ImageSlicer, FL_ImageDimensionDisplay, FL_ImageNotes, FL_ImageRandomizer, FL_ImageCaptionSaver,
FL_ColorPicker, FL_PromptSelector, FL_Math, FL_Switch, FL_Switch_Big (utilities); FL_HalftonePattern,
FL_PixelSort, FL_ImagePixelator, FL_Dither, FL_RetroEffect, FL_HexagonalPattern, FL_Ascii, FL_ImageCollage
(VFX). The
pack's classes left out on purpose and those not built yet are named in graphflow/comfy_format.py
(FILL_LEFT_OUT, FILL_LATER).

Pictures go through the pack's 8-bit steps where it has them (x · 255 cut to a whole level). Where
the pack reads a [B, H, W, C] image as [B, C, H, W] without failing (FL_Dither, FL_ImagePixelator)
these nodes give what the pack gives, so users' pictures match theirs; each node's help says so.
"""

from __future__ import annotations

from graphflow.api import (
    ANY, FLOAT, IMAGE, INT, MASK, STRING, Bool, Choice, ComfyAlias, Estimate, Float, Int, Node, NodeInputError,
    Size, Text, check_interrupted, folders, safe_join, socket_type, warn,
)
from graphflow.folders import UnsafePathError
from nodes.image import _image

COMFY_PACK = "ComfyUI_Fill-Nodes"  # the custom node pack this module's ComfyUI classes come from

VFX = "🏵️Fill Nodes/VFX"
UTILITY = "🏵️Fill Nodes/utility"
MOST_EQUATION = 10_000  # characters of an FL_Math equation (the pack takes any; ast's parser recurses on it)
MOST_POWER_BITS = 1 << 16  # an integer power's bits beyond which FL_Math gives up (9**9**9 would hang the run)
RANDOMIZER_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")  # FL_ImageRandomizer's
MOST_FOLDER_FILES = 100_000  # files FL_ImageRandomizer looks through (a folder tree can be a whole disk)
MOST_ASCII_CELLS = 1 << 20  # characters FL_Ascii draws an image (each a Pillow text call: about a minute here)
MOST_ASCII_FONT_SIZE = 4096  # FL_Ascii's font_size (Pillow renders a whole glyph bitmap before clipping it)
MOST_ASCII_AREA = 1 << 32  # FL_Ascii's characters × font_size², pixels rendered an image (about a minute here)
MOST_COLLAGE_TILES = 1 << 18  # FL_ImageCollage's tiles an image (each a Pillow paste: about 40 s here)
# docs/comfyui.md's note on a class whose widgets hook refuses the pack's later layout (tools/make_comfy_docs.py)
LATER_LAYOUT_REFUSED = "UI saves of the pack's later layout refused, naming its version (see the node's help)"
BAYER = ((0, 8, 2, 10), (12, 4, 14, 6), (3, 11, 1, 9), (15, 7, 13, 5))  # FL_Dither's 4 × 4 matrix, / 16


def _levels(image):
    """A [H, W, C] float picture as the pack's t2p sees it: numpy uint8, x · 255 cut to a level."""
    import numpy as np
    return np.clip(image.detach().cpu().float().numpy() * 255.0, 0, 255).astype(np.uint8)


def _channels(images, name: str, allowed: tuple) -> None:
    if images.shape[-1] not in allowed:
        raise NodeInputError(name, f"{images.shape[-1]} channels: expected {' or '.join(map(str, allowed))}")


# -- utilities -------------------------------------------------------------------------------------


class FillPadding(Node):
    """Pad the images with a border of red / green / blue (0..255) on each side. As in the pack the
    images are made RGBA first (an opaque alpha added to RGB; a one-channel picture is repeated
    into all four channels) and the border is opaque; include_alpha keeps that alpha, else RGB is
    given."""
    category = UTILITY
    image: IMAGE
    padding_left: int = Int(0, min=0, max=4096)
    padding_right: int = Int(0, min=0, max=4096)
    padding_top: int = Int(0, min=0, max=4096)
    padding_bottom: int = Int(0, min=0, max=4096)
    red: int = Int(255, min=0, max=255)
    green: int = Int(255, min=0, max=255)
    blue: int = Int(255, min=0, max=255)
    include_alpha: bool = Bool(False)
    outputs = {"IMAGE": IMAGE}
    display_name = "FL Padding"
    comfy = ComfyAlias(("FL_Padding",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("image")
        sides = [widgets.get(name) for name in ("padding_left", "padding_right", "padding_top", "padding_bottom")]
        if size is None or not all(isinstance(side, int) for side in sides):
            return Estimate(size)
        left, right, top, bottom = sides
        return Estimate(Size(size.batch, size.height + top + bottom, size.width + left + right))

    def run(self):
        import torch
        images = _image(self.image, "image")
        _channels(images, "image", (1, 3, 4))
        if images.shape[-1] == 1:
            images = images.expand(-1, -1, -1, 4)
        elif images.shape[-1] == 3:
            images = torch.cat([images, torch.ones_like(images[..., :1])], dim=-1)
        batch, height, width, _ = images.shape
        border = torch.tensor([self.red, self.green, self.blue, 255], dtype=images.dtype) / 255.0
        out = border.to(images.device).expand(batch, height + self.padding_top + self.padding_bottom,
                                              width + self.padding_left + self.padding_right, 4).clone()
        out[:, self.padding_top:self.padding_top + height, self.padding_left:self.padding_left + width] = images
        return out if self.include_alpha else out[..., :3]


class FillApplyMask(Node):
    """The mask as the images' alpha channel (RGB images get one; RGBA ones have theirs replaced).
    As in the pack: a mask batch of one serves every image, a mask of another size is resized
    (nearest) to the images', and a mask above 1 anywhere is read as 0..255 and divided by 255.
    The mask is kept as it is, not inverted (1 = opaque)."""
    category = "🏵️Fill Nodes/image"
    image: IMAGE
    mask: MASK
    outputs = {"IMAGE": IMAGE}
    display_name = "FL Apply Mask"
    comfy = ComfyAlias(("FL_ApplyMask",))

    def run(self):
        import torch
        import torch.nn.functional as F
        images = _image(self.image, "image")
        _channels(images, "image", (3, 4))
        mask = self.mask
        if not torch.is_tensor(mask) or mask.ndim not in (2, 3):
            raise NodeInputError("mask", "expected a MASK: a [B, H, W] tensor")
        mask = mask[None] if mask.ndim == 2 else mask
        if mask.shape[0] not in (1, images.shape[0]):
            raise NodeInputError("mask", f"a batch of {mask.shape[0]}: expected 1 or the images' {images.shape[0]}")
        mask = mask.to(images).expand(images.shape[0], -1, -1)
        if mask.shape[1:] != images.shape[1:3]:
            mask = F.interpolate(mask[:, None], size=tuple(images.shape[1:3]), mode="nearest")[:, 0]
        if mask.max() > 1:
            mask = mask / 255.0
        return torch.cat([images[..., :3], mask[..., None]], dim=-1)


class FillImageBatchToGrid(Node):
    """The batch laid out as one picture, images_per_row images a row, left to right and top to
    bottom; the last row's empty places (and a first row longer than the batch) stay black, as in
    the pack."""
    category = "🏵️Fill Nodes/Image"
    images: IMAGE
    images_per_row: int = Int(5, min=1, max=20)
    outputs = {"IMAGE": IMAGE}
    display_name = "FL Image Batch To Grid"
    comfy = ComfyAlias(("FL_ImageBatchToGrid",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, per_row = inputs.get("images"), widgets.get("images_per_row")
        if size is None or not isinstance(per_row, int):
            return Estimate(None)
        rows = -(-size.batch // per_row)
        return Estimate(Size(1, rows * size.height, per_row * size.width))

    def run(self):
        import torch
        images = _image(self.images, "images")
        batch, height, width, channels = images.shape
        per_row = self.images_per_row
        rows = -(-batch // per_row)
        grid = torch.zeros(rows * height, per_row * width, channels, dtype=images.dtype, device=images.device)
        for index, image in enumerate(images):
            row, column = divmod(index, per_row)
            grid[row * height:(row + 1) * height, column * width:(column + 1) * width] = image
        return grid[None]


class FillImageDimensionDisplay(Node):
    """The images' size as text: "Width: W, Height: H"."""
    category = "🏵️Fill Nodes/Image"
    image: IMAGE
    outputs = {"STRING": STRING}
    display_name = "FL Image Size"
    comfy = ComfyAlias(("FL_ImageDimensionDisplay",))

    def run(self):
        images = _image(self.image, "image")
        return f"Width: {images.shape[2]}, Height: {images.shape[1]}"


class FillColorPicker(Node):
    """The chosen colour as text ("#FF0000"): the pack's editor shows a colour picker that writes
    this text; here it is typed. Given on as it is, as the pack does."""
    category = "🏵️Fill Nodes/experiments"
    selected_color: str = Text("#FF0000")
    outputs = {"STRING": STRING}
    display_name = "FL Color Picker"
    comfy = ComfyAlias(("FL_ColorPicker",))

    def run(self):
        return self.selected_color


class FillSwitch(Node):
    """on_true when switch is on, else on_false. The pack runs only the chosen branch (ComfyUI's lazy
    inputs); graphflow runs both when both are connected, and the unchosen one may be left
    unconnected."""
    category = UTILITY
    switch: bool = Bool(False)
    on_false: ANY = None
    on_true: ANY = None
    outputs = {"*": ANY}
    display_name = "FL Switch"
    comfy = ComfyAlias(("FL_Switch",), optional=("on_false", "on_true"))

    def run(self):
        name = "on_true" if self.switch else "on_false"
        if getattr(self, name) is None:
            raise NodeInputError(name, f"not connected, but switch is {self.switch}")
        return getattr(self, name)


class FillImageAddToBatch(Node):
    """images2 added after images1 in one batch. images2 of another size is resized to images1's,
    as the pack does: bicubic where either side grows, else area averaging. The channels must match."""
    category = "🏵️Fill Nodes/Image"
    display_name = "FL Image Add To Batch"
    images1: IMAGE
    images2: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_ImageAddToBatch",))

    @classmethod
    def estimate(cls, widgets, inputs):
        first, second = inputs.get("images1"), inputs.get("images2")
        if first is None or second is None:
            return Estimate(None)
        return Estimate(Size(first.batch + second.batch, first.height, first.width))

    def run(self):
        import torch
        import torch.nn.functional as F
        first, second = _image(self.images1, "images1"), _image(self.images2, "images2")
        if first.shape[-1] != second.shape[-1]:
            raise NodeInputError("images2", f"{second.shape[-1]} channels: images1 has {first.shape[-1]}")
        height, width = first.shape[1:3]
        if second.shape[1:3] != (height, width):
            growing = height > second.shape[1] or width > second.shape[2]
            planes = second.movedim(-1, 1)
            if growing:
                planes = F.interpolate(planes, size=(height, width), mode="bicubic", align_corners=False)
            else:
                planes = F.interpolate(planes, size=(height, width), mode="area")
            second = planes.movedim(1, -1)
        return torch.cat([first, second.to(first)])


class FillImageSlicer(Node):
    """The first image cut into x_subdivisions × y_subdivisions tiles of width // x_subdivisions by
    height // y_subdivisions pixels, as a batch, row by row from the top left; the pixels the
    division leaves over at the right and bottom are dropped, and the other images of the batch are
    not used, as in the pack (which works on 8-bit levels: x · 255 cut to a whole level)."""
    category = "🏵️Fill Nodes/Image"
    display_name = "FL Image Slicer"
    image: IMAGE
    x_subdivisions: int = Int(2, min=1, max=100)
    y_subdivisions: int = Int(2, min=1, max=100)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_ImageSlicer",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, across, down = inputs.get("image"), widgets.get("x_subdivisions"), widgets.get("y_subdivisions")
        if size is None or not isinstance(across, int) or not isinstance(down, int):
            return Estimate(None)
        return Estimate(Size(across * down, size.height // down, size.width // across))

    def run(self):
        import numpy as np
        import torch
        image = _image(self.image, "image")[0]
        height, width = image.shape[:2]
        for name, parts, side, what in (("x_subdivisions", self.x_subdivisions, width, "width"),
                                        ("y_subdivisions", self.y_subdivisions, height, "height")):
            if parts > side:
                raise NodeInputError(name, f"{parts}: more tiles than the image's {what} of {side} pixels")
        levels = torch.from_numpy(_levels(image).astype(np.float32) / 255.0)
        tile_height, tile_width = height // self.y_subdivisions, width // self.x_subdivisions
        tiles = levels[:tile_height * self.y_subdivisions, :tile_width * self.x_subdivisions]
        tiles = tiles.reshape(self.y_subdivisions, tile_height, self.x_subdivisions, tile_width, -1)
        return tiles.permute(0, 2, 1, 3, 4).reshape(-1, tile_height, tile_width, levels.shape[-1])


def _caption_folder(folder_name: str, input_name: str = "folder_name"):
    """FL_ImageCaptionSaver's folder (and other Fill savers'): inside the output folder (made when
    missing); the pack makes it relative to ComfyUI's working folder, or anywhere for an absolute
    path."""
    from graphflow.folders import file_name_problem
    name = folder_name.replace("\\", "/").strip().rstrip("/")
    try:
        if problem := file_name_problem(name):
            raise UnsafePathError(problem)
        folder = safe_join(folders.outputs, name)
        folder.mkdir(parents=True, exist_ok=True)
    except UnsafePathError as e:
        raise NodeInputError(input_name, f"{e}: expected a folder inside the output folder") from None
    except OSError as e:
        raise NodeInputError(input_name, f"can't make the folder: {e.strerror}") from None
    return folder


def _write_replacing(path, write, keep_suffix: bool = False) -> None:
    """write(a temporary path), then move it onto path: a failed or stopped save leaves no half file.
    keep_suffix ends the temporary name in path's suffix too, for writers that choose the format by it."""
    import os
    import uuid
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp" + (path.suffix if keep_suffix else ""))
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class FillImageCaptionSaver(Node):
    """Save each image as image_<i>.png with caption_text in image_<i>.txt beside it (i from 0 in
    the batch), in folder_name inside the output folder (the pack's is relative to ComfyUI's working
    folder). The caption keeps only letters, digits, whitespace and . , ! ? - as the pack's clean-up
    does; written as UTF-8. overwrite off picks image_<i>_<n>.png / .txt with the first n from 1
    where neither file exists. A one-channel image is saved as RGB, RGBA as RGBA."""
    category = "🏵️Fill Nodes/Captioning"
    display_name = "FL Image Caption Saver"
    output_node = True
    images: IMAGE
    folder_name: str = Text("output_folder")
    caption_text: str = Text("Your caption here")
    overwrite: bool = Bool(True)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("FL_ImageCaptionSaver",))

    def run(self):
        import re

        import numpy as np
        from PIL import Image
        images = _image(self.images, "images")
        _channels(images, "images", (1, 3, 4))
        folder = _caption_folder(self.folder_name)
        caption = re.sub(r"[^a-zA-Z0-9\s.,!?-]", "", self.caption_text)
        for index, image in enumerate(images):
            check_interrupted()
            stem, counter = f"image_{index}", 1
            name = stem
            while not self.overwrite and ((folder / f"{name}.png").exists() or (folder / f"{name}.txt").exists()):
                name, counter = f"{stem}_{counter}", counter + 1
            levels = _levels(image)
            picture = Image.fromarray(np.repeat(levels, 3, axis=-1) if levels.shape[-1] == 1 else levels)
            _write_replacing(folder / f"{name}.png", lambda path: picture.save(path, format="PNG"))
            _write_replacing(folder / f"{name}.txt", lambda path: path.write_text(caption, encoding="utf-8"))
        return f"Saved {images.shape[0]} images and sanitized captions in '{self.folder_name}'"


def _notes_widgets(values: list) -> list:
    """A UI save of FL_ImageNotes in the layout built here (text, bar_height, text_size: the pack at
    13509480); the pack's later layout (border, word_wrap, bar_position after them, as at 1c99b736,
    whose text sits 10 pixels from the bar's top, not centred) is refused rather than misread."""
    if len(values) > 3:
        raise ValueError(f"a save with {len(values)} widget values is from a later version of the pack (1c99b736: "
                         "border, word_wrap and bar_position after them): not read; graphflow builds the layout of "
                         "13509480 (text, bar_height, text_size): put a new FL Image Notes in its place")
    return values


_notes_widgets.doc_note = LATER_LAYOUT_REFUSED


class FillImageNotes(Node):
    """The images below a black bar of bar_height pixels holding text in white, centred as the pack
    measures it (its ink's right edge across; its ink's bottom plus the font's descent down). The
    pack loads "arial.ttf", which only some systems have: here arial.ttf from models/fonts when it
    is there, else Pillow's own font at text_size. Text without ink (empty, spaces) draws nothing
    (the pack fails on it). Gives RGB. This is the pack's layout at 13509480; a save from its later
    version (border, word_wrap, bar_position) is refused, not misread."""
    category = "🏵️Fill Nodes/Image"
    display_name = "FL Image Notes"
    images: IMAGE
    text: str = Text("Text Here")
    bar_height: int = Int(50, min=10, max=200, step=2)
    text_size: int = Int(24, min=10, max=100)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_ImageNotes",), widgets=_notes_widgets)

    @classmethod
    def estimate(cls, widgets, inputs):
        size, bar = inputs.get("images"), widgets.get("bar_height")
        if size is None or not isinstance(bar, int):
            return Estimate(size)
        return Estimate(Size(size.batch, size.height + bar, size.width))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageDraw
        from nodes.pack_nodes_essentials_misc import drawn_within_pillows_limit, text_font
        images = _image(self.images, "images")
        _channels(images, "images", (1, 3, 4))
        font = text_font("arial.ttf", self.text_size)
        with drawn_within_pillows_limit("text", f"{len(self.text)} characters at size {self.text_size} make a "
                                                "bitmap larger than Pillow draws"):
            ink = font.getmask(self.text).getbbox()
        out = []
        for image in images:
            check_interrupted()
            levels = _levels(image)
            picture = Image.fromarray(levels[..., 0] if levels.shape[-1] == 1 else levels)
            noted = Image.new("RGB", (picture.width, picture.height + self.bar_height), "black")
            noted.paste(picture, (0, self.bar_height))
            if ink is not None:
                x = (picture.width - ink[2]) // 2
                y = (self.bar_height - (ink[3] + font.getmetrics()[1])) // 2
                with drawn_within_pillows_limit("text", "the text makes a bitmap larger than Pillow draws"):
                    ImageDraw.Draw(noted).text((x, y), self.text, font=font, fill="white")
            out.append(torch.from_numpy(np.asarray(noted, dtype=np.float32) / 255.0))
        return torch.stack(out)


class FillPromptSelector(Node):
    """Line `index` (from 0) of prompts, stripped, with prepend_text before it and append_text after
    it (each stripped, joined by a space where not empty). An index past the last line is refused,
    as in the pack."""
    category = "🏵️Fill Nodes/Prompting"
    display_name = "FL Prompt Selector"
    prepend_text: str = Text("", multiline=True)
    prompts: str = Text("", multiline=True)
    append_text: str = Text("", multiline=True)
    index: int = Int(0, min=0, max=6969)
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("FL_PromptSelector",))

    def run(self):
        lines = self.prompts.split("\n")
        if self.index >= len(lines):
            raise NodeInputError("index", f"{self.index}: prompts has {len(lines)} lines (0 to {len(lines) - 1})")
        parts = [self.prepend_text.strip(), lines[self.index].strip(), self.append_text.strip()]
        return " ".join([parts[0]] * bool(parts[0]) + [parts[1]] + [parts[2]] * bool(parts[2]))


PATH = socket_type("PATH", "#a1887f", "A file's path as text (ComfyUI_Fill-Nodes' PATH)")


def _randomizer_folder(directory_path: str, input_name: str = "directory_path"):
    """The folder FL_ImageRandomizer (and other Fill readers) read: inside the inputs folder (the
    pack reads any on disk)."""
    if not directory_path.strip():
        raise NodeInputError(input_name, "give a folder inside the inputs folder")
    if directory_path.strip().startswith(("/", "\\")) or directory_path.strip()[1:3] in (":/", ":\\"):
        raise NodeInputError(input_name, f"{directory_path!r} is a path on disk: folders are read only inside "
                                               "the inputs folder; give the folder's path there (the pack reads any)")
    try:
        folder = safe_join(folders.inputs, directory_path.strip().replace("\\", "/").strip("/"))
    except UnsafePathError:
        raise NodeInputError(input_name, f"{directory_path!r} is not inside the inputs folder; folders are read "
                                               f"only there (the pack reads any folder on disk)") from None
    if not folder.is_dir():
        raise NodeInputError(input_name, f"no folder {directory_path!r} in the inputs folder")
    return folder


def randomizer_files(directory_path: str, search_subdirectories: bool) -> list:
    """FL_ImageRandomizer's pictures (.jpg .jpeg .png .bmp .gif, any case), sorted by path; the whole
    tree below the folder with search_subdirectories (its linked folders not entered, as os.walk
    does); links leading out of the folder left out. At most MOST_FOLDER_FILES entries (files and
    folders) are looked at."""
    folder = _randomizer_folder(directory_path)
    if not search_subdirectories:
        return listed_files(folder, RANDOMIZER_EXTENSIONS, "directory_path", directory_path)
    files = walked_files(folder, lambda name: name.lower().endswith(RANDOMIZER_EXTENSIONS), "directory_path",
                         directory_path)
    # the pack sorts the joined path strings: by str, not Path's part-by-part order ("img.png" before "img/x.png")
    return sorted(files, key=str)


def listed_files(folder, extensions: tuple, input_name: str, given: str) -> list:
    """nodes.image.folder_files (names ending in one of extensions, any case, sorted; links leading
    out left out) of a folder of at most MOST_FOLDER_FILES entries; more is refused, naming
    input_name and the folder as `given`."""
    import os

    from nodes.image import folder_files
    with os.scandir(folder) as entries:
        if sum(1 for _ in zip(range(MOST_FOLDER_FILES + 1), entries)) > MOST_FOLDER_FILES:
            raise NodeInputError(input_name, f"more than {MOST_FOLDER_FILES:,} files and folders in {given!r}: "
                                             "give a smaller folder")
    return folder_files(folder, extensions)


def walked_files(folder, keep, input_name: str, given: str, inside=None) -> list:
    """The files below folder whose names keep(name) holds, unsorted: linked folders not entered (as
    os.walk does), linked files leading out of `inside` (default: folder) left out. More than
    MOST_FOLDER_FILES files and folders is refused, naming input_name and the folder as `given`."""
    import os
    from pathlib import Path

    from graphflow.folders import _stays_inside
    found, seen = [], 0
    for parent, subfolders, names in os.walk(folder):
        check_interrupted()
        seen += len(names) + len(subfolders)
        if seen > MOST_FOLDER_FILES:
            raise NodeInputError(input_name, f"more than {MOST_FOLDER_FILES:,} files and folders in {given!r}: "
                                             "give a smaller folder")
        paths = (Path(parent) / name for name in names if keep(name))
        found += [path for path in paths if _stays_inside(inside or folder, path) and path.is_file()]
    return found


def _randomizer_widgets(values: list) -> list:
    """A UI save of FL_ImageRandomizer in the layout built here (directory_path, seed, its control,
    search_subdirectories: the pack at 13509480); the pack's later layout, a mode ("Image" /
    "Video") first (67977cbd, which also reads .webp and has two more outputs), is refused rather
    than misread."""
    if len(values) > 4:
        raise ValueError(f"a save with {len(values)} widget values (mode {values[0]!r} first) is from a later version "
                         "of the pack (67977cbd: mode, directory_path, seed, search_subdirectories): not read; "
                         "graphflow builds the layout of 13509480 (directory_path, seed, search_subdirectories): "
                         "put a new FL Image Randomizer in its place")
    return values


_randomizer_widgets.doc_note = LATER_LAYOUT_REFUSED


class FillImageRandomizer(Node):
    """One picture of a folder inside the inputs folder: file number seed % count of its .jpg, .jpeg,
    .png, .bmp and .gif files sorted by path (search_subdirectories: the whole tree below it), as
    RGB (its first frame, turned by its EXIF orientation), and its path (the folder joined with the
    file's path in it; the pack gives the path on disk). Folders outside the inputs folder (an
    absolute path too), and links leading out of the folder given, are left out (the pack reads any
    folder); at most 100,000 files and folders are looked at. A changed folder is read again;
    the server's picture-size limit is checked before the file is decoded. This is the pack's
    layout at 13509480; a save from its later version (a mode first, .webp, video) is
    refused, not misread."""
    category = "🏵️Fill Nodes/Image"
    display_name = "FL Image Randomizer"
    directory_path: str = Text("")
    seed: int = Int(0, min=0, max=0xffffffffffffffff)
    search_subdirectories: bool = Bool(False)
    outputs = {"IMAGE": IMAGE, "PATH": PATH}
    comfy = ComfyAlias(("FL_ImageRandomizer",), widgets=_randomizer_widgets)

    @classmethod
    def fingerprint(cls, directory_path="", search_subdirectories=False, **widgets):
        try:
            stats = ((p, p.stat()) for p in randomizer_files(directory_path, search_subdirectories))
            return ",".join(f"{p}:{st.st_size}:{st.st_mtime_ns}" for p, st in stats)
        except (NodeInputError, OSError):
            return "missing"

    def run(self):
        from nodes.image import _load_picture, check_folder_pictures
        files = randomizer_files(self.directory_path, self.search_subdirectories)
        if not files:
            raise NodeInputError("directory_path", f"no .jpg, .jpeg, .png, .bmp or .gif pictures in "
                                                   f"{self.directory_path!r}")
        path = files[self.seed % len(files)]
        check_folder_pictures([path], "seed", "directory_path")
        inside = path.relative_to(_randomizer_folder(self.directory_path)).as_posix()
        shown = f"{self.directory_path.strip().strip('/')}/{inside}"
        try:
            image, _ = _load_picture(path, shown, first_frame_only=True)
        except NodeInputError as e:
            raise NodeInputError("directory_path", str(e)) from None
        return image[..., :3], shown


class FillSwitchBig(Node):
    """input_N for the first case_N (1 to 5) that equals switch_condition and whose input_N is
    connected, else input_default, as the pack picks. The pack runs only the chosen input (ComfyUI's
    lazy inputs); graphflow runs all connected ones, and those not chosen may be left unconnected
    (input_default too, where a case is chosen)."""
    category = UTILITY
    display_name = "FL Switch Big"
    switch_condition: str = Text("")
    case_1: str = Text("")
    case_2: str = Text("")
    case_3: str = Text("")
    case_4: str = Text("")
    case_5: str = Text("")
    input_default: ANY = None
    input_1: ANY = None
    input_2: ANY = None
    input_3: ANY = None
    input_4: ANY = None
    input_5: ANY = None
    outputs = {"output": ANY}
    comfy = ComfyAlias(("FL_Switch_Big",), optional=("input_default",))

    def run(self):
        for n in range(1, 6):
            if self.switch_condition == getattr(self, f"case_{n}") and getattr(self, f"input_{n}") is not None:
                return getattr(self, f"input_{n}")
        if self.input_default is None:
            raise NodeInputError("input_default", f"not connected, but no connected case matches "
                                                  f"{self.switch_condition!r}")
        return self.input_default


def _padding_lines(levels, tolerance: int):
    """For each row of uint8 levels [H, W, C]: whether it is padding - under 5% of its pixels differ
    from its first pixel by more than tolerance (the sum over channels of the absolute differences)."""
    import numpy as np
    differs = np.abs(levels.astype(np.int64) - levels[:, :1].astype(np.int64)).sum(axis=-1) > tolerance
    return differs.sum(axis=1) < levels.shape[1] * 0.05


def content_box(levels, tolerance: int, min_content_size: int) -> tuple:
    """FL_PaddingRemover's (left, top, right, bottom) of the content: padding rows and columns walked
    in from each side while min_content_size is left; the whole picture where less is left."""
    height, width = levels.shape[:2]
    rows, columns = _padding_lines(levels, tolerance), _padding_lines(levels.transpose(1, 0, 2), tolerance)
    top = 0
    while top < height - min_content_size and rows[top]:
        top += 1
    bottom = height - 1
    while bottom >= top + min_content_size and rows[bottom]:
        bottom -= 1
    left = 0
    while left < width - min_content_size and columns[left]:
        left += 1
    right = width - 1
    while right >= left + min_content_size and columns[right]:
        right -= 1
    if right - left < min_content_size or bottom - top < min_content_size:
        return 0, 0, width, height
    return left, top, right + 1, bottom + 1


class FillPaddingRemover(Node):
    """Crop away a flat border: from each side, rows (columns) where under 5% of the pixels differ from
    the row's first pixel (the column's top one) by more than tolerance (summed over the 0..255
    channels) are padding, while at least min_content_size is left; the box found is trimmed by
    sides_trim / top_bottom_trim more on each side (both undone where nothing would be left).
    debug_view gives the picture with the box drawn in red (2 pixels) instead. Works on 8-bit levels
    as the pack's CPU path (x · 255 cut to a level); use_gpu changes nothing here. The pack's GPU
    path differs: it compares unrounded x · 255 values (the box can differ at the tolerance's edge)
    and crops the picture without the 8-bit step. The images of a batch must crop to one size (the
    pack fails otherwise)."""
    category = "🏵️Fill Nodes/Image"
    display_name = "FL Padding Remover"
    image: IMAGE
    tolerance: int = Int(30, min=0, max=255)
    min_content_size: int = Int(20, min=1, max=1000)
    sides_trim: int = Int(1, min=0, max=256)
    top_bottom_trim: int = Int(1, min=0, max=256)
    debug_view: bool = Bool(False)
    use_gpu: bool = Bool(False)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_PaddingRemover",))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageDraw
        images = _image(self.image, "image")
        _channels(images, "image", (1, 3, 4))
        out = []
        for image in images:
            check_interrupted()
            levels = _levels(image)
            height, width = levels.shape[:2]
            found = content_box(levels, self.tolerance, self.min_content_size)
            left, top = max(0, found[0] + self.sides_trim), max(0, found[1] + self.top_bottom_trim)
            right, bottom = min(width, found[2] - self.sides_trim), min(height, found[3] - self.top_bottom_trim)
            box = (left, top, right, bottom) if right > left and bottom > top else found
            if self.debug_view:
                picture = Image.fromarray(levels[..., 0] if levels.shape[-1] == 1 else levels)
                ImageDraw.Draw(picture).rectangle(box, outline=(255, 0, 0) if picture.mode != "L" else 255, width=2)
                levels = np.asarray(picture).reshape(levels.shape)
            else:
                levels = levels[box[1]:box[3], box[0]:box[2]]
            out.append(torch.from_numpy(levels.astype(np.float32) / 255.0))
        if any(o.shape != out[0].shape for o in out):
            raise NodeInputError("image", "the images' content boxes differ in size "
                                          f"({', '.join(f'{o.shape[1]}×{o.shape[0]}' for o in out)}): they can't "
                                          "make one batch (the pack fails too); remove the padding one image at a time")
        return torch.stack(out)


# -- math ------------------------------------------------------------------------------------------


def _bounded(number):
    """number, refused (ArithmeticError, so FL_Math gives its 0) where it is an integer of more than
    MOST_POWER_BITS bits: every integer result is checked, so a chain of products stays small."""
    if isinstance(number, int) and number.bit_length() > MOST_POWER_BITS:
        raise ArithmeticError(f"an integer of {number.bit_length()} bits is too large (at most {MOST_POWER_BITS})")
    return number


def _power(base, exponent):
    """base ** exponent, refused before it is worked out where two integers would make more than
    MOST_POWER_BITS bits (the bits are quoted: a long integer's digits can't be written out)."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and \
            abs(base) > 1 and exponent * abs(base).bit_length() > MOST_POWER_BITS:
        raise ArithmeticError(f"a {abs(base).bit_length()}-bit integer to the power {exponent} is too large "
                              f"(at most {MOST_POWER_BITS} bits)")
    return base ** exponent


def equation_value(equation: str, names: dict):
    """The value of an equation of numbers, the names given, + - * / ** and unary minus (FL_Math's
    grammar); ValueError / TypeError / ArithmeticError / RecursionError / KeyError where it can't."""
    import ast
    import operator
    binary = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.Pow: _power}

    def value(node):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float, complex):
            return _bounded(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in binary:
            check_interrupted()
            return _bounded(binary[type(node.op)](value(node.left), value(node.right)))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.Name):
            return names[node.id]
        raise TypeError(f"{type(node).__name__} is not part of the equations FL_Math reads")

    return value(ast.parse(equation, mode="eval").body)


class FillMath(Node):
    """The equation's value as an INT (cut toward zero) and a FLOAT. The equation may use A, B, C,
    numbers, + - * / ** and unary minus, as the pack's. As in the pack, an equation it can't work
    out (another name or operator, a division by zero, a result too large or not real) gives 0 and
    0.0; here with a warning that says why. An integer (a power, a product, any step) beyond 65,536
    bits counts as too large (the pack would compute 9 ** 9 ** 9 for ever); equations over 10,000
    characters are refused."""
    category = "🏵️Fill Nodes/math"
    A: float = Float(0.0, min=-1_000_000.0, max=1_000_000.0, step=0.01)
    B: float = Float(0.0, min=-1_000_000.0, max=1_000_000.0, step=0.01)
    C: float = Float(0.0, min=-1_000_000.0, max=1_000_000.0, step=0.01)
    equation: str = Text("A + B * C", multiline=True)
    outputs = {"INT": INT, "FLOAT": FLOAT}
    display_name = "FL Math"
    comfy = ComfyAlias(("FL_Math",))

    def run(self):
        if len(self.equation) > MOST_EQUATION:
            raise NodeInputError("equation", f"{len(self.equation)} characters: at most {MOST_EQUATION}")
        try:
            result = equation_value(self.equation, {"A": self.A, "B": self.B, "C": self.C})
            return int(result), float(result)
        except (ValueError, TypeError, ArithmeticError, RecursionError, KeyError, SyntaxError, MemoryError) as e:
            shown = self.equation if len(self.equation) <= 80 else self.equation[:77] + "..."
            warn(f"equation {shown!r} gives 0: {type(e).__name__}: {e}")
            return 0, 0.0


# -- VFX -------------------------------------------------------------------------------------------


def halftone(gray, dot_size: int, dot_spacing: int):
    """FL_HalftonePattern on one grey picture (float64 [H, W]): white, with a black disc in each
    dot_spacing cell, of radius int((1 - the cell's mean) · dot_size / 2), centred at the cell's
    corner + dot_spacing // 2. A disc cut by the top or left edge keeps its first rows / columns
    (it shifts up / left), as the pack crops it."""
    import numpy as np
    height, width = gray.shape
    out = np.ones((height, width), dtype=np.float32)
    discs = {}
    for y in range(0, height, dot_spacing):
        check_interrupted()
        for x in range(0, width, dot_spacing):
            radius = int((1 - np.mean(gray[y:y + dot_spacing, x:x + dot_spacing])) * dot_size / 2)
            if radius < 0:
                continue  # a cell brighter than white: the pack's slice fails and it draws nothing
            if radius not in discs:
                dy, dx = np.ogrid[-radius:radius + 1, -radius:radius + 1]
                discs[radius] = dx ** 2 + dy ** 2 <= radius ** 2
            cy, cx = y + dot_spacing // 2, x + dot_spacing // 2
            top, bottom = max(0, cy - radius), min(height, cy + radius + 1)
            left, right = max(0, cx - radius), min(width, cx + radius + 1)
            if bottom > top and right > left:
                out[top:bottom, left:right][discs[radius][:bottom - top, :right - left]] = 0
    return out


class FillHalftonePattern(Node):
    """A black-and-white halftone: the picture's grey (0.299 R + 0.587 G + 0.114 B) as discs on a
    dot_spacing grid, darker cells bigger discs (up to dot_size across). Gives an RGB grey picture.
    Discs at the top and left edges are cropped from their first rows and columns, as the pack
    crops them (they shift a little up / left where a big disc passes the edge)."""
    category = VFX
    images: IMAGE
    dot_size: int = Int(5, min=1, max=20)
    dot_spacing: int = Int(10, min=5, max=50)
    outputs = {"IMAGE": IMAGE}
    display_name = "FL Halftone"
    comfy = ComfyAlias(("FL_HalftonePattern",))

    def run(self):
        import numpy as np
        import torch
        images = _image(self.images, "images")
        _channels(images, "images", (3, 4))
        out = []
        for image in images:
            gray = np.dot(image.detach().cpu().float().numpy()[..., :3], [0.299, 0.587, 0.114])
            dots = halftone(gray, self.dot_size, self.dot_spacing)
            out.append(torch.from_numpy(np.stack([dots] * 3, axis=-1)))
        return torch.stack(out)


def saturation(levels):
    """HSV saturation of uint8 RGB levels, as colorsys.rgb_to_hsv gives it on levels / 255."""
    import numpy as np
    rgb = levels.astype(np.float64) / 255.0
    top, bottom = rgb.max(axis=-1), rgb.min(axis=-1)
    return np.where(top == bottom, 0.0, (top - bottom) / np.where(top == 0, 1.0, top))


def sort_spans(levels, threshold: float, smoothing: float):
    """FL_PixelSort on uint8 RGB levels [H, W, 3] (already turned): each row cut where the
    smoothed edge map is nonzero, each span between two cuts sorted by saturation (numpy's
    argsort, as the pack's)."""
    import numpy as np
    height, width = levels.shape[:2]
    key = saturation(levels)
    bright = key > threshold
    # an edge where a row stops being bright down a column (the pack convolves each column with [-1, 1])
    edges = np.zeros((height, width), dtype=np.int64)
    edges[1:] = bright[:-1] & ~bright[1:]
    # a box of int(smoothing · width) over the picture read row after row (spilling across row ends, as
    # the pack's flattened convolution does); a zero-wide box leaves the edges as they are (the pack fails)
    box = int(smoothing * width)
    if box > 0:
        flat = np.concatenate([[0], np.cumsum(edges.ravel())])
        index = np.arange(flat.size - 1)
        ends = np.minimum(index + (box - 1) // 2 + 1, flat.size - 1)
        edges = (flat[ends] - flat[np.maximum(index - box // 2, 0)]).reshape(height, width)
    out = levels.copy()
    for row in range(height):
        check_interrupted()
        cuts = np.flatnonzero(edges[row])
        if cuts.size == 0:
            continue
        order = np.arange(width)
        bounds = np.append(cuts, width)
        for start, end in zip(bounds[:-1], bounds[1:]):
            if end - start > 1:
                order[start:end] = np.argsort(key[row, start:end]) + start
        out[row] = levels[row, order]
    return out


class FillPixelSort(Node):
    """Pixel sorting by saturation: where a column's saturation drops below threshold (going down)
    an edge is marked; the edges are smeared over smoothing × width pixels read row after row; each
    row's spans between marks are sorted by saturation. rotation turns the picture by 90° that many
    times first (and back after), so the sort runs along another direction. direction is read but
    unused, as in the pack. Gives RGB; an RGBA picture's alpha is dropped (the pack fails on it).
    smoothing 0 (a box under one pixel) sorts between the raw edges, where the pack fails."""
    category = VFX
    images: IMAGE
    direction: str = Choice(["Horizontal", "Vertical"], "Horizontal")
    threshold: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    smoothing: float = Float(0.1, min=0.0, max=1.0, step=0.01)
    rotation: int = Int(0, min=0, max=3)
    outputs = {"IMAGE": IMAGE}
    display_name = "FL PixelSort"
    comfy = ComfyAlias(("FL_PixelSort",))

    def run(self):
        import numpy as np
        import torch
        images = _image(self.images, "images")
        _channels(images, "images", (3, 4))
        out = []
        for image in images:
            levels = np.rot90(_levels(image[..., :3]), self.rotation)
            done = np.rot90(sort_spans(np.ascontiguousarray(levels), self.threshold, self.smoothing), -self.rotation)
            out.append(torch.from_numpy(np.ascontiguousarray(done).astype(np.float32) / 255.0))
        return torch.stack(out)


class FillImagePixelator(Node):
    """The pack's pixelator: each image shrunk by scale_factor (nearest) and grown back, then its
    morphological gradient (dilation - erosion, a kernel_size square) - bright outlines on black.
    As the pack does, the shrink reads the [H, W, C] picture as if it were [C, H, W]: it pixelates
    the width and the colour channels (all three become the red one) and leaves the height; these
    nodes give that same picture. modulation varies the scale over the batch: image i (from 0) of
    n uses scale_factor · (1 + modulation · sin(2π i / n)); the pack counts i on across runs of the
    same node, here each run starts at 0. kernel_size starts at 1 (0 fails in the pack)."""
    category = VFX
    image: IMAGE
    scale_factor: float = Float(0.05, min=0.01, max=0.2, step=0.01)
    kernel_size: int = Int(3, min=1, max=10)
    modulation: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    display_name = "FL Image Pixelator"
    comfy = ComfyAlias(("FL_ImagePixelator",))

    def run(self):
        import math
        import torch
        import torch.nn.functional as F
        from nodes.image_ops import morphology
        images = _image(self.image, "image")
        out = []
        for index, image in enumerate(images):
            check_interrupted()
            wave = torch.sin(2 * math.pi * torch.tensor(index / images.shape[0])).item()
            scale = self.scale_factor * (1 + self.modulation * wave)
            # the pack's [1, H, W, C] taken as [N, C, H, W]: W and C are the "height" and "width" resized
            planes = image[None].float()
            small = (max(1, int(planes.shape[2] * scale)), max(1, int(planes.shape[3] * scale)))
            blocky = F.interpolate(F.interpolate(planes, size=small, mode="nearest"), size=planes.shape[2:],
                                   mode="nearest")
            out.append(morphology(blocky.movedim(-1, 1), "gradient", self.kernel_size).movedim(1, -1)[0])
        return torch.stack(out).to(images.dtype)


def _column_channel_grid(image):
    """One image [H, W, C] as the pack's dither sees it: a grid of (column, channel) cells, each a
    vector down the rows, [W, C, H] (it reads [1, H, W, C] as [B, C, H, W])."""
    return image.permute(1, 2, 0)


def _from_grid(grid):
    return grid.permute(2, 0, 1)


def dither(image, method: str, colors: int, generator):
    """FL_Dither on one [H, W, C] float image, on the pack's (column, channel) grid."""
    import torch
    steps = colors - 1
    grid = _column_channel_grid(image).clone()
    columns, channels = grid.shape[:2]
    if method == "Floyd-Steinberg":
        for y in range(columns):
            check_interrupted()
            for x in range(channels):
                old = grid[y, x].clone()
                new = torch.round(old * steps) / steps
                grid[y, x] = new
                error = old - new
                if x + 1 < channels:
                    grid[y, x + 1] += error * 7 / 16
                if y + 1 < columns:
                    if x > 0:
                        grid[y + 1, x - 1] += error * 3 / 16
                    grid[y + 1, x] += error * 5 / 16
                    if x + 1 < channels:
                        grid[y + 1, x + 1] += error * 1 / 16
        return _from_grid(grid)
    if method == "Random":
        noise = torch.rand(image.shape, generator=generator, dtype=image.dtype) / (colors * 2)
        return torch.floor((image + noise.to(image.device)) * steps) / steps
    bayer = torch.tensor(BAYER, dtype=image.dtype, device=image.device) / 16.0
    rows = torch.arange(columns, device=image.device) % 4
    cols = torch.arange(channels, device=image.device) % 4
    thresholds = bayer[rows[:, None], cols[None, :]][..., None]  # one a (column, channel) cell
    if method == "Ordered":
        return _from_grid(torch.floor((grid + thresholds / colors) * steps) / steps)
    quantized = torch.round(grid * steps) / steps
    return _from_grid(torch.where(grid > thresholds, quantized + 1 / steps, quantized).clamp(0, 1))


class FillDither(Node):
    """Dithering to num_colors levels a channel: Floyd-Steinberg error diffusion, Random noise,
    Ordered (a 4 × 4 Bayer threshold added) or Bayer (a level up where the picture passes the
    threshold). As the pack does, it reads the [H, W, C] picture as if it were [C, H, W]: the
    error spreads from each column to the next and across the colour channels (not to the pixel
    below), and the Bayer thresholds vary with the column and channel, not the row; these nodes
    give that same picture, unclamped but for Bayer, as the pack. Random draws from a generator
    seeded at 0 each run (the pack's draw is unseeded): the pack's picture after
    torch.manual_seed(0), one draw an image."""
    category = VFX
    images: IMAGE
    dither_method: str = Choice(["Floyd-Steinberg", "Random", "Ordered", "Bayer"], "Floyd-Steinberg")
    num_colors: int = Int(2, min=2, max=256)
    outputs = {"IMAGE": IMAGE}
    display_name = "FL Dither"
    comfy = ComfyAlias(("FL_Dither",))

    def run(self):
        import torch
        images = _image(self.images, "images")
        generator = torch.Generator().manual_seed(0)
        out = []
        for image in images:
            check_interrupted()
            out.append(dither(image, self.dither_method, self.num_colors, generator))
        return torch.stack(out)


class FillRetroEffect(Node):
    """A retro look: red brightened by 1 + color_offset and blue darkened by 1 - color_offset (Pillow's
    ImageEnhance.Brightness on each), then blended with grey Gaussian noise (128 + noise_strength ·
    255 · N(0, 1), cut to 0..255) by noise_strength. scanline_strength and vignette_strength are read
    but change nothing, as in the pack (it pastes the picture onto itself through those masks); the
    vignette's large blur, whose result the pack throws away, is not made here. The pack's noise is
    unseeded (Pillow's effect_noise); here it is drawn from a generator seeded at 0 each run, one
    draw an image, so a run repeats itself. Gives RGB; an RGBA picture's alpha is dropped."""
    category = VFX
    display_name = "FL Retro Effect"
    images: IMAGE
    color_offset: float = Float(0.2, min=0.0, max=1.0, step=0.01)
    scanline_strength: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    vignette_strength: float = Float(0.7, min=0.0, max=1.0, step=0.01)
    noise_strength: float = Float(0.3, min=0.0, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_RetroEffect",), optional=("color_offset", "scanline_strength", "vignette_strength",
                                                       "noise_strength"))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageEnhance
        images = _image(self.images, "images")
        _channels(images, "images", (3, 4))
        draw = np.random.default_rng(0)
        out = []
        for image in images:
            check_interrupted()
            red, green, blue = Image.fromarray(_levels(image[..., :3]), "RGB").split()
            red = ImageEnhance.Brightness(red).enhance(1 + self.color_offset)
            blue = ImageEnhance.Brightness(blue).enhance(1 - self.color_offset)
            picture = Image.merge("RGB", (red, green, blue))
            sigma = self.noise_strength * 255
            grey = np.clip(128 + sigma * draw.standard_normal(image.shape[:2]), 0, 255).astype(np.uint8)
            noise = Image.fromarray(grey, "L").convert("RGB")
            picture = Image.blend(picture, noise, self.noise_strength)
            out.append(torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0))
        return torch.stack(out)


def _pil_colour(text: str, name: str) -> tuple:
    from PIL import ImageColor
    try:
        return ImageColor.getrgb(text)
    except ValueError:
        raise NodeInputError(name, f"{text!r} is not a colour Pillow knows (a name such as 'purple', or '#rrggbb')") \
            from None


class FillHexagonalPattern(Node):
    """The picture re-laid as hexagonal tiles on a background_color canvas: from the top left, every
    int(hexagon_size · spacing) pixels across and int(hexagon_size · spacing · √3 / 2) down (odd rows
    shifted half a step), a hexagon_size square of the picture is cut at that place, turned by
    rotation (degrees, the square grows to hold it), and pasted through a hexagon, after a
    shadow_color shadow shifted by shadow_offset, at full colour (the pack's shadow alpha of 127 is
    lost when the picture is made RGB, as here). Later tiles cover earlier ones, as in the pack. Gives RGB."""
    category = VFX
    display_name = "FL Hexagonal Pattern"
    images: IMAGE
    hexagon_size: int = Int(100, min=50, max=500, step=10)
    shadow_offset: int = Int(5, min=0, max=20)
    shadow_color: str = Text("purple")
    background_color: str = Text("black")
    rotation: float = Float(0.0, min=0.0, max=360.0, step=1.0)
    spacing: float = Float(1.0, min=0.5, max=2.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_HexagonalPattern",), optional=("hexagon_size", "shadow_offset", "shadow_color",
                                                            "background_color", "rotation", "spacing"))

    def run(self):
        import math

        import numpy as np
        import torch
        from PIL import Image, ImageDraw
        images = _image(self.images, "images")
        _channels(images, "images", (1, 3, 4))
        shadow_colour = _pil_colour(self.shadow_color, "shadow_color")
        background = _pil_colour(self.background_color, "background_color")
        size, offset = self.hexagon_size, self.shadow_offset
        hexagon = Image.new("L", (size, size), 0)
        ImageDraw.Draw(hexagon).regular_polygon((size // 2, size // 2, size // 2), 6, fill=255)
        step_x, step_y = int(size * self.spacing), int(size * self.spacing * math.sqrt(3) / 2)
        out = []
        for image in images:
            levels = _levels(image)
            picture = Image.fromarray(levels[..., 0] if levels.shape[-1] == 1 else levels)
            canvas = Image.new("RGBA", picture.size, background)
            for y in range(0, picture.height, step_y):
                check_interrupted()
                shift = step_x // 2 if y % (2 * step_y) == step_y else 0
                for x in range(shift, picture.width + shift, step_x):
                    tile = picture.crop((x, y, x + size, y + size)).rotate(self.rotation, expand=True)
                    mask = hexagon.copy().resize(tile.size)
                    shadow = Image.new("RGBA", tile.size, (0, 0, 0, 0))
                    shadow.paste(shadow_colour, (offset, offset), mask)
                    shadow.putalpha(127)
                    canvas.paste(shadow, (x + offset, y + offset), mask)
                    canvas.paste(tile, (x, y), mask)
            out.append(torch.from_numpy(np.asarray(canvas.convert("RGB"), dtype=np.float32) / 255.0))
        return torch.stack(out)


def ascii_fonts() -> dict:
    """FL_Ascii's fonts: the .ttf / .otf files in models/fonts by name without extension (the pack
    lists its own fonts folder so), sorted without regard to case as the pack sorts them."""
    from pathlib import PurePosixPath

    from nodes.pack_nodes_essentials_misc import font_choices
    fonts = {}
    for name in font_choices():
        fonts.setdefault(PurePosixPath(name).stem, name)
    return dict(sorted(fonts.items(), key=lambda item: item[0].lower()))


def ascii_font_names() -> list[str]:
    return list(ascii_fonts())


def _ascii_widgets(values: list) -> list:
    """A UI save of FL_Ascii in the layout built here (spacing, font_size, characters, font,
    sequence_toggle "off" / "on": the pack at 5d9f6707); the pack's later layout (9bef9f6c:
    sequence_toggle a boolean, then envelope_json, blend_intensity, invert) is refused rather than
    misread."""
    if len(values) != 5 or values[4] not in ("off", "on"):
        raise ValueError(f"a save with {len(values)} widget values is from a later version of the pack (9bef9f6c: "
                         "sequence_toggle a boolean, envelope_json, blend_intensity, invert): not read; graphflow "
                         "builds the layout of 5d9f6707 (spacing, font_size, characters, font, sequence_toggle off / on): put a new FL Ascii in its place")
    return values


_ascii_widgets.doc_note = LATER_LAYOUT_REFUSED


class FillAscii(Node):
    """ASCII art: the picture sampled every spacing pixels (nearest), and at each sample a character
    drawn in the sample's colour on black, at font_size in font. With sequence_toggle off the
    character is characters[k · len / 256] for the sample's mean level k (0..255), dark to light;
    on, the characters follow one another across the rows. Fonts are the .ttf / .otf files in
    models/fonts, named without their extension: put the pack's fonts/*.ttf there for its saves,
    which name them ("combo+", "arial"; the pack lists the fonts it ships; its
    FL_USE_SYSTEM_FONTS switch is not read); a font Pillow can't load falls back to Pillow's default,
    as in the pack. Gives RGB; an RGBA picture's alpha is dropped. At most 1,048,576 characters an
    image (the pack draws any number, one Pillow call each); spacing past the picture's size gives
    a black picture (the pack fails). font_size is at most 4,096 and characters × font_size² at most
    2³² an image (the pack has no limit; Pillow renders each glyph whole, so the time grows so).
    This is the pack's layout at 5d9f6707; a save from its later version (sequence_toggle a
    boolean, envelope_json, blend_intensity, invert, mask) is refused, not misread."""
    category = VFX
    display_name = "FL Ascii"
    image: IMAGE
    spacing: int = Int(20, min=1)
    font_size: int = Int(20, min=1, max=MOST_ASCII_FONT_SIZE)
    characters: str = Text("\\._♥♦♣MachineDelusions♣♦♥_./")
    font: str = Choice(ascii_font_names, "combo+", if_empty="no fonts: put the pack's fonts/*.ttf (combo+, arial, ...) "
                                                             "or other .ttf / .otf files in models/fonts")
    sequence_toggle: str = Choice(["off", "on"], "off")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_Ascii",), widgets=_ascii_widgets)

    def run(self):
        import numpy as np
        import torch
        from PIL import Image, ImageDraw, ImageFont

        from nodes.pack_nodes_essentials_misc import drawn_within_pillows_limit
        images = _image(self.image, "image")
        _channels(images, "image", (3, 4))
        if not self.characters:
            raise NodeInputError("characters", "empty: give at least one character to draw")
        height, width = images.shape[1:3]
        across, down = width // self.spacing, height // self.spacing
        if across * down > MOST_ASCII_CELLS:
            raise NodeInputError("spacing", f"{self.spacing}: {across * down} characters an image, more than this node "
                                            f"draws ({MOST_ASCII_CELLS}); a larger spacing")
        if across * down * self.font_size ** 2 > MOST_ASCII_AREA:
            raise NodeInputError("font_size", f"{self.font_size}: {across * down} characters of {self.font_size}² "
                                              f"pixels is more than this node renders ({MOST_ASCII_AREA}); a smaller "
                                              "font_size or a larger spacing")
        try:
            font = ImageFont.truetype(str(folders.find_model("fonts", ascii_fonts()[self.font], inside=True)),
                                      self.font_size)
        except (KeyError, OSError, ValueError):
            font = ImageFont.load_default()
        count = len(self.characters)
        out = []
        for image in images:
            picture = Image.new("RGB", (width, height), (0, 0, 0))
            samples = np.zeros((0, 0, 3), dtype=np.uint8)
            if across and down:
                rgb = Image.fromarray(_levels(image[..., :3]), "RGB")
                samples = np.asarray(rgb.resize((across, down), Image.NEAREST))
            draw = ImageDraw.Draw(picture)
            with drawn_within_pillows_limit("font_size", f"{self.font_size}: a character at this size is larger "
                                                         "than Pillow draws"):
                for row in range(down):
                    check_interrupted()
                    for column in range(across):
                        r, g, b = (int(v) for v in samples[row, column])
                        if self.sequence_toggle == "on":
                            char = self.characters[(row * across + column) % count]
                        else:
                            char = self.characters[(r + g + b) // 3 * count // 256]
                        draw.text((column * self.spacing, row * self.spacing), char, font=font, fill=(r, g, b))
            out.append(torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0))
        return torch.stack(out)


class FillImageCollage(Node):
    """A mosaic of the tile picture: tile_image resized (Lanczos, its aspect kept, tile_size on its
    longer side) and laid every tile size + spacing pixels over a black canvas of base_image's size,
    each tile in the mean colour of the base_image square under it (pixels past the edge count as
    black, as the pack crops), seen through the tile's brightness squared (a light tile shows the
    colour, a dark one stays black). One tile image serves every base image, else one each. A side
    the aspect would make 0 pixels is 1 (the pack fails). At most 262,144 tiles an image (the pack
    lays any number). Gives RGB; alpha is dropped."""
    category = VFX
    display_name = "FL Image Collage"
    base_image: IMAGE
    tile_image: IMAGE
    tile_size: int = Int(32, min=8, max=256, step=8)
    spacing: int = Int(0, min=0, max=64)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("FL_ImageCollage",))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image
        bases, tiles = _image(self.base_image, "base_image"), _image(self.tile_image, "tile_image")
        _channels(bases, "base_image", (3, 4))
        _channels(tiles, "tile_image", (3, 4))
        if tiles.shape[0] not in (1, bases.shape[0]):
            raise NodeInputError("tile_image", f"a batch of {tiles.shape[0]}: expected 1 or base_image's "
                                               f"{bases.shape[0]}")
        height, width = bases.shape[1:3]
        out = []
        for index, base in enumerate(bases):
            tile = Image.fromarray(_levels(tiles[index % tiles.shape[0]][..., :3]), "RGB")
            aspect = tile.width / tile.height
            if tile.width > tile.height:
                size = (self.tile_size, max(1, int(self.tile_size / aspect)))
            else:
                size = (max(1, int(self.tile_size * aspect)), self.tile_size)
            brightness = np.asarray(tile.resize(size, Image.Resampling.LANCZOS).convert("L")) / 255.0
            mask = Image.fromarray(np.uint8(brightness ** 2 * 255), "L")
            count = -(-height // (size[1] + self.spacing)) * -(-width // (size[0] + self.spacing))
            if count > MOST_COLLAGE_TILES:
                raise NodeInputError("tile_image", f"{tile.width}×{tile.height} makes {size[0]}×{size[1]} tiles, "
                                                   f"{count} an image: more than this node lays "
                                                   f"({MOST_COLLAGE_TILES}); "
                                                   "a squarer tile_image or a larger tile_size")
            levels = _levels(base[..., :3])
            canvas = Image.new("RGB", (width, height))
            for y in range(0, height, size[1] + self.spacing):
                check_interrupted()
                for x in range(0, width, size[0] + self.spacing):
                    region = np.zeros((size[1], size[0], 3))
                    part = levels[y:y + size[1], x:x + size[0]]
                    region[:part.shape[0], :part.shape[1]] = part
                    colour = tuple(int(v) for v in region.mean(axis=(0, 1)))
                    canvas.paste(Image.new("RGB", size, colour), (x, y), mask)
            out.append(torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0))
        return torch.stack(out)
