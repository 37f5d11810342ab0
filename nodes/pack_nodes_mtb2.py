"""comfy_mtb's (MTB Nodes, melMass) model-free nodes continued from nodes/pack_nodes_mtb.py (which
says which of the pack's nodes graphflow holds and which it leaves out): Animation Builder, Debug,
Colored Image, Save Image Grid, Apply Text Template, Any To String, Smart Step, Interpolate
Condition, Load Image Sequence and Save Image Sequence (inside the inputs / outputs folders). Read
from melMass/comfy_mtb: nodes/animation.py @c20da85e, nodes/debug.py @93f7c006, web/debug.js
@0d0fb8e1, nodes/image_processing.py @265cb953, nodes/graph_utils.py @05fe61e0, nodes/conditions.py
@edfbe34e, nodes/video.py @01c73e1c, web/mtb_widgets.js @f9a0998c."""

from __future__ import annotations

import math

from graphflow.api import ANY, BOOLEAN, CONDITIONING, FLOAT, IMAGE, INT, MASK, STRING, Bool, ComfyAlias, Float, Int, \
    Node, NodeInputError, Text, check_interrupted, folders, show
from nodes.image import _image
from nodes.pack_nodes_mtb import _bytes, _dynamic, _dynamic_refusal, _from_bytes, _mask, _pil_colour
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
        subfolder = folder.relative_to(folders.outputs).as_posix()
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
        show(images=[{"filename": name, "subfolder": "" if subfolder == "." else subfolder, "type": "output"}])


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
    import re
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
        subfolder = path.parent.relative_to(folders.outputs.resolve()).as_posix()
        show(images=[{"filename": path.name, "subfolder": subfolder, "type": "output"}])
