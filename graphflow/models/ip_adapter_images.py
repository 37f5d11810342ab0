"""ComfyUI_IPAdapter_plus's reference-image tools, as the pack computes them: the CLIP vision
crop (PrepImageForClipVision), contrast adaptive sharpening, the tiles of IPAdapterTiled with
their attention masks, the negative-image noise of IPAdapterNoise, and the EMBEDS combinations
of IPAdapterCombineEmbeds. Images here are NCHW unless said otherwise.

Tiling (IPAdapterTiled): the reference image [B, H, W, C] and its mask (default ones) become
  near-square (0.75 < H/W < 1.33): centre-cropped to a square, resized to 512 x 512
  otherwise: the short side resized to 256, the long side in proportion (int), then cut to at
          most 4 tiles long (a centre crop of 256 x 1024) when one side is over 4 times the other
(image through Pillow's Lanczos, the mask bicubic antialiased), sharpened, then cut into
ceil(W / 256) x ceil(H / 256) tiles of 256 spaced evenly: tile x starts at int(x (256 - o)),
o = (n 256 - W) / (n - 1) the overlap. Each tile's mask is the mask inside the tile, zero outside.
"""

import math

import torch
import torch.nn.functional as F

from graphflow.choices import IPADAPTER_COMBINE_METHODS as COMBINE_METHODS
from graphflow.choices import IPADAPTER_NOISE_TYPES as NOISE_TYPES
from graphflow.images import pil_resize

CLIP_SIZE = 224  # the ViT-H / ViT-bigG input the pack prepares images for
TILE_SIZE = 256  # the pack's tile: "more likely divisible by the latent size", CLIP resizes it to 224


def contrast_adaptive_sharpening(x: torch.Tensor, amount: float) -> torch.Tensor:
    """AMD's contrast adaptive sharpening (the pack's port): each pixel minus a weighted cross of
    its 4 neighbours, the weight from the local contrast of its 3 x 3 window (zero padded);
    amount 0..1 goes from 1/8 to 1/5 of the full negative lobe. Output clipped to 0..1."""
    h, w = x.shape[-2:]
    p = F.pad(x, (1, 1, 1, 1))

    def at(dy: int, dx: int) -> torch.Tensor:
        return p[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    cross = torch.stack([at(-1, 0), at(0, -1), x, at(0, 1), at(1, 0)])
    corners = torch.stack([at(-1, -1), at(-1, 1), at(1, -1), at(1, 1)])
    low = cross.amin(0).clamp(min=0) + corners.amin(0).clamp(min=0)
    high = cross.amax(0).clamp(max=1) + corners.amax(0).clamp(max=1)
    amp = (torch.reciprocal(high) * torch.minimum(low, 2 - high)).sqrt()
    lobe = -amp * (amount * (1 / 5 - 1 / 8) + 1 / 8)
    out = ((at(-1, 0) + at(0, -1) + at(0, 1) + at(1, 0)) * lobe + x) / (1 + 4 * lobe)
    return torch.nan_to_num(out).clamp(0, 1)  # a black window gives 0 / 0


def prep_for_clip_vision(image: torch.Tensor, interpolation: str = "LANCZOS", crop_position: str = "center",
                         sharpening: float = 0.0, size: int = CLIP_SIZE) -> torch.Tensor:
    """IMAGE [B, H, W, C] -> [B, size, size, C]: the square at crop_position (the short side's
    length; "pad": the whole image, padded with black on both sides of its short side by
    (long - short) // 2 each), resized by Pillow with `interpolation`, then sharpened."""
    x = image.movedim(-1, 1)
    h, w = x.shape[-2:]
    if crop_position == "pad":
        pad = abs(h - w) // 2
        x = F.pad(x, (pad, pad, 0, 0) if h > w else (0, 0, pad, pad))
    else:
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        top = {"top": 0, "bottom": h - side}.get(crop_position, top)
        left = {"left": 0, "right": w - side}.get(crop_position, left)
        x = x[..., top:top + side, left:left + side]
    x = pil_resize(x, size, size, interpolation)
    if sharpening > 0:
        x = contrast_adaptive_sharpening(x, sharpening)
    return x.movedim(1, -1)


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """torchvision's CenterCrop (within the image): the offsets rounded half to even."""
    h, w = x.shape[-2:]
    top, left = int(round((h - height) / 2.0)), int(round((w - width) / 2.0))
    return x[..., top:top + height, left:left + width]


def _resize_antialiased(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """torchvision's tensor Resize (bicubic, antialias)."""
    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bicubic", antialias=True, align_corners=False)


def tile_positions(length: int, tile: int = TILE_SIZE) -> list[int]:
    """Where the tiles along a side of `length` start: ceil(length / tile) of them, evenly
    overlapping so that the last one ends at the edge."""
    count = math.ceil(length / tile)
    overlap = max(0.0, (count * tile - length) / (count - 1 if count > 1 else 1))
    return [int(i * (tile - overlap)) for i in range(count)]


def reference_tiles(image: torch.Tensor, mask: torch.Tensor | None = None, sharpening: float = 0.0,
                    tile: int = TILE_SIZE) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """IPAdapterTiled's tiles: (images [B, tile, tile, C] per tile, masks [M, h, w] per tile, each
    the mask inside its tile, in the prepared image's frame), rows of tiles from the top left."""
    b, oh, ow, _ = image.shape
    x = image.movedim(-1, 1).cpu()  # Pillow resizes it; the masks are made beside it
    mask = torch.ones(1, oh, ow, dtype=image.dtype) if mask is None else mask.to("cpu", image.dtype)
    mask = _resize_antialiased(mask[:, None], oh, ow)  # the mask in the image's proportions
    if 0.75 < oh / ow < 1.33:  # nearly square: the centre square
        side = min(oh, ow)
        x, mask = center_crop(x, side, side), center_crop(mask, side, side)
        width = height = 2 * tile
    elif oh < ow:
        width, height = int(tile * ow / oh), tile
    else:
        width, height = tile, int(tile * oh / ow)
    x = pil_resize(x, width, height, "LANCZOS")
    mask = _resize_antialiased(mask, height, width)
    if oh / ow > 4 or oh / ow < 0.25:  # at most 4 tiles along the long side
        crop = (tile, 4 * tile) if oh < ow else (4 * tile, tile)
        x, mask = center_crop(x, *crop), center_crop(mask, *crop)
    mask = mask[:, 0]
    if sharpening > 0:
        x = contrast_adaptive_sharpening(x, sharpening)
    x = x.movedim(1, -1)
    h, w = x.shape[1:3]
    tiles, masks = [], []
    for top in tile_positions(h, tile):
        for left in tile_positions(w, tile):
            tiles.append(x[:, top:top + tile, left:left + tile])
            region = torch.zeros_like(mask)
            region[:, top:top + tile, left:left + tile] = mask[:, top:top + tile, left:left + tile]
            masks.append(region)
    return tiles, masks


def _gaussian_blur(x: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    from graphflow.sampling.self_attention_guidance import gaussian_blur_2d

    return gaussian_blur_2d(x, kernel_size, sigma)


def _elastic(x: torch.Tensor, alpha: float, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """torchvision's ElasticTransform (bilinear, black fill) with its random field: displacements
    uniform in -1..1, blurred by sigma (kernel int(8 sigma + 1), made odd), times alpha / H for x
    and alpha / W for y (its convention), added to the identity grid."""
    h, w = x.shape[-2:]
    fields = []
    for side in (h, w):
        d = torch.rand(1, 1, h, w, generator=generator) * 2 - 1
        if sigma > 0:
            k = int(8 * sigma + 1)
            d = _gaussian_blur(d, k + (k % 2 == 0), sigma)
        fields.append(d * alpha / side)
    displacement = torch.cat(fields, 1).permute(0, 2, 3, 1)
    gx = torch.linspace((1 - w) / w, (w - 1) / w, w)
    gy = torch.linspace((1 - h) / h, (h - 1) / h, h)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1)[None] + displacement
    ones = torch.ones_like(x[:, :1])
    sampled = F.grid_sample(torch.cat([x, ones], 1), grid.expand(x.shape[0], -1, -1, -1), mode="bilinear",
                            padding_mode="zeros", align_corners=False)
    return sampled[:, :-1] * sampled[:, -1:]  # the fill (black) where the field leaves the picture


def noise_image(kind: str, strength: float, blur: int, image: torch.Tensor | None = None) -> torch.Tensor:
    """IPAdapterNoise: IMAGE [B, 224, 224, 3], a noised version of `image` (its centre square
    resized to 224, bicubic antialiased) or of black, for the negative side. The random numbers
    come from a generator seeded by the image's sum (so the same image gives the same noise), in
    the pack's order. fade: lerp to uniform noise by strength; dissolve: each value replaced by
    uniform noise with probability strength; gaussian: plus strength * N(0, 1); shuffle: an
    elastic warp (alpha 75, sigma (1 - strength) 3.5) and both flips, then x (1 - n) + n with
    n = 0.75 strength N(0, 1). Clipped to 0..1, then blurred (kernel blur, made odd)."""
    if image is None:
        x = torch.zeros(1, CLIP_SIZE, CLIP_SIZE, 3)
    else:
        x = image.movedim(-1, 1).float().cpu()  # the draws come from a CPU generator, as the pack's
        side = min(x.shape[-2:])
        x = _resize_antialiased(center_crop(x, side, side), CLIP_SIZE, CLIP_SIZE).movedim(1, -1)
    g = torch.Generator().manual_seed(int(x.sum().item()) % 1000000007)
    # the pack's *_like draws fill a tensor laid out as its image: [B, C, H, W] in memory where
    # torchvision made it (resized or shuffled), seen as [B, H, W, C]; its black image, and an image
    # whose short side is already 224 (torchvision's crop is a view and its resize returns it as it
    # is), are plain [B, H, W, C]. The layout decides the order of the numbers (and torch's normal
    # draws differ for a non-contiguous tensor), so the same layout is filled here.
    channels_first = (image is not None and min(image.shape[1:3]) != CLIP_SIZE) or kind == "shuffle"

    def draw(normal: bool = False) -> torch.Tensor:
        b, h, w, c = x.shape
        t = torch.empty(b, c, h, w).movedim(1, -1) if channels_first else torch.empty(b, h, w, c)
        return t.normal_(generator=g) if normal else t.uniform_(generator=g)

    if kind == "fade":
        out = x * (1 - strength) + draw() * strength
    elif kind == "dissolve":
        chosen = (draw() < strength).float()
        out = x * (1 - chosen) + draw() * chosen
    elif kind == "gaussian":
        out = x + draw(normal=True) * strength
    elif kind == "shuffle":
        x = _elastic(x.movedim(-1, 1), 75.0, (1 - strength) * 3.5, g)
        torch.rand(2, generator=g)  # the two random flips' draws (p = 1: they always flip)
        x = x.flip(-2, -1).movedim(1, -1)
        n = draw(normal=True) * (strength * 0.75)
        out = x * (1 - n) + n
    else:
        raise ValueError(f"unknown noise type {kind!r}; expected one of {', '.join(NOISE_TYPES)}")
    out = out.clamp(0, 1)
    if blur > 0:
        k = blur + (blur % 2 == 0)
        sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8  # torchvision's sigma for a kernel size
        out = _gaussian_blur(out.movedim(-1, 1), k, sigma).movedim(1, -1)
    return out


def combine_embeds(embeds: list[torch.Tensor], method: str) -> torch.Tensor:
    """IPAdapterCombineEmbeds: the EMBEDS concatenated (rows), or one row: their sum, the first
    minus the others' mean, the mean, the mean of each divided by its norm over the rows, the
    element-wise max or min."""
    x = torch.cat(embeds, 0)
    if method == "concat":
        return x
    if method == "add":
        return x.sum(0, keepdim=True)
    if method == "subtract":
        return (x[0] - x[1:].mean(0))[None]
    if method == "average":
        return x.mean(0, keepdim=True)
    if method == "norm average":
        return (x / x.norm(dim=0, keepdim=True)).mean(0, keepdim=True)
    if method == "max":
        return x.amax(0, keepdim=True)
    if method == "min":
        return x.amin(0, keepdim=True)
    raise ValueError(f"unknown combine method {method!r}; expected one of {', '.join(COMBINE_METHODS)}")
