"""The PALETTE socket type and the colour maths behind the palette nodes.

A PALETTE is a float tensor [K, 3]: K RGB colours in 0..1.
"""

import torch

from graphflow.api import socket_type

PALETTE = socket_type("PALETTE", "#f06292", "Colours, float [K, 3] RGB in 0..1")

PRESETS = {
    "gameboy": ["#0f380f", "#306230", "#8bac0f", "#9bbc0f"],
    "grayscale-4": ["#000000", "#555555", "#aaaaaa", "#ffffff"],
    "cga": ["#000000", "#55ffff", "#ff55ff", "#ffffff"],
    "pico-8": ["#000000", "#1d2b53", "#7e2553", "#008751", "#ab5236", "#5f574f", "#c2c3c7", "#fff1e8",
               "#ff004d", "#ffa300", "#ffec27", "#00e436", "#29adff", "#83769c", "#ff77a8", "#ffccaa"],
}

LUMA = torch.tensor([0.299, 0.587, 0.114])  # Rec. 601 weights: how bright a colour looks

# 4x4 Bayer matrix: thresholds spread so that any 2x2, 4x4 block mixes colours evenly.
BAYER = torch.tensor([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], dtype=torch.float32)


def from_hex(codes: list[str]) -> torch.Tensor:
    return torch.tensor([[int(code[i:i + 2], 16) / 255 for i in (1, 3, 5)] for code in codes])


def extract_palette(image: torch.Tensor, colors: int, order: str, iterations: int = 20,
                    max_pixels: int = 65536) -> torch.Tensor:
    """The main colours of an image by k-means; clusters that end up empty are dropped."""
    pixels = image.reshape(-1, 3).float()
    pixels = pixels[:: max(1, len(pixels) // max_pixels)]  # an even sample is plenty for a palette
    # Start from pixels at evenly spaced brightness quantiles: deterministic, and spread out.
    by_brightness = pixels[(pixels @ LUMA).argsort()]
    centres = by_brightness[((torch.arange(colors) + 0.5) / colors * len(pixels)).long()]
    for _ in range(iterations):
        label = torch.cdist(pixels, centres).argmin(1)
        counts = torch.bincount(label, minlength=colors)
        sums = torch.zeros_like(centres).index_add_(0, label, pixels)
        moved = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centres)
        if torch.equal(moved, centres):
            break
        centres = moved
    counts = torch.bincount(torch.cdist(pixels, centres).argmin(1), minlength=colors)
    centres, counts = centres[counts > 0], counts[counts > 0]
    rank = (centres @ LUMA).argsort() if order == "luminance" else (-counts).argsort(stable=True)
    return centres[rank]


def nearest_colors(image: torch.Tensor, palette: torch.Tensor, chunk: int = 1 << 18) -> torch.Tensor:
    """Each pixel replaced by the palette colour closest to it (in RGB)."""
    palette = palette.to(image)
    pixels = image.reshape(-1, 3)
    out = torch.empty_like(pixels)
    for start in range(0, len(pixels), chunk):  # chunks bound the [pixels, K] distance table
        part = pixels[start:start + chunk]
        out[start:start + chunk] = palette[torch.cdist(part, palette).argmin(1)]
    return out.reshape(image.shape)


def ordered_dither(image: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Nudge each pixel by the Bayer threshold at its position before picking the nearest
    colour, so flat areas between two palette colours become a fine mix of both."""
    palette = palette.to(image)
    if len(palette) < 2:
        return nearest_colors(image, palette)
    # One palette step per channel: the typical distance to the nearest other colour.
    gaps = torch.cdist(palette, palette) + torch.eye(len(palette), dtype=palette.dtype) * 1e9
    step = gaps.min(1).values.median() / 3 ** 0.5
    _, height, width, _ = image.shape
    threshold = (BAYER.to(image) + 0.5) / 16 - 0.5
    threshold = threshold.repeat(height // 4 + 1, width // 4 + 1)[:height, :width]
    return nearest_colors(image + threshold[None, :, :, None] * step, palette)
