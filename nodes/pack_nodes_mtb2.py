"""comfy_mtb's (MTB Nodes, melMass) model-free nodes continued from nodes/pack_nodes_mtb.py (which
says which of the pack's nodes graphflow holds and which it leaves out): Animation Builder, Debug,
Colored Image, Save Image Grid, Apply Text Template, Any To String, Smart Step, Interpolate
Condition, Load Image Sequence and Save Image Sequence (inside the inputs / outputs folders); and,
in round 2, Float To Floats, Floats To Float, Floats To Ints, Match Dimensions, Curve, Curve To
Float, Color Correct GPU, Save Gif (inside outputs), Styles Loader (models/styles/mtb) and Text To
Image (fonts from models/fonts). Read
from melMass/comfy_mtb: nodes/animation.py @c20da85e, nodes/debug.py @93f7c006, web/debug.js
@0d0fb8e1, nodes/image_processing.py @265cb953, nodes/graph_utils.py @05fe61e0, nodes/conditions.py
@edfbe34e, nodes/video.py @01c73e1c, web/mtb_widgets.js @f9a0998c; round 2: nodes/curve.py and
web/curve_widget.js @c20da85e, nodes/io.py @c20da85e, nodes/generate.py @319c02d6, log.py @d687497d
(class labels), utils.py's PIL_FILTER_MAP."""

from __future__ import annotations

import math
import re
from functools import lru_cache

from graphflow.api import ANY, BOOLEAN, CONDITIONING, FLOAT, IMAGE, INT, MASK, STRING, Bool, Choice, ComfyAlias, \
    Estimate, Float, Int, Node, NodeInputError, Size, Text, check_interrupted, folders, safe_join, show, socket_type, \
    subfolder_name, warn
from nodes.image import MAX_SIZE, _image
from nodes.pack_nodes import MAX_LIST_ITEMS
from nodes.pack_nodes_mtb import FLOATS, _bytes, _dynamic, _dynamic_refusal, _from_bytes, _mask, _pil_colour
from nodes.pack_nodes_sdxl_styler import MAX_STYLE_FILE, style_file_state
from nodes.strings import replaced_in_turn

COMFY_PACK = "comfy_mtb"  # the custom node pack this module's ComfyUI classes come from


# -- animation and debugging ----------------------------------------------------------------------


def _animation_widgets(values):
    """Animation Builder's saved widgets: its five inputs, then what its editor adds after them (a
    frame and a loop preview, Reset and Queue buttons), which are not read back."""
    return values[:5] if isinstance(values, list) else values


class MtbAnimationBuilder(Node):
    """Frame maths for a queue of runs, as MTB's Animation Builder gives it: frame = raw_iteration
    % total_frames, its 0..1 place (frame / (total_frames - 1)) times scale_float, the loop count
    (raw_loop) and whether this is the loop's last frame. The pack's editor adds one to
    raw_iteration (and sets raw_loop) after each queued run and has a Queue button for
    total_frames × loop_count runs; here raw_iteration and raw_loop are what the workflow says
    (a sweep over raw_iteration runs the frames). total_frames needs to be 2 or more: the pack
    divides by total_frames - 1."""
    category = "mtb/animation"
    total_frames: int = Int(100, min=0)
    scale_float: float = Float(1.0, min=0.0)
    loop_count: int = Int(1, min=0)
    raw_iteration: int = Int(0, min=0)
    raw_loop: int = Int(0, min=0)
    outputs = {"frame": INT, "0-1 (scaled)": FLOAT, "count": INT, "loop_ended": BOOLEAN}
    comfy = ComfyAlias(("Animation Builder (mtb)",), widgets=_animation_widgets)

    def run(self):
        if self.total_frames < 2:
            raise NodeInputError("total_frames", f"{self.total_frames}: needs 2 or more (the pack divides by "
                                                 "total_frames - 1)")
        frame = self.raw_iteration % self.total_frames
        return frame, frame / (self.total_frames - 1) * self.scale_float, self.raw_loop, \
            frame == self.total_frames - 1


def _detailed_type(value) -> list[str]:
    """The pack's detailed type lines for Debug's as_detailed_types."""
    import torch
    lines = [f"Type: {type(value).__name__}"]
    if isinstance(value, torch.Tensor):
        lines += [f"Shape: {value.shape}", f"Dtype: {value.dtype}", f"Device: {value.device}",
                  f"Requires grad: {value.requires_grad}", f"Stride: {value.stride()}",
                  f"Contiguous: {value.is_contiguous()}"]
    elif isinstance(value, (list, tuple)):
        lines += [f"Length: {len(value)}", f"Container type: {type(value).__name__}"]
        if value:
            lines.append(f"Element type: {type(value[0]).__name__}")
    elif isinstance(value, dict):
        lines += [f"Length: {len(value)}", f"Keys: {list(value.keys())}"]
    elif hasattr(value, "__dict__"):
        lines.append(f"Attributes: {[name for name in dir(value) if not name.startswith('_')]}")
    return lines


def debug_lines(value, detailed: bool) -> list[str] | None:
    """What MTB's Debug shows of a value as text (None: a tensor it shows as pictures)."""
    import json
    import torch
    kind = type(value)
    if kind is torch.Tensor:
        return [f"Tensor of shape {value.shape} of type {value.dtype}"] if detailed else None
    if kind is list:
        if not value:
            return []
        if detailed:
            return _detailed_type(value) + _detailed_type(value[0])
        first = value[0]
        if isinstance(first, list) and first and isinstance(first[0], torch.Tensor):
            return [f"List of List of Tensors: {first[0].shape} (x{len(value)})"]
        if isinstance(first, torch.Tensor):
            return [f"List of Tensors: {first.shape} (x{len(value)})"]
        return [f"Array ({len(value)}): {value}"]
    if kind is dict:
        if detailed:
            return _detailed_type(value)
        if "samples" in value:
            empty = "(empty)" if torch.count_nonzero(value["samples"]) == 0 else ""
            return [f"Latent Samples: {value['samples'].shape} {empty}"]
        try:
            return [json.dumps(value, indent=2)]
        except (TypeError, ValueError):  # the pack fails on what JSON can't hold; shown as Python writes it
            return [str(value)]
    if kind is bool:
        return ["True" if value else "False"]
    return _detailed_type(value) if detailed else [str(value)]


class MtbDebug(Node):
    """Show what reaches anything_1, anything_2 ..., as MTB's Debug does: an image batch or mask
    as pictures (or its shape and type with as_detailed_types), a latent's shape, a list's length
    and items, True / False, anything else as text; output_to_console also prints each input."""
    category = "mtb/debug"
    output_node = True
    output_to_console: bool = Bool(False)
    as_detailed_types: bool = Bool(False)
    anything_1: ANY = None
    anything_2: ANY = None
    anything_3: ANY = None
    anything_4: ANY = None
    anything_5: ANY = None
    anything_6: ANY = None
    anything_7: ANY = None
    anything_8: ANY = None
    anything_9: ANY = None
    anything_10: ANY = None
    anything_11: ANY = None
    anything_12: ANY = None
    outputs = {}
    comfy = ComfyAlias(("Debug (mtb)",), optional=("as_detailed_types",))

    @classmethod
    def unknown_input(cls, name):
        return _dynamic_refusal(name, ("anything",))

    def run(self):
        from nodes.image import temp_pngs
        for name, value in _dynamic(self, "anything"):
            if self.output_to_console:
                print(f"{name}: {value}")
            lines = debug_lines(value, self.as_detailed_types)
            if lines is not None:
                show(text=lines)
            elif value.ndim == 3:  # a mask, shown grey
                show(images=temp_pngs(value[..., None].expand(-1, -1, -1, 3)))
            elif value.ndim == 4 and value.shape[-1] in (3, 4):
                show(images=temp_pngs(value))
            else:
                show(text=[f"Tensor of shape {value.shape} of type {value.dtype}"])


# -- generating and saving ------------------------------------------------------------------------


def _cover(picture, width: int, height: int):
    """The pack's resize_and_crop: scaled (Lanczos) to cover width × height, sides cut to whole
    numbers, then the middle cut out."""
    from PIL import Image
    scale = max(width / picture.width, height / picture.height)
    picture = picture.resize((int(picture.width * scale), int(picture.height * scale)), Image.LANCZOS)
    left, top = (picture.width - width) // 2, (picture.height - height) // 2
    return picture.crop((left, top, left + width, top + height))


class MtbColoredImage(Node):
    """A width × height image of one colour, as MTB's Colored Image makes it; with a
    foreground_image, each of its images scaled (Lanczos) to cover the size, centre-cut, and laid
    over the colour through foreground_mask (1 - mask with invert, times mask_opacity, cut to 8
    bits, clipped at 255 where the pack's 8 bits wrap; one mask serves every image) or, without a
    mask, through its own alpha (an RGBA image is then needed, as in the pack)."""
    category = "mtb/generate"
    color: str = Text("#ffffff")
    width: int = Int(512, min=16, max=8160, resource="width")
    height: int = Int(512, min=16, max=8160, resource="height")
    foreground_image: IMAGE = None
    foreground_mask: MASK = None
    invert: bool = Bool(False)
    mask_opacity: float = Float(1.0, min=0.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Colored Image (mtb)",), optional=("invert", "mask_opacity"))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image
        background = Image.new("RGBA", (self.width, self.height), _pil_colour(self.color, "color"))
        if self.foreground_image is None:
            return _from_bytes(background.convert("RGB"))[None]
        images = _image(self.foreground_image, "foreground_image")
        masks = None
        if self.foreground_mask is not None:
            mask = _mask(self.foreground_mask, "foreground_mask")
            if mask.shape[0] not in (1, images.shape[0]):
                raise NodeInputError("foreground_mask", f"{mask.shape[0]} masks for {images.shape[0]} images")
            masks = _bytes(1.0 - mask if self.invert else mask)
        elif images.shape[3] != 4:
            raise NodeInputError("foreground_image", "an RGB image needs a foreground_mask (or an alpha channel)")
        out = []
        for i, pixels in enumerate(_bytes(images)):
            check_interrupted()
            picture = _cover(Image.fromarray(pixels, mode="RGBA" if pixels.shape[2] == 4 else "RGB"),
                             self.width, self.height)
            if masks is None:
                out.append(_from_bytes(Image.alpha_composite(background, picture).convert("RGB")))
                continue
            cut = np.asarray(_cover(Image.fromarray(masks[0 if len(masks) == 1 else i], mode="L"), self.width,
                                    self.height))
            alpha = Image.fromarray(np.clip(cut * self.mask_opacity, 0, 255).astype(np.uint8), mode="L")
            out.append(_from_bytes(Image.composite(picture.convert("RGBA"), background, alpha).convert("RGB")))
        return torch.stack(out)


class MtbSaveImageGrid(Node):
    """The images saved as one grid PNG in the outputs folder (prefix_NNNNN_.png; the prefix may
    hold subfolders inside it), with the workflow embedded, as MTB's Save Image Grid does:
    int(√n) columns and ceil(√n) rows of the first image's size, in order left to right; as in
    the pack, images past columns × rows (3 images make a 1 × 2 grid, say) fall outside it and
    are not in the picture. save_intermediate also saves each image as
    prefix_batch-III_NNNNN_.png."""
    category = "mtb/IO"
    output_node = True
    images: IMAGE
    filename_prefix: str = Text("ComfyUI", file_name=True)
    save_intermediate: bool = Bool(False)
    outputs = {}
    comfy = ComfyAlias(("Save Image Grid (mtb)",))

    def run(self):
        from PIL import Image
        from nodes.image import _next_counter, _png_metadata, _save_new
        images = _image(self.images, "images")
        try:
            folder, stem = folders.output_location(self.filename_prefix)
        except ValueError as e:
            raise NodeInputError("filename_prefix", str(e)) from None
        subfolder = subfolder_name(folders.outputs, folder)
        counter = _next_counter(folder, stem)
        metadata = _png_metadata()
        pictures = [Image.fromarray(pixels) for pixels in _bytes(images[..., :3])]
        for index, picture in enumerate(pictures if self.save_intermediate else []):
            check_interrupted()
            part = f"{stem}_batch-{index:03}"
            _save_new(picture, folder, part, _next_counter(folder, part), pnginfo=metadata, compress_level=4)
        columns, rows = int(math.sqrt(len(pictures))), math.ceil(math.sqrt(len(pictures)))
        width, height = pictures[0].size
        grid = Image.new("RGB", (columns * width, rows * height))
        for index, picture in enumerate(pictures):
            grid.paste(picture, (index % columns * width, index // columns * height))
        name, _ = _save_new(grid, folder, stem, counter, pnginfo=metadata, compress_level=4)
        show(images=[{"filename": name, "subfolder": subfolder, "type": "output"}])


class MtbApplyTextTemplate(Node):
    """The template with each {var_1}, {var_2} ... replaced by the text of the value linked there,
    as MTB's Apply Text Template does (Python's str() of it)."""
    category = "mtb/utils"
    template: str = Text("", multiline=True)
    var_1: ANY = None
    var_2: ANY = None
    var_3: ANY = None
    var_4: ANY = None
    var_5: ANY = None
    var_6: ANY = None
    var_7: ANY = None
    var_8: ANY = None
    var_9: ANY = None
    var_10: ANY = None
    var_11: ANY = None
    var_12: ANY = None
    outputs = {"string": STRING}
    comfy = ComfyAlias(("Apply Text Template (mtb)",))

    @classmethod
    def unknown_input(cls, name):
        return _dynamic_refusal(name, ("var",))

    def run(self):
        text = self.template
        named = _dynamic(self, "var")
        # as str.replace, each in turn; a result over the text limit is refused naming its input
        return replaced_in_turn(text, [("{" + name + "}", str(value)) for name, value in named],
                                [name for name, _ in named])


class MtbAnyToString(Node):
    """A text for any value, as MTB's Any To String writes it: text as it is, a tensor's shape and
    dtype, a dict's size and keys, anything else Python's str()."""
    category = "mtb/converters"
    input: ANY
    outputs = {"STRING": STRING}
    comfy = ComfyAlias(("Any To String (mtb)",))

    def run(self):
        import numpy as np
        import torch
        from PIL import Image
        value = self.input
        if isinstance(value, str):
            return value
        if isinstance(value, torch.Tensor):
            return f"Tensor of shape {value.shape} and dtype {value.dtype}"
        if isinstance(value, Image.Image):
            return f"PIL Image of size {value.size} and mode {value.mode}"
        if isinstance(value, np.ndarray):
            return f"Numpy array of shape {value.shape} and dtype {value.dtype}"
        if isinstance(value, dict):
            return f"Dictionary of {len(value)} items, with keys {value.keys()}"
        return str(value)


# -- conditioning and steps -----------------------------------------------------------------------


class MtbSmartStep(Node):
    """Sampling steps and a start and end step as percentages of them (int(step × percent / 100)),
    for KSamplerAdvanced's start_at_step / end_at_step, as MTB's Smart Step gives them."""
    category = "mtb/conditioning"
    step: int = Int(20, min=1, max=10000)
    start_percent: int = Int(0, min=0, max=100)
    end_percent: int = Int(0, min=0, max=100)
    outputs = {"step": INT, "start": INT, "end": INT}
    comfy = ComfyAlias(("Smart Step (mtb)",))

    def run(self):
        return self.step, int(self.step * self.start_percent / 100), int(self.step * self.end_percent / 100)


class MtbInterpolateCondition(Node):
    """A blend along the connected conditionings (condition_1, condition_2 ...), as MTB's
    Interpolate Condition does: blend 0..1 spans them evenly; between the two it falls between,
    the first entries' embeddings are mixed linearly (same shape needed), and so are their pooled
    outputs (which each must have). A ControlNet on one of the two is kept; on both is refused."""
    category = "mtb/conditioning"
    blend: float = Float(0.0, min=0.0, max=1.0, step=0.01)
    condition_1: CONDITIONING = None
    condition_2: CONDITIONING = None
    condition_3: CONDITIONING = None
    condition_4: CONDITIONING = None
    condition_5: CONDITIONING = None
    condition_6: CONDITIONING = None
    condition_7: CONDITIONING = None
    condition_8: CONDITIONING = None
    condition_9: CONDITIONING = None
    condition_10: CONDITIONING = None
    condition_11: CONDITIONING = None
    condition_12: CONDITIONING = None
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("Interpolate Condition (mtb)",))

    @classmethod
    def unknown_input(cls, name):
        return _dynamic_refusal(name, ("condition",))

    def run(self):
        named = _dynamic(self, "condition")
        if len(named) < 2:
            raise NodeInputError("condition_2", "not connected: the node blends two conditionings or more")
        blend = max(0.0, min(1.0, self.blend))
        segment = 1.0 / (len(named) - 1)
        index = min(int(blend // segment), len(named) - 2)
        local = (blend - index * segment) / segment
        (from_name, from_value), (to_name, to_value) = named[index], named[index + 1]
        firsts = []
        for name, value in ((from_name, from_value), (to_name, to_value)):
            if not value:
                raise NodeInputError(name, "the conditioning is empty")
            cond, options = value[0]
            if "pooled_output" not in options:
                raise NodeInputError(name, "has no pooled output, which the blend needs")
            firsts.append((cond, options))
        (cond_from, from_options), (cond_to, to_options) = firsts
        if cond_from.shape != cond_to.shape:
            raise NodeInputError(to_name, f"embeddings of shape {tuple(cond_to.shape)}; {from_name}'s are "
                                          f"{tuple(cond_from.shape)}")
        if "control" in from_options and "control" in to_options:
            raise NodeInputError(to_name, f"both {from_name} and {to_name} carry a ControlNet: only one may")
        options = {"pooled_output": (1.0 - local) * from_options["pooled_output"]
                   + local * to_options["pooled_output"]}
        for source in (from_options, to_options):
            if "control" in source:
                options.update({key: source[key] for key in ("control", "control_apply_to_uncond") if key in source})
        return [((1.0 - local) * cond_from + local * cond_to, options)]


# -- image sequences (inside the inputs / outputs folders) -----------------------------------------


def _sequence_picture(path):
    """The pack's img_from_path: the picture as RGB, and 1 - its alpha as the mask, or (the pack's
    placeholder) a 64 × 64 mask of zeros where it has none."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps
    try:
        with Image.open(path) as opened:
            picture = ImageOps.exif_transpose(opened)
            picture.load()
    except (OSError, Image.DecompressionBombError) as e:
        raise NodeInputError("path", f"can't read {path.name!r} as an image: {e}") from None
    image = torch.from_numpy(np.asarray(picture.convert("RGB")).astype(np.float32) / 255.0)[None]
    if "A" in picture.getbands():
        mask = 1.0 - torch.from_numpy(np.asarray(picture.getchannel("A")).astype(np.float32) / 255.0)
    else:
        mask = torch.zeros((64, 64), dtype=torch.float32)
    return image, mask[None]


def _sequence_pixels(path) -> tuple[int, int]:
    """(height, width) of the file's picture as its header states them, nothing decoded: its pixel
    count is that of the picture _sequence_picture makes (an EXIF turn swaps the sides only, and
    reading the EXIF of a PNG without it decodes the whole picture, so the sides are compared
    after decoding)."""
    from PIL import Image
    try:
        with Image.open(path) as opened:
            width, height = opened.size
            return height, width
    except (OSError, Image.DecompressionBombError) as e:
        raise NodeInputError("path", f"can't read {path.name!r} as an image: {e}") from None


def frame_pattern(name: str):
    """The expression a file name with # matches: each run of n # stands for n or more digits (the
    pack's n (\\d+) groups match the same names), the first run's number as group 1."""
    import re
    return re.compile(re.sub(r"(?:\\#)+", lambda run: "(\\d{%d,})" % (len(run.group(0)) // 2), re.escape(name)))


def sequence_files(path: str) -> list[tuple[str, object]]:
    """(name, file) of the frames `path` names inside the inputs folder, sorted by name, as the
    pack's resolve_all_frames finds them: with # (a frame number: each run of # any digits) the
    files of its folder matching it; with * (in the file name) those matching the pattern; a
    folder's .jpg and .png files."""
    import fnmatch
    from pathlib import PurePosixPath
    from graphflow.folders import UnsafePathError, safe_join
    if "#" in path or "*" in path:
        folder_name, pattern = PurePosixPath(path).parent.as_posix(), PurePosixPath(path).name
        if any(c in folder_name for c in "#*"):
            raise NodeInputError("path", "# and * may stand in the file name only, not in its folders")
    else:
        folder_name, pattern = path.strip("/") or ".", None
    try:
        folder = safe_join(folders.inputs, folder_name) if folder_name != "." else folders.inputs
    except UnsafePathError as e:
        raise NodeInputError("path", str(e)) from None
    if not folder.is_dir():
        raise NodeInputError("path", f"no folder {folder_name!r} in the inputs (the path names a folder, or a file "
                                     "name with # for the frame number or *)")
    if pattern is None:
        keep = lambda name: PurePosixPath(name).suffix in (".jpg", ".png")  # noqa: E731 (the pack's two, as written)
    elif "#" in pattern:
        numbered = frame_pattern(pattern)
        keep = lambda name: numbered.search(name) is not None  # noqa: E731
    else:
        keep = lambda name: fnmatch.fnmatchcase(name, pattern)  # noqa: E731
    prefix = "" if folder_name == "." else folder_name + "/"
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and keep(entry.name):
            try:  # a link leading out of the inputs is not followed
                found.append((prefix + entry.name, safe_join(folders.inputs, prefix + entry.name)))
            except UnsafePathError:
                continue
    return found


class MtbLoadImageSequence(Node):
    """Frames of an image sequence from the inputs folder, as MTB's Load Image Sequence loads them:
    path names them with # for the frame number (videos/####.png: current_frame zero-padded to as
    many digits as there are #), with * (every match), or as a folder (its .jpg / .png files);
    current_frame -1 loads every matching frame as one batch, and range "start-end" the frames
    numbered start to end (by their # number; by their place in the sorted list otherwise; the end
    must be below the count of frames found, as the pack checks). (The pack reads a range's frame
    number as the first of its # digits only, so that ranges of #### names find nothing; here
    the whole number counts.)
    Gives the images (RGB), masks (1 - alpha; the pack's 64 × 64 zeros for a picture without
    alpha), the frame loaded (-1 for a batch) and how many were loaded. Paths stay inside the
    inputs folder (the pack reads any path on the server)."""
    category = "mtb/IO"
    path: str = Text("videos/####.png")
    current_frame: int = Int(0, min=-1, max=9999999)
    range: str = Text("")
    outputs = {"image": IMAGE, "mask": MASK, "current_frame": INT, "total_frames": INT}
    comfy = ComfyAlias(("Load Image Sequence (mtb)",), optional=("range",))
    cacheable = False  # the files may change between runs (the pack hashes them each time)

    def frames(self) -> list:
        listed = sequence_files(self.path)
        found = [file for _, file in listed]
        if not self.range:
            return found
        try:
            start, end = map(int, self.range.split("-"))
        except ValueError:
            raise NodeInputError("range", f"{self.range!r}: expected start-end, two whole numbers") from None
        if start < 0 or end >= len(found):
            raise NodeInputError("range", f"{self.range} is out of bounds: {len(found)} frames were found")
        if "#" not in self.path:
            return found[start:end + 1]
        from pathlib import PurePosixPath
        numbered = frame_pattern(PurePosixPath(self.path).name)
        # by the listed name: a linked frame's file is its target, whose name may not be numbered
        return [file for name, file in listed
                if start <= int(numbered.search(PurePosixPath(name).name).group(1)) <= end]

    def run(self):
        import re
        import torch
        from graphflow.api import Size, check_run_memory
        if not self.range and self.current_frame != -1:
            name = re.sub("#+", str(self.current_frame).zfill(self.path.count("#")), self.path)
            try:
                file = folders.input_path(name)
            except ValueError as e:
                raise NodeInputError("path", str(e)) from None
            if not file.is_file():
                raise NodeInputError("current_frame", f"no frame {name!r} in the inputs folder")
            height, width = _sequence_pixels(file)  # its memory checked from the header, before decoding
            check_run_memory("path", "loads a frame", images=Size(1, height, width))
            image, mask = _sequence_picture(file)
            return image, mask, self.current_frame, 1
        files = self.frames()
        if not files:
            raise NodeInputError("path", f"no frames match {self.path!r} in the inputs folder")
        # every frame's pixel count from its header first: frames of other counts are refused, and the
        # memory checked for the frames as they are, before any is decoded
        sizes = [_sequence_pixels(file) for file in files]
        for file, (height, width) in zip(files, sizes):
            if height * width != sizes[0][0] * sizes[0][1]:
                raise NodeInputError("path", f"{file.name!r} is {width}×{height}, {files[0].name!r} "
                                             f"{sizes[0][1]}×{sizes[0][0]}: the frames differ in size, so they can't "
                                             "make one batch")
        height, width = sizes[0]
        check_run_memory("path", f"loads {len(files)} frames", images=Size(len(files), height, width))
        pictures = []
        for file in files:
            check_interrupted()
            pictures.append(_sequence_picture(file))
        images, masks = zip(*pictures)
        for name, batch in (("path", images), ("path", masks)):
            if any(part.shape != batch[0].shape for part in batch):
                raise NodeInputError(name, "the frames differ in size (or some have alpha and some not), so they "
                                           "can't make one batch")
        return torch.cat(images), torch.cat(masks), -1, len(images)


class MtbSaveImageSequence(Node):
    """One image saved as frame current_frame of a sequence, as MTB's Save Image Sequence does:
    outputs/<prefix>/<prefix>_NNNNN.png (NNNNN the frame, zero-padded to 5), replacing a frame
    saved before under that name, with the workflow embedded. A batch of more than one image is
    refused, as the pack refuses it."""
    category = "mtb/IO"
    output_node = True
    images: IMAGE
    filename_prefix: str = Text("Sequence", file_name=True)
    current_frame: int = Int(0, min=0, max=9999999)
    outputs = {}
    comfy = ComfyAlias(("Save Image Sequence (mtb)",))

    def run(self):
        from PIL import Image
        from graphflow.folders import UnsafePathError, safe_join
        from nodes.image import _png_metadata, _write_at
        images = _image(self.images, "images")
        if images.shape[0] > 1:
            raise NodeInputError("images", f"{images.shape[0]} images: the node saves one frame at a time")
        name = f"{self.filename_prefix}/{self.filename_prefix}_{self.current_frame:05}.png"
        try:
            path = safe_join(folders.outputs, name)
        except UnsafePathError as e:
            raise NodeInputError("filename_prefix", str(e)) from None
        path.parent.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(_bytes(images[0, ..., :3]))
        metadata = _png_metadata()
        _write_at(lambda target: picture.save(target, format="PNG", pnginfo=metadata, compress_level=4), path,
                  overwrite=True)
        subfolder = subfolder_name(folders.outputs, path.parent)
        show(images=[{"filename": path.name, "subfolder": subfolder, "type": "output"}])


# -- converters and Match Dimensions (nodes/graph_utils.py @05fe61e0) --------------------------------

INTS = socket_type("INTS", "#4fc3f7", "A list of whole numbers (comfy_mtb's frame lists)")


def _number_list(value, name: str) -> list:
    """A list of numbers as given, or a clear refusal naming the input."""
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                for v in value):
        return list(value)
    raise NodeInputError(name, "expected FLOATS: a list of numbers")


class MtbFloatToFloats(Node):
    """A FLOAT socket's value as FLOATS, for packs (AnimateDiff, IPAdapter, Fitz) that pass lists of
    numbers on FLOAT sockets, as MTB's Float To Floats does. The pack hands the value on as it is;
    here a lone number becomes a one-number list (the pack's own FLOATS nodes need a list, which a
    lone number passed on as it is fails in) and a list is handed on as it is."""
    category = "mtb/utils"
    float: FLOAT
    outputs = {"floats": FLOATS}
    comfy = ComfyAlias(("Float To Floats (mtb)",), force_input=("float",))

    def run(self):
        if isinstance(self.float, (int, float)) and not isinstance(self.float, bool):
            return [self.float]
        return _number_list(self.float, "float")


class MtbFloatsToFloat(Node):
    """A FLOATS list handed on on a FLOAT socket, unchanged, for packs (AnimateDiff, IPAdapter, Fitz)
    that read lists of numbers from FLOAT inputs, as MTB's Floats To Float does."""
    category = "mtb/utils"
    floats: FLOATS
    outputs = {"float": FLOAT}
    comfy = ComfyAlias(("Floats To Float (mtb)",))

    def run(self):
        return _number_list(self.floats, "floats")


class MtbFloatsToInts(Node):
    """Each number of the list made whole by cutting toward zero (Python's int()), given twice: as
    INTS and on an INT socket (for frame interpolation nodes that read a list there), as MTB's Floats
    To Ints does."""
    category = "mtb/utils"
    floats: FLOATS
    outputs = {"INTS": INTS, "INT": INT}
    comfy = ComfyAlias(("Floats To Ints (mtb)",), force_input=("floats",))

    def run(self):
        numbers = _number_list(self.floats, "floats")
        if any(math.isinf(v) or math.isnan(v) for v in numbers if isinstance(v, float)):
            raise NodeInputError("floats", "holds an infinite or NaN number, which has no whole value")
        whole = [int(v) for v in numbers]
        return whole, list(whole)


def _matched_size(source_height: int, source_width: int, reference_height: int, reference_width: int,
                  match: str) -> tuple[int, int]:
    """(height, width) the pack resizes to: the reference's side, the other side from the source's
    aspect ratio, cut to a whole number."""
    aspect = source_width / source_height
    if match == "height":
        return reference_height, int(reference_height * aspect)
    return int(reference_width / aspect), reference_width


class MtbMatchDimensions(Node):
    """The source images resized so that their height (or width) is the reference's, keeping the
    source's aspect ratio (the other side cut to a whole number), by bicubic resampling with
    antialiasing (torchvision's resize on tensors, which is torch's bicubic interpolate with
    antialias), as MTB's Match Dimensions does; also the new width and height. A side that comes
    to 0 or past 16384 is refused."""
    category = "mtb/utils"
    source: IMAGE
    reference: IMAGE
    match: str = Choice(("height", "width"), "height")
    outputs = {"image": IMAGE, "new_width": INT, "new_height": INT}
    comfy = ComfyAlias(("Match Dimensions (mtb)",))

    @classmethod
    def estimate(cls, widgets, inputs):
        source, reference = inputs.get("source"), inputs.get("reference")
        if source is None or reference is None or not source.height or not source.width:
            return Estimate(source)
        height, width = _matched_size(source.height, source.width, reference.height, reference.width,
                                      widgets.get("match", "height"))
        return Estimate(Size(source.batch, height, width))

    def run(self):
        import torch.nn.functional as F
        source, reference = _image(self.source, "source"), _image(self.reference, "reference")
        height, width = _matched_size(source.shape[1], source.shape[2], reference.shape[1], reference.shape[2],
                                      self.match)
        if min(height, width) < 1 or max(height, width) > MAX_SIZE:
            raise NodeInputError("match", f"makes {width}×{height} images from the source's aspect ratio; sides "
                                          f"must be 1 to {MAX_SIZE}")
        resized = F.interpolate(source.movedim(-1, 1), size=(height, width), mode="bicubic", align_corners=False,
                                antialias=True)
        return resized.movedim(1, -1), width, height


# -- curves (nodes/curve.py @c20da85e, web/curve_widget.js @c20da85e) ---------------------------------

FLOAT_CURVE = socket_type("FLOAT_CURVE", "#80cbc4", "comfy_mtb's curve: points {index: {x, y}} in 0..1")
# the pack's curve widget's starting value (two points, a straight line from 0, 0 to 1, 1)
DEFAULT_CURVE = '{"0": {"x": 0, "y": 0}, "1": {"x": 1, "y": 1}}'


def curve_points(curve, name: str) -> list[tuple[float, float]]:
    """The curve's (x, y) points sorted by x, from the pack's widget value (a JSON object of
    index -> {x, y}, as its editor saves it, or its text), or its older editor's list of {x, y}."""
    import json
    if isinstance(curve, str):
        try:
            curve = json.loads(curve)
        except ValueError:
            raise NodeInputError(name, "expected the curve's JSON: {\"0\": {\"x\": 0, \"y\": 0}, ...}") from None
    points = list(curve.values()) if isinstance(curve, dict) else curve
    if not isinstance(points, list) or not points or not all(
            isinstance(p, dict) and all(isinstance(p.get(k), (int, float)) and not isinstance(p.get(k), bool)
                                        and math.isfinite(p[k]) for k in ("x", "y")) for p in points):
        raise NodeInputError(name, "expected a curve of one or more points, each {\"x\": number, \"y\": number}")
    return sorted(((float(p["x"]), float(p["y"])) for p in points), key=lambda point: point[0])


def _curve_widgets(values):
    """A UI save holds the curve widget's value as a JSON object: read as its text."""
    import json
    if isinstance(values, list) and values and isinstance(values[0], (dict, list)):
        return [json.dumps(values[0]), *values[1:]]
    return values


def _curve_export(values):
    """Written back as the pack's editor saves it: the JSON object, not its text."""
    import json
    if isinstance(values, list) and values and isinstance(values[0], str):
        try:
            return [json.loads(values[0]), *values[1:]]
        except ValueError:
            return values
    return values


def _curve_api_inputs(inputs):
    import json
    if isinstance(inputs.get("curve"), (dict, list)):
        return {**inputs, "curve": json.dumps(inputs["curve"])}
    return inputs


class MtbCurve(Node):
    """The pack's curve editor's points, handed on as a FLOAT_CURVE ({index: {x, y}}), as MTB's
    Curve does. Here the curve is the widget's JSON text (a UI save's or an API prompt's JSON object
    is read into it and a UI export writes the object back; an API export writes the text, which
    the pack's Curve To Float cannot read in ComfyUI)."""
    category = "mtb/curve"
    curve: str = Text(DEFAULT_CURVE)
    outputs = {"FLOAT_CURVE": FLOAT_CURVE}
    comfy = ComfyAlias(("Curve (mtb)",), widgets=_curve_widgets, export_widgets=_curve_export,
                       api_inputs=_curve_api_inputs)

    def run(self):
        import json
        curve_points(self.curve, "curve")  # checked here, so that a bad curve names this node
        return json.loads(self.curve)


class MtbCurveToFloat(Node):
    """`steps` evenly spaced values along the curve, as MTB's Curve To Float gives them: its points
    sorted by x, x going from the least to the greatest point's x in steps - 1 equal steps, y
    joined linearly between the points on either side; the list is given as FLOATS and on a FLOAT
    socket (for packs that read lists there). Where rounding puts the last x a hair past the last
    point (the pack then fails finding a point after it) the last point's y is given."""
    category = "mtb/curve"
    curve: FLOAT_CURVE
    steps: int = Int(10, min=2)
    outputs = {"FLOATS": FLOATS, "FLOAT": FLOAT}
    comfy = ComfyAlias(("Curve To Float (mtb)",), force_input=("curve",))

    def run(self):
        import bisect
        points = curve_points(self.curve, "curve")
        if self.steps > MAX_LIST_ITEMS:
            raise NodeInputError("steps", f"makes a list of {self.steps:,} numbers; the limit is {MAX_LIST_ITEMS:,}")
        xs = [x for x, _ in points]
        step_size = (xs[-1] - xs[0]) / (self.steps - 1)
        values = []
        for step in range(self.steps):
            if step % 4096 == 0:
                check_interrupted()
            x = xs[0] + step_size * step
            before = bisect.bisect_right(xs, x) - 1  # the last point at or before x
            after = bisect.bisect_left(xs, x)  # the first point at or after x
            if after == len(xs) or x == xs[before]:
                values.append(points[before][1])
            elif x == xs[after]:
                values.append(points[after][1])
            else:
                (x1, y1), (x2, y2) = points[before], points[after]
                values.append(y1 + (y2 - y1) * (x - x1) / (x2 - x1))
        return values, list(values)


# -- Color Correct GPU (nodes/image_processing.py @265cb953, MTB_ColorCorrectGPU) ---------------------------


def _rgb_to_hsv(image):
    """The pack's torch HSV: hue from the largest channel (the first of equal ones), 1e-7 added to
    the spread and to the largest value where they divide."""
    import torch
    r, g, b = image.unbind(-1)
    largest, which = image.max(-1)
    spread = largest - image.min(-1).values
    hue = torch.where(which == 0, (g - b) / (spread + 1e-7),
                      torch.where(which == 1, 2.0 + (b - r) / (spread + 1e-7), 4.0 + (r - g) / (spread + 1e-7)))
    return torch.stack(((hue / 6.0) % 1.0, spread / (largest + 1e-7), largest), dim=-1)


def _hsv_to_rgb(hsv):
    import torch
    h, s, v = hsv.unbind(-1)
    h = h * 6.0
    sector = torch.floor(h)
    f = h - sector
    p, q, t = v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f))
    sector = sector.long() % 6
    # (r, g, b) for each sixth of the hue circle
    table = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
    channels = []
    for channel in range(3):
        picked = table[5][channel]
        for index in range(4, -1, -1):
            picked = torch.where(sector == index, table[index][channel], picked)
        channels.append(picked)
    return torch.stack(channels, dim=-1)


class MtbColorCorrectGPU(Node):
    """The image colour-corrected in torch alone, as MTB's Color Correct GPU does: value ^ (1 /
    gamma) × 2^exposure × contrast + offset (contrast a plain gain here, unlike Color Correct's),
    then hue turned (wrapping), saturation and value multiplied in HSV computed in floats, clamp
    to 0..1 if asked; with a mask, only where the mask is above 0 is changed. The work runs on the
    device the image is on (graphflow's), so force_gpu is read but changes nothing; RGB images
    only."""
    category = "mtb/image processing"
    image: IMAGE
    force_gpu: bool = Bool(True)
    clamp: bool = Bool(True)
    gamma: float = Float(1.0, min=0.0, max=5.0, step=0.01)
    contrast: float = Float(1.0, min=0.0, max=5.0, step=0.01)
    exposure: float = Float(0.0, min=-5.0, max=5.0, step=0.01)
    offset: float = Float(0.0, min=-5.0, max=5.0, step=0.01)
    hue: float = Float(0.0, min=-0.5, max=0.5, step=0.01)
    saturation: float = Float(1.0, min=0.0, max=5.0, step=0.01)
    value: float = Float(1.0, min=0.0, max=5.0, step=0.01)
    mask: MASK = None
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Color Correct GPU (mtb)",))

    def run(self):
        import torch
        image = _image(self.image, "image")
        if image.shape[3] != 3:
            raise NodeInputError("image", f"{image.shape[3]} channels; Color Correct GPU takes RGB images")
        if self.gamma == 0:
            raise NodeInputError("gamma", "0 has no inverse (the pack raises 1 / gamma)")
        mask = None
        if self.mask is not None:
            mask = _mask(self.mask, "mask")
            if mask.shape[1:] != image.shape[1:3] or mask.shape[0] not in (1, image.shape[0]):
                raise NodeInputError("mask", f"{tuple(mask.shape)}; expected 1 or {image.shape[0]} masks of "
                                             f"{image.shape[2]}×{image.shape[1]}")
        adjusted = image.pow(1 / self.gamma) * 2.0 ** self.exposure * self.contrast + self.offset
        check_interrupted()
        hsv = _rgb_to_hsv(adjusted)
        hsv = torch.stack(((hsv[..., 0] + self.hue) % 1.0, hsv[..., 1] * self.saturation,
                           hsv[..., 2] * self.value), dim=-1)
        adjusted = _hsv_to_rgb(hsv)
        if self.clamp:
            adjusted = torch.clamp(adjusted, 0.0, 1.0)
        if mask is None:
            return adjusted
        return torch.where(mask.to(image.device)[..., None].expand_as(image) > 0, adjusted, image)


# -- Save Gif (nodes/io.py @c20da85e; utils.py's PIL_FILTER_MAP) ---------------------------------------

PIL_FILTERS = ("nearest", "box", "bilinear", "hamming", "bicubic", "lanczos")  # the pack's order


class MtbSaveGif(Node):
    """The images saved as an endless-loop GIF in the outputs folder (a new name of 10 random hex
    digits, as the pack names it), as MTB's Save Gif does with Pillow: each frame 255 × value cut to
    whole numbers, the frames then played backwards too with pingpong, resized by resize_by (each
    side cut to a whole number) with resample_filter, int(1000 / fps) ms a frame, optimize passed to
    Pillow. use_ffmpeg (the pack's other encoder) is not used here: the GIF is written with Pillow
    and a warning says so. An empty batch saves nothing, as in the pack. RGB or RGBA images."""
    category = "mtb/IO"
    output_node = True
    image: IMAGE
    fps: int = Int(12, min=1, max=120)
    resize_by: float = Float(1.0, min=0.1)
    optimize: bool = Bool(False)
    pingpong: bool = Bool(False)
    resample_filter: str = Choice(PIL_FILTERS, "nearest")
    use_ffmpeg: bool = Bool(False)
    outputs = {}
    comfy = ComfyAlias(("Save Gif (mtb)",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, factor = inputs.get("image"), widgets.get("resize_by")
        if size is None or not isinstance(factor, (int, float)):
            return Estimate(size)
        frames = size.batch * (2 if widgets.get("pingpong") else 1)
        return Estimate(Size(frames, int(size.height * max(factor, 1.0)), int(size.width * max(factor, 1.0))))

    def run(self):
        import uuid
        from PIL import Image
        image = _image(self.image, "image")
        if image.shape[0] == 0:
            return
        if image.shape[3] not in (3, 4):
            raise NodeInputError("image", f"{image.shape[3]} channels; a GIF is made of RGB or RGBA images")
        height, width = image.shape[1:3]
        if abs(self.resize_by - 1.0) > 1e-6:
            height, width = int(height * self.resize_by), int(width * self.resize_by)
            if min(height, width) < 1 or max(height, width) > MAX_SIZE:
                raise NodeInputError("resize_by", f"makes {width}×{height} frames; sides must be 1 to {MAX_SIZE}")
        if self.use_ffmpeg:
            warn("use_ffmpeg: graphflow writes the GIF with Pillow (the pack's other encoder)")
        frames = [Image.fromarray(pixels) for pixels in _bytes(image)]
        if self.pingpong:
            frames += frames[::-1]
        if (height, width) != tuple(image.shape[1:3]):
            resample = getattr(Image.Resampling, self.resample_filter.upper())
            resized = []
            for frame in frames:
                check_interrupted()
                resized.append(frame.resize((width, height), resample=resample))
            frames = resized
        name = f"{uuid.uuid4().hex[:10]}.gif"
        path = safe_join(folders.outputs, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as file:  # a new file: never one already there
            try:
                frames[0].save(file, format="GIF", save_all=True, append_images=frames[1:], optimize=self.optimize,
                               duration=int(1000 / self.fps), loop=0)
            except BaseException:  # a failed or interrupted save leaves no partial GIF behind
                file.close()
                path.unlink(missing_ok=True)
                raise
        show(images=[{"filename": name, "subfolder": "", "type": "output"}])


# -- Styles Loader (nodes/conditions.py @edfbe34e) -------------------------------------------------------

STYLES_KIND, STYLES_SUBFOLDER = "styles", "mtb"  # models/styles/mtb/*.csv (graphflow/folders.py's styles kind)
MAX_CSV_STYLES = 10_000  # styles listed (and rows read from one file): a longer list is no menu


def _read_csv_styles(state: tuple) -> dict[str, tuple[str, str]]:
    """One CSV file's styles, read as the pack reads A1111's style files: each row's first three
    cells (missing ones empty), a row without a name skipped, the header row kept as a style
    named by its first cell, as the pack keeps it. A file too large, not UTF-8 or not CSV is
    left out with a warning naming it; only its first MAX_CSV_STYLES rows are read."""
    import csv
    from itertools import islice
    from pathlib import Path
    path = Path(state[0])
    if state[2] > MAX_STYLE_FILE:
        warn(f"mtb style file {path.name} is larger than {MAX_STYLE_FILE:,} bytes: left out")
        return {}
    try:
        with open(path, encoding="utf8", newline="") as file:
            rows = list(islice(csv.reader(file), MAX_CSV_STYLES + 1))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        # the pack's try covers each row's body only: a file it cannot decode or parse fails its
        # whole style list; here that file alone is left out
        warn(f"mtb style file {path.name} is not UTF-8 CSV: left out ({e})")
        return {}
    if len(rows) > MAX_CSV_STYLES:
        warn(f"mtb style file {path.name} has more than {MAX_CSV_STYLES:,} rows: the rest are left out")
    styles = {}
    for row in rows[:MAX_CSV_STYLES]:
        style, positive, negative = (row + [None] * 3)[:3]
        if style is not None:
            styles[style] = (positive or "", negative or "")
    return styles


@lru_cache(maxsize=4)
def _csv_styles(states: tuple) -> dict[str, tuple[str, str]]:
    """The files' styles merged in order (a later file's style replaces an earlier one of the same
    name), at most MAX_CSV_STYLES of them; read once per (path, mtime, size) of every file."""
    styles = {}
    for state in states:
        styles.update(_read_csv_styles(state))
    if len(styles) > MAX_CSV_STYLES:
        warn(f"models/styles/mtb holds {len(styles):,} styles: the first {MAX_CSV_STYLES:,} are listed")
        styles = dict(list(styles.items())[:MAX_CSV_STYLES])
    return styles


def mtb_styles() -> dict[str, tuple[str, str]]:
    """name -> (positive, negative) from every CSV of models/styles/mtb, in file-name order (see
    _read_csv_styles and _csv_styles)."""
    from graphflow.folders import UnsafePathError
    states = []
    for name in folders.list_files_inside(STYLES_KIND, (".csv",)):
        if name.rpartition("/")[0] != STYLES_SUBFOLDER:
            continue
        try:
            states.append(style_file_state(folders.find_model(STYLES_KIND, name, inside=True)))
        except (OSError, UnsafePathError):  # gone since listed, or a link leading out
            continue
    return _csv_styles(tuple(states))


class MtbStylesLoader(Node):
    """The positive and negative prompts of an A1111-style CSV style (rows name, positive, negative),
    as MTB's Styles Loader gives them. The CSV files are read from models/styles/mtb (the pack reads
    ComfyUI's styles folder, and copies its own styles.csv there when it is missing: graphflow ships
    none, so with no CSV there the list is empty). The files are read again when one changes (the
    pack reads them once per server start). Limits the pack has not: a file over 32 MB, or one
    that is not UTF-8 CSV (which fails the pack's whole list), is left out with a warning, and at
    most 10,000 styles are listed."""
    category = "mtb/conditioning"
    style_name: str = Choice(lambda: list(mtb_styles()))
    outputs = {"positive": STRING, "negative": STRING}
    comfy = ComfyAlias(("Styles Loader (mtb)",))

    def run(self):
        styles = mtb_styles()
        if self.style_name not in styles:
            raise NodeInputError("style_name", f"{self.style_name!r} is in no CSV of models/styles/mtb")
        return styles[self.style_name]


# -- Text To Image (nodes/generate.py @319c02d6) ---------------------------------------------------------

FONT_EXTENSIONS = (".ttf", ".otf", ".woff", ".woff2", ".eot")  # what the pack looks for in fonts/**
WHISPER_CHUNKS = socket_type("WHISPER_CHUNKS", "#9e9e9e", "comfy_mtb's timed captions from Whisper (not made here)")
PACK_FONT = "font"  # the pack's own font.ttf, which graphflow does not ship: Pillow's default font stands in
# the longest word wrapped under one character a line: textwrap cuts it one character at a time, copying
# the rest each time (time growing with the square of its length; under this, a small part of the wrap)
MAX_CUT_WORD = 10_000
TEXTWRAP_SPACES = re.compile(r"[\t\n\x0b\x0c\r ]")  # what textwrap splits words at (string.whitespace)


def mtb_fonts() -> dict[str, str]:
    """Font name (the file's stem, as the pack names them) -> its file in models/fonts, with the
    pack's own "font" ("" for Pillow's default), which a models/fonts/font.ttf replaces."""
    fonts = {PACK_FONT: ""}
    for name in folders.list_files_inside("fonts", FONT_EXTENSIONS):
        fonts[name.rpartition("/")[2].rsplit(".", 1)[0]] = name
    return fonts


class MtbTextToImage(Node):
    """Text drawn with Pillow on a width × height RGBA picture, as MTB's Text To Image does: the
    text stripped (trim), wrapped by Python's textwrap at width × h_coverage% / font_size × 2
    characters (wrap), lines line_height × font_size apart, aligned left / center / right and
    top / center / bottom and pushed in by the offsets, in `color` over `background` (Pillow's colour
    names or #hex; a colour Pillow cannot read gives white text on black, as in the pack). The
    image keeps its alpha channel (four channels), as the pack's does. Fonts are the files of
    models/fonts, named by their stem as the pack names them; the pack's own "font" (its bundled
    font.ttf, not shipped here) is drawn with Pillow's default font at font_size unless
    models/fonts holds a font.ttf. The fonts are listed sorted by name, as the pack lists them;
    the default is "font" (the pack names none, so its editor takes the first name). Left out:
    whisper_chunks (Whisper's timed captions, which need a speech model) is refused where linked;
    fps and fade_duration, used only with them, are read and change nothing. A wrap width of one
    character or more that is not a whole number fails in the pack on a word longer than it
    (textwrap slices by the width), and is refused here naming `text`. Under one character,
    textwrap puts each character on a line of its own, as here; but it cuts a word one character
    at a time (time growing with the square of the word's length), so a word over 10,000
    characters is refused there naming `text`. A line whose ink lies outside the picture is
    measured, not drawn (the same picture); a line larger than Pillow draws is refused naming
    `font_size`."""
    category = "mtb/generate"
    text: str = Text("Hello world!")
    font: str = Choice(lambda: sorted(mtb_fonts()), PACK_FONT)
    wrap: bool = Bool(True)
    trim: bool = Bool(True)
    line_height: float = Float(1.0, min=0.0, step=0.1)
    font_size: int = Int(32, min=1, max=2500)
    width: int = Int(512, min=1, max=8096, resource="width")
    height: int = Int(512, min=1, max=8096, resource="height")
    color: str = Text("black")
    background: str = Text("white")
    h_align: str = Choice(("left", "center", "right"), "left")
    v_align: str = Choice(("top", "center", "bottom"), "top")
    h_offset: int = Int(0, min=0, max=8096)
    v_offset: int = Int(0, min=0, max=8096)
    h_coverage: int = Int(100, min=1, max=100)
    whisper_chunks: WHISPER_CHUNKS = None
    fps: int = Int(24, min=1, max=60)
    fade_duration: float = Float(0.5, min=0.0, max=5.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("Text To Image (mtb)",), optional=("whisper_chunks", "fps", "fade_duration"))

    def run(self):
        import textwrap
        from PIL import Image, ImageColor, ImageDraw, ImageFont
        from nodes.pack_nodes_essentials_misc import drawn_within_pillows_limit, font_file
        if self.whisper_chunks is not None:
            raise NodeInputError("whisper_chunks", "timed captions from Whisper are not drawn here (they need a "
                                                   "speech model): leave it unlinked")
        fonts = mtb_fonts()
        if self.font not in fonts:
            raise NodeInputError("font", f"{self.font!r} is not a font file of models/fonts")
        font = font_file(fonts[self.font], self.font_size, basic_layout=False) if fonts[self.font] \
            else ImageFont.load_default(size=self.font_size)
        try:
            color, background = ImageColor.getrgb(self.color), ImageColor.getrgb(self.background)
            color, background = (color + (255,))[:4], (background + (255,))[:4]
        except ValueError:
            warn(f"color {self.color!r} / background {self.background!r}: not both colours; white on black, "
                 "as the pack falls back")
            color, background = (255, 255, 255, 255), (0, 0, 0, 255)
        text = self.text.strip() if self.trim else self.text
        if self.wrap:
            wrap_width = self.width / 100 * self.h_coverage / self.font_size * 2
            if wrap_width < 1:
                longest = max(map(len, TEXTWRAP_SPACES.split(text)))
                if longest > MAX_CUT_WORD:
                    raise NodeInputError("text", f"holds a word of {longest:,} characters, which a wrap width under "
                                                 f"one character ({wrap_width:.3g}) cuts a character at a time: "
                                                 f"expected words of at most {MAX_CUT_WORD:,} characters there, "
                                                 "or a wider wrap (width, h_coverage) or smaller font_size")
            try:
                lines = textwrap.wrap(text, width=wrap_width)
            except TypeError:
                raise NodeInputError("text", "holds a word longer than the wrap width, which is not a whole "
                                             "number of characters (the pack fails here): widen or unwrap") from None
        else:
            lines = [text]
        layer = Image.new("RGBA", (self.width, self.height), (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        step = self.line_height * self.font_size
        if self.v_align == "top":
            y = self.v_offset
        elif self.v_align == "center":
            y = (self.height - step * len(lines)) // 2 + self.v_offset
        else:
            y = self.height - step * len(lines) - self.v_offset
        for number, line in enumerate(lines, 1):
            check_interrupted()
            line_width = font.getlength(line)
            if self.h_align == "left":
                x = self.h_offset
            elif self.h_align == "center":
                x = (self.width - line_width) // 2 + self.h_offset
            else:
                x = self.width - line_width - self.h_offset
            # a line whose ink box lies outside the picture draws nothing on it: measured, not drawn (a
            # pixel's margin for Pillow's placing at fractional positions; marks may rise above y)
            left, top, right, bottom = draw.textbbox((x, y), line, font=font)
            if right >= -1 and bottom >= -1 and left <= self.width + 1 and top <= self.height + 1:
                with drawn_within_pillows_limit("font_size", f"line {number} of the text ({len(line):,} characters) "
                                                             f"at font_size {self.font_size} is larger than Pillow "
                                                             "draws: expected a smaller font_size or shorter lines"):
                    draw.text((x, y), line, fill=color, font=font)
            y += step
        picture = Image.alpha_composite(Image.new("RGBA", (self.width, self.height), background), layer)
        return _from_bytes(picture)[None]
