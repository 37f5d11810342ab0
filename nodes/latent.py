"""Latent nodes: empty latents, upscale, composite, batch, blend and arithmetic, noise mask, save/load.

A LATENT is a dict {"samples": [B, C, H/8, W/8] in the VAE's raw space, "noise_mask"?: [B, 1, h, w]
at any resolution (the sampler resizes it), "batch_index"?: [int]}; nodes never modify the
dict they're given. Video latents [B, C, frames, h, w] go through the upscale, batch and
arithmetic nodes as in ComfyUI (resized frame by frame); composite and blend take images only."""

from __future__ import annotations

import math


from graphflow.api import (LATENT, MASK, Bool, Choice, ComfyAlias, Estimate, Float, Int, Node, NodeInputError, Size,
                           Text, folders, repeated, show, subfolder_name, workflow_texts)

MAX_SIZE = 16384


class EmptyLatent(Node):
    """A blank latent batch of the given pixel size to start txt2img from (4 channels, 1/8 size)."""
    category = "latent"
    width: int = Int(512, min=16, max=MAX_SIZE, step=8, resource="width")
    height: int = Int(512, min=16, max=MAX_SIZE, step=8, resource="height")
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("EmptyLatentImage",))

    def run(self):
        import torch
        return {"samples": torch.zeros(self.batch_size, 4, self.height // 8, self.width // 8)}


class EmptyHunyuanImageLatent(Node):
    """A blank HunyuanImage 2.1 latent batch: 64 channels at 1/32 of the pixel size (its VAE's)."""
    category = "latent"
    width: int = Int(2048, min=64, max=MAX_SIZE, step=32, resource="width")
    height: int = Int(2048, min=64, max=MAX_SIZE, step=32, resource="height")
    batch_size: int = Int(1, min=1, max=4096, resource="batch")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("EmptyHunyuanImageLatent",))

    def run(self):
        import torch
        return {"samples": torch.zeros(self.batch_size, 64, self.height // 32, self.width // 32)}


LATENT_RESIZE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "bislerp")


class LatentUpscale(Node):
    """Resize latents to a new pixel size (0 keeps the aspect ratio from the other side; both 0
    leave the latents as they are; sizes under 64 count as 64, as in ComfyUI). bislerp
    interpolates spherically between neighbours, as ComfyUI's does. A video latent's frames are
    resized one by one."""
    category = "latent"
    keeps_frames = True  # a video latent's frames are resized one by one
    samples: LATENT
    upscale_method: str = Choice(LATENT_RESIZE_METHODS, "nearest-exact")
    width: int = Int(512, min=0, max=MAX_SIZE, step=8, resource="width")
    height: int = Int(512, min=0, max=MAX_SIZE, step=8, resource="height")
    crop: str = Choice(["disabled", "center"], "disabled")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentUpscale",))

    def run(self):
        x = _samples(self.samples, "samples", video=True)
        if self.width == 0 and self.height == 0:  # as ComfyUI: untouched
            return self.samples
        # ComfyUI's sizes: in pixels, at least 64, the missing side from the latent's aspect ratio
        h, w = x.shape[-2:]
        width, height = max(64, self.width), max(64, self.height)
        if self.width == 0:
            width = max(64, round(w * height / h))
        elif self.height == 0:
            height = max(64, round(h * width / w))
        out = dict(self.samples)  # a noise_mask stays as it is: the sampler resizes it to the latent
        out["samples"] = _upscale(x, width // 8, height // 8, self.upscale_method, self.crop)
        return out


class LatentBatch(Node):
    """Join two latent batches; the second is resized to the first's size if they differ (centre-
    cropped to its aspect ratio, bilinear). As in ComfyUI the batch indices are the two batches'
    own, one after the other (two plain batches of 2 give 0, 1, 0, 1: the second pair gets the
    first pair's noise), and samples1's noise mask and other entries are kept."""
    category = "latent"
    samples1: LATENT
    samples2: LATENT
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentBatch",))

    @classmethod
    def estimate(cls, widgets, inputs):
        a, b = inputs.get("samples1"), inputs.get("samples2")
        if a is None or b is None:
            return Estimate(a or b)
        return Estimate(Size(a.batch + b.batch, a.height, a.width))

    def run(self):
        import torch
        a, b = _samples(self.samples1, "samples1", video=True), _samples(self.samples2, "samples2", video=True)
        _check_joinable(a, b)
        if a.shape[-2:] != b.shape[-2:]:
            b = _upscale(b, a.shape[-1], a.shape[-2], "bilinear", "center")
        out = dict(self.samples1)
        out["samples"] = torch.cat([a, b.to(a)])
        out["batch_index"] = list(self.samples1.get("batch_index", range(a.shape[0]))) + \
            list(self.samples2.get("batch_index", range(b.shape[0])))
        return out


class SetLatentNoiseMask(Node):
    """Limit sampling to the masked area (1 = repaint): the rest of the latent is put back
    after every step, so an ordinary model can inpaint."""
    category = "latent/inpaint"
    keeps_frames = True  # a video latent's noise mask: the same frames
    samples: LATENT
    mask: MASK
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("SetLatentNoiseMask",))

    def run(self):
        out = dict(self.samples)
        out["noise_mask"] = self.mask.reshape(-1, 1, *self.mask.shape[-2:]).float()
        return out


def _samples(latent, name: str, video: bool = False) -> torch.Tensor:
    """A LATENT's samples, [B, C, h, w]; video=True also takes a video latent [B, C, frames, h, w]."""
    import torch
    if video and isinstance(latent, dict) and torch.is_tensor(latent.get("samples")) and latent["samples"].ndim == 5:
        return latent["samples"]
    if isinstance(latent, dict) and torch.is_tensor(latent.get("samples")) and latent["samples"].ndim == 5:
        raise NodeInputError(name, f"this node works on image latents [B, C, h, w]; got a video latent "
                                   f"[B, C, frames, h, w] {tuple(latent['samples'].shape)}")
    if not isinstance(latent, dict) or not torch.is_tensor(latent.get("samples")) or latent["samples"].ndim != 4:
        raise NodeInputError(name, "expected a LATENT: a dict with 'samples' [B, C, h, w]")
    return latent["samples"]


def _upscale(x: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """Latents resized to width x height latent pixels, centre-cropped to that aspect ratio first
    with crop "center"; a video's frames one by one (ComfyUI's common_upscale)."""
    from graphflow.images import bislerp, center_crop_to_aspect, resize_nchw
    video = x.shape[:3] if x.ndim == 5 else None
    if video:
        x = x.movedim(2, 1).reshape(-1, x.shape[1], *x.shape[-2:])
    if crop == "center":
        x = center_crop_to_aspect(x, width, height)
    out = bislerp(x, width, height).to(x.dtype) if method == "bislerp" else resize_nchw(x, width, height, method)
    if video:
        b, c, frames = video
        out = out.reshape(b, frames, c, height, width).movedim(1, 2)
    return out


def _repeat_to(t: torch.Tensor, batch: int) -> torch.Tensor:
    if t.shape[0] == batch:
        return t
    return t.repeat(math.ceil(batch / t.shape[0]), *[1] * (t.ndim - 1))[:batch]


def _check_joinable(a: torch.Tensor, b: torch.Tensor, name: str = "samples2", first: str = "samples1"):
    """b can be resized to a's height and width: the same kind of latent, channels and frames."""
    if a.shape[1:-2] != b.shape[1:-2]:
        what = "channels" if a.ndim == b.ndim == 4 else "channels and frames"
        raise NodeInputError(name, f"shape {list(b.shape[1:])} doesn't match {first}'s {list(a.shape[1:])} "
                                   f"({what} must match; height and width are resized)")


def _fit(reference: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """`other` made the shape of `reference` for elementwise arithmetic: resized (bilinear,
    centre-cropped to the aspect ratio) and repeated to the batch, as ComfyUI's latent maths does."""
    if other.shape[-2:] != reference.shape[-2:]:
        other = _upscale(other, reference.shape[-1], reference.shape[-2], "bilinear", "center")
    return _repeat_to(other, reference.shape[0])


def _scaled_estimate(size, scale) -> Estimate:
    """The size of a batch resized by `scale` (for the validator's resource check); a video's
    frames are resized one by one, so they stay."""
    if size is None or not isinstance(scale, (int, float)):
        return Estimate(size)
    return Estimate(Size(size.batch, max(1, round(size.height * scale)), max(1, round(size.width * scale)),
                         size.frames))


class LatentUpscaleBy(Node):
    """Resize latents by a factor (sizes rounded to whole latent pixels). bislerp interpolates
    each position's channel vector spherically, which keeps upscaled latents from going flat. A
    video latent's frames are resized one by one."""
    category = "latent"
    samples: LATENT
    upscale_method: str = Choice(LATENT_RESIZE_METHODS, "nearest-exact")
    scale_by: float = Float(1.5, min=0.01, max=8.0, step=0.01)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentUpscaleBy",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return _scaled_estimate(inputs.get("samples"), widgets.get("scale_by"))

    def run(self):
        x = _samples(self.samples, "samples", video=True)
        width = max(1, round(x.shape[-1] * self.scale_by))
        height = max(1, round(x.shape[-2] * self.scale_by))
        out = dict(self.samples)
        out["samples"] = _upscale(x, width, height, self.upscale_method)
        return out


class LatentComposite(Node):
    """Paste `samples_from` into `samples_to` with its top-left corner at pixel (x, y) (multiples
    of 8). `feather` (pixels) fades the pasted edges that lie inside the destination, linearly
    over feather / 8 latent pixels (as ComfyUI, a feather wider than the pasted part also fades
    rows counted from its other side). A corner on the destination's right or bottom edge pastes
    nothing. The noisy-latent-composition technique uses this."""
    category = "latent"
    samples_to: LATENT
    samples_from: LATENT
    x: int = Int(0, min=0, max=MAX_SIZE, step=8)
    y: int = Int(0, min=0, max=MAX_SIZE, step=8)
    feather: int = Int(0, min=0, max=MAX_SIZE, step=8)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentComposite",))

    def run(self):
        import torch
        dest, src = _samples(self.samples_to, "samples_to"), _samples(self.samples_from, "samples_from")
        if dest.shape[1] != src.shape[1]:
            raise NodeInputError("samples_from", f"{src.shape[1]} channels; samples_to has {dest.shape[1]}")
        x, y, feather = self.x // 8, self.y // 8, self.feather // 8
        H, W = dest.shape[2:]
        # ComfyUI's slices, Python's semantics included: a corner at the destination's edge pastes
        # nothing; further out the (wrapped) source no longer fits the empty region: refused below
        src = _repeat_to(src[:, :, :H - y, :W - x], dest.shape[0])
        h, w = src.shape[2:]
        s = dest.clone()
        region = s[:, :, y:y + h, x:x + w]
        if region.shape != src.shape:
            raise NodeInputError("x" if x >= W else "y",
                                 f"({self.x}, {self.y}) lies outside the {W * 8}x{H * 8} destination")
        if feather == 0:
            s[:, :, y:y + h, x:x + w] = src
        else:
            mask = torch.ones_like(src)
            for t in range(feather):  # slices as ComfyUI's: a feather wider than the paste wraps round
                factor = (1.0 / feather) * (t + 1)
                if y != 0:
                    mask[:, :, t:t + 1] *= factor
                if y + h < H:
                    mask[:, :, h - 1 - t:h - t] *= factor
                if x != 0:
                    mask[:, :, :, t:t + 1] *= factor
                if x + w < W:
                    mask[:, :, :, w - 1 - t:w - t] *= factor
            s[:, :, y:y + h, x:x + w] = src * mask + region * (1 - mask)
        out = dict(self.samples_to)
        out["samples"] = s
        return out


class LatentCompositeMasked(Node):
    """Paste `source` into `destination` at pixel (x, y) (multiples of 8), blended by `mask`
    (resized to the source; 1 = source) where given. resize_source first resizes the source to
    the destination's size. Video latents work too: the mask (one per batch item) covers all
    frames, and a one-frame source goes into every frame."""
    category = "latent"
    destination: LATENT
    source: LATENT
    x: int = Int(0, min=0, max=MAX_SIZE, step=8)
    y: int = Int(0, min=0, max=MAX_SIZE, step=8)
    resize_source: bool = Bool(False)
    mask: MASK = None
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentCompositeMasked",), optional=("mask",))

    def run(self):
        from graphflow.images import composite_masked
        dest, src = _samples(self.destination, "destination", True), _samples(self.source, "source", True)
        if dest.ndim != src.ndim or dest.shape[1] != src.shape[1]:
            raise NodeInputError("source", f"a latent {tuple(src.shape)} can't go into destination "
                                           f"{tuple(dest.shape)}: give the same kind and channels")
        if dest.ndim == 5 and src.shape[2] not in (1, dest.shape[2]):
            raise NodeInputError("source", f"{src.shape[2]} frames; destination has {dest.shape[2]} "
                                           f"(give 1 or {dest.shape[2]})")
        out = dict(self.destination)
        out["samples"] = composite_masked(dest, src, self.x, self.y, self.mask, 8, self.resize_source)
        return out


def _masks_for_batch(latent: dict, batch: int):
    masks = latent["noise_mask"]
    if masks.ndim == 4 and masks.shape[0] < batch:
        masks = _repeat_to(masks, batch)
    return masks


class RepeatLatentBatch(Node):
    """Repeat the whole batch `amount` times; batch indices follow, continuing so each copy gets its
    own noise. A batch of noise masks is repeated as it is, as ComfyUI does: when there are fewer
    masks than latents the sampler cycles them over the longer batch (3 latents with masks m0 m1,
    amount 2: masks m0 m1 m0 m1 m0 m1 over latents 0 1 2 0 1 2)."""
    category = "latent/batch"
    samples: LATENT
    amount: int = Int(1, min=1, max=64)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("RepeatLatentBatch",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return repeated(inputs.get("samples"), widgets.get("amount"))

    def run(self):
        x = _samples(self.samples, "samples", video=True)
        out = dict(self.samples)
        out["samples"] = x.repeat(self.amount, *[1] * (x.ndim - 1))
        mask = self.samples.get("noise_mask")
        if mask is not None and mask.shape[0] > 1:
            out["noise_mask"] = mask.repeat(self.amount, *[1] * (mask.ndim - 1))
        if "batch_index" in self.samples:
            index = list(self.samples["batch_index"])
            offset = max(index) - min(index) + 1
            out["batch_index"] = index + [i + k * offset for k in range(1, self.amount) for i in index]
        return out


def batch_range(batch: int, index: int, length: int) -> tuple[int, int]:
    """ComfyUI's *FromBatch rule: an index past the end takes the last item; the length is cut to
    what the batch holds. (start, length)."""
    start = min(batch - 1, index)
    return start, min(batch - start, length)


def batch_range_estimate(size, widgets) -> Estimate:
    index, length = widgets.get("batch_index"), widgets.get("length")
    if size is None or not isinstance(index, int) or not isinstance(length, int):
        return Estimate(size)
    start, length = batch_range(size.batch, index, length)
    return Estimate(Size(length, size.height, size.width))


class LatentFromBatch(Node):
    """Take `length` latents starting at `batch_index` (clamped to the batch). They keep their
    indices, so the sampler gives each the starting noise of its index in the batch (drawn
    image by image from the seed, as ComfyUI does)."""
    category = "latent/batch"
    samples: LATENT
    batch_index: int = Int(0, min=0, max=63)
    length: int = Int(1, min=1, max=64)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentFromBatch",))

    @classmethod
    def estimate(cls, widgets, inputs):
        return batch_range_estimate(inputs.get("samples"), widgets)

    def run(self):
        x = _samples(self.samples, "samples", video=True)
        start, length = batch_range(x.shape[0], self.batch_index, self.length)
        out = dict(self.samples)
        out["samples"] = x[start:start + length].clone()
        if "noise_mask" in self.samples:
            masks = self.samples["noise_mask"]
            if masks.shape[0] == 1:
                out["noise_mask"] = masks.clone()
            else:
                out["noise_mask"] = _masks_for_batch(self.samples, x.shape[0])[start:start + length].clone()
        index = self.samples.get("batch_index")
        out["batch_index"] = list(range(start, start + length)) if index is None else list(index[start:start + length])
        return out


class LatentBlend(Node):
    """samples1 * blend_factor + samples2 * (1 - blend_factor); samples2 is resized to samples1
    (centre-cropped, bicubic) and repeated to its batch, or, as in ComfyUI, a samples1 batch of
    one is blended with each of samples2's."""
    category = "latent"
    samples1: LATENT
    samples2: LATENT
    blend_factor: float = Float(0.5, min=0.0, max=1.0, step=0.01)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentBlend",))

    def run(self):
        a, b = _samples(self.samples1, "samples1"), _samples(self.samples2, "samples2")
        if a.shape[1] != b.shape[1]:
            raise NodeInputError("samples2", f"{b.shape[1]} channels; samples1 has {a.shape[1]}")
        if a.shape[2:] != b.shape[2:]:
            b = _upscale(b, a.shape[3], a.shape[2], "bicubic", "center")
        if a.shape[0] != 1:  # a batch of one broadcasts over samples2's, as ComfyUI's arithmetic does
            b = _repeat_to(b, a.shape[0])
        out = dict(self.samples1)
        out["samples"] = a * self.blend_factor + b * (1 - self.blend_factor)
        return out


def _arithmetic(node, combine) -> dict:
    a, b = _samples(node.samples1, "samples1", video=True), _samples(node.samples2, "samples2", video=True)
    _check_joinable(a, b)
    out = dict(node.samples1)
    out["samples"] = combine(a, _fit(a, b))
    return out


class LatentAdd(Node):
    """samples1 + samples2 (samples2 resized and repeated to samples1's shape)."""
    category = "latent/advanced"
    samples1: LATENT
    samples2: LATENT
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentAdd",))

    def run(self):
        import torch
        return _arithmetic(self, torch.add)


class LatentSubtract(Node):
    """samples1 - samples2 (samples2 resized and repeated to samples1's shape)."""
    category = "latent/advanced"
    samples1: LATENT
    samples2: LATENT
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentSubtract",))

    def run(self):
        import torch
        return _arithmetic(self, torch.sub)


class LatentMultiply(Node):
    """samples * multiplier."""
    category = "latent/advanced"
    samples: LATENT
    multiplier: float = Float(1.0, min=-10.0, max=10.0, step=0.01)
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LatentMultiply",))

    def run(self):
        out = dict(self.samples)
        out["samples"] = _samples(self.samples, "samples", video=True) * self.multiplier
        return out


# ComfyUI's .latent file: safetensors with "latent_tensor" (the raw VAE latent) and an empty
# "latent_format_version_0" marker; files without the marker are older ones holding SD1's
# scaled latent, which is divided by 0.18215 on loading.
LATENT_EXTENSION = ".latent"
OLD_LATENT_SCALE = 0.18215


class SaveLatent(Node):
    """Save latents to the outputs folder as a .latent file (ComfyUI's format: safetensors with
    the raw latent under "latent_tensor"; video latents [B, C, frames, h, w] too), with the
    workflow in its metadata. Copy it to the inputs folder to load it with LoadLatent."""
    category = "latent"
    output_node = True
    samples: LATENT
    filename_prefix: str = Text("latents/graphflow", file_name=True)
    comfy = ComfyAlias(("SaveLatent",))

    def run(self):
        import torch
        from safetensors.torch import save_file

        video = isinstance(self.samples, dict) and torch.is_tensor(self.samples.get("samples")) \
            and self.samples["samples"].ndim == 5
        x = self.samples["samples"] if video else _samples(self.samples, "samples")
        try:
            folder, stem = folders.output_location(self.filename_prefix)
        except ValueError as e:
            raise NodeInputError("filename_prefix", str(e)) from None
        from nodes.image import _next_counter, _write_new

        tensors = {"latent_tensor": x.detach().cpu().contiguous(), "latent_format_version_0": torch.tensor([])}
        metadata = workflow_texts() or None
        name, _ = _write_new(lambda path: save_file(tensors, str(path), metadata=metadata), folder, stem,
                             _next_counter(folder, stem), "_" + LATENT_EXTENSION)
        subfolder = subfolder_name(folders.outputs, folder)
        show(latents=[{"filename": name, "subfolder": subfolder, "type": "output"}])


def _latent_files() -> list[str]:
    names = set()
    for base in folders.input_dirs():
        if base.is_dir():
            names.update(p.relative_to(base).as_posix() for p in base.rglob("*" + LATENT_EXTENSION) if p.is_file())
    return sorted(names)


class LoadLatent(Node):
    """Load a .latent file (ComfyUI's format, as SaveLatent writes it) from the inputs folder."""
    category = "latent"
    latent: str = Choice(_latent_files, description="a .latent file in the inputs folder")
    outputs = {"latent": LATENT}
    comfy = ComfyAlias(("LoadLatent",))

    @classmethod
    def fingerprint(cls, latent):
        stat = folders.input_path(latent).stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"

    def run(self):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(folders.input_path(self.latent)), device="cpu")
        except (FileNotFoundError, SafetensorError, OSError) as e:
            raise NodeInputError("latent", f"can't read {self.latent!r} as a .latent file: {e}") from None
        samples = tensors.get("latent_tensor")
        if samples is None or samples.ndim != 4:
            raise NodeInputError("latent", f"{self.latent!r} holds no 'latent_tensor' [B, C, h, w] "
                                           f"(keys: {sorted(tensors)})")
        multiplier = 1.0 if "latent_format_version_0" in tensors else 1.0 / OLD_LATENT_SCALE
        return {"samples": samples.float() * multiplier}
