"""Ultimate SD Upscale (ssitu's ComfyUI_UltimateSDUpscale, after Coyote-A's A1111 script): upscale
an image, then re-diffuse it tile by tile (img2img on each tile's padded crop, pasted back through
the tile's blurred mask), optionally followed by a pass over the seams between tiles.

The geometry follows the pack: the canvas is upscale_by × the image, rounded to multiples of 8;
tiles are tile_width × tile_height from the top left (the last ones cut by the border). A tile's
mask is the rectangle drawn by PIL with inclusive corners (one pixel wider and taller than the
tile, as the pack draws it); its crop is the mask's bounding box grown by tile_padding, clipped to
the image, less the last row and column unless they touch the border. With force_uniform_tiles the
crop is widened to the aspect of the processing size (tile + padding, rounded to 8) and resized to
it; without, it is widened to multiples of 8. Every tile is sampled with the same seed. As in the
pack, the pictures are 8-bit (Pillow) between the VAE's encodes and decodes."""

from __future__ import annotations

import math
from dataclasses import dataclass

from graphflow.api import (CONDITIONING, IMAGE, MODEL, SAMPLER, SIGMAS, VAE, Bool, Choice, ComfyAlias, Float, Int,
                           Node, NodeInputError, progress)
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.sampling import SEED_MAX
from nodes.upscale import UPSCALE_MODEL

MODES = ("Linear", "Chess", "None")
SEAM_FIX_MODES = ("None", "Band Pass", "Half Tile", "Half Tile + Intersections")
MAX_RESOLUTION = 8192
UPSCALE_TILE, UPSCALE_OVERLAP = 512, 32  # ComfyUI's ImageUpscaleWithModel, which the pack calls
DECODE_TILE, DECODE_OVERLAP = 512, 64  # ComfyUI's VAEDecodeTiled as the pack calls it


# -- geometry (plain numbers, as the pack computes them) -------------------------------------

def round8(length: float) -> int:
    """The pack's sizes: the nearest multiple of 8 (Python's round, halves to even)."""
    return round(length / 8) * 8


def canvas_size(width: int, height: int, upscale_by: float) -> tuple[int, int]:
    return round8(width * upscale_by), round8(height * upscale_by)


def grid(width: int, height: int, tile_width: int, tile_height: int) -> tuple[int, int]:
    """(rows, cols) of tiles covering the canvas."""
    return math.ceil(height / tile_height), math.ceil(width / tile_width)


def upscale_passes(scale_factor: int) -> list[int]:
    """How many times (and by what nominal factor) the pack runs the upscaler: A1111's split of the
    whole-number scale into factors 4, 3 and 2 (an upscale model ignores the factor: it always
    scales by its own)."""
    def factor(n):
        return 2 if n == 1 else 4 if n % 4 == 0 else 3 if n % 3 == 0 else 2 if n % 2 == 0 else 0
    while factor(scale_factor) == 0:
        scale_factor += 1
    passes, current = [], 1
    while current < scale_factor:
        passes.append(factor(scale_factor // current))
        current *= passes[-1]
    return passes


def tile_rectangle(xi: int, yi: int, tile_width: int, tile_height: int) -> tuple[int, int, int, int]:
    """The rectangle drawn into a tile's mask, corners inclusive (PIL's ImageDraw.rectangle)."""
    return xi * tile_width, yi * tile_height, (xi + 1) * tile_width, (yi + 1) * tile_height


def crop_region(box: tuple[int, int, int, int], padding: int, width: int, height: int) -> tuple[int, int, int, int]:
    """A mask's bounding box (x2, y2 exclusive) grown by padding and clipped to the image, less
    the last column / row unless it reaches the border (A1111's get_crop_region as the pack has it)."""
    x1, y1, x2, y2 = box
    x1, y1 = max(x1 - padding, 0), max(y1 - padding, 0)
    x2, y2 = min(x2 + padding, width), min(y2 + padding, height)
    return x1, y1, x2 - (x2 < width), y2 - (y2 < height)


def expand_crop(region, width: int, height: int, target_width: int, target_height: int):
    """Grow a region towards target size: half the difference to the right, the rest (and what
    did not fit) to the left, then the right again; the same downwards then upwards."""
    x1, y1, x2, y2 = region
    x2 = min(x2 + (target_width - (x2 - x1)) // 2, width)
    x1 = max(x1 - (target_width - (x2 - x1)), 0)
    x2 = min(x2 + (target_width - (x2 - x1)), width)
    y2 = min(y2 + (target_height - (y2 - y1)) // 2, height)
    y1 = max(y1 - (target_height - (y2 - y1)), 0)
    y2 = min(y2 + (target_height - (y2 - y1)), height)
    return x1, y1, x2, y2


def fit_region(region, width: int, height: int, process_size: tuple[int, int], uniform: bool):
    """(crop region, size the crop is sampled at). uniform: the crop widened to the processing
    size's aspect and sampled at that size; otherwise widened to multiples of 8 and sampled as is."""
    x1, y1, x2, y2 = region
    cw, ch = x2 - x1, y2 - y1
    if uniform:
        pw, ph = process_size
        if cw / ch > pw / ph:
            tw, th = cw, round(cw / (pw / ph))
        else:
            tw, th = round(ch * (pw / ph)), ch
        return expand_crop(region, width, height, tw, th), (pw, ph)
    tw, th = math.ceil(cw / 8) * 8, math.ceil(ch / 8) * 8
    return expand_crop(region, width, height, tw, th), (tw, th)


def redraw_order(rows: int, cols: int, mode: str) -> list[tuple[int, int]]:
    """(xi, yi) of the tiles in the order they are redrawn: Linear row by row; Chess the white
    squares (xi + yi even) row by row, then the black ones."""
    tiles = [(xi, yi) for yi in range(rows) for xi in range(cols)]
    if mode == "Chess":
        return [t for t in tiles if sum(t) % 2 == 0] + [t for t in tiles if sum(t) % 2 == 1]
    return tiles if mode == "Linear" else []


# -- masks (PIL, 8-bit, as the pack draws and blurs them) ------------------------------------

@dataclass
class Job:
    """One img2img over a masked part of the image: the unblurred mask (PIL "L"), the crop padding,
    the processing size, the mask blur (PIL's Gaussian, radius = sigma) and the denoise. Redraw
    jobs of one chess colour share a group (tiles batch within a group only)."""
    mask: object
    padding: int
    process_size: tuple[int, int]
    blur: int
    denoise: float
    group: int = 0


def redraw_jobs(width, height, settings):
    """The redraw's jobs, made one at a time (each holds a canvas-sized mask)."""
    from PIL import Image, ImageDraw

    s = settings
    process = round8(s.tile_width + s.tile_padding), round8(s.tile_height + s.tile_padding)
    rows, cols = grid(width, height, s.tile_width, s.tile_height)
    for xi, yi in redraw_order(rows, cols, s.mode_type):
        mask = Image.new("L", (width, height), 0)
        ImageDraw.Draw(mask).rectangle(tile_rectangle(xi, yi, s.tile_width, s.tile_height), fill=255)
        group = (xi + yi) % 2 if s.mode_type == "Chess" else 0
        yield Job(mask, s.tile_padding, process, s.mask_blur, s.denoise, group)


def _pasted(width, height, piece, corner):
    """A black canvas-sized mask with the piece pasted at corner (cut where it passes the border)."""
    from PIL import Image

    mask = Image.new("L", (width, height), 0)
    mask.paste(piece, corner)
    return mask


def seam_jobs(width, height, settings):
    """The seams-fix passes. Band Pass: a band seam_fix_width wide, brightest on the seam, over
    each inner vertical then horizontal tile border, unblurred. Half Tile: a tile-sized mask
    brightest on each inner horizontal border (rows - 1 by cols), then each vertical one;
    + Intersections: then an inverted radial gradient over each inner corner, with no padding.
    All at the redraw's denoise: the A1111 script sets p.denoising_strength to seam_fix_denoise,
    but the pack's img2img samples with p.denoise. Made one at a time."""
    from PIL import Image, ImageOps

    s = settings
    tw, th, w, pad = s.tile_width, s.tile_height, s.seam_fix_width, s.seam_fix_padding
    rows, cols = grid(width, height, tw, th)
    gradient = Image.linear_gradient("L")
    bicubic = Image.BICUBIC
    if s.seam_fix_mode == "Band Pass":
        mirror = Image.new("L", (256, 256), 0)
        mirror.paste(gradient.resize((256, 128), resample=bicubic), (0, 0))
        mirror.paste(gradient.rotate(180).resize((256, 128), resample=bicubic), (0, 128))
        row_band = mirror.resize((width, w), resample=bicubic)
        col_band = mirror.rotate(90).resize((w, height), resample=bicubic)
        for xi in range(1, cols):
            yield Job(_pasted(width, height, col_band, (xi * tw - w // 2, 0)), pad,
                      (w + 2 * pad, height), 0, s.denoise)
        for yi in range(1, rows):
            yield Job(_pasted(width, height, row_band, (0, yi * th - w // 2)), pad,
                      (width, w + 2 * pad), 0, s.denoise)
        return
    if s.seam_fix_mode in ("Half Tile", "Half Tile + Intersections"):
        row_gradient = Image.new("L", (tw, th), 0)
        row_gradient.paste(gradient.resize((tw, th // 2), resample=bicubic), (0, 0))
        row_gradient.paste(gradient.rotate(180).resize((tw, th // 2), resample=bicubic), (0, th // 2))
        col_gradient = Image.new("L", (tw, th), 0)
        col_gradient.paste(gradient.rotate(90).resize((tw // 2, th), resample=bicubic), (0, 0))
        col_gradient.paste(gradient.rotate(270).resize((tw // 2, th), resample=bicubic), (tw // 2, 0))
        for yi in range(rows - 1):
            for xi in range(cols):
                yield Job(_pasted(width, height, row_gradient, (xi * tw, yi * th + th // 2)), pad,
                          (tw, th), s.seam_fix_mask_blur, s.denoise)
        for yi in range(rows):
            for xi in range(cols - 1):
                yield Job(_pasted(width, height, col_gradient, (xi * tw + tw // 2, yi * th)), pad,
                          (tw, th), s.seam_fix_mask_blur, s.denoise)
    if s.seam_fix_mode == "Half Tile + Intersections":
        radial = ImageOps.invert(Image.radial_gradient("L").resize((tw, th), resample=bicubic))
        for yi in range(rows - 1):
            for xi in range(cols - 1):
                yield Job(_pasted(width, height, radial, (xi * tw + tw // 2, yi * th + th // 2)), 0,
                          (tw, th), s.seam_fix_mask_blur, s.denoise)


# -- conditioning cut to the tile (the pack's crop_cond) ---------------------------------------

def scale_region(region, size, to_size):
    """A region of a picture of `size` in a picture of `to_size` (outwards to whole pixels)."""
    x1, y1, x2, y2 = region
    (w, h), (tw, th) = size, to_size
    return math.floor(x1 * tw / w), math.floor(y1 * th / h), math.ceil(x2 * tw / w), math.ceil(y2 * th / h)


def crop_area(area, region, init_size, canvas):
    """An area (h, w, y, x in latent units of the original image) moved onto the canvas and cut to
    the region, in latent units from the region's corner; None where they do not meet. The area is
    not rescaled to the sampled size, as in the pack."""
    h, w, y, x = area
    x1, y1, x2, y2 = scale_region((8 * x, 8 * y, 8 * (x + w), 8 * (y + h)), init_size, canvas)
    x1, y1 = max(x1, region[0]), max(y1, region[1])
    x2, y2 = min(x2, region[2]), min(y2, region[3])
    if x1 >= x2 or y1 >= y2:
        return None
    x1, y1, x2, y2 = x1 - region[0], y1 - region[1], x2 - region[0], y2 - region[1]
    return (y2 - y1) // 8, (x2 - x1) // 8, y1 // 8, x1 // 8


def _crop_control(control, region, canvas, tile_size):
    import torch.nn.functional as F

    if control is None:
        return None
    hint = control.image  # [B, H, W, C]
    x1, y1, x2, y2 = scale_region(region, canvas, (hint.shape[2], hint.shape[1]))
    hint = hint[:, y1:y2, x1:x2].movedim(-1, 1)
    hint = F.interpolate(hint, size=(tile_size[1], tile_size[0]), mode="nearest-exact").movedim(1, -1)
    return control.with_hint(hint, _crop_control(control.previous, region, canvas, tile_size))


def _crop_gligen(gligen, region, init_size, canvas):
    """GLIGEN boxes cut to the region as areas are (a box outside it is dropped)."""
    import copy

    out = copy.copy(gligen)
    out.boxes = []
    for pooled, *box in gligen.boxes:
        cut = crop_area(box, region, init_size, canvas)
        if cut is not None:
            out.boxes.append((pooled, *cut))
    return out


def _edge_padded(picture, left, top, width, height):
    """The pack's pad_image2 with fill: the picture at (left, top) of a width x height canvas, each
    side's padding filled with the edge row or column stretched (nearest) across it."""
    from PIL import Image

    w, h = picture.size
    right, bottom = width - w - left, height - h - top
    out = Image.new(picture.mode, (width, height))
    out.paste(picture, (left, top))
    nearest = Image.NEAREST
    if left > 0:
        out.paste(picture.crop((0, 1, 1, h - 1)).resize((left, height), resample=nearest), (0, 0))
    if right > 0:
        out.paste(picture.crop((w - 1, 1, w, h - 1)).resize((right, height), resample=nearest), (width - right, 0))
    if top > 0:
        out.paste(picture.crop((1, 0, w - 1, 1)).resize((width, top), resample=nearest), (0, 0))
    if bottom > 0:
        out.paste(picture.crop((1, h - 1, w - 1, h)).resize((width, bottom), resample=nearest), (0, height - bottom))
    return out


def _crop_mask(mask, region, canvas, tile_size):
    """A conditioning mask as the pack cuts it, in 8-bit pictures: resized (bicubic) to the canvas,
    cropped to the region, fitted into the sampled size keeping its aspect (Lanczos), the rest
    filled from the edges, and resized (Lanczos) to it."""
    import numpy as np
    import torch
    from PIL import Image

    tw, th = tile_size
    out = []
    for m in (mask if mask.ndim == 3 else mask[None]):
        picture = Image.fromarray((255 * torch.nan_to_num(m).float().cpu().numpy()).astype(np.uint8))
        picture = picture.resize(canvas, Image.BICUBIC).crop(region)
        ratio = min(tw / picture.width, th / picture.height)
        size = round(picture.width * ratio), round(picture.height * ratio)
        picture = picture.resize(size, resample=Image.LANCZOS)
        pad_x, pad_y = (tw - size[0]) // 2, (th - size[1]) // 2
        picture = _edge_padded(picture, pad_x, pad_y, size[0] + 2 * pad_x, size[1] + 2 * pad_y)
        picture = picture.resize((tw, th), resample=Image.LANCZOS)
        out.append(torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0))
    return torch.stack(out)


def _crop_references(latents, region, canvas, tile_size):
    """Reference latents (FLUX Kontext) as the pack cuts them: resized (bilinear) to the canvas in
    latent units (8 pixels), the region's latents (rounded) taken, resized to the sampled size's."""
    import torch.nn.functional as F

    canvas_hw = canvas[1] // 8, canvas[0] // 8
    tile_hw = max(1, tile_size[1] // 8), max(1, tile_size[0] // 8)
    x1, y1, x2, y2 = (round(v / 8) for v in region)
    out = []
    for latent in latents:
        flat = latent.squeeze(2) if latent.ndim == 5 else latent
        if flat.shape[-2:] != canvas_hw:
            flat = F.interpolate(flat, size=canvas_hw, mode="bilinear", align_corners=False)
        flat = F.interpolate(flat[:, :, y1:y2, x1:x2], size=tile_hw, mode="bilinear", align_corners=False)
        out.append(flat.unsqueeze(2) if latent.ndim == 5 else flat)
    return out


def crop_conditioning(conditioning, region, init_size, canvas, tile_size):
    """Each entry cut to the region as the pack's crop_cond does: ControlNet hints (resized nearest
    to the sampled size), the area and GLIGEN boxes (an area outside it dropped with its strength),
    the mask and FLUX Kontext reference latents. Areas given as percentages are left as they are."""
    out = []
    for emb, options in conditioning:
        options = dict(options)
        if options.get("control") is not None:
            options["control"] = _crop_control(options["control"], region, canvas, tile_size)
        if options.get("gligen") is not None:
            options["gligen"] = _crop_gligen(options["gligen"], region, init_size, canvas)
        area = options.get("area")
        if area is not None and len(area) == 4:
            cut = crop_area(area, region, init_size, canvas)
            if cut is None:
                options.pop("area")
                options.pop("strength", None)
            else:
                options["area"] = cut
        if options.get("mask") is not None:
            options["mask"] = _crop_mask(options["mask"], region, canvas, tile_size)
        if isinstance(options.get("reference_latents"), list):
            options["reference_latents"] = _crop_references(options["reference_latents"], region, canvas, tile_size)
        out.append((emb, options))
    return out


# -- running ---------------------------------------------------------------------------------

def upscale_pictures(pictures, upscale_model, upscale_by):
    """The pack's upscale of its 8-bit pictures: the upscaler once per pass of upscale_passes (the
    model, its output truncated to 8 bits again, or nearest by the pass's factor without one),
    then Lanczos to the canvas size."""
    from PIL import Image

    from graphflow.images import image_to_pil, pil_to_image
    from graphflow.models.upscale import upscale_fitting

    w, h = pictures[0].size
    width, height = canvas_size(w, h, upscale_by)
    if width < 8 or height < 8:
        raise NodeInputError("upscale_by", f"{upscale_by} makes the {w}x{h} image {width}x{height}; "
                                           "it must be at least 8x8")
    for factor in upscale_passes(math.ceil(max(width, height) / max(w, h))):
        if upscale_model is not None:
            pictures = [image_to_pil(upscale_fitting(upscale_model, pil_to_image(p), UPSCALE_TILE, UPSCALE_OVERLAP))
                        for p in pictures]
        else:
            pictures = [p.resize((p.width * factor, p.height * factor), Image.NEAREST) for p in pictures]
    return [p if p.size == (width, height) else p.resize((width, height), Image.LANCZOS) for p in pictures]


def _place(size, job, uniform):
    """(crop region, sampled size) of a job on a canvas of size (width, height); None for an empty mask."""
    width, height = size
    box = job.mask.getbbox()
    if box is None:
        return None
    return fit_region(crop_region(box, job.padding, width, height), width, height, job.process_size, uniform)


def _tiles(pictures, region, tile_size):
    """The region of each picture, resized (Lanczos) to the sampled size, as one IMAGE batch."""
    import torch
    from PIL import Image

    from graphflow.images import pil_to_image

    crops = [p.crop(region) for p in pictures]
    return torch.cat([pil_to_image(c if c.size == tile_size else c.resize(tile_size, Image.LANCZOS)) for c in crops])


def _blurred(job):
    from PIL import ImageFilter
    return job.mask.filter(ImageFilter.GaussianBlur(job.blur)) if job.blur > 0 else job.mask


def _paste(picture, region, redrawn, alpha):
    """One redrawn tile (an IMAGE [H, W, 3], truncated to 8 bits and resized back to the crop's
    size by Lanczos) alpha-composited over the picture's crop with the blurred mask's crop as its
    alpha, as the pack's RGBA paste (outside the crop its alpha is 0: nothing changes); in place."""
    from PIL import Image

    from graphflow.images import image_to_pil

    x1, y1, x2, y2 = region
    tile = image_to_pil(redrawn)
    if tile.size != (x2 - x1, y2 - y1):
        tile = tile.resize((x2 - x1, y2 - y1), Image.LANCZOS)
    tile = tile.convert("RGBA")
    tile.putalpha(alpha.crop(region))
    area = picture.crop(region).convert("RGBA")
    area.alpha_composite(tile)
    picture.paste(area.convert("RGB"), region[:2])


def run_job(pictures, job, s, init_size, sample_tile):
    """One img2img over a job's crop of every picture (one latent batch), with the conditioning cut
    to it, pasted back into each picture; in place."""
    width, height = pictures[0].size
    placed = _place((width, height), job, s.force_uniform_tiles)
    if placed is None:
        return pictures
    region, tile_size = placed
    positive = crop_conditioning(s.positive, region, init_size, (width, height), tile_size)
    negative = crop_conditioning(s.negative, region, init_size, (width, height), tile_size)
    redrawn = sample_tile(_tiles(pictures, region, tile_size), positive, negative, job.denoise)
    alpha = _blurred(job)
    for picture, tile in zip(pictures, redrawn):
        _paste(picture, region, tile, alpha)
    return pictures


def run_batch(picture, jobs, s, sample_tile):
    """The pack's batch_size > 1: several redraw tiles cropped from the picture as it is, sampled as
    one latent batch (one seed, so each tile gets its own part of the batch noise), with the
    conditioning uncut (as the pack's batched path), then pasted in turn; in place."""
    import torch

    placed = [(job, _place(picture.size, job, s.force_uniform_tiles)) for job in jobs]
    placed = [(job, p) for job, p in placed if p is not None]
    if not placed:
        return picture
    if len({p[1] for _, p in placed}) > 1:
        raise NodeInputError("batch_size", "tiles of different sizes can't be sampled in one batch; "
                                           "turn force_uniform_tiles on or use batch_size 1")
    tiles = torch.cat([_tiles([picture], region, size) for _, (region, size) in placed])
    redrawn = sample_tile(tiles, s.positive, s.negative, jobs[0].denoise)
    for (job, (region, _)), tile in zip(placed, redrawn):
        _paste(picture, region, tile, _blurred(job))
    return picture


def batches(jobs, size):
    """Consecutive jobs of one group, at most `size` at a time (made as they are needed)."""
    batch = []
    for job in jobs:
        if batch and (len(batch) == size or batch[-1].group != job.group):
            yield batch
            batch = []
        batch.append(job)
    if batch:
        yield batch


def job_count(width, height, s) -> int:
    """Tiles redrawn plus seams-fix passes (the pack's job count)."""
    rows, cols = grid(width, height, s.tile_width, s.tile_height)
    seams = {"Band Pass": rows - 1 + cols - 1, "Half Tile": rows * (cols - 1) + (rows - 1) * cols,
             "Half Tile + Intersections": rows * (cols - 1) + (rows - 1) * cols + (rows - 1) * (cols - 1)}
    return (rows * cols if s.mode_type != "None" else 0) + seams.get(s.seam_fix_mode, 0)


def ultimate_upscale(node, image, upscale_model, upscale_by, custom_sampler=None, custom_sigmas=None):
    """The whole node: upscale, redraw the tiles, fix the seams; progress per tile. As the pack,
    on 8-bit pictures: the image truncated to 1/255 steps (255 x value, cast), each redrawn tile
    too, pasted by Pillow's 8-bit alpha compositing; so the output is in 1/255 steps."""
    import torch

    from graphflow.images import image_to_pil, pil_to_image
    from graphflow.sampling.pipeline import sample, sample_custom

    _check(node)
    if node.batch_size > 1 and image.shape[0] > 1:
        raise NodeInputError("batch_size", f"tiles can be batched for one image only, got {image.shape[0]} images; "
                                           "use batch_size 1")
    init_size = image.shape[2], image.shape[1]
    pictures = upscale_pictures([image_to_pil(i[..., :3]) for i in image], upscale_model, upscale_by)
    width, height = pictures[0].size
    vae = node.vae

    def sample_tile(tile, positive, negative, denoise):
        latent = {"samples": vae.encode(tile)}
        if custom_sampler is not None and custom_sigmas is not None:
            from graphflow.sampling.guidance import CFGGuider
            from graphflow.sampling.noise import NoiseSource
            guider = CFGGuider(node.model, positive, negative, node.cfg)
            latent = sample_custom(guider, NoiseSource(node.seed, True), custom_sampler, custom_sigmas, latent)[0]
        else:
            latent = sample(node.model, node.seed, node.steps, node.cfg, node.sampler_name, node.scheduler,
                            positive, negative, latent, denoise=denoise)
        if node.tiled_decode:
            return vae.decode_tiled(latent["samples"], DECODE_TILE, DECODE_OVERLAP)
        return vae.decode(latent["samples"])

    total, done = job_count(width, height, node), 0
    for group in batches(redraw_jobs(width, height, node), node.batch_size):
        if node.batch_size == 1:
            run_job(pictures, group[0], node, init_size, sample_tile)
        else:
            run_batch(pictures[0], group, node, sample_tile)
        done += len(group)
        progress(done, total)
    for job in seam_jobs(width, height, node):
        run_job(pictures, job, node, init_size, sample_tile)
        done += 1
        progress(done, total)
    return torch.cat([pil_to_image(p) for p in pictures])


def _check(node):
    if node.vae is None:
        raise NodeInputError("vae", "no VAE: the checkpoint has none; load one with LoadVAE")
    if node.mode_type not in MODES:
        raise NodeInputError("mode_type", f"unknown mode {node.mode_type!r}; expected one of {', '.join(MODES)}")
    if node.seam_fix_mode not in SEAM_FIX_MODES:
        raise NodeInputError("seam_fix_mode", f"unknown seam fix mode {node.seam_fix_mode!r}; "
                                              f"expected one of {', '.join(SEAM_FIX_MODES)}")
    for name in ("tile_width", "tile_height"):
        if getattr(node, name) < 8:
            raise NodeInputError(name, f"tiles must be at least 8 pixels, got {getattr(node, name)}")
    if node.seam_fix_mode == "Band Pass" and node.seam_fix_width < 2:
        raise NodeInputError("seam_fix_width", "Band Pass needs a band at least 2 pixels wide, "
                                               f"got {node.seam_fix_width}")


def _image(image, name):
    if getattr(image, "ndim", 0) != 4 or image.shape[-1] not in (3, 4):
        raise NodeInputError(name, f"expected an IMAGE [B, H, W, 3], got shape {tuple(getattr(image, 'shape', ()))}")
    return image


_SHARED_DOC = """ Tiles are tile_width × tile_height from the top left; each is re-diffused on its crop
    (the tile plus tile_padding around it, clipped to the image), encoded with the VAE, sampled from
    seed (the same seed for every tile) at denoise, decoded, and pasted back through the tile's mask
    blurred by mask_blur. force_uniform_tiles samples every crop at tile + padding (rounded to 8);
    off, at the crop's own size rounded up to 8. mode_type: Linear (row by row), Chess (the white
    squares first, then the black) or None (no redraw). seam_fix_mode: Band Pass (a band
    seam_fix_width wide over each tile border), Half Tile (a tile-sized pass centred on each border),
    Half Tile + Intersections (and one on each inner corner), with seam_fix_padding and
    seam_fix_mask_blur, at denoise: the pack sets seam_fix_denoise where its sampler does not read
    it, so it changes nothing there, nor here. Area and mask conditioning, GLIGEN boxes, ControlNet
    hints and reference latents are cut to each tile's crop, as the pack does. As the pack, the
    work is on 8-bit pictures: the image and each redrawn tile are truncated to 1/255 steps (255 ×
    value, cast), resized by Pillow's Lanczos and pasted by its 8-bit alpha compositing, so the
    output is in 1/255 steps."""


class UltimateSDUpscale(Node):
    __doc__ = ("""Ultimate SD Upscale: upscale the image by upscale_by with the upscale model (then
    Lanczos to the size, rounded to multiples of 8), then redraw it tile by tile.""" + _SHARED_DOC)
    category = "image/upscaling"
    image: IMAGE
    model: MODEL
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    upscale_by: float = Float(2.0, min=0.05, max=4.0, step=0.05)
    seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "normal")
    denoise: float = Float(0.2, min=0.0, max=1.0, step=0.01)
    upscale_model: UPSCALE_MODEL
    mode_type: str = Choice(list(MODES), "Linear")
    tile_width: int = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    tile_height: int = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    mask_blur: int = Int(8, min=0, max=64)
    tile_padding: int = Int(32, min=0, max=MAX_RESOLUTION, step=8)
    seam_fix_mode: str = Choice(list(SEAM_FIX_MODES), "None")
    seam_fix_denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    seam_fix_width: int = Int(64, min=0, max=MAX_RESOLUTION, step=8)
    seam_fix_mask_blur: int = Int(8, min=0, max=64)
    seam_fix_padding: int = Int(16, min=0, max=MAX_RESOLUTION, step=8)
    force_uniform_tiles: bool = Bool(True)
    tiled_decode: bool = Bool(False)
    batch_size: int = Int(1, min=1, max=16)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("UltimateSDUpscale",), optional=("batch_size",))

    def run(self):
        return ultimate_upscale(self, _image(self.image, "image"), self.upscale_model, self.upscale_by)


class UltimateSDUpscaleNoUpscale(Node):
    __doc__ = ("""Ultimate SD Upscale without the upscale: redraw an already upscaled image tile by
    tile at its own size (rounded to multiples of 8).""" + _SHARED_DOC)
    category = "image/upscaling"
    upscaled_image: IMAGE
    model: MODEL
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "normal")
    denoise: float = Float(0.2, min=0.0, max=1.0, step=0.01)
    mode_type: str = Choice(list(MODES), "Linear")
    tile_width: int = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    tile_height: int = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    mask_blur: int = Int(8, min=0, max=64)
    tile_padding: int = Int(32, min=0, max=MAX_RESOLUTION, step=8)
    seam_fix_mode: str = Choice(list(SEAM_FIX_MODES), "None")
    seam_fix_denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    seam_fix_width: int = Int(64, min=0, max=MAX_RESOLUTION, step=8)
    seam_fix_mask_blur: int = Int(8, min=0, max=64)
    seam_fix_padding: int = Int(16, min=0, max=MAX_RESOLUTION, step=8)
    force_uniform_tiles: bool = Bool(True)
    tiled_decode: bool = Bool(False)
    batch_size: int = Int(1, min=1, max=16)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("UltimateSDUpscaleNoUpscale",), optional=("batch_size",))

    def run(self):
        return ultimate_upscale(self, _image(self.upscaled_image, "upscaled_image"), None, 1.0)


class UltimateSDUpscaleCustomSample(Node):
    __doc__ = ("""Ultimate SD Upscale with an optional upscale model (without one: nearest, then
    Lanczos to upscale_by × the size) and an optional custom sampler and sigmas, used when both are
    connected (SamplerCustom with the seed; otherwise the widgets' sampler).""" + _SHARED_DOC)
    category = "image/upscaling"
    image: IMAGE
    model: MODEL
    positive: CONDITIONING
    negative: CONDITIONING
    vae: VAE
    upscale_by: float = Float(2.0, min=0.05, max=4.0, step=0.05)
    seed: int = Int(0, min=0, max=SEED_MAX)
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "normal")
    denoise: float = Float(0.2, min=0.0, max=1.0, step=0.01)
    mode_type: str = Choice(list(MODES), "Linear")
    tile_width: int = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    tile_height: int = Int(512, min=64, max=MAX_RESOLUTION, step=8)
    mask_blur: int = Int(8, min=0, max=64)
    tile_padding: int = Int(32, min=0, max=MAX_RESOLUTION, step=8)
    seam_fix_mode: str = Choice(list(SEAM_FIX_MODES), "None")
    seam_fix_denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    seam_fix_width: int = Int(64, min=0, max=MAX_RESOLUTION, step=8)
    seam_fix_mask_blur: int = Int(8, min=0, max=64)
    seam_fix_padding: int = Int(16, min=0, max=MAX_RESOLUTION, step=8)
    force_uniform_tiles: bool = Bool(True)
    tiled_decode: bool = Bool(False)
    batch_size: int = Int(1, min=1, max=16)
    upscale_model: UPSCALE_MODEL = None
    custom_sampler: SAMPLER = None
    custom_sigmas: SIGMAS = None
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("UltimateSDUpscaleCustomSample",),
                       optional=("batch_size", "upscale_model", "custom_sampler", "custom_sigmas"))

    def run(self):
        return ultimate_upscale(self, _image(self.image, "image"), self.upscale_model, self.upscale_by,
                                self.custom_sampler, self.custom_sigmas)
