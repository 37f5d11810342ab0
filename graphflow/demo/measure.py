"""Pixel measurements that say what a demo image shows: which colour, which shape, which background.

They judge generated images in the demo model's tests, so they use nothing learned:
  background   the median colour of the image's border (2 pixels wide), named by the nearest
               background colour of the palette;
  foreground   pixels that lie more than half-way from the background colour to the shape's
               colour (estimated from the pixels farthest from the background), largest
               4-connected blob only, so specks elsewhere do not count;
  colour       majority vote of the nearest palette colour over the blob's core pixels;
  shape        the fraction of its bounding box the blob fills: pi/4 circle, 1 square, 1/2 triangle.
"""

from dataclasses import dataclass

import numpy as np

from .shapes import BACKGROUNDS, COLOURS, FILL_RATIO

BORDER = 2
MIN_CONTRAST = 0.2  # RGB distance (0..1 per channel) below which a pixel is background
MIN_AREA = 0.01  # a foreground blob smaller than this fraction of the image is "nothing drawn"

_COLOUR_NAMES = list(COLOURS)
_COLOUR_RGB = np.array([COLOURS[c] for c in _COLOUR_NAMES], dtype=np.float64) / 255
_BACKGROUND_NAMES = list(BACKGROUNDS)
_BACKGROUND_RGB = np.array([BACKGROUNDS[c] for c in _BACKGROUND_NAMES], dtype=np.float64) / 255


@dataclass(frozen=True)
class Measurement:
    colour: str | None  # None when no shape was found
    shape: str | None
    background: str
    fill_ratio: float  # blob pixels / bounding-box pixels (0 when no shape)
    area: float  # blob pixels / image pixels
    mask: np.ndarray  # bool [H, W]


def as_array(image) -> np.ndarray:
    """uint8 [H, W, 3] (0..255) or float [H, W, 3] (0..1, numpy or torch) -> float64 [H, W, 3] in 0..1."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] < 3:
        raise ValueError(f"expected one image [H, W, 3], got shape {image.shape}")
    image = image[..., :3]
    return image.astype(np.float64) / 255 if image.dtype == np.uint8 else image.astype(np.float64)


def border_colour(image: np.ndarray) -> np.ndarray:
    b = BORDER
    frame = np.concatenate([image[:b].reshape(-1, 3), image[-b:].reshape(-1, 3),
                            image[b:-b, :b].reshape(-1, 3), image[b:-b, -b:].reshape(-1, 3)])
    return np.median(frame, axis=0)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected region of a bool mask (label propagation: each pixel takes the
    smallest label among itself and its neighbours until nothing changes)."""
    if not mask.any():
        return mask
    h, w = mask.shape
    big = h * w
    labels = np.where(mask, np.arange(big).reshape(h, w), big)
    for _ in range(big):
        padded = np.pad(labels, 1, constant_values=big)
        neighbours = np.minimum.reduce([padded[1:-1, 1:-1], padded[:-2, 1:-1], padded[2:, 1:-1],
                                        padded[1:-1, :-2], padded[1:-1, 2:]])
        updated = np.where(mask, neighbours, big)
        if np.array_equal(updated, labels):
            break
        labels = updated
    ids, counts = np.unique(labels[mask], return_counts=True)
    return labels == ids[np.argmax(counts)]


def nearest(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest palette entry for each colour in rgb [..., 3]."""
    return np.argmin(((rgb[..., None, :] - palette) ** 2).sum(-1), axis=-1)


def measure(image) -> Measurement:
    img = as_array(image)
    h, w = img.shape[:2]
    bg = border_colour(img)
    background = _BACKGROUND_NAMES[int(nearest(bg, _BACKGROUND_RGB))]
    distance = np.linalg.norm(img - bg, axis=-1)
    candidates = distance > MIN_CONTRAST
    empty = Measurement(None, None, background, 0.0, 0.0, np.zeros((h, w), bool))
    if candidates.sum() < MIN_AREA * h * w:
        return empty
    # the shape's colour: median of the candidates farthest from the background (its interior)
    far = distance >= np.quantile(distance[candidates], 0.5)
    fg = np.median(img[candidates & far], axis=0)
    direction = fg - bg
    t = ((img - bg) @ direction) / max(float(direction @ direction), 1e-9)
    mask = largest_component(t > 0.5)
    area = mask.sum()
    if area < MIN_AREA * h * w:
        return empty
    core = mask & (t > 0.75)
    votes = np.bincount(nearest(img[core if core.any() else mask], _COLOUR_RGB).ravel(),
                        minlength=len(_COLOUR_NAMES))
    colour = _COLOUR_NAMES[int(np.argmax(votes))]
    rows, cols = np.nonzero(mask)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    fill = float(area / box)
    shape = min(FILL_RATIO, key=lambda s: abs(FILL_RATIO[s] - fill))
    return Measurement(colour, shape, background, fill, float(area / (h * w)), mask)


def accuracy(images, expected: list[tuple[str, str]]) -> tuple[float, float, list[Measurement]]:
    """(colour accuracy, shape accuracy, measurements) of images against (colour, shape) pairs."""
    found = [measure(image) for image in images]
    colour = float(np.mean([m.colour == c for m, (c, _) in zip(found, expected)]))
    shape = float(np.mean([m.shape == s for m, (_, s) in zip(found, expected)]))
    return colour, shape, found
