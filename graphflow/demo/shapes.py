"""The demo model's world: coloured shapes on plain backgrounds, generated, nothing downloaded.

Every image holds one axis-aligned shape (circle, square, or a triangle pointing up) of one
palette colour on one background colour, drawn anti-aliased (4x supersampled), with its caption
"a {colour} {shape} on a {background} background" ("an orange ..."). Shapes are upright and axis-aligned so that
a plain pixel measurement tells them apart: the fraction of the shape's bounding box it fills is
pi/4 for a circle, 1 for a square, 1/2 for a triangle (see graphflow.demo.measure).

Colours are jittered a little per image so that the model learns a colour word, not one RGB
triple; the palette is chosen so that every colour is far from every background and from the
other colours.
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (30, 165, 55),
    "blue": (35, 75, 220),
    "yellow": (245, 215, 30),
    "purple": (145, 50, 195),
    "orange": (250, 135, 20),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "black": (15, 15, 15),
    "blue": (35, 75, 220),  # never behind a blue shape
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
# fraction of its bounding box each shape fills
FILL_RATIO: dict[str, float] = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5}

IMAGE_SIZE = 64
SUPERSAMPLE = 4
COLOUR_JITTER = 12  # +- per channel, per image
MIN_SIDE, MAX_SIDE = 0.36, 0.62  # shape's bounding-box side, as a fraction of the image
MARGIN = 0.06  # the shape keeps this far (fraction of the image) from the border


def caption(colour: str, shape: str, background: str) -> str:
    article = "an" if colour[0] in "aeiou" else "a"
    return f"{article} {colour} {shape} on a {background} background"


@dataclass(frozen=True)
class ShapeSpec:
    """What one image shows, in image-size fractions (so it renders at any size)."""

    colour: str
    shape: str
    background: str
    side: float  # bounding-box side
    cx: float  # bounding-box centre
    cy: float

    @property
    def caption(self) -> str:
        return caption(self.colour, self.shape, self.background)


def random_spec(rng: np.random.Generator, colour: str | None = None, shape: str | None = None,
                background: str | None = None) -> ShapeSpec:
    colour = colour or str(rng.choice(list(COLOURS)))
    shape = shape or str(rng.choice(SHAPES))
    background = background or str(rng.choice([b for b in BACKGROUNDS if b != colour]))
    if background == colour:
        raise ValueError(f"a {colour} shape on a {colour} background would be invisible")
    side = float(rng.uniform(MIN_SIDE, MAX_SIDE))
    lo, hi = MARGIN + side / 2, 1 - MARGIN - side / 2
    return ShapeSpec(colour, shape, background, side, float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)))


def _jitter(rgb, rng: np.random.Generator | None, amount: int) -> tuple[int, int, int]:
    if rng is None or amount == 0:
        return tuple(rgb)
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def render(spec: ShapeSpec, size: int = IMAGE_SIZE, rng: np.random.Generator | None = None) -> np.ndarray:
    """The image of `spec` as uint8 [size, size, 3]; `rng` jitters the colours (None: exact palette)."""
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), _jitter(BACKGROUNDS[spec.background], rng, COLOUR_JITTER // 2))
    draw = ImageDraw.Draw(image)
    fill = _jitter(COLOURS[spec.colour], rng, COLOUR_JITTER)
    half = spec.side * big / 2
    x0, y0 = spec.cx * big - half, spec.cy * big - half
    x1, y1 = spec.cx * big + half, spec.cy * big + half
    if spec.shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=fill)
    elif spec.shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=fill)
    elif spec.shape == "triangle":
        draw.polygon([(spec.cx * big, y0), (x1, y1), (x0, y1)], fill=fill)
    else:
        raise ValueError(f"unknown shape {spec.shape!r}; expected one of {SHAPES}")
    return np.asarray(image.resize((size, size), Image.BOX))


def render_mask(spec: ShapeSpec, size: int = IMAGE_SIZE) -> np.ndarray:
    """Where `spec`'s shape is: white on black, uint8 [size, size, 3] (the demo ControlNet's hint)."""
    white = ShapeSpec("yellow", spec.shape, "black", spec.side, spec.cx, spec.cy)
    image = render(white, size).astype(np.float32)
    fg, bg = np.array(COLOURS["yellow"], np.float32), np.array(BACKGROUNDS["black"], np.float32)
    t = ((image - bg) @ (fg - bg)) / float((fg - bg) @ (fg - bg))
    return np.repeat((np.clip(t, 0, 1) * 255).round().astype(np.uint8)[..., None], 3, axis=-1)


def dataset(n: int, seed: int, size: int = IMAGE_SIZE) -> tuple[np.ndarray, list[ShapeSpec]]:
    """n random images (uint8 [n, size, size, 3]) and what they show; the same seed gives the same set."""
    rng = np.random.default_rng(seed)
    specs = [random_spec(rng) for _ in range(n)]
    images = np.stack([render(spec, size, rng) for spec in specs])
    return images, specs


