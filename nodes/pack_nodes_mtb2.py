"""comfy_mtb's (MTB Nodes, melMass) model-free nodes continued from nodes/pack_nodes_mtb.py (which
says which of the pack's nodes graphflow holds and which it leaves out): Animation Builder, Debug,
Colored Image, Save Image Grid, Apply Text Template, Any To String, Smart Step and Interpolate
Condition. Read from melMass/comfy_mtb: nodes/animation.py @c20da85e, nodes/debug.py @93f7c006,
web/debug.js @0d0fb8e1, nodes/image_processing.py @265cb953, nodes/graph_utils.py @05fe61e0,
nodes/conditions.py @edfbe34e, web/mtb_widgets.js @f9a0998c."""

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
