"""The palette nodes: make a PALETTE (from an image or a preset) and redraw an image with one."""

from graphflow.api import IMAGE, Choice, Int, Node

from .palette import PALETTE, PRESETS, extract_palette, from_hex, nearest_colors, ordered_dither


class ExtractPalette(Node):
    """Find the main colours of an image (k-means clustering of its pixels).

    Gives at most `colors` colours, darkest first or most common first."""

    category = "image/color"
    image: IMAGE
    colors: int = Int(8, min=1, max=64)
    order: str = Choice(["luminance", "frequency"], "luminance")
    outputs = {"palette": PALETTE}

    def run(self):
        return extract_palette(self.image, self.colors, self.order)


class PresetPalette(Node):
    """A classic fixed palette: Game Boy greens, 4 greys, CGA, PICO-8."""

    category = "image/color"
    name: str = Choice(list(PRESETS), "gameboy")
    outputs = {"palette": PALETTE}

    def run(self):
        return from_hex(PRESETS[self.name])


class ApplyPalette(Node):
    """Redraw an image with only the colours of a palette, each pixel the nearest one.

    Ordered dithering mixes neighbouring palette colours in a fixed 4x4 pattern to suggest
    the shades in between."""

    category = "image/color"
    version = 2  # version 1 had `dither` as a yes/no switch
    image: IMAGE
    palette: PALETTE
    dither: str = Choice(["none", "ordered"], "none")
    outputs = {"image": IMAGE}

    @classmethod
    def upgrade(cls, inputs, saved_version):
        if saved_version == 1 and isinstance(inputs.get("dither", False), bool):
            return {**inputs, "dither": "ordered" if inputs.get("dither") else "none"}
        return None  # e.g. a linked yes/no: the workflow is reported as needing this node updated

    def run(self):
        if self.dither == "ordered":
            return ordered_dither(self.image, self.palette)
        return nearest_colors(self.image, self.palette)
