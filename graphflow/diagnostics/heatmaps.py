"""Heatmap rendering for the diagnostics: colour maps, labelled tiles, overlays.

Everything returns CPU float32 images [H, W, 3] in 0..1 (one IMAGE item). Maps are shown with
nearest-neighbour upscaling so each latent cell stays a visible square, and every tile carries
its value range under it, so two heatmaps are never compared by colour alone.
"""

import math

import torch
from PIL import Image, ImageDraw, ImageFont

# Anchors of matplotlib's "inferno" (dark = small, bright = large), interpolated linearly.
INFERNO = (
    (0.001, 0.000, 0.014), (0.087, 0.045, 0.225), (0.258, 0.039, 0.406), (0.416, 0.091, 0.433),
    (0.578, 0.148, 0.404), (0.736, 0.216, 0.330), (0.865, 0.317, 0.226), (0.955, 0.469, 0.100),
    (0.988, 0.645, 0.040), (0.973, 0.824, 0.231), (0.988, 0.998, 0.645),
)
# Blue - light grey - red, for signed values centred on 0 (the end colours of "coolwarm").
DIVERGING = ((0.230, 0.299, 0.754), (0.865, 0.865, 0.865), (0.706, 0.016, 0.150))
COLORMAPS = {"inferno": INFERNO, "diverging": DIVERGING}

MARK_COLOR = (0, 255, 128)
STRIP_HEIGHT = 30  # the label strip under a tile: a title line and a range bar


def value_range(values: torch.Tensor, cmap: str = "inferno") -> tuple[float, float]:
    """The range a map is drawn over: min..max, or symmetric around 0 for the diverging map."""
    finite = values[torch.isfinite(values)]
    if finite.numel() == 0:
        return 0.0, 1.0
    lo, hi = finite.min().item(), finite.max().item()
    if cmap == "diverging":
        edge = max(abs(lo), abs(hi))
        return -edge, edge
    return lo, hi


def colorize(values: torch.Tensor, lo: float, hi: float, cmap: str = "inferno") -> torch.Tensor:
    """Map [..] values onto colours [.., 3]; lo..hi spans the colour map, outside is clipped."""
    anchors = torch.tensor(COLORMAPS[cmap], dtype=torch.float32)
    t = (values.float() - lo) / (hi - lo) if hi > lo else torch.full_like(values, 0.5, dtype=torch.float32)
    t = torch.nan_to_num(t, nan=0.0).clamp(0, 1) * (len(anchors) - 1)
    index = t.floor().long().clamp(max=len(anchors) - 2)
    frac = (t - index)[..., None]
    return anchors[index] * (1 - frac) + anchors[index + 1] * frac


def to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray((image.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), "RGB")


def from_pil(image: Image.Image) -> torch.Tensor:
    return torch.frombuffer(bytearray(image.convert("RGB").tobytes()), dtype=torch.uint8) \
        .reshape(image.height, image.width, 3).float() / 255


def display_factor(h: int, w: int, min_size: int = 128) -> int:
    """Integer upscale that makes a small map at least `min_size` pixels on its longer side."""
    return max(1, math.ceil(min_size / max(h, w)))


def format_value(v: float) -> str:
    return f"{v:.3g}" if math.isfinite(v) else str(v)


def label_font():
    return ImageFont.load_default()


def labelled_tile(values: torch.Tensor, title: str, *, cmap: str = "inferno", lo: float | None = None,
                  hi: float | None = None, marks: tuple[tuple[int, int], ...] = (), min_size: int = 128) -> Image.Image:
    """A map [h, w] as an upscaled heatmap with its title and value range underneath;
    `marks` are (row, col) cells outlined (e.g. the top location)."""
    if lo is None or hi is None:
        lo, hi = value_range(values, cmap)
    h, w = values.shape
    f = display_factor(h, w, min_size)
    heat = to_pil(colorize(values, lo, hi, cmap)).resize((w * f, h * f), Image.NEAREST)
    width = max(heat.width, min_size)
    tile = Image.new("RGB", (width, heat.height + STRIP_HEIGHT), (255, 255, 255))
    tile.paste(heat, (0, 0))
    draw = ImageDraw.Draw(tile)
    for row, col in marks:
        draw.rectangle([col * f - 1, row * f - 1, (col + 1) * f, (row + 1) * f], outline=MARK_COLOR, width=2)
    _draw_legend(draw, 0, heat.height, width, title, lo, hi, cmap)
    return tile


def _draw_legend(draw: ImageDraw.ImageDraw, x: int, y: int, width: int, title: str, lo: float, hi: float, cmap: str):
    font = label_font()
    draw.text((x + 2, y + 1), title, fill=(0, 0, 0), font=font)
    lo_text, hi_text = format_value(lo), format_value(hi)
    lo_w, hi_w = draw.textlength(lo_text, font=font), draw.textlength(hi_text, font=font)
    bar_x0, bar_x1 = x + 4 + int(lo_w) + 3, x + width - 4 - int(hi_w) - 3
    bar_y = y + 18
    draw.text((x + 2, bar_y - 3), lo_text, fill=(0, 0, 0), font=font)
    draw.text((bar_x1 + 3, bar_y - 3), hi_text, fill=(0, 0, 0), font=font)
    if bar_x1 > bar_x0:
        ramp = colorize(torch.linspace(0, 1, bar_x1 - bar_x0), 0.0, 1.0, cmap)
        for i, (r, g, b) in enumerate((ramp * 255).round().int().tolist()):
            draw.line([bar_x0 + i, bar_y, bar_x0 + i, bar_y + 6], fill=(r, g, b))


def grid(tiles: list[Image.Image], columns: int | None = None, gap: int = 4) -> Image.Image:
    """Tiles side by side (wrapping after `columns`), on white."""
    columns = columns or len(tiles)
    rows = math.ceil(len(tiles) / columns)
    cell_w = max(t.width for t in tiles)
    cell_h = max(t.height for t in tiles)
    size = (columns * cell_w + (columns - 1) * gap, rows * cell_h + (rows - 1) * gap)
    sheet = Image.new("RGB", size, (255, 255, 255))
    for n, tile in enumerate(tiles):
        sheet.paste(tile, ((n % columns) * (cell_w + gap), (n // columns) * (cell_h + gap)))
    return sheet


def overlay(image: torch.Tensor, values: torch.Tensor, title: str, *, alpha: float = 0.55,
            marks: tuple[tuple[int, int], ...] = ()) -> Image.Image:
    """A map [h, w] stretched (nearest) over an image [H, W, 3], blended, with a legend strip;
    `marks` are (row, col) map cells outlined. Small images are upscaled to at least 128 pixels."""
    f = display_factor(*image.shape[:2])
    image = image.float().repeat_interleave(f, 0).repeat_interleave(f, 1)
    H, W = image.shape[:2]
    h, w = values.shape
    lo, hi = value_range(values)
    heat = colorize(values, lo, hi)
    heat = torch.nn.functional.interpolate(heat.permute(2, 0, 1)[None], size=(H, W), mode="nearest")[0].permute(1, 2, 0)
    blended = to_pil(image * (1 - alpha) + heat * alpha)
    width = max(W, 128)
    out = Image.new("RGB", (width, H + STRIP_HEIGHT), (255, 255, 255))
    out.paste(blended, (0, 0))
    draw = ImageDraw.Draw(out)
    for row, col in marks:
        y0, y1 = row * H / h, (row + 1) * H / h
        x0, x1 = col * W / w, (col + 1) * W / w
        draw.rectangle([x0 - 1, y0 - 1, x1, y1], outline=MARK_COLOR, width=2)
    _draw_legend(draw, 0, H, width, title, lo, hi, "inferno")
    return out


def as_image_batch(images: list[Image.Image]) -> torch.Tensor:
    """PIL images (padded with white to a common size) -> IMAGE [B, H, W, 3]."""
    H = max(i.height for i in images)
    W = max(i.width for i in images)
    out = torch.ones(len(images), H, W, 3)
    for n, image in enumerate(images):
        out[n, :image.height, :image.width] = from_pil(image)
    return out
