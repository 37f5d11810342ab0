"""BlenderNeko's ComfyUI_TiledKSampler: Tiled KSampler (BNK_TiledKSampler) and Tiled KSampler
(Advanced) (BNK_TiledKSamplerAdvanced), read at nodes.py 8e4c354db1c9 and tiling.py 6e5e4ffcb613.

The latent is sampled in tiles of tile_width x tile_height pixels (tile_width // 8 latent pixels),
so a big image needs the working memory of one tile. The pack's four tiling strategies:
  - "random": one step at a time; at each step the latent is cut into a brick pattern of tiles
    whose offsets come from a generator seeded with the seed (two uniform numbers per step), rows
    of bricks on even steps and columns on odd ones, so seams move from step to step;
  - "random strict": the same tiles, but a tile cut short by the image's border is moved inwards to
    full size (the part it adds masked out: seen as context, not changed), and every tile of a step
    reads the latent as it was before the step;
  - "padded": a fixed grid, each tile sampled through all its steps but writing only its middle
    half (its outer quarters where it meets the image border), then three more passes with the grid
    shifted by half a tile down, right and both, each an inpainting run that fills the seams with
    the finished parts around them as context;
  - "simple": a fixed grid, each tile sampled through all its steps on its own (seams show).
For random / random strict / simple the starting noise (the seed's, as KSampler's) is added to the
whole latent once at sigma[start] and each tile is sampled without noise of its own; padded gives
each tile its part of the noise, which the sampler adds as KSampler does. Each tile runs through
the same sampler as KSampler (graphflow.sampling.pipeline.sample_with_sigmas): a sampler that keeps
state between steps (dpmpp_2m, uni_pc, ...) restarts at each one-step tile run of the random
strategies, as in the pack (their README: use more steps or an ancestral sampler when tiles
show); ancestral noise is drawn per tile run from the seed, as ComfyUI's sampler draws it.
Per tile, as the pack does: the LATENT's noise_mask cut to the tile; conditioning areas and masks
cut to the tile (an entry outside the tile is left out), GLIGEN boxes cut to the tile, and each
ControlNet / T2I-Adapter hint stretched to the latent's pixel size and cut to the tile (only the
tile's part of the stretched hint is made).

Kept from the pack: return_with_leftover_noise acts the other way round from KSamplerAdvanced's
("enable" sets the last sigma to 0, and only at the last step of a one-step-per-tile run: random
strategies, or any strategy with one step), as the pack's force_full_denoise does.
Differs from the pack, where its code fails or leaves pixels unsampled: "padded" places its
shifted columns by the tile's width (the pack bounds them with the tile's height, which can leave
a band unsampled, or sample one twice, when the two differ); a tile moved inwards carries a
batched / latent noise mask (the pack fails on a noise_mask there); area conditioning cut to a
tile ends at the tile's edge;
an area given in percent is taken against the whole latent (the pack fails on one); each
conditioning entry keeps its own GLIGEN boxes (the pack pairs the entries left after dropping those
outside a tile with the unfiltered list of boxes, so boxes move to another entry);
start_at_step >= end_at_step returns the latent as given (the pack returns it with noise added,
or fails past the last step); denoise 0 is refused by name (the pack divides by it).
Long runs: the random strategies' tiles are made step by step; a run of more than MAX_TILE_STEPS
tile steps (counted from the layout before starting) and a steps / denoise schedule longer than
graphflow.sampling.schedules.MAX_SCHEDULE_STEPS are refused by name.
Refused by name (NodeInputError) rather than sampled wrongly: flow models (SD3, FLUX: the pack adds
the noise the eps way), video and Stable Cascade models, models with extra input channels other than
inpainting ones, conditioning carrying a full-image concat latent / mask (InpaintModelConditioning,
InstructPixToPix), ControlNets that read the hint as a latent (need a VAE) or carry a whole-image mask
(inpainting ControlNets; Advanced-ControlNet's strength mask, timestep keyframe masks and masked
weights: each is made for the whole image, and a tile would get it whole, stretched onto the
tile). The preview shows the tile being sampled (Advanced: when preview is "enable"; the plain
node always, as the pack's)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from graphflow.api import (CONDITIONING, LATENT, MODEL, Choice, ComfyAlias, Estimate, Float, Int, Node,
                           NodeInputError, Size, check_interrupted, progress, sampling_memory)
from graphflow.choices import SAMPLER_NAMES, SCHEDULER_NAMES
from nodes.sampling import SEED_MAX

COMFY_PACK = "ComfyUI_TiledKSampler"  # the custom node pack this module's ComfyUI classes come from
MAX_RESOLUTION = 8192
STRATEGIES = ("random", "random strict", "padded", "simple")
# The most tile steps (each tile's sampler steps, summed over the tiles: UNet calls of one tile's
# size) one run may take: an 8192 x 8192 image in 512-pixel tiles takes at most 96,100 at 100 steps
# (padded), in the smallest (256-pixel) tiles at most 396,900.
MAX_TILE_STEPS = 1_000_000


# -- tile positions (tiling.py), in latent pixels -------------------------------------------------

@dataclass(frozen=True, eq=False)
class Tile:
    """Rows y..y+h and columns x..x+w of the latent, sampled `steps` steps in one sampler run;
    mask [b, 1, h, w]: the part of the tile that is written back (None: all of it)."""
    y: int
    h: int
    x: int
    w: int
    steps: int
    mask: object = None


def simple_tiles(steps: int, height: int, width: int, tile_h: int, tile_w: int) -> list:
    """One pass of one group: a grid from the top-left corner, the last row / column cut short."""
    return [[[Tile(y, min(tile_h, height - y), x, min(tile_w, width - x), steps)
              for y in range(0, height, tile_h) for x in range(0, width, tile_w)]]]


def _padded_lines(size: int, tile: int) -> tuple[range, range]:
    """Where padded's tiles start along one side (tile already a multiple of 4): the grid's, and
    the grid's shifted by half a tile."""
    return range(0, size, tile), range(tile // 2, size - tile // 2, tile)


def padded_tiles(steps: int, height: int, width: int, tile_h: int, tile_w: int) -> list:
    """Four passes (grid; shifted half a tile down; right; both), each one group of tiles run
    through all steps. Tile sizes are rounded down to a multiple of 4; each tile writes its middle
    half, stretched to its outer edge where an unshifted grid line meets the image border."""
    import torch

    tile_h, tile_w = tile_h // 4 * 4, tile_w // 4 * 4
    quarter_h, quarter_w = tile_h // 4, tile_w // 4
    rows, shifted_rows = _padded_lines(height, tile_h)
    cols, shifted_cols = _padded_lines(width, tile_w)

    def tile(ys, xs, i, j, grid_rows, grid_cols):
        y, x = ys[i], xs[j]
        top = 0 if grid_rows and i == 0 else quarter_h
        bottom = tile_h if grid_rows and i == len(ys) - 1 else tile_h - quarter_h
        left = 0 if grid_cols and j == 0 else quarter_w
        right = tile_w if grid_cols and j == len(xs) - 1 else tile_w - quarter_w
        mask = torch.zeros(1, 1, tile_h, tile_w)
        mask[:, :, top:bottom, left:right] = 1.0
        h, w = min(tile_h, height - y), min(tile_w, width - x)
        return Tile(y, h, x, w, steps, mask[:, :, :h, :w])

    return [[[tile(ys, xs, i, j, grid_rows, grid_cols) for i in range(len(ys)) for j in range(len(xs))]]
            for ys, xs, grid_rows, grid_cols in ((rows, cols, True, True), (shifted_rows, cols, False, True),
                                                 (rows, shifted_cols, True, False),
                                                 (shifted_rows, shifted_cols, False, False))]


def _spans(size: int, tile: int, jitter: int) -> list[tuple[int, int]]:
    """(start, length) of the tiles along one side, the grid moved back by `jitter`, cut at the borders."""
    count = (size + jitter - 1) // tile + 1
    edges = [min(max(tile * c - jitter, 0), size) for c in range(count + 1)]
    return [(a, b - a) for a, b in zip(edges, edges[1:])]


def _random_spans(height: int, width: int, tile_h: int, tile_w: int, generator) -> tuple[list, list]:
    """One step's two row layouts and two column layouts: two uniform numbers (float32, from the
    generator) give two jitters per side, half a tile apart."""
    import torch

    rand_w, rand_h = torch.rand((2,), dtype=torch.float32, generator=generator)
    jitter_w = (int(rand_w * tile_w), int((rand_w + 0.5) % 1.0 * tile_w))
    jitter_h = (int(rand_h * tile_h), int((rand_h + 0.5) % 1.0 * tile_h))
    return [_spans(height, tile_h, j) for j in jitter_h], [_spans(width, tile_w, j) for j in jitter_w]


def random_tiles(steps: int, height: int, width: int, tile_h: int, tile_w: int, generator):
    """The one-step groups of `steps` steps, each made when it is reached (a long run's tiles are
    never all held). Even steps lay rows of tiles (the rows by the first jitter, the columns of odd
    rows by the second), odd steps columns."""
    for step in range(steps):
        rows, cols = _random_spans(height, width, tile_h, tile_w, generator)
        if step % 2 == 0:
            yield [Tile(y, h, x, w, 1) for i, (y, h) in enumerate(rows[0]) for x, w in cols[i % 2]]
        else:
            yield [Tile(y, h, x, w, 1) for i, (x, w) in enumerate(cols[0]) for y, h in rows[i % 2]]


def full_size(tile: Tile, mask, tile_h: int, tile_w: int, height: int, width: int):
    """(tile, mask) with a tile cut short by the image's border moved inwards to full size, the
    mask (all 1 if None) placed where the short tile was and 0 on the added context (the pack's
    mask_at_boundary)."""
    import torch

    if (tile.h in (tile_h, height)) and (tile.w in (tile_w, width)):
        return tile, mask
    y, x = min(tile.y, height - tile_h), min(tile.x, width - tile_w)
    batch = 1 if mask is None else mask.shape[0]
    placed = torch.zeros(batch, 1, tile_h, tile_w)
    placed[:, :, tile.y - y:tile.y - y + tile.h, tile.x - x:tile.x - x + tile.w] = 1.0 if mask is None else mask
    return replace(tile, y=y, h=tile_h, x=x, w=tile_w), placed


def tile_plan(strategy: str, steps: int, height: int, width: int, tile_h: int, tile_w: int, seed: int) -> list:
    """The passes of groups of tiles a strategy samples, for `steps` steps of a height x width
    latent; the random strategies' one pass makes its groups as they are reached."""
    import torch

    if strategy in ("random", "random strict"):
        return [random_tiles(steps, height, width, tile_h, tile_w, torch.Generator("cpu").manual_seed(seed))]
    if strategy == "padded":
        return padded_tiles(steps, height, width, tile_h, tile_w)
    return simple_tiles(steps, height, width, tile_h, tile_w)


def tile_steps(strategy: str, steps: int, height: int, width: int, tile_h: int, tile_w: int, seed: int) -> int:
    """The tile steps tile_plan's plan runs (each tile's sampler steps, summed over its tiles),
    counted from the layout without making the tiles: the grids' sizes, and the random strategies'
    jitters step by step (each step lays len(lines) rows, or columns, alternating two layouts),
    stopping once past MAX_TILE_STEPS (a count the run refuses whatever it comes to)."""
    import torch

    if strategy in ("random", "random strict"):
        generator, total = torch.Generator("cpu").manual_seed(seed), 0
        for step in range(steps):
            if step % 256 == 0:
                check_interrupted()
            rows, cols = _random_spans(height, width, tile_h, tile_w, generator)
            lines, across = (rows, cols) if step % 2 == 0 else (cols, rows)
            total += (len(lines[0]) + 1) // 2 * len(across[0]) + len(lines[0]) // 2 * len(across[1])
            if total > MAX_TILE_STEPS:  # past the cap: the exact count no longer matters
                return total
        return total
    if strategy == "padded":
        rows, cols = _padded_lines(height, tile_h // 4 * 4), _padded_lines(width, tile_w // 4 * 4)
        return (len(rows[0]) + len(rows[1])) * (len(cols[0]) + len(cols[1])) * steps
    return len(range(0, height, tile_h)) * len(range(0, width, tile_w)) * steps


# -- conditioning cut to a tile (the pack's slice_cond, slice_gligen, slice_cnet) -----------------

def _cut_box(box, tile: Tile):
    """(h, w, y, x) cut to the tile, from the tile's corner; None where they do not meet."""
    h, w, y, x = (int(v) for v in box)
    top, left = max(y, tile.y), max(x, tile.x)
    bottom, right = min(y + h, tile.y + tile.h), min(x + w, tile.x + tile.w)
    if top >= bottom or left >= right:
        return None
    return bottom - top, right - left, top - tile.y, left - tile.x


class TileConditioning:
    """A CONDITIONING side made ready once for cutting to tiles: areas absolute, masks at the
    latent's size, for each ControlNet hint where its pixels go at the latent's pixel size."""

    def __init__(self, name: str, conditioning, height: int, width: int, hints: dict):
        from graphflow.sampling.guidance import _resize_mask, _resolve_area

        if not isinstance(conditioning, (list, tuple)):
            raise NodeInputError(name, f"expected a CONDITIONING list, got {type(conditioning).__name__}")
        self.entries = []
        for k, entry in enumerate(conditioning):
            if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[1], dict)):
                raise NodeInputError(name, f"conditioning entry {k} must be a (tensor, options) pair")
            options = entry[1]
            for key in ("concat_latent_image", "concat_mask", "concat_image"):
                if options.get(key) is not None:
                    raise NodeInputError(name, f"conditioning entry {k} carries a whole-image {key!r} "
                                               f"(InpaintModelConditioning, InstructPixToPix...); the tiled "
                                               f"sampler can't cut it to tiles: use KSampler")
            area = options.get("area")
            if area is not None:  # absolute, as KSampler's guidance reads it
                try:
                    area = _resolve_area(area, (height, width), k)
                except (TypeError, ValueError, IndexError) as error:
                    raise NodeInputError(name, f"conditioning entry {k}: an image area is (h, w, y, x) in latent "
                                               f"pixels or ('percentage', h, w, y, x), got {area!r} ({error})")
            mask = options.get("mask")
            if mask is not None:
                mask = _resize_mask(mask, (height, width), k)
            control = options.get("control")
            applied = control
            while applied is not None:
                if id(applied) not in hints:
                    hints[id(applied)] = _full_hint(name, k, applied, height, width)
                applied = getattr(applied, "previous", None)
            self.entries.append((entry[0], options, area, mask, control))
        self.hints = hints

    def cut(self, tile: Tile, controls: dict) -> list:
        """The entries for one tile: areas, masks, GLIGEN boxes and control hints cut to it;
        entries whose area misses the tile or whose mask is 0 on it left out."""
        out = []
        for embedding, options, area, mask, control in self.entries:
            options = dict(options)
            if area is not None:
                options["area"] = _cut_box(area, tile)
                if options["area"] is None:
                    continue
            if mask is not None:
                options["mask"] = mask[:, tile.y:tile.y + tile.h, tile.x:tile.x + tile.w]
                if float(options["mask"].sum()) == 0.0:
                    continue
            gligen = options.get("gligen")
            if gligen is not None:
                boxes = [(pooled, *cut) for pooled, *box in gligen.boxes if (cut := _cut_box(box, tile)) is not None]
                if boxes:
                    options["gligen"] = _with_boxes(gligen, boxes)
                else:
                    del options["gligen"]
            if control is not None:
                options["control"] = _cut_control(control, tile, self.hints, controls)
            out.append((embedding, options))
        return out


def _with_boxes(gligen, boxes):
    import copy

    out = copy.copy(gligen)
    out.boxes = boxes
    return out


def _full_hint(name: str, k: int, applied, height: int, width: int):
    """A control's hint [B, C, H, W] with the rows and columns of it that the pack's stretch to
    the latent's pixel size (nearest-exact) puts at each of the 8h pixel rows and 8w columns: each
    tile's hint is cut from these, without the stretched image (805 MB a control at 8192 x 8192)."""
    if getattr(applied, "vae", None) is not None:
        raise NodeInputError(name, f"conditioning entry {k}: this ControlNet reads its hint as a latent (it "
                                   f"takes a VAE); the tiled sampler cuts pixel hints only")
    masks = _control_masks(applied)
    if masks:
        raise NodeInputError(name, f"conditioning entry {k}: this ControlNet carries {' and '.join(masks)}, a "
                                   f"whole-image mask the tiled sampler can't cut to tiles: remove it or use KSampler")
    image = getattr(applied, "image", None)
    if image is None or not hasattr(applied, "with_hint"):
        raise NodeInputError(name, f"conditioning entry {k}: a control of type {type(applied).__name__} the "
                                   f"tiled sampler can't cut to tiles")
    hint = image.movedim(-1, 1).float()
    return hint, _nearest_exact(hint.shape[-2], 8 * height), _nearest_exact(hint.shape[-1], 8 * width)


def _nearest_exact(size: int, new_size: int):
    """For each of new_size places, which of size places F.interpolate's nearest-exact takes it from
    (worked out by F.interpolate itself, so its rounding is the same)."""
    import torch
    import torch.nn.functional as F

    places = torch.arange(size, dtype=torch.float32)
    if size == new_size:
        return places.long()
    return F.interpolate(places.reshape(1, 1, size, 1), size=(new_size, 1), mode="nearest-exact").reshape(-1).long()


def _control_masks(applied) -> list[str]:
    from graphflow.models.controlnet import whole_image_masks

    return whole_image_masks(applied)


def _cut_control(applied, tile: Tile, hints: dict, controls: dict):
    """The control chain with every hint cut to the tile; one copy per control per tile, so a
    control both sides share stays shared."""
    if applied is None:
        return None
    if id(applied) not in controls:
        image, rows, cols = hints[id(applied)]
        hint = image.index_select(2, rows[8 * tile.y:8 * (tile.y + tile.h)])
        hint = hint.index_select(3, cols[8 * tile.x:8 * (tile.x + tile.w)])
        previous = _cut_control(getattr(applied, "previous", None), tile, hints, controls)
        controls[id(applied)] = applied.with_hint(hint.movedim(1, -1), previous)
    return controls[id(applied)]


# -- the sampler (nodes.py's sample_common) -------------------------------------------------------

def _check_model(model):
    """The model's noise schedule; what the tiled sampler can't sample refused by name."""
    from graphflow.sampling.flow_sampling import is_flow, model_sampling_for

    schedule = model_sampling_for(model)
    if is_flow(schedule):
        raise NodeInputError("model", "the tiled sampler adds its starting noise the eps / v way; flow models "
                                      "(SD3, FLUX, ...) are not supported: use KSampler")
    if getattr(model, "is_video", False) or getattr(model, "is_cascade", False):
        raise NodeInputError("model", "the tiled sampler samples image models (SD1.x, SD2.x, SDXL); video and "
                                      "Stable Cascade models are not supported")
    channels = model.latent_format.channels
    if model.in_channels not in (channels, 2 * channels + 1):
        raise NodeInputError("model", f"the model takes {model.in_channels} input channels (InstructPix2Pix or "
                                      f"another image-conditioned model); the tiled sampler can't cut its image input")
    return schedule


def tiled_sample(model, seed: int, tile_width: int, tile_height: int, strategy: str, steps: int, cfg: float,
                 sampler_name: str, scheduler: str, positive, negative, latent: dict, start: int, end: int,
                 add_noise: bool, leftover_flag: bool, preview: bool, counted_from: int = 0) -> dict:
    """Sample `latent` tile by tile over steps start..end of a `steps`-step schedule; prompt editing
    (step_range conditioning) counts the schedule's steps from counted_from."""
    import torch

    from graphflow.images import image_to_pil
    from graphflow.sampling.noise import NoiseSource
    from graphflow.sampling.pipeline import _latent_samples, prepare_noise_mask, sample_with_sigmas
    from graphflow.sampling.samplers import DISCARD_PENULTIMATE_SIGMA, SAMPLERS
    from graphflow.sampling.schedules import SCHEDULERS, compute_sigmas

    if strategy not in STRATEGIES:
        raise NodeInputError("tiling_strategy", f"expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if sampler_name not in SAMPLERS:
        raise NodeInputError("sampler_name", f"unknown sampler {sampler_name!r}; expected one of {', '.join(SAMPLERS)}")
    if scheduler not in SCHEDULERS:
        raise NodeInputError("scheduler", f"unknown scheduler {scheduler!r}; expected one of {', '.join(SCHEDULERS)}")
    schedule = _check_model(model)
    samples = _latent_samples(model, latent)  # KSampler's checks, and its fix of an empty latent's channels
    end = min(end, steps)
    if start >= end:
        return {**latent, "samples": samples}
    samples = samples.float().clone()
    batch, _, height, width = samples.shape
    tile_h, tile_w = min(8 * height, tile_height) // 8, min(8 * width, tile_width) // 8
    if strategy == "padded" and (tile_h < 4 or tile_w < 4):
        raise NodeInputError("latent_image", f"'padded' needs a latent of at least 4 x 4 (32 x 32 pixels); this "
                                             f"one is {width} x {height}")
    total = tile_steps(strategy, end - start, height, width, tile_h, tile_w, seed)
    if total > MAX_TILE_STEPS:
        raise NodeInputError("steps", f"{strategy!r} tiles of {8 * tile_w} x {8 * tile_h} pixels over this "
                                      f"{8 * width} x {8 * height} latent take {total} tile steps over {end - start} "
                                      f"steps (each tile's sampler steps, summed), more than {MAX_TILE_STEPS}: use "
                                      f"fewer steps or larger tiles")

    batch_index = latent.get("batch_index")
    noise = NoiseSource(seed).generate(samples, batch_index) if add_noise else torch.zeros(samples.shape)
    noise_mask = latent.get("noise_mask")
    if noise_mask is not None:
        noise_mask = prepare_noise_mask(noise_mask, tuple(samples.shape), "cpu")[:, :1]
    sigmas = compute_sigmas(schedule, scheduler, steps, 1.0,
                            discard_penultimate=sampler_name in DISCARD_PENULTIMATE_SIGMA).detach().cpu().float()
    fmt = model.latent_format
    if strategy != "padded":  # the starting noise once for the whole latent, in raw latent units
        raw_noise = fmt.process_out(noise) - fmt.process_out(torch.zeros_like(noise))
        samples += sigmas[start] * (raw_noise if noise_mask is None else noise_mask * raw_noise)

    hints = {}
    sides = (TileConditioning("positive", positive, height, width, hints),
             TileConditioning("negative", negative, height, width, hints))
    plan = tile_plan(strategy, end - start, height, width, tile_h, tile_w, seed)
    done = [0]

    def on_step(info):
        done[0] += 1
        image = info.get("preview")
        progress(done[0], total, image_to_pil(image) if image is not None else None)

    for one_pass in plan:
        for i, group in enumerate(one_pass):
            check_interrupted()  # a group's tiles may all be skipped, and sampling reports no step then
            target = samples.clone() if strategy == "random strict" else samples
            for tile in group:
                mask = tile.mask
                if noise_mask is not None:
                    cut = noise_mask[:, :, tile.y:tile.y + tile.h, tile.x:tile.x + tile.w]
                    mask = cut if mask is None else cut * mask
                if strategy in ("padded", "random strict"):
                    tile, mask = full_size(tile, mask, tile_h, tile_w, height, width)
                if mask is not None and float(mask.sum()) == 0.0:
                    continue
                region = (slice(None), slice(None), slice(tile.y, tile.y + tile.h), slice(tile.x, tile.x + tile.w))
                tile_latent = samples[region]
                if strategy == "padded":
                    tile_noise = noise[region]
                elif mask is None or noise_mask is None:
                    tile_noise = torch.zeros_like(tile_latent)
                else:
                    tile_noise = noise[region] * (1 - mask)
                first = start + i * tile.steps
                run = _run_sigmas(sigmas, first, first + tile.steps, leftover_flag and i + 1 == end - start)
                if run is None:
                    result = tile_latent
                else:
                    controls = {}
                    result = sample_with_sigmas(
                        model, run, tile_noise, tile_latent, sides[0].cut(tile, controls),
                        sides[1].cut(tile, controls), cfg, sampler_name, seed, noise_mask=mask,
                        batch_index=batch_index, callback=on_step, preview_every=1 if preview else 0,
                        step_sigmas=sigmas[counted_from:])  # prompt editing (CLIP Text Encode++) counts these steps
                target[region] = result if mask is None else target[region] * (1 - mask) + result * mask
            samples = target
    return {**latent, "samples": samples}


def _run_sigmas(sigmas, first: int, last: int, force_full_denoise: bool):
    """The sigmas of one tile run, as ComfyUI's KSampler.sample cuts them (None: nothing to run)."""
    if last < len(sigmas) - 1:
        sigmas = sigmas[:last + 1].clone()
        if force_full_denoise:
            sigmas[-1] = 0
    if first >= len(sigmas) - 1:
        return None
    return sigmas[first:]


def _estimate(cls, widgets, inputs):
    """The output is the input latent's size; the working memory is one tile's."""
    size = inputs.get("latent_image")
    if size is None:
        return Estimate(None)
    tile_w, tile_h = widgets.get("tile_width"), widgets.get("tile_height")
    tile_w = min(size.width, tile_w) if isinstance(tile_w, int) else size.width
    tile_h = min(size.height, tile_h) if isinstance(tile_h, int) else size.height
    return Estimate(size, memory=sampling_memory(Size(size.batch, tile_h, tile_w)))


# -- nodes ---------------------------------------------------------------------------------------

class TiledKSampler(Node):
    """Sample a latent in tiles of tile_width x tile_height pixels, as BlenderNeko's Tiled KSampler
    does, so a big image needs one tile's memory: tiling_strategy "random" moves the tiles at every
    step (from the seed) to hide seams, "random strict" also gives tiles at the border full-size
    context, "padded" samples a grid then fills the seams with shifted tiles, "simple" samples each
    tile of a grid alone. denoise < 1 runs the last steps of an int(steps / denoise)-step schedule
    (img2img). The starting noise is the seed's, as KSampler's; random, random strict and simple add
    it to the whole latent at the first step's sigma (not KSampler's sqrt(1 + sigma^2) at full
    denoise), padded gives each tile its part of it. Each tile run is sampled with the seed, so
    tiles of one size draw the same ancestral noise, as in the pack. Multistep samplers restart at
    every step with the random strategies; more steps or an ancestral sampler hide tiles better.
    Conditioning areas and masks, GLIGEN boxes and ControlNet / T2I-Adapter hints are cut to each
    tile. Differs from the pack where it fails or samples wrongly: padded places its shifted
    columns by the tile's width (the pack bounds them by the tile's height, which can leave a band
    unsampled, or sample one twice, when the two differ); an area given in percent is taken against
    the whole latent (the pack fails on one) and an area cut to a tile ends at the tile's edge; a
    tile moved inwards at the border carries the latent's noise_mask (the pack fails there); each
    conditioning entry keeps its own GLIGEN boxes (the pack's move to another entry once an entry
    outside the tile is left out). Refused: flow / video / Stable Cascade models, whole-image concat
    conditioning, ControlNets with a latent hint or a mask (an inpainting ControlNet's;
    Advanced-ControlNet's strength mask, keyframe masks or masked weights); denoise 0; a steps /
    denoise schedule longer than 20000 steps (as KSampler); a run of more than 1,000,000 tile steps
    (each tile's steps, summed over the tiles: an 8192 x 8192 image in 512-pixel tiles takes at
    most about 96,000 at 100 steps)."""
    category = "sampling"
    model: MODEL
    seed: int = Int(0, min=0, max=SEED_MAX)
    tile_width: int = Int(512, min=256, max=MAX_RESOLUTION, step=64)
    tile_height: int = Int(512, min=256, max=MAX_RESOLUTION, step=64)
    tiling_strategy: str = Choice(list(STRATEGIES), "random")
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    positive: CONDITIONING
    negative: CONDITIONING
    latent_image: LATENT
    denoise: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("BNK_TiledKSampler",))
    estimate = classmethod(_estimate)

    def run(self):
        from graphflow.sampling.schedules import schedule_length

        if not self.denoise > 0:
            raise NodeInputError("denoise", f"must be above 0 (the schedule is steps / denoise steps long), got "
                                            f"{self.denoise}")
        total = schedule_length(self.steps, self.denoise)  # KSampler's, capped as KSampler's
        return tiled_sample(self.model, self.seed, self.tile_width, self.tile_height, self.tiling_strategy, total,
                            self.cfg, self.sampler_name, self.scheduler, self.positive, self.negative,
                            self.latent_image, total - self.steps, total, True, False, True,
                            counted_from=total - self.steps)  # prompt editing counts the user's steps, as KSampler's


class TiledKSamplerAdvanced(Node):
    """Tiled KSampler with KSamplerAdvanced's step control, as BlenderNeko's Tiled KSampler
    (Advanced): add_noise, noise_seed, steps start_at_step..end_at_step of the schedule. As in the
    pack, return_with_leftover_noise acts the other way round from KSamplerAdvanced's: "enable"
    sets the last sigma to 0 (full denoise) and only on the last step of one-step tile runs (the
    random strategies, or a single step); otherwise the latent keeps the noise of end_at_step's
    sigma when end_at_step < steps. start_at_step >= end_at_step returns the latent as given (the
    pack adds the noise to it, or fails past the last step). preview "enable" shows the tile being
    sampled. Tiling, how it differs from the pack and what is refused: see Tiled KSampler."""
    category = "sampling"
    model: MODEL
    add_noise: str = Choice(["enable", "disable"], "enable")
    noise_seed: int = Int(0, min=0, max=SEED_MAX)
    tile_width: int = Int(512, min=256, max=MAX_RESOLUTION, step=64)
    tile_height: int = Int(512, min=256, max=MAX_RESOLUTION, step=64)
    tiling_strategy: str = Choice(list(STRATEGIES), "random")
    steps: int = Int(20, min=1, max=10000, resource="steps")
    cfg: float = Float(8.0, min=0.0, max=100.0, step=0.1)
    sampler_name: str = Choice(SAMPLER_NAMES, "euler")
    scheduler: str = Choice(SCHEDULER_NAMES, "simple")
    positive: CONDITIONING
    negative: CONDITIONING
    latent_image: LATENT
    start_at_step: int = Int(0, min=0, max=10000)
    end_at_step: int = Int(10000, min=0, max=10000)
    return_with_leftover_noise: str = Choice(["disable", "enable"], "disable")
    preview: str = Choice(["disable", "enable"], "disable")
    outputs = {"LATENT": LATENT}
    comfy = ComfyAlias(("BNK_TiledKSamplerAdvanced",))
    estimate = classmethod(_estimate)

    def run(self):
        return tiled_sample(self.model, self.noise_seed, self.tile_width, self.tile_height, self.tiling_strategy,
                            self.steps, self.cfg, self.sampler_name, self.scheduler, self.positive, self.negative,
                            self.latent_image, self.start_at_step, self.end_at_step, self.add_noise == "enable",
                            self.return_with_leftover_noise == "enable", self.preview == "enable")
