"""shiimizu's ComfyUI-TiledDiffusion: Tiled Diffusion (TiledDiffusion), SpotDiffusion Parameters
(SpotDiffusionParams_TiledDiffusion) and TiledDiffusion Advanced Parameters
(TiledDiffusionParams_TiledDiffusion), read at tiled_diffusion.py 1169db008422 (and __init__.py
37fbe897f41e, utils.py 026c2ed4edc3).

A MODEL whose network calls are made tile by tile (graphflow.sampling.step_cache.wrapped_network:
the tiles are stacked along the batch, tile_batch_size tiles a call), so a latent larger than the
model was trained on is denoised as overlapping pictures of the trained size:
  - the grid (the pack's split_bboxes): tiles of tile_width // 8 x tile_height // 8 latent pixels
    (cut to the latent), overlap tile_overlap // 8 cut to [0, min(tile sizes) - 4]; along each side
    ceil((size - overlap) / (tile - overlap)) tiles, the k-th at min(int(k * step), size - tile),
    step = (size - tile) / (count - 1);
  - MultiDiffusion: each latent pixel the average of the tiles over it;
  - Mixture of Diffusers: each tile weighted by a Gaussian over it (exp(-(i - c)^2 / tile_w^2 /
    0.02) / sqrt(0.02 pi) along each side, c = (tile_w - 1) / 2 across and tile_h / 2 down, both
    scaled by the tile's WIDTH: the pack's quirk, kept), divided by the weights' sum at each pixel;
  - SpotDiffusion: at each step the latent is rolled by a shift drawn per step (torch.randint(0,
    tile side, steps) from a generator seeded with the seed, heights and widths each from a fresh
    generator of that seed, as the pack), tiled with the grid (a later tile overwrites an earlier
    one where they overlap) and rolled back; when both shifts are nonzero only one side is rolled,
    down on even steps when tiles are taller than wide, else on odd ones. shift_method "sorted"
    sorts the shifts, "fibonacci" sorts then spreads them by the pack's Fibonacci placement. The
    step is found as the pack finds it: the sigma nearest the call's in the whole schedule (the
    sampler's, before KSamplerAdvanced's start_at_step / end_at_step cut it).
The network's output is blended, not the denoised latent as in the pack; the two are the same
(each pixel's denoised value is affine in its output, with the same coefficients in every tile).
Concat channels (inpainting models) are tiled with the latent; ControlNet / T2I-Adapter hints are
stretched to the latent's pixel size (rolled with it for SpotDiffusion) and cut to each tile (one
network call a tile then); conditioning areas are tiled as the pack does (the tile grid laid over
the area's crop); conditioning masks act on the whole output as usual.
Differs from the pack where it fails: a tile as large as the latent with the overlap as large as
it (a small latent) gives one tile (the pack divides by zero); a sampler's intermediate sigma
nearest the run's last (0) takes the last step's shift (the pack indexes past its shifts).
UNet models (SD1.x, SD2.x, SDXL) and flow models (SD3, FLUX: each tile patchified on its own, as the
pack's tiles reach ComfyUI's model) are tiled.
Refused by name: Stable Cascade (the pack tiles its 4x-compressed stage B with separate rules) and
video models; at sampling, GLIGEN boxes, ControlNets that carry a whole-image mask (a tile would
get the whole mask stretched onto it), a network wrapper (EasyCache) applied after TiledDiffusion,
and Self-Attention Guidance (it reads the whole latent's attention map; the pack averages its
tiles' maps). Not built yet, though the pack runs them: ControlNets that read their hint as a
latent (they take a VAE: SD3, FLUX InstantX / Union; the pack encodes the hint and cuts the
latent) and a flow model's Redux attention masks. Reference latents (Kontext, Qwen-Image-Edit)
go whole to every tile, as the pack passes them.
Also differs from the pack: SpotDiffusion rolls an inpainting model's mask and masked image with
the latent (the pack rolls them by both shifts while it rolls the latent along one side); a
T2I-Adapter's features are each tile's (ComfyUI keeps the first tile's for every tile and step, and
the pack fails on 1-channel adapters); the shifts and sigmas start again with each sampling run
(the pack keeps them until the next prompt, so a second sampler on the model reused them).
A second Tiled Diffusion on the model replaces the first, which runs outside the second's
TiledDiffusionParams range, as the pack's replaced model function wrapper does.
The pack's Tiled VAE (VAEEncodeTiled_TiledDiffusion, VAEDecodeTiled_TiledDiffusion) is
nodes/pack_nodes_tiled_vae.py. Left out: NoiseInversion, not in the pack's mappings at this commit
(commented out)."""

from __future__ import annotations

import copy
import math

from graphflow.api import MODEL, Choice, ComfyAlias, Float, Int, Node, NodeInputError, check_interrupted

COMFY_PACK = "ComfyUI-TiledDiffusion"  # the custom node pack this module's ComfyUI classes come from
MAX_RESOLUTION = 8192
COMPRESSION = 8  # latent pixels per picture pixel side (the pack's opt_f)
METHODS = ("MultiDiffusion", "Mixture of Diffusers", "SpotDiffusion")
SHIFT_METHODS = ("random", "sorted", "fibonacci")
SEED_MAX = 0xffffffffffffffff


# -- the grid (the pack's init_grid_bbox / split_bboxes) ------------------------------------------

def _count(size: int, tile: int, overlap: int) -> int:
    if tile >= size:  # one tile covers the side (the pack divides by zero when it also equals the overlap)
        return 1
    return -(-(size - overlap) // (tile - overlap))


def tile_grid(height: int, width: int, tile_h: int, tile_w: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """The tiles (y, x, h, w) over a height x width latent, rows first; sizes in latent pixels."""
    overlap = max(0, min(overlap, min(tile_w, tile_h) - 4))  # from the sizes asked for, as the pack
    tile_h, tile_w = min(tile_h, height), min(tile_w, width)
    rows, cols = _count(height, tile_h, overlap), _count(width, tile_w, overlap)
    step_y = (height - tile_h) / (rows - 1) if rows > 1 else 0
    step_x = (width - tile_w) / (cols - 1) if cols > 1 else 0
    return [(min(int(r * step_y), height - tile_h), min(int(c * step_x), width - tile_w), tile_h, tile_w)
            for r in range(rows) for c in range(cols)]


def tile_batches(tiles: list, batch_size: int) -> list[list]:
    """The tiles in consecutive batches of equal size (the pack's optimal_batch_size)."""
    batches = -(-len(tiles) // batch_size)
    size = -(-len(tiles) // batches)
    return [tiles[i * size:(i + 1) * size] for i in range(batches)]


def gaussian_weights(tile_w: int, tile_h: int):
    """Mixture of Diffusers' tile weights [tile_h, tile_w] (float64 then float32, as the pack)."""
    import torch

    def bell(i, centre):
        return math.exp(-(i - centre) * (i - centre) / (tile_w * tile_w) / (2 * 0.01)) / math.sqrt(2 * math.pi * 0.01)

    across = torch.tensor([bell(i, (tile_w - 1) / 2) for i in range(tile_w)], dtype=torch.float64)
    down = torch.tensor([bell(i, tile_h / 2) for i in range(tile_h)], dtype=torch.float64)
    return torch.outer(down, across).float()


# -- SpotDiffusion's shifts ------------------------------------------------------------------------

def fibonacci_spacing(values):
    """The pack's placement: the i-th value goes to the (i mod len(fib))-th Fibonacci number mod n,
    or the next free place after it."""
    import torch

    n = len(values)
    fib = [0, 1]
    while fib[-1] < n:
        fib.append(fib[-1] + fib[-2])
    out, used = torch.zeros_like(values), set()
    for i, value in enumerate(values):
        place = fib[i % len(fib)] % n
        while place in used:
            place = (place + 1) % n
        out[place] = value
        used.add(place)
    return out


def spot_shifts(steps: int, tile_h: int, tile_w: int, seed: int, method: str):
    """(heights, widths): one shift per step, in latent pixels."""
    import torch

    shifts = [torch.randint(0, side, (steps,), generator=torch.Generator("cpu").manual_seed(seed))
              for side in (tile_h, tile_w)]
    if method == "sorted":
        shifts = [s.sort().values for s in shifts]
    elif method == "fibonacci":
        shifts = [fibonacci_spacing(s.sort().values) for s in shifts]
    return shifts


def spot_roll(step: int, shift_h: int, shift_w: int, height: int, width: int, tile_h: int, tile_w: int):
    """The (down, across) roll of a step: none along a side one tile covers; one side only when both
    shift (down on even steps when tiles are taller than wide, else on odd ones)."""
    shift_h = 0 if tile_h >= height else shift_h
    shift_w = 0 if tile_w >= width else shift_w
    if shift_h and shift_w:
        down = step % 2 == 0 if tile_h > tile_w else step % 2 != 0
        return (shift_h, 0) if down else (0, shift_w)
    return shift_h, shift_w


# -- the network wrapper ---------------------------------------------------------------------------

class TiledDiffusionWrapper:
    """A MODEL's network wrapper (graphflow.sampling.step_cache): its settings; called once per
    sampling run for that run's state."""

    tiles_network = True  # what reads the whole latent's attention (Self-Attention Guidance) refuses it

    def __init__(self, method: str, tile_width: int, tile_height: int, tile_overlap: int, tile_batch_size: int):
        self.method = method
        self.tile_h, self.tile_w = tile_height // COMPRESSION, tile_width // COMPRESSION
        self.overlap, self.batch_size = tile_overlap // COMPRESSION, tile_batch_size
        self.seed, self.shift_method = -1, "random"  # the pack's defaults without SpotDiffusionParams
        self.start_sigma, self.end_sigma = math.inf, 0.0
        self.previous = None  # a Tiled Diffusion this one replaced: it runs outside this one's sigma range

    def with_options(self, **options) -> "TiledDiffusionWrapper":
        out = copy.copy(self)
        out.__dict__.update(options)
        return out

    def __call__(self) -> "TiledRun":
        return TiledRun(self)


class TiledRun:
    """One sampling run's tiling (see the module docstring)."""

    tiles_network = True

    def __init__(self, settings: TiledDiffusionWrapper):
        self.settings = settings
        self.sigmas = self.shifts = None
        self.grids = {}
        self.previous = None if settings.previous is None else settings.previous()

    def start_run(self, sigmas):
        self.sigmas = sigmas.detach().float().cpu()
        if self.previous is not None:
            self.previous.start_run(sigmas)

    def _grid(self, height: int, width: int, device):
        """(tiles, batches, weights) for a latent's size, the weights made on the device once a run
        (a host tensor copied per tile would hold up the device's queue)."""
        s = self.settings
        key = (height, width, str(device))
        if key not in self.grids:
            tiles = tile_grid(height, width, s.tile_h, s.tile_w, s.overlap)
            weights = self._weights(tiles, height, width, device)
            self.grids[key] = (tiles, tile_batches(tiles, s.batch_size), weights)
        return self.grids[key]

    def _weights(self, tiles, height: int, width: int, device):
        """MultiDiffusion: (None, the tiles over each pixel); Mixture of Diffusers: (each tile's
        Gaussian x 1 / the Gaussians' sum over its pixels (the pack's rescale_factor), None);
        SpotDiffusion: None."""
        import torch

        method = self.settings.method
        if method == "SpotDiffusion":
            return None
        bell = gaussian_weights(tiles[0][3], tiles[0][2]) if method == "Mixture of Diffusers" else None
        total = torch.zeros(height, width)
        for y, x, h, w in tiles:
            total[y:y + h, x:x + w] += 1 if bell is None else bell
        if bell is None:
            return None, total.to(device)
        rescale = 1 / total
        return {tile: (bell * rescale[tile[0]:tile[0] + tile[2], tile[1]:tile[1] + tile[3]]).to(device)
                for tile in tiles}, None

    def _step(self, sigma) -> int:
        """The step's place in the run: the run's sigma nearest this one (its first), as the pack."""
        if self.sigmas is None or len(self.sigmas) < 2:
            return 0
        nearest = self.sigmas[(self.sigmas - float(sigma.reshape(-1)[0])).abs().argmin()]
        step = int((self.sigmas == nearest).nonzero()[0])
        return min(step, len(self.sigmas) - 2)

    def __call__(self, run, xc, sigma, channels: int):
        import torch

        s = self.settings
        if (s.start_sigma != math.inf or s.end_sigma != 0.0) and not s.end_sigma <= float(sigma.max()) <= s.start_sigma:
            # outside TiledDiffusionParams' range: the Tiled Diffusion this one replaced, else the whole latent
            return run(xc) if self.previous is None else self.previous(run, xc, sigma, channels)
        if xc.ndim != 4:
            raise ValueError(f"TiledDiffusion tiles 4-D image latents [B, C, H, W], got {tuple(xc.shape)}")
        rows, _, height, width = xc.shape
        tiles, batches, weights = self._grid(height, width, xc.device)
        shift = (0, 0)
        if s.method == "SpotDiffusion":
            step = self._step(sigma)
            if self.shifts is None:
                steps = 1 if self.sigmas is None else max(len(self.sigmas) - 1, 1)
                self.shifts = spot_shifts(steps, s.tile_h, s.tile_w, s.seed, s.shift_method)
            step = min(step, len(self.shifts[0]) - 1)
            shift = spot_roll(step, int(self.shifts[0][step]), int(self.shifts[1][step]), height, width,
                              s.tile_h, s.tile_w)
            xc = xc.roll(shift, dims=(-2, -1))
        out = None
        for batch in batches:
            check_interrupted()
            stacked = torch.cat([xc[:, :, y:y + h, x:x + w] for y, x, h, w in batch])
            result = run(stacked, regions=batch, shift=shift)
            if out is None:
                out = result.new_zeros(rows, result.shape[1], height, width)
            for i, (y, x, h, w) in enumerate(batch):
                part = result[i * rows:(i + 1) * rows]
                if weights is None:  # SpotDiffusion: a later tile overwrites an earlier one
                    out[:, :, y:y + h, x:x + w] = part
                elif weights[0] is None:  # MultiDiffusion: summed, then averaged
                    out[:, :, y:y + h, x:x + w] += part
                else:
                    out[:, :, y:y + h, x:x + w] += part * weights[0][(y, x, h, w)].to(part.dtype)
        if weights is not None and weights[0] is None:
            count = weights[1]
            out = torch.where(count > 1, out / count, out)
        return out.roll((-shift[0], -shift[1]), dims=(-2, -1)) if shift != (0, 0) else out


# -- nodes -----------------------------------------------------------------------------------------

def _check_model(model):
    if getattr(model, "is_video", False) or getattr(model, "is_cascade", False) \
            or getattr(model, "arch", "").startswith("stable_cascade"):
        raise NodeInputError("model", "Tiled Diffusion tiles image models (SD1.x, SD2.x, SDXL, SD3, FLUX...); video "
                                      "and Stable Cascade models are not supported")
    if any(getattr(fn, "reads_attention_map", False) for fn in getattr(model, "post_cfg_functions", ())):
        raise NodeInputError("model", "Self-Attention Guidance reads the whole latent's attention map, which Tiled "
                                      "Diffusion computes per tile: use one or the other")


def _tiled(name: str, model) -> TiledDiffusionWrapper:
    """The model's TiledDiffusion wrapper, which must be its last network wrapper (as the pack's
    parameter nodes require it to be the model's function wrapper)."""
    wrappers = getattr(model, "network_wrappers", ())
    if not wrappers or not isinstance(wrappers[-1], TiledDiffusionWrapper):
        raise NodeInputError("model", f"{name}: apply the parameters after the Tiled Diffusion node and before "
                                      f"any other patches")
    return wrappers[-1]


def _with_wrapper(model, wrapper, replace: bool):
    patched = copy.copy(model)
    earlier = tuple(getattr(model, "network_wrappers", ()))
    patched.network_wrappers = (*(earlier[:-1] if replace else earlier), wrapper)
    return patched


class TiledDiffusion(Node):
    """The model's network calls made in tiles of tile_width x tile_height pixels overlapping by
    tile_overlap, tile_batch_size tiles per call, as shiimizu's Tiled Diffusion: MultiDiffusion
    averages the tiles, Mixture of Diffusers blends them with Gaussian weights, SpotDiffusion
    rolls the latent by a per-step random shift and lays the tiles without blending (seeded by
    SpotDiffusion Parameters; -1 without, as the pack). Sizes are picture pixels (8 per latent
    pixel); a tile larger than the latent is cut to it. ControlNet / T2I-Adapter hints and
    inpainting channels are cut to each tile. UNet (SD1.x, SD2.x, SDXL) and flow models (SD3,
    FLUX) are tiled. Differs from the pack: a small latent whose tile equals the overlap gives one
    tile (the pack divides by zero). Refused: video and Stable Cascade models, a block cache
    (TeaCache, First Block Cache) applied before this node; at sampling, GLIGEN boxes, ControlNets
    with a whole-image mask, a network wrapper (EasyCache) applied after this node, and
    Self-Attention Guidance. Not built yet: ControlNets that take a VAE (SD3, FLUX InstantX /
    Union) and Redux attention masks. Reference latents (Kontext) go whole to each tile.
    A second Tiled Diffusion replaces the first (which runs outside its sigma range)."""
    category = "_for_testing"
    model: MODEL
    method: str = Choice(list(METHODS), "Mixture of Diffusers")
    tile_width: int = Int(96 * COMPRESSION, min=16, max=MAX_RESOLUTION, step=16)
    tile_height: int = Int(96 * COMPRESSION, min=16, max=MAX_RESOLUTION, step=16)
    tile_overlap: int = Int(8 * COMPRESSION, min=0, max=256 * COMPRESSION, step=4 * COMPRESSION)
    tile_batch_size: int = Int(4, min=1, max=MAX_RESOLUTION, step=1)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("TiledDiffusion",))

    def run(self):
        if self.method not in METHODS:
            raise NodeInputError("method", f"expected one of {', '.join(METHODS)}, got {self.method!r}")
        if self.tile_width < COMPRESSION or self.tile_height < COMPRESSION:
            raise NodeInputError("tile_width" if self.tile_width < COMPRESSION else "tile_height",
                                 f"a tile needs at least {COMPRESSION} pixels (one latent pixel) a side")
        if self.tile_batch_size < 1:
            raise NodeInputError("tile_batch_size", f"must be at least 1, got {self.tile_batch_size}")
        _check_model(self.model)
        from graphflow.sampling.block_cache import BLOCK_CACHE
        if any(getattr(w, "kind", None) == BLOCK_CACHE for w in getattr(self.model, "network_wrappers", ())):
            # its one state would take each tile for the next step of the same picture
            raise NodeInputError("model", "the model has a block cache (TeaCache, First Block Cache), which would "
                                          "compare one tile with another: use one or the other")
        wrapper = TiledDiffusionWrapper(self.method, self.tile_width, self.tile_height, self.tile_overlap,
                                        self.tile_batch_size)
        # a Tiled Diffusion already last on the model is replaced (kept for steps outside this one's range), as
        # the pack's node replaces the model function wrapper
        earlier = getattr(self.model, "network_wrappers", ())
        if earlier and isinstance(earlier[-1], TiledDiffusionWrapper):
            wrapper.previous = earlier[-1]
            return _with_wrapper(self.model, wrapper, replace=True)
        return _with_wrapper(self.model, wrapper, replace=False)


class SpotDiffusionParams(Node):
    """SpotDiffusion's shifts for the Tiled Diffusion on the model (which must be its last patch):
    shift_method random draws one shift per step from the seed, sorted sorts them, fibonacci
    sorts then spreads them by the pack's Fibonacci placement."""
    category = "_for_testing"
    model: MODEL
    shift_method: str = Choice(list(SHIFT_METHODS), "random")
    seed: int = Int(0, min=0, max=SEED_MAX)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("SpotDiffusionParams_TiledDiffusion",))

    def run(self):
        if self.shift_method not in SHIFT_METHODS:
            raise NodeInputError("shift_method", f"expected one of {', '.join(SHIFT_METHODS)}, got "
                                                 f"{self.shift_method!r}")
        wrapper = _tiled("SpotDiffusion Parameters", self.model)
        return _with_wrapper(self.model, wrapper.with_options(seed=self.seed, shift_method=self.shift_method),
                             replace=True)


class TiledDiffusionParams(Node):
    """Tiled Diffusion (the model's last patch) active only while end_sigma <= sigma <= start_sigma
    (the batch's largest sigma); other steps run the whole latent at once."""
    category = "_for_testing"
    model: MODEL
    start_sigma: float = Float(9999.0, min=0.0, max=9999.0, step=0.01)
    end_sigma: float = Float(0.0, min=0.0, max=9999.0, step=0.01)
    outputs = {"MODEL": MODEL}
    comfy = ComfyAlias(("TiledDiffusionParams_TiledDiffusion",))

    def run(self):
        wrapper = _tiled("TiledDiffusion Advanced Parameters", self.model)
        return _with_wrapper(self.model, wrapper.with_options(start_sigma=self.start_sigma, end_sigma=self.end_sigma),
                             replace=True)
