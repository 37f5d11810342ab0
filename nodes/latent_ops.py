"""Latent transform and editing nodes as ComfyUI has them: crop, flip, rotate, concatenate and cut
along an axis, interpolate by direction and length, and the batch's seed behaviour.

LATENTs here are image latents, [B, C, h, w] (see nodes/latent.py); concat, cut, interpolate and
the seed behaviour also take video latents [B, C, frames, h, w], as ComfyUI's do. Crop, flip and
rotate take them too and, as ComfyUI's, work on axes 2 and 3, which for a video latent are the
frames and the rows (so ComfyUI's graphs give ComfyUI's latents). As in ComfyUI,
crop, flip, rotate and cut leave a noise mask as it is (the sampler stretches it over the new
latent), so an imported graph masks the same latent pixels as ComfyUI's."""

from __future__ import annotations

from graphflow.api import LATENT, Choice, ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size
from nodes.image import FLIPS, ROTATIONS
from nodes.latent import MAX_SIZE, _check_joinable, _fit, _samples

CONCAT_DIMS = ("x", "-x", "y", "-y", "t", "-t")
CUT_DIMS = ("x", "y", "t")
SEED_BEHAVIORS = ("random", "fixed")


def _with_samples(latent: dict, samples) -> dict:
    """A copy of `latent` with new samples (noise mask, batch indices and the rest kept)."""
    out = dict(latent)
    out["samples"] = samples
    return out


class LatentCrop(Node):
    """Cut a width x height (pixel) rectangle with its top-left corner at (x, y) out of the
    latents, in whole latent pixels (8 image pixels). As in ComfyUI the corner is moved in so that
    at least 64 pixels remain right of and below it (for a latent under 64 pixels that puts it
    before the start, counted from the end as Python does); the rectangle is cut off at the edges.
    A noise mask is left whole, as in ComfyUI. On a video latent [B, C, frames, h, w] it cuts, as
    ComfyUI's does, axes 2 and 3: y and height pick frames (8 per latent pixel), x and width rows."""
    category = "latent/transform"
    samples: LATENT
    width: int = Int(512, min=64, max=MAX_SIZE, step=8)
    height: int = Int(512, min=64, max=MAX_SIZE, step=8)
    x: int = Int(0, min=0, max=MAX_SIZE, step=8)
    y: int = Int(0, min=0, max=MAX_SIZE, step=8)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentCrop",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("samples")
        values = [widgets.get(k) for k in ("width", "height", "x", "y")]
        if size is None or not all(isinstance(v, int) for v in values):
            return Estimate(size)
        h, w = size.height // 8, size.width // 8
        (left, top), (width, height) = _corner(values[2], values[3], w, h), (values[0] // 8, values[1] // 8)
        rows, columns = len(range(h)[top:top + height]), len(range(w)[left:left + width])
        return Estimate(Size(size.batch, 8 * max(1, rows), 8 * max(1, columns)))

    def run(self):
        x = _samples(self.samples, "samples", video=True)
        h, w = x.shape[2], x.shape[3]  # ComfyUI's axes 2 and 3 (frames and rows of a video latent)
        left, top = _corner(self.x, self.y, w, h)
        width, height = self.width // 8, self.height // 8
        return _with_samples(self.samples, x[:, :, top:top + height, left:left + width].clone())


def _corner(x: int, y: int, w: int, h: int) -> tuple[int, int]:
    """ComfyUI's crop corner in latent pixels, moved in to leave at least 8 right of and below it
    (negative for a latent under 8: a Python slice start from the end, as in ComfyUI)."""
    return min(x // 8, w - 8), min(y // 8, h - 8)


class LatentFlip(Node):
    """Mirror the latents: upside down (x-axis) or left to right (y-axis), as ImageFlip does images.
    A noise mask is left unflipped, as in ComfyUI. On a video latent [B, C, frames, h, w] the
    flips are ComfyUI's, on axes 2 and 3: x-axis reverses the frames, y-axis turns it upside down."""
    category = "latent/transform"
    samples: LATENT
    flip_method: str = Choice(list(FLIPS), "x-axis: vertically")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentFlip",))

    def run(self):
        import torch
        x = _samples(self.samples, "samples", video=True)
        dim = 2 if FLIPS[self.flip_method] == 1 else 3  # ComfyUI's axes, whatever the latent's rank
        return _with_samples(self.samples, torch.flip(x, dims=[dim]))


class LatentRotate(Node):
    """Turn the latents clockwise by a multiple of 90 degrees, as ImageRotate does images. A noise
    mask is left unturned, as in ComfyUI. On a video latent [B, C, frames, h, w] it turns, as
    ComfyUI's does, the plane of axes 2 and 3 (frames and rows)."""
    category = "latent/transform"
    samples: LATENT
    rotation: str = Choice(list(ROTATIONS), "none")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentRotate",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size = inputs.get("samples")
        if size is not None and ROTATIONS.get(widgets.get("rotation"), 0) % 2:
            return Estimate(Size(size.batch, size.width, size.height))
        return Estimate(size)

    def run(self):
        import torch
        x = _samples(self.samples, "samples", video=True)
        # from the width axis towards the height axis: clockwise on screen (axes 3 and 2, as ComfyUI)
        return _with_samples(self.samples, torch.rot90(x, k=ROTATIONS[self.rotation], dims=[3, 2]).clone())


class LatentBatchSeedBehavior(Node):
    """How the sampler seeds the images of this batch. fixed: every image gets the first image's
    noise (its batch index for all), so a batch differs only by what else differs. random: the
    batch's indices are dropped, so image i gets the i-th noise drawn from the seed."""
    category = "latent/advanced"
    samples: LATENT
    seed_behavior: str = Choice(SEED_BEHAVIORS, "fixed")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentBatchSeedBehavior",))

    def run(self):
        x = _samples(self.samples, "samples", video=True)
        out = dict(self.samples)
        if self.seed_behavior == "random":
            out.pop("batch_index", None)
        else:
            out["batch_index"] = [list(self.samples.get("batch_index") or [0])[0]] * x.shape[0]
        return out


def _axis(dim: str, name: str, ndim: int) -> int:
    if "t" in dim:  # ComfyUI's t is the frame axis of a video latent [B, C, T, h, w]
        if ndim != 5:  # ComfyUI would join or cut an image latent's channels here
            raise NodeInputError(name, f"{dim!r} needs a video latent [B, C, frames, h, w] with a time axis; "
                                       "this is an image latent [B, C, h, w]: use x or y")
        return -3
    return -1 if "x" in dim else -2


class LatentConcat(Node):
    """Join samples2 onto samples1 along x (to the right; -x to the left), y (below; -y above) or,
    for video latents, t (after; -t before). samples2's batch is repeated to samples1's; their
    other sizes and channels must match. samples1's noise mask and batch indices are kept."""
    category = "latent/advanced"
    samples1: LATENT
    samples2: LATENT
    dim: str = Choice(CONCAT_DIMS, "x")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentConcat",))

    def run(self):
        import torch
        from nodes.latent import _repeat_to
        a, b = _samples(self.samples1, "samples1", video=True), _samples(self.samples2, "samples2", video=True)
        axis = _axis(self.dim, "dim", a.ndim)
        b = _repeat_to(b, a.shape[0])
        if a.ndim != b.ndim or any(n != m for i, (n, m) in enumerate(zip(a.shape, b.shape)) if i and i != a.ndim + axis):
            names = ["channels"] + ["frames"] * (a.ndim == 5) + ["height", "width"]
            names.pop(axis)  # the joined axis may differ
            raise NodeInputError("samples2", f"shape {list(b.shape[1:])} can't be joined along {self.dim!r} to "
                                             f"samples1's {list(a.shape[1:])}: {', '.join(names)} must match")
        out = dict(self.samples1)
        out["samples"] = torch.cat((b, a) if self.dim.startswith("-") else (a, b), dim=axis)
        return out


class LatentCut(Node):
    """Keep `amount` latent pixels along x (columns) or y (rows), or frames along t (video
    latents), from `index` on; a negative index counts from the end. As in ComfyUI, an index past
    the end keeps the last one and the amount is cut to what there is. A noise mask is left whole,
    as in ComfyUI."""
    category = "latent/advanced"
    samples: LATENT
    dim: str = Choice(CUT_DIMS, "x")
    index: int = Int(0, min=-MAX_SIZE, max=MAX_SIZE)
    amount: int = Int(1, min=1, max=MAX_SIZE)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentCut",))

    @classmethod
    def estimate(cls, widgets, inputs):
        size, dim = inputs.get("samples"), widgets.get("dim")
        index, amount = widgets.get("index"), widgets.get("amount")
        if size is None or dim not in ("x", "y") or not isinstance(index, int) or not isinstance(amount, int):
            return Estimate(size)
        if dim == "x":
            return Estimate(Size(size.batch, size.height, 8 * _cut(max(1, size.width // 8), index, amount)[1]))
        return Estimate(Size(size.batch, 8 * _cut(max(1, size.height // 8), index, amount)[1], size.width))

    def run(self):
        x = _samples(self.samples, "samples", video=True)
        axis = _axis(self.dim, "dim", x.ndim)
        length = x.shape[axis]
        start, amount = _cut(length, self.index, self.amount)
        return _with_samples(self.samples, x.narrow(axis, start, amount).clone())


def _cut(length: int, index: int, amount: int) -> tuple[int, int]:
    """LatentCut's start and amount along an axis of `length`, clamped as ComfyUI clamps them."""
    start = min(index, length - 1) if index >= 0 else length + max(index, -length)
    return start, min(length - start, amount)


class LatentNormInterpolate(Node):
    """ComfyUI's LatentInterpolate: blend samples1 (ratio 1) and samples2 (ratio 0) position by
    position, the channel vectors' directions mixed and renormalised and their lengths mixed
    linearly, so the blend keeps the latents' magnitude where a plain mix would shrink it. samples2
    is resized (bilinear, centre-cropped) and repeated to samples1's shape. Each latent of a batch
    is normalised on its own, a deliberate difference from ComfyUI v0.3.64, which is the same for a
    batch of one but mixes the norms across a larger batch (an error unless batch = channels;
    fixed the same way upstream in 2026, PR 14897). (graphflow's own LatentInterpolate, under
    diagnostics, is a lerp/slerp of whole latents.)"""
    category = "latent/advanced"
    samples1: LATENT
    samples2: LATENT
    ratio: float = Float(1.0, min=0.0, max=1.0, step=0.01)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentInterpolate",))

    def run(self):
        import torch
        a, b = _samples(self.samples1, "samples1", video=True), _samples(self.samples2, "samples2", video=True)
        _check_joinable(a, b)
        b = _fit(a, b.to(a))
        # Per position, over the channels (ComfyUI's own broadcasts this right for a batch of one).
        na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
        mixed = torch.nan_to_num(a / na) * self.ratio + torch.nan_to_num(b / nb) * (1.0 - self.ratio)
        direction = torch.nan_to_num(mixed / mixed.norm(dim=1, keepdim=True))
        out = dict(self.samples1)
        out["samples"] = direction * (na * self.ratio + nb * (1.0 - self.ratio))
        return out
