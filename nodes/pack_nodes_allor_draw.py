"""Nourepide's ComfyUI-Allor, its drawing, text, transform, lens and clamp nodes (the rest of the
pack's model-free nodes are in nodes/pack_nodes_allor.py, whose docstring says what is left out).
Read from the pack's modules/ImageDraw.py and modules/Clamp.py at
6acd6b2f9d3b65861078d4e92746f80a06e5100a, modules/ImageTransform.py at
de1401e745a9cc856d5e4dd841499371a6de9b4c, modules/ImageText.py at
f20981519611382225a3aec191c1ddd159e8b21c, the lens effects from modules/ImageEffects.py at
e2ba6166cd867c3e658771467b3876c8b76466c1 with the radialspace_1D / radialspace_2D gradients of the
pack's later modules/Utils.py (the stored version that has them; the index gives no commit for it).

Nodes: ImageDrawArc, Chord, Ellipse, Line, Pieslice, Rectangle, RectangleRounded (each also
...ByContainer) and ImageDrawPolygon; ImageText, ImageTextOutlined, ImageTextMultiline,
ImageTextMultilineOutlined (fonts: .ttf / .otf files in models/fonts, e.g. a system font copied
there); ImageTransformResizeAbsolute, ResizeRelative, ResizeClip, CropAbsolute, CropRelative,
CropCorners, PaddingAbsolute, PaddingRelative, Rotate, Transpose;
ImageEffectsLensChromaticAberration, ImageEffectsLensOpticAxis, ImageEffectsLensVignette; the
clamps (ClipClamp, ClipVisionClamp, ClipVisionOutputClamp, ConditioningClamp, ControlNetClamp,
GligenClamp, ImageClamp, LatentClamp, MaskClamp, ModelClamp, StyleModelClamp, UpscaleModelClamp,
VaeClamp: each gives its input back, a reroute point in the pack's workflows).
"""

from __future__ import annotations

from graphflow.api import (
    CLIP, CLIP_VISION, CLIP_VISION_OUTPUT, CONDITIONING, IMAGE, LATENT, MASK, MODEL, STYLE_MODEL, VAE, Choice,
    ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size, Text, check_interrupted, folders,
    run_limits,
)
from nodes.controlnet import CONTROL_NET
from nodes.gligen import GLIGEN
from nodes.image import MAX_SIZE, _image
from nodes.pack_nodes_allor import TRUE_FALSE, _each_layer, _each_picture, _rgba, _tensor, numbers
from nodes.pack_nodes_essentials_misc import font_choices, font_file
from nodes.upscale import UPSCALE_MODEL

COMFY_PACK = "ComfyUI-Allor"  # the custom node pack this module's ComfyUI classes come from

SAMPLERS = ("lanczos", "bicubic", "hamming", "bilinear", "box", "nearest")
MOST_SSAA_PIXELS = 1 << 28  # a supersampled canvas's most pixels (1 GiB of RGBA)


def _sampler(method: str):
    """The PIL resampling filter the pack's sampler name stands for."""
    from PIL import Image
    return getattr(Image.Resampling, method.upper())


# -- drawing -------------------------------------------------------------------------------------
# Each shape is drawn by PIL's ImageDraw on a transparent RGBA canvas SSAA times the size, its
# corners at fractions of the size, then resized down with the chosen sampler, as in the pack.
# A node's inputs come from two holders: the canvas size (width, height) or a container image
# first, then the shape's own.


def _drawn(node, width: int, height: int):
    from PIL import Image, ImageDraw
    ssaa = node.SSAA
    if width * height * ssaa * ssaa > MOST_SSAA_PIXELS:
        raise NodeInputError("SSAA", f"{width}×{height} drawn at {ssaa}× is over {MOST_SSAA_PIXELS} pixels: "
                                     "expected a smaller SSAA or picture")
    canvas = Image.new("RGBA", (width * ssaa, height * ssaa), (0, 0, 0, 0))
    box = ((width * node.start_x * ssaa, height * node.start_y * ssaa),
           (width * node.end_x * ssaa, height * node.end_y * ssaa)) if hasattr(node, "start_x") else None
    try:
        node._paint(ImageDraw.Draw(canvas), box, ssaa)
    except ValueError as e:  # PIL refuses a box whose end is before its start
        raise NodeInputError("end_x", f"{e}: expected end_x ≥ start_x and end_y ≥ start_y") from None
    return _tensor(canvas.resize((width, height), _sampler(node.method)))[None]


def _draw_memory(width, height, ssaa) -> int:
    return int(width * height * ssaa * ssaa * 4)


class _Canvas(Node):
    width: int = Int(256, min=1, max=MAX_SIZE, step=1)
    height: int = Int(256, min=1, max=MAX_SIZE, step=1)

    @classmethod
    def estimate(cls, widgets, inputs):
        try:
            width, height, ssaa = numbers(widgets, "width", "height", "SSAA")
            return Estimate(Size(1, int(height), int(width)), memory=_draw_memory(width, height, ssaa))
        except (KeyError, TypeError, ValueError, OverflowError):
            return Estimate(None)

    def run(self):
        return _drawn(self, self.width, self.height)


class _Container(Node):
    container: IMAGE

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("container")
        try:
            return Estimate(Size(1, size.height, size.width),
                            memory=_draw_memory(size.width, size.height, *numbers(widgets, "SSAA")))
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
            return Estimate(None)

    def run(self):
        container = _image(self.container, "container")
        return _drawn(self, container.shape[2], container.shape[1])


def _corner(default: float):
    return Float(default, min=0.0, max=1.0, step=0.01)


def _channel(default: int):
    return Int(default, min=0, max=255, step=1)


def _angle(default: int):
    return Int(default, min=0, max=360, step=1)


class _LineShape(Node):
    """Inputs of a stroked shape (line, arc, chord): width of stroke, box, colour."""
    size: int = Int(1, min=1, max=MAX_SIZE, step=1)
    start_x: float = _corner(0.0)
    start_y: float = _corner(0.0)
    end_x: float = _corner(1.0)
    end_y: float = _corner(1.0)


class _StrokeColor(Node):
    red: int = _channel(255)
    green: int = _channel(255)
    blue: int = _channel(255)
    alpha: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    SSAA: int = Int(4, min=1, max=16, step=1)
    method: str = Choice(SAMPLERS, "lanczos")

    def _ink(self):
        return _rgba(self.red, self.green, self.blue, self.alpha)


class _OutlineFill(Node):
    outline_size: int = Int(1, min=0, max=MAX_SIZE, step=1)
    outline_red: int = _channel(0)
    outline_green: int = _channel(0)
    outline_blue: int = _channel(0)
    outline_alpha: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    fill_red: int = _channel(255)
    fill_green: int = _channel(255)
    fill_blue: int = _channel(255)
    fill_alpha: float = Float(1.0, min=0.0, max=1.0, step=0.01)

    def _fill(self):
        return _rgba(self.fill_red, self.fill_green, self.fill_blue, self.fill_alpha)

    def _outline(self):
        return _rgba(self.outline_red, self.outline_green, self.outline_blue, self.outline_alpha)


class _Sampling(Node):
    SSAA: int = Int(4, min=1, max=16, step=1)
    method: str = Choice(SAMPLERS, "lanczos")


# the angles come between the box and the colour: the holders' order is box, angles, colour
class _AngledLine(_LineShape):
    start: int = _angle(0)
    end: int = _angle(180)


class _Arc(_StrokeColor, _AngledLine):
    def _paint(self, draw, box, ssaa):
        draw.arc(box, self.start, self.end, self._ink(), self.size * ssaa)


class _Chord(_StrokeColor, _AngledLine):
    def _paint(self, draw, box, ssaa):
        # the pack gives chord() the stroke width where PIL takes the outline colour, so the chord is
        # filled with the colour and outlined in that number as a colour; PIL is called the same way
        draw.chord(box, self.start, self.end, self._ink(), self.size * ssaa)


class _Line(_StrokeColor, _LineShape):
    def _paint(self, draw, box, ssaa):
        draw.line(box, self._ink(), self.size * ssaa)


class AllorImageDrawArc(_Arc, _Canvas):
    """An arc (PIL's ImageDraw.arc) from start to end degrees of the ellipse in the box start_x,
    start_y – end_x, end_y (fractions of width and height), size pixels wide, on a transparent
    width × height RGBA picture, drawn SSAA times larger and resized down by `method`."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDrawArc",))


class AllorImageDrawArcByContainer(_Arc, _Container):
    """ImageDrawArc on a picture the size of the container's first image."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDrawArcByContainer",))


class AllorImageDrawChord(_Chord, _Canvas):
    """A chord (PIL's ImageDraw.chord) of the ellipse in the box, from start to end degrees, filled
    with the colour, on a transparent width × height RGBA picture (SSAA, then resized). As the
    pack calls PIL, `size` · SSAA reaches it as the outline's colour (a number), not as a stroke
    width; it is passed the same way here, so the result is the pack's."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDrawChord",))


class AllorImageDrawChordByContainer(_Chord, _Container):
    """ImageDrawChord on a picture the size of the container's first image."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDrawChordByContainer",))


class AllorImageDrawLine(_Line, _Canvas):
    """A line from start_x, start_y to end_x, end_y (fractions of width and height), size pixels
    wide, on a transparent width × height RGBA picture (SSAA, then resized by `method`)."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDrawLine",))


class AllorImageDrawLineByContainer(_Line, _Container):
    """ImageDrawLine on a picture the size of the container's first image."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDrawLineByContainer",))


class _Box(Node):
    start_x: float = _corner(0.0)
    start_y: float = _corner(0.0)
    end_x: float = _corner(1.0)
    end_y: float = _corner(1.0)


class _Ellipse(_Sampling, _OutlineFill, _Box):
    def _paint(self, draw, box, ssaa):
        draw.ellipse(box, self._fill(), self._outline(), self.outline_size * ssaa)


class _AngledBox(_Box):
    start: int = _angle(0)
    end: int = _angle(240)


class _Pieslice(_Sampling, _OutlineFill, _AngledBox):
    def _paint(self, draw, box, ssaa):
        draw.pieslice(box, self.start, self.end, self._fill(), self._outline(), self.outline_size * ssaa)


class _InsetBox(Node):
    start_x: float = _corner(0.1)
    start_y: float = _corner(0.2)
    end_x: float = _corner(0.9)
    end_y: float = _corner(0.8)


class _Rectangle(_Sampling, _OutlineFill, _InsetBox):
    def _paint(self, draw, box, ssaa):
        draw.rectangle(box, self._fill(), self._outline(), self.outline_size * ssaa)


class _RoundedBox(_InsetBox):
    radius: int = _angle(180)


class _RoundedCorners(_OutlineFill, _RoundedBox):
    top_left_corner: str = Choice(TRUE_FALSE, "true")
    top_right_corner: str = Choice(TRUE_FALSE, "true")
    bottom_right_corner: str = Choice(TRUE_FALSE, "true")
    bottom_left_corner: str = Choice(TRUE_FALSE, "true")


class _RectangleRounded(_Sampling, _RoundedCorners):
    def _paint(self, draw, box, ssaa):
        corners = tuple(value == "true" for value in (self.top_left_corner, self.top_right_corner,
                                                      self.bottom_right_corner, self.bottom_left_corner))
        draw.rounded_rectangle(box, self.radius * ssaa, self._fill(), self._outline(), self.outline_size * ssaa,
                               corners=corners)


class AllorImageDrawEllipse(_Ellipse, _Canvas):
    """An ellipse in the box start_x, start_y – end_x, end_y (fractions of width and height),
    filled and outlined (outline_size pixels) in the colours, on a transparent width × height RGBA
    picture, drawn SSAA times larger and resized down by `method`."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDrawEllipse",))


class AllorImageDrawEllipseByContainer(_Ellipse, _Container):
    """ImageDrawEllipse on a picture the size of the container's first image."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDrawEllipseByContainer",))


class AllorImageDrawPieslice(_Pieslice, _Canvas):
    """A pie slice from start to end degrees of the ellipse in the box, filled and outlined in the
    colours, on a transparent width × height RGBA picture (SSAA, then resized by `method`)."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDrawPieslice",))


class AllorImageDrawPiesliceByContainer(_Pieslice, _Container):
    """ImageDrawPieslice on a picture the size of the container's first image."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDrawPiesliceByContainer",))


class AllorImageDrawRectangle(_Rectangle, _Canvas):
    """A rectangle start_x, start_y – end_x, end_y (fractions of width and height), filled and
    outlined in the colours, on a transparent width × height RGBA picture (SSAA, then resized)."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDrawRectangle",))


class AllorImageDrawRectangleByContainer(_Rectangle, _Container):
    """ImageDrawRectangle on a picture the size of the container's first image."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDrawRectangleByContainer",))


class AllorImageDrawRectangleRounded(_RectangleRounded, _Canvas):
    """ImageDrawRectangle with corners rounded by `radius` pixels (at the output's scale), each
    corner rounded or not by its switch."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDrawRectangleRounded",))


class AllorImageDrawRectangleRoundedByContainer(_RectangleRounded, _Container):
    """ImageDrawRectangleRounded on a picture the size of the container's first image (the pack's
    own code for this node fails: it calls a method its rounded rectangle lacks)."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDrawRectangleRoundedByContainer",))


class _PolygonShape(Node):
    size: int = Int(256, min=1, max=MAX_SIZE, step=1)
    sides: int = Int(5, min=3, max=1024, step=1)
    rotation: int = _angle(0)


class AllorImageDrawPolygon(_Sampling, _OutlineFill, _PolygonShape):
    """A regular polygon of `sides` sides, rotated by `rotation` degrees, filling a size × size
    transparent RGBA picture (its circumcircle touching the edges), drawn SSAA times larger and
    resized down by `method`. As in the pack, outline_size is not used (a one-pixel outline at the
    SSAA scale)."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageDrawPolygon",))

    @classmethod
    def estimate(cls, widgets, inputs):
        try:
            size, ssaa = numbers(widgets, "size", "SSAA")
            return Estimate(Size(1, int(size), int(size)), memory=_draw_memory(size, size, ssaa))
        except (KeyError, TypeError, ValueError, OverflowError):
            return Estimate(None)

    def _paint(self, draw, box, ssaa):
        half = self.size * ssaa / 2
        draw.regular_polygon((half, half, half), self.sides, self.rotation, self._fill(), self._outline())

    def run(self):
        return _drawn(self, self.size, self.size)


# -- transforms ----------------------------------------------------------------------------------


def _resized(images, width: int, height: int, method: str):
    if width < 1 or height < 1:
        raise NodeInputError("images", f"the new size would be {width}×{height}: expected at least 1×1")
    sampler = _sampler(method)
    return _each_picture(images, lambda picture: picture.resize((width, height), sampler))


def _scaled_size(size, widgets, name_w: str, name_h: str):
    scale_width, scale_height = numbers(widgets, name_w, name_h)
    return int(size.width * scale_width), int(size.height * scale_height)


class AllorImageTransformResizeAbsolute(Node):
    """Each image resized to width × height by PIL with the chosen sampler (8-bit)."""
    category = "image/transform"
    images: IMAGE
    width: int = Int(256, min=1, max=MAX_SIZE, step=1, resource="width")
    height: int = Int(256, min=1, max=MAX_SIZE, step=1, resource="height")
    method: str = Choice(SAMPLERS, "lanczos")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageTransformResizeAbsolute",))

    def run(self):
        return _resized(self.images, self.width, self.height, self.method)


class AllorImageTransformResizeRelative(Node):
    """Each image resized by PIL to int(width · scale_width) × int(height · scale_height) (8-bit)."""
    category = "image/transform"
    images: IMAGE
    scale_width: float = Float(1.0, min=0.0, max=64.0, step=0.1)
    scale_height: float = Float(1.0, min=0.0, max=64.0, step=0.1)
    method: str = Choice(SAMPLERS, "lanczos")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageTransformResizeRelative",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        try:
            width, height = _scaled_size(size, widgets, "scale_width", "scale_height")
            return Estimate(Size(size.batch, max(height, 1), max(width, 1)))
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
            return Estimate(size)

    def run(self):
        images = _image(self.images, "images")
        width, height = int(images.shape[2] * self.scale_width), int(images.shape[1] * self.scale_height)
        return _resized(images, width, height, self.method)


def _clip_scale(width: int, height: int, max_width: int, max_height: int, min_width: int, min_height: int):
    """The pack's ResizeClip scale (None: left as it is): the larger of the scale reaching both
    minimums and the scale fitting both maximums."""
    if min_width >= max_width and min_height >= max_height:
        return None
    return max(max(min_width / width, min_height / height), min(max_width / width, max_height / height))


class AllorImageTransformResizeClip(Node):
    """Each image scaled by PIL, aspect kept, to fit max_width × max_height, as the pack reckons it:
    the scale is the larger of the one fitting both maximums and the one reaching both minimums
    (so the minimums win over the maximums); where both minimums reach their maximums the images are
    left as they are. The scale applies up as well as down."""
    category = "image/transform"
    images: IMAGE
    max_width: int = Int(1024, min=1, max=MAX_SIZE)
    max_height: int = Int(1024, min=1, max=MAX_SIZE)
    min_width: int = Int(0, min=0, max=MAX_SIZE)
    min_height: int = Int(0, min=0, max=MAX_SIZE)
    method: str = Choice(SAMPLERS, "lanczos")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageTransformResizeClip",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        try:
            scale = _clip_scale(size.width, size.height,
                                *numbers(widgets, "max_width", "max_height", "min_width", "min_height"))
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
            return Estimate(size)
        if scale is None:
            return Estimate(size)
        return Estimate(Size(size.batch, max(int(size.height * scale), 1), max(int(size.width * scale), 1)))

    def run(self):
        images = _image(self.images, "images")
        height, width = images.shape[1:3]
        scale = _clip_scale(width, height, self.max_width, self.max_height, self.min_width, self.min_height)
        if scale is None:
            return images
        return _resized(images, int(width * scale), int(height * scale), self.method)


def _cropped(images, box, name: str):
    """PIL's crop of each image to the box (left, top, right, bottom; outside the picture black)."""
    left, top, right, bottom = (int(round(value)) for value in box)
    if right < left or bottom < top:
        raise NodeInputError(name, f"the box {left}, {top} – {right}, {bottom} ends before it starts")
    if (right - left) * (bottom - top) > MAX_SIZE * MAX_SIZE:
        raise NodeInputError(name, f"a crop of {right - left}×{bottom - top} is larger than any picture allowed")
    return _each_picture(images, lambda picture: picture.crop(box))


class AllorImageTransformCropAbsolute(Node):
    """Each image cut to the box start_x, start_y – end_x, end_y in pixels by PIL (8-bit); what lies
    outside the picture comes out black (transparent for RGBA)."""
    category = "image/transform"
    images: IMAGE
    start_x: int = Int(0, min=0, max=MAX_SIZE, step=1)
    start_y: int = Int(0, min=0, max=MAX_SIZE, step=1)
    end_x: int = Int(128, min=0, max=MAX_SIZE, step=1)
    end_y: int = Int(128, min=0, max=MAX_SIZE, step=1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageTransformCropAbsolute",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        try:
            start_x, start_y, end_x, end_y = numbers(widgets, "start_x", "start_y", "end_x", "end_y")
            return Estimate(Size(size.batch, max(int(end_y - start_y), 1), max(int(end_x - start_x), 1)))
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
            return Estimate(size)

    def run(self):
        return _cropped(self.images, (self.start_x, self.start_y, self.end_x, self.end_y), "end_x")


class AllorImageTransformCropRelative(Node):
    """Each image cut to the box start_x, start_y – end_x, end_y given as fractions of its width and
    height (PIL rounds them to pixels), 8-bit."""
    category = "image/transform"
    images: IMAGE
    start_x: float = Float(0.25, min=0.0, max=1.0, step=0.01)
    start_y: float = Float(0.25, min=0.0, max=1.0, step=0.01)
    end_x: float = Float(0.75, min=0.0, max=1.0, step=0.01)
    end_y: float = Float(0.75, min=0.0, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageTransformCropRelative",))

    def run(self):
        images = _image(self.images, "images")
        height, width = images.shape[1:3]
        box = (width * self.start_x, height * self.start_y, width * self.end_x, height * self.end_y)
        return _cropped(images, box, "end_x")


class AllorImageTransformCropCorners(Node):
    """Each image's corners rounded off by `radius` pixels: a rounded rectangle the picture's size
    is drawn SSAA times larger (PIL) and resized down by `method`; outside it each channel (alpha
    too) is lowered by the coverage it lacks, clamped at 0 (so the corners go black, and
    transparent where there is alpha). Each corner is rounded or not by its switch."""
    category = "image/transform"
    images: IMAGE
    radius: int = _angle(180)
    top_left_corner: str = Choice(TRUE_FALSE, "true")
    top_right_corner: str = Choice(TRUE_FALSE, "true")
    bottom_right_corner: str = Choice(TRUE_FALSE, "true")
    bottom_left_corner: str = Choice(TRUE_FALSE, "true")
    SSAA: int = Int(4, min=1, max=16, step=1)
    method: str = Choice(SAMPLERS, "lanczos")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageTransformCropCorners",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        try:
            return Estimate(size, memory=_draw_memory(size.width, size.height, *numbers(widgets, "SSAA")))
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
            return Estimate(size)

    def run(self):
        from PIL import Image, ImageDraw
        images = _image(self.images, "images")
        height, width = images.shape[1:3]
        ssaa = self.SSAA
        if width * height * ssaa * ssaa > MOST_SSAA_PIXELS:
            raise NodeInputError("SSAA", f"{width}×{height} drawn at {ssaa}× is over {MOST_SSAA_PIXELS} pixels")
        canvas = Image.new("RGBA", (width * ssaa, height * ssaa), (0, 0, 0, 0))
        corners = tuple(value == "true" for value in (self.top_left_corner, self.top_right_corner,
                                                      self.bottom_right_corner, self.bottom_left_corner))
        ImageDraw.Draw(canvas).rounded_rectangle(((0, 0), (width * ssaa, height * ssaa)), self.radius * ssaa,
                                                 (255, 255, 255, 255), corners=corners)
        cut = 1.0 - _tensor(canvas.resize((width, height), _sampler(self.method)))[..., 3:]
        return (images - cut.to(images)).clamp(0, 1)


def _padded(images, add_width: int, add_height: int, method: str, names=("add_width", "add_height")):
    """The pack's padding: it gives torchvision's pad [add_height, add_width], which pads
    left and right by add_height and top and bottom by add_width. names: the inputs that gave
    add_width and add_height, for a refusal."""
    import torch.nn.functional as F
    images = _image(images, "images")
    mode = {"reflect": "reflect", "edge": "replicate", "constant": "constant"}[method]
    for name, pad, side, what in ((names[1], add_height, images.shape[2], "width"),
                                  (names[0], add_width, images.shape[1], "height")):
        if mode == "reflect" and pad >= side:
            raise NodeInputError(name, f"reflect padding of {pad} pixels a side must be less than the picture's "
                                       f"{what} ({side})")
    out = F.pad(images.movedim(-1, 1), (add_height, add_height, add_width, add_width), mode=mode)
    return out.movedim(1, -1)


def _padded_estimate(size, add_width, add_height):
    return Estimate(Size(size.batch, int(size.height + 2 * add_width), int(size.width + 2 * add_height)))


class AllorImageTransformPaddingAbsolute(Node):
    """Each image padded by reflection, by repeating its edge or with black (constant). As the pack
    passes its numbers on, add_height pixels go on the left and on the right and add_width pixels
    above and below (for a square pad set both alike)."""
    category = "image/transform"
    images: IMAGE
    add_width: int = Int(64, min=0, max=MAX_SIZE)
    add_height: int = Int(64, min=0, max=MAX_SIZE)
    method: str = Choice(("reflect", "edge", "constant"), "reflect")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageTransformPaddingAbsolute",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        try:
            return _padded_estimate(size, *numbers(widgets, "add_width", "add_height"))
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
            return Estimate(size)

    def run(self):
        return _padded(self.images, self.add_width, self.add_height, self.method)


class AllorImageTransformPaddingRelative(Node):
    """ImageTransformPaddingAbsolute with add_width = int(width · scale_width) and add_height =
    int(height · scale_height), placed as there (add_height left and right, add_width above and
    below)."""
    category = "image/transform"
    images: IMAGE
    scale_width: float = Float(0.25, min=0.0, max=16.0, step=0.1)
    scale_height: float = Float(0.25, min=0.0, max=16.0, step=0.1)
    method: str = Choice(("reflect", "edge", "constant"), "reflect")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageTransformPaddingRelative",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        try:
            return _padded_estimate(size, *_scaled_size(size, widgets, "scale_width", "scale_height"))
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
            return Estimate(size)

    def run(self):
        images = _image(self.images, "images")
        add_width, add_height = int(images.shape[2] * self.scale_width), int(images.shape[1] * self.scale_height)
        return _padded(images, add_width, add_height, self.method, ("scale_width", "scale_height"))


ROTATE_SAMPLERS = {"lanczos": "BICUBIC", "bicubic": "BICUBIC", "hamming": "BILINEAR", "bilinear": "BILINEAR",
                   "box": "NEAREST", "nearest": "NEAREST"}  # the sampler PIL's rotate gets for each method


def _turned_box(width: int, height: int, angle: float) -> tuple[int, int]:
    """The (width, height) that holds a width × height picture turned by angle degrees:
    w·|cos| + h·|sin| by h·|cos| + w·|sin|, cut to whole pixels (PIL's expand rounds its corners
    outward, so its box is this or a pixel or two more: a lower bound for the estimate)."""
    import math
    cos, sin = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    return (math.floor(round(width * cos + height * sin, 6)), math.floor(round(height * cos + width * sin, 6)))


class AllorImageTransformRotate(Node):
    """Each image turned counter-clockwise by `angle` degrees by PIL (8-bit), the corners
    transparent for RGBA and black for RGB; expand "true" grows the picture to hold it all. With
    SSAA above 1 the picture is resized up SSAA times by `method`, turned, and resized down by it
    (to the turned size // SSAA); the turn itself uses bicubic (lanczos, bicubic), bilinear
    (hamming, bilinear) or nearest (box, nearest). An angle of 0 or 360 leaves the images as they are."""
    category = "image/transform"
    images: IMAGE
    angle: float = Float(35.0, min=0.0, max=360.0, step=0.1)
    expand: str = Choice(TRUE_FALSE, "true")
    SSAA: int = Int(4, min=1, max=16, step=1)
    method: str = Choice(SAMPLERS, "lanczos")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageTransformRotate",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        try:
            side = int((size.width ** 2 + size.height ** 2) ** 0.5) + 1
            memory = _draw_memory(side, side, *numbers(widgets, "SSAA"))
            angle, ssaa = numbers(widgets, "angle", "SSAA")
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
            return Estimate(size)
        if widgets.get("expand") == "true" and angle % 360:
            width, height = _turned_box(size.width * ssaa, size.height * ssaa, angle)
            size = Size(size.batch, max(height // ssaa, 1), max(width // ssaa, 1), size.frames)
        return Estimate(size, memory=memory)

    def run(self):
        from PIL import Image
        images = _image(self.images, "images")
        if self.angle in (0.0, 360.0):
            return images
        height, width = images.shape[1:3]
        ssaa, resize = self.SSAA, _sampler(self.method)
        if width * height * ssaa * ssaa * 2 > MOST_SSAA_PIXELS:
            raise NodeInputError("SSAA", f"{width}×{height} turned at {ssaa}× is over {MOST_SSAA_PIXELS} pixels")
        turn = getattr(Image.Resampling, ROTATE_SAMPLERS[self.method])

        def rotated(picture):
            fill = (0, 0, 0, 0) if picture.mode == "RGBA" else (0,) * len(picture.getbands())
            if ssaa > 1:
                picture = picture.resize((width * ssaa, height * ssaa), resize)
            picture = picture.rotate(self.angle, turn, self.expand == "true", fillcolor=fill)
            if ssaa > 1:
                picture = picture.resize((picture.width // ssaa, picture.height // ssaa), resize)
            return picture

        return _each_picture(images, rotated)


TRANSPOSES = {"flip_horizontally": "FLIP_LEFT_RIGHT", "flip_vertically": "FLIP_TOP_BOTTOM", "rotate_90": "ROTATE_90",
              "rotate_180": "ROTATE_180", "rotate_270": "ROTATE_270", "transpose": "TRANSPOSE",
              "transverse": "TRANSVERSE"}


class AllorImageTransformTranspose(Node):
    """Each image flipped, turned by a quarter (counter-clockwise), a half or three quarters, or
    transposed / transversed, by PIL's transpose (8-bit)."""
    category = "image/transform"
    images: IMAGE
    method: str = Choice(tuple(TRANSPOSES), "flip_horizontally")
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageTransformTranspose",))

    def run(self):
        from PIL import Image
        how = getattr(Image.Transpose, TRANSPOSES[self.method])
        return _each_picture(self.images, lambda picture: picture.transpose(how))


# -- text ----------------------------------------------------------------------------------------
# The pack lists the font files of its "fonts" folder; here `font` is a .ttf or .otf file in
# models/fonts (a system font such as DejaVu Sans copied there, or the fonts a workflow names), laid
# out by Pillow's default engine as the pack's ImageFont.truetype() (the multiline nodes: its basic
# one, see run()). A font a save names that is not there is refused at validation, naming `font`
# and the fonts there are.


class _TextInputs(Node):
    text: str = Text("")
    font: str = Choice(font_choices)


class _TextColor(Node):
    size: int = Int(28, min=1, max=4096, step=1)
    red: int = _channel(255)
    green: int = _channel(255)
    blue: int = _channel(255)


class _TextOutline(Node):
    outline_size: int = Int(1, min=0, max=1024, step=1)
    outline_red: int = _channel(0)
    outline_green: int = _channel(0)
    outline_blue: int = _channel(0)


class _TextPlacement(Node):
    alpha: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    margin_x: int = Int(0, min=0, max=MAX_SIZE, step=1)
    margin_y: int = Int(0, min=0, max=MAX_SIZE, step=1)

    @classmethod
    def fingerprint(cls, font=None, **widgets):
        try:
            return folders.model_state("fonts", font, inside=True)
        except (FileNotFoundError, ValueError, TypeError):
            return None  # run() names the problem

    def _outline(self):
        """The outline's width and colour (ImageText and ImageTextMultiline draw none)."""
        if not hasattr(self, "outline_size"):
            return 0, (255, 255, 255)
        return self.outline_size, (self.outline_red, self.outline_green, self.outline_blue)

    def run(self):
        from PIL import Image, ImageDraw
        # the multiline nodes measure the whole text with getbbox, which Pillow's raqm layout refuses
        # for text of several lines (the pack's code fails there): they lay out with the basic one
        font = font_file(self.font, self.size, basic_layout=hasattr(self, "align"))
        stroke, outline = self._outline()
        lines = self.text.count("\n") + 1
        top = font.getbbox(self.text)[1]
        if hasattr(self, "align"):  # the multiline nodes measure the text's lines; the outline counted a line
            right, bottom = ImageDraw.Draw(Image.new("RGBA", (0, 0))).multiline_textbbox((0, 0), self.text, font)[2:]
            size = (right + (self.margin_x + stroke) * 2, bottom - top + (self.margin_y + stroke * lines) * 2)
        else:
            left, top, right, bottom = font.getbbox(self.text)
            size = (right + (self.margin_x + stroke) * 2, bottom - top + (self.margin_y + stroke) * 2)
        if min(size) < 1:
            raise NodeInputError("text", "nothing to draw: the picture would be empty (write some text or a margin)")
        if max(size) > MAX_SIZE:
            raise NodeInputError("size", f"the text would be {size[0]}×{size[1]} pixels: expected at most "
                                         f"{MAX_SIZE} a side (a smaller size or a shorter text)")
        most = run_limits().max_pixels  # the canvas's size is known only once the text is measured
        if most is not None and size[0] * size[1] > most:
            raise NodeInputError("size", f"the text would be {size[0]}×{size[1]} pixels, larger than this server "
                                         f"allows ({most / 1e6:.1f} megapixels): a smaller size or a shorter text")
        canvas = Image.new("RGBA", size, (0, 0, 0, 0))
        ink = _rgba(self.red, self.green, self.blue, self.alpha)
        extra = {"align": self.align} if hasattr(self, "align") else {}
        ImageDraw.Draw(canvas).text((self.margin_x + stroke, self.margin_y + stroke - top), self.text, ink,
                                    font=font, stroke_width=stroke, stroke_fill=_rgba(*outline, self.alpha), **extra)
        return _tensor(canvas)[None]


class _MultilineInputs(Node):
    text: str = Text("", multiline=True)
    font: str = Choice(font_choices)
    align: str = Choice(("left", "center", "right"), "left")


class AllorImageText(_TextPlacement, _TextColor, _TextInputs):
    """The text drawn by Pillow in `font` (a .ttf / .otf in models/fonts) at `size` on a transparent
    RGBA picture just big enough for it (its box from the font's getbbox) plus margin_x, margin_y on
    each side; the colour's alpha from `alpha`. The picture's size is known only once the text is
    measured: one over MAX_SIZE a side or the server's max_pixels is refused then, naming size."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageText",))


class AllorImageTextOutlined(_TextPlacement, _TextOutline, _TextColor, _TextInputs):
    """ImageText with an outline outline_size pixels wide in the outline colour (same alpha), the
    picture grown by it on each side."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageTextOutlined",))


class AllorImageTextMultiline(_TextPlacement, _TextColor, _MultilineInputs):
    """ImageText for text of several lines, aligned left, centre or right (Pillow's multiline text;
    the picture sized by its multiline_textbbox). Laid out with Pillow's basic layout (no
    complex-script shaping): with its raqm layout the pack's measuring of such text fails."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageTextMultiline",))


class AllorImageTextMultilineOutlined(_TextPlacement, _TextOutline, _TextColor, _MultilineInputs):
    """ImageTextMultiline with an outline outline_size pixels wide in the outline colour; as in the
    pack, the picture grows by the outline once a line above and below."""
    category = "image/draw"
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageTextMultilineOutlined",))


# -- lens effects --------------------------------------------------------------------------------


def _radial(rows: int, cols: int, curvy: float, scale: float, shape: str, high: float = 1.0):
    """The pack's radialspace_2D over rows × cols, centred: the distance from the middle (its
    coordinates 0..1 along each side) by `shape` (circle, square, rectangle, corners) to the power
    curvy, over its largest value, times scale, clamped to 0..high; float32."""
    import torch
    across = torch.linspace(0, 1, rows)[:, None] - 0.5
    along = torch.linspace(0, 1, cols)[None, :] - 0.5
    if shape == "circle":
        distance = torch.sqrt(across ** 2 + along ** 2) ** curvy
    else:
        a, b = torch.broadcast_tensors(across.abs() ** curvy, along.abs() ** curvy)
        distance = {"square": torch.maximum, "rectangle": torch.add, "corners": torch.minimum}[shape](a, b)
    return (distance / distance.max() * scale).clamp(0.0, high).float()


def _lens_mask(height: int, width: int, curvy: float, scale: float, shape: str, edge: str, high: float = 1.0):
    """The lens nodes' [H, W] gradient: over the picture ("around") or over the square of its longer
    side, its middle cut out ("symmetric": round, as a circle stays round). The pack's cut takes one
    row or column too many where the sides differ by an odd number (its code then fails); here the
    cut is the picture's size."""
    if edge == "around" or height == width:
        return _radial(height, width, curvy, scale, shape, high)
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    return _radial(side, side, curvy, scale, shape, high)[top:top + height, left:left + width]


def _radial_line(size: int, curvy: float, low: float, high: float):
    """The pack's radialspace_1D: |position - 0.5| ** curvy over size points (0..1), over its
    largest value, clamped to low..high, its first half negated where low is below 0, then spread
    over low..high. Where that spread is empty (low = high) it is low throughout (the pack's code
    gives NaN and fails)."""
    import torch
    line = torch.maximum(torch.zeros(()) ** curvy, (torch.linspace(0, 1, size) - 0.5).abs() ** curvy)
    line = (line / line.max()).clamp(low, high)
    if low < 0:
        line[:size // 2] = -line[:size // 2]
    spread = line.max() - line.min()
    if spread == 0:
        return torch.full((size,), float(low))
    return (line - line.min()) / spread * (high - low) + low


def _rolled(rows, shifts):
    """Each row of [N, M] turned (as torch.roll) by its shift, cut to a whole number."""
    import torch
    count = rows.shape[1]
    columns = (torch.arange(count)[None, :] - shifts.to(torch.int64)[:, None]) % count
    return rows.gather(1, columns)


def _aberration(picture, node):
    """ImageEffectsLensChromaticAberration on one [H, W, C] picture."""
    import torch
    import torch.nn.functional as F
    shift = node.shift
    picture = picture.clone()
    if node.transpose == "rotate":
        picture = picture.transpose(0, 1)
    height, width = picture.shape[:2]
    low, high = {1: (-shift, shift), 2: (0, shift), 3: (0, shift), 4: (shift, shift)}[node.shift_type]

    def space(size):
        line = _radial_line(size + 2 * shift, node.lens_curvy, low, high)
        return torch.flip(line, (0,)) if node.shift_type == 2 else line
    # the mixing types' signs of the first and second colour's shifts
    first_sign, second_sign = {1: (1, -1), 2: (-1, -1), 3: (1, 1), 4: (-1, 1)}[node.mixing_type]
    rows = space(height)
    columns = space(width) if node.transpose == "reflect" else None
    first, second = {"rb": (0, 2), "rg": (0, 1), "gb": (1, 2)}[node.colors]
    mode = {"reflect": "reflect", "edge": "replicate", "constant": "constant"}[node.method]
    for channel, sign in ((first, first_sign), (second, second_sign)):
        padded = F.pad(picture[..., channel][None, None], (shift, shift, shift, shift), mode=mode)[0, 0]
        moved = _rolled(padded, (sign * rows).trunc())
        if columns is not None:
            moved = _rolled(moved.T, (sign * columns).trunc()).T
        picture[..., channel] = moved[shift:shift + height, shift:shift + width]
    return picture.transpose(0, 1) if node.transpose == "rotate" else picture


class AllorImageEffectsLensChromaticAberration(Node):
    """Two colour channels (colors: red and blue, red and green, green and blue) moved apart along
    each row, each row by its own amount: the amounts follow the pack's lens curve over the rows
    (radialspace_1D with lens_curvy) from -shift to shift (shift_type 1), shift to 0 (2), 0 to
    shift (3) or shift throughout (4; the pack's code fails there), with the signs mixing_type gives
    the two channels (1: +/-, 2: -/-, 3: +/+, 4: -/+). The picture is padded by `method` first, so
    what moves in comes from the padding. transpose "rotate" works along the columns instead,
    "reflect" along both. A shift of 0 leaves the images as they are (the pack's code fails). The
    working memory, 16 bytes a pixel of the padded picture, is declared, so a run that can't hold it
    is refused before it starts."""
    category = "image/effects/lens"
    images: IMAGE
    shift: int = Int(10, min=0, max=4096, step=1)
    method: str = Choice(("reflect", "edge", "constant"), "reflect")
    shift_type: int = Int(1, min=1, max=4, step=1)
    mixing_type: int = Int(1, min=1, max=4, step=1)
    transpose: str = Choice(("none", "rotate", "reflect"), "none")
    colors: str = Choice(("rb", "rg", "gb"), "rb")
    lens_curvy: float = Float(1.0, min=0.0, max=15.0, step=0.1)
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageEffectsLensChromaticAberration",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("images")
        try:
            shift, = numbers(widgets, "shift")
            padded = (size.height + 2 * int(shift)) * (size.width + 2 * int(shift))
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError):
            return Estimate(size)
        # each channel pass holds the padded channel (float32), its int64 row index and the moved
        # channel at once
        return Estimate(size, memory=padded * (4 + 8 + 4))

    def run(self):
        import torch
        images = _image(self.images, "images")
        if self.shift == 0:
            return images
        if self.method == "reflect" and self.shift >= min(images.shape[1:3]):
            raise NodeInputError("shift", f"{self.shift}: reflect padding needs a shift below the picture's "
                                          f"shorter side ({min(images.shape[1:3])})")
        out = []
        for picture in images.cpu().float():
            check_interrupted()
            out.append(_aberration(picture, self))
        return torch.stack(out).to(images)


class AllorImageEffectsLensVignette(Node):
    """A vignette: towards the edges (the pack's lens gradient: circle or rectangle, sharpened by
    lens_curvy, pushed out by lens_zoom) the picture goes to its colours darkened by `brightness`
    and desaturated by `saturation` (torchvision's adjust_brightness / adjust_saturation factors).
    Also gives the gradient as a mask. lens_edge symmetric keeps the gradient round on pictures that
    are not square."""
    category = "image/effects/lens"
    images: IMAGE
    lens_shape: str = Choice(("circle", "rectangle"), "circle")
    lens_edge: str = Choice(("around", "symmetric"), "around")
    lens_curvy: float = Float(3.0, min=0.0, max=15.0, step=0.1)
    lens_zoom: float = Float(0.0, min=0.0, max=100.0, step=0.1)
    brightness: float = Float(0.25, min=0.0, max=1.0, step=0.01)
    saturation: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    outputs = {"IMAGE": IMAGE, "MASK": MASK}
    comfy = ComfyAlias(("ImageEffectsLensVignette",))

    def run(self):
        images = _image(self.images, "images")
        mask = _lens_mask(images.shape[1], images.shape[2], self.lens_curvy, self.lens_zoom + 1, self.lens_shape,
                          self.lens_edge).to(images)
        rgb = (images[..., :3] * self.brightness).clamp(0, 1)
        grey = (0.2989 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2])[..., None]
        rgb = (self.saturation * rgb + (1 - self.saturation) * grey).clamp(0, 1)
        faded = images.clone()
        faded[..., :3] = rgb
        weight = mask[None, ..., None]
        return images * (1 - weight) + faded * weight, mask[None]


class AllorImageEffectsLensOpticAxis(Node):
    """A lens's pull from its optic axis: each pixel is taken from farther out along the line from
    the centre, by lens_aperture · 100 pixels times the lens gradient (lens_shape, lens_curvy,
    lens_zoom; 0 at the centre), by OpenCV's remap (bilinear), and blurred there (stackBlur of
    blur_intensity - 1, even intensities) as much as the gradient says. Also gives the moved
    gradient as a mask. At the very centre the pack's code divides 0 by 0, which leaves NaN pixels
    there (spread by the blur); here the centre stays as it is."""
    category = "image/effects/lens"
    images: IMAGE
    lens_shape: str = Choice(("circle", "square", "rectangle", "corners"), "circle")
    lens_edge: str = Choice(("around", "symmetric"), "around")
    lens_curvy: float = Float(4.0, min=0.0, max=15.0, step=0.1)
    lens_zoom: float = Float(2.0, min=0.0, max=100.0, step=0.1)
    lens_aperture: float = Float(0.5, min=0.0, max=10.0, step=0.1)
    blur_intensity: int = Int(30, min=2, max=1024, step=2)
    outputs = {"IMAGE": IMAGE, "MASK": MASK}
    comfy = ComfyAlias(("ImageEffectsLensOpticAxis",))

    def run(self):
        import cv2
        import torch
        images = _image(self.images, "images")
        if self.blur_intensity % 2:
            raise NodeInputError("blur_intensity", f"{self.blur_intensity}: expected an even number (the blur is "
                                                   "blur_intensity - 1 wide, odd)")
        height, width = images.shape[1:3]
        mask = _lens_mask(height, width, self.lens_curvy, self.lens_zoom + 1, self.lens_shape, self.lens_edge,
                          1.0 + self.lens_curvy)
        rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        dy, dx = rows - height // 2, cols - width // 2
        distance = torch.sqrt(dx ** 2 + dy ** 2)
        # at the centre the pack divides 0 by 0 and its pixels there come out NaN (spread by the
        # blur); here the centre stays where it is
        pull = -self.lens_aperture * 100
        map_x = (cols + torch.nan_to_num(mask * dx / distance) * pull).to(torch.float32).numpy()
        map_y = (rows + torch.nan_to_num(mask * dy / distance) * pull).to(torch.float32).numpy()
        moved = _each_layer(images, lambda x: cv2.remap(x, map_x, map_y, cv2.INTER_LINEAR))
        moved_mask = torch.from_numpy(cv2.remap(mask.numpy(), map_x, map_y, cv2.INTER_LINEAR))[None]
        kernel = self.blur_intensity - 1
        blurred = _each_layer(moved, lambda x: cv2.stackBlur(x, (kernel, kernel)))
        weight = mask.clamp(0, 1)[None, ..., None]
        return (moved * (1 - weight) + blurred * weight).to(images), moved_mask.clamp(0, 1).to(images)


# -- clamps --------------------------------------------------------------------------------------


class _Clamp(Node):
    """A clamp gives its one input back as it is (the pack's reroute point for a link)."""
    category = "clamp"

    def run(self):
        return getattr(self, next(iter(self.input_specs)))


class AllorClipClamp(_Clamp):
    """The CLIP given back as it is (the pack's reroute point)."""
    clip: CLIP
    outputs = {"CLIP": CLIP}
    comfy = ComfyAlias(("ClipClamp",))


class AllorClipVisionClamp(_Clamp):
    """The CLIP vision model given back as it is (the pack's reroute point)."""
    clip_vision: CLIP_VISION
    outputs = {"CLIP_VISION": CLIP_VISION}
    comfy = ComfyAlias(("ClipVisionClamp",))


class AllorClipVisionOutputClamp(_Clamp):
    """The CLIP vision output given back as it is (the pack's reroute point)."""
    clip_vision_output: CLIP_VISION_OUTPUT
    outputs = {"CLIP_VISION_OUTPUT": CLIP_VISION_OUTPUT}
    comfy = ComfyAlias(("ClipVisionOutputClamp",))


class AllorConditioningClamp(_Clamp):
    """The conditioning given back as it is (the pack's reroute point)."""
    conditioning: CONDITIONING
    outputs = {"CONDITIONING": CONDITIONING}
    comfy = ComfyAlias(("ConditioningClamp",))


class AllorControlNetClamp(_Clamp):
    """The ControlNet given back as it is (the pack's reroute point)."""
    control_net_clamp: CONTROL_NET
    outputs = {"CONTROL_NET": CONTROL_NET}
    comfy = ComfyAlias(("ControlNetClamp",))


class AllorGligenClamp(_Clamp):
    """The GLIGEN model given back as it is (the pack's reroute point)."""
    gligen: GLIGEN
    outputs = {"GLIGEN": GLIGEN}
    comfy = ComfyAlias(("GligenClamp",))


class AllorImageClamp(_Clamp):
    """The images given back as they are (the pack's reroute point)."""
    image: IMAGE
    outputs = {"IMAGE": IMAGE}
    comfy = ComfyAlias(("ImageClamp",))


class AllorLatentClamp(_Clamp):
    """The latent given back as it is (the pack's reroute point)."""
    latent: LATENT
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("LatentClamp",))


class AllorMaskClamp(_Clamp):
    """The mask given back as it is (the pack's reroute point)."""
    mask: MASK
    outputs = {"MASK": MASK}
    comfy = ComfyAlias(("MaskClamp",))


class AllorModelClamp(_Clamp):
    """The model given back as it is (the pack's reroute point)."""
    model: MODEL
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("ModelClamp",))


class AllorStyleModelClamp(_Clamp):
    """The style model given back as it is (the pack's reroute point)."""
    style_model: STYLE_MODEL
    outputs = {"STYLE_MODEL": STYLE_MODEL}
    comfy = ComfyAlias(("StyleModelClamp",))


class AllorUpscaleModelClamp(_Clamp):
    """The upscale model given back as it is (the pack's reroute point)."""
    upscale_model: UPSCALE_MODEL
    outputs = {"UPSCALE_MODEL": UPSCALE_MODEL}
    comfy = ComfyAlias(("UpscaleModelClamp",))


class AllorVaeClamp(_Clamp):
    """The VAE given back as it is (the pack's reroute point)."""
    vae: VAE
    outputs = {"VAE": VAE}
    comfy = ComfyAlias(("VaeClamp",))
