"""Image upscale models (ESRGAN, RealESRGAN, SwinIR, HAT, DAT, ...) through spandrel, run in tiles.

Loading: we read the file ourselves (safetensors, or a pickle only through
torch.load(weights_only=True) via WeightFile) and hand spandrel the state dict; spandrel
recognises the architecture from the keys. A file spandrel does not recognise, or that is not
a single-image model (a LoRA, a checkpoint, an inpainting or restoration model), is refused
with a message naming the file.

Tiling: the image is cut into tiles of `tile` pixels (the last one in each direction moved back
to end at the border) that overlap their neighbours by `overlap` pixels. Each upscaled tile is
weighted by a feather that rises linearly from 1/(overlap*scale) at a tile edge that lies inside
the image to 1 at `overlap * scale` output pixels in (edges on the image border keep weight 1),
and the weighted tiles are averaged. So away from seams (further than the model's receptive
field from any inner tile edge) the result is exactly the untiled one, and across a seam the two
tiles cross-fade instead of meeting at a hard edge. Peak memory is one tile's activations.
"""

from pathlib import Path

import torch

from .weight_files import CheckpointError, WeightFile

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32


def load_upscale_model(path, device=None):
    """A spandrel ImageModelDescriptor for an upscale-model file, in eval mode on `device`."""
    import spandrel

    path = Path(path)
    with WeightFile(path) as weights:
        state = {k: weights.get(k).clone() for k in weights.shapes}
    if "module.layers.0.residual_group.blocks.0.norm1.weight" in state:  # SwinIR saved from DataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        model = spandrel.ModelLoader(device=device or "cpu").load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise CheckpointError(
            f"{path.name} is not an upscale model spandrel recognises (ESRGAN, RealESRGAN, SwinIR, HAT, DAT, "
            f"...): its {len(state)} keys (e.g. {_sample_keys(state)}) match no known architecture") from None
    except Exception as e:  # a known architecture with inconsistent shapes
        raise CheckpointError(f"{path.name} looks like an upscale model but could not be built: "
                              f"{type(e).__name__}: {e}") from None
    if not isinstance(model, spandrel.ImageModelDescriptor) or model.purpose not in ("SR", "Restoration"):
        raise CheckpointError(f"{path.name} is a {model.architecture.name} {getattr(model, 'purpose', '')} model, "
                              f"not an image upscale model")
    return model.eval()


def _sample_keys(state: dict) -> str:
    return ", ".join(repr(k) for k in list(state)[:3])


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(length: int, fade: int, fade_start: bool, fade_end: bool) -> torch.Tensor:
    """1-D feather: rises over `fade` samples at a faded start, falls at a faded end."""
    w = torch.ones(length)
    if fade > 0:
        rise = torch.arange(1, fade + 1, dtype=torch.float32) / fade
        n = min(fade, length)
        if fade_start:
            w[:n] = torch.minimum(w[:n], rise[:n])
        if fade_end:
            w[length - n:] = torch.minimum(w[length - n:], rise[:n].flip(0))
    return w


def upscale(model, image: torch.Tensor, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
            on_tile=None) -> torch.Tensor:
    """IMAGE [B, H, W, 3] in 0..1 -> IMAGE [B, H*s, W*s, 3] with the model's scale s.

    tile <= 0 runs the whole image at once. on_tile(done, total) is called after each tile (raise in
    it to stop). The memory manager puts the network on the device for the run."""
    from graphflow import memory

    with memory.use(model.model, "upscale_model", f"upscale_model:{type(model.model).__name__}"):
        return _upscale(model, image, tile, overlap, on_tile, memory.manager().device_for(model.model))


def _upscale(model, image, tile, overlap, on_tile, device) -> torch.Tensor:
    scale = model.scale
    x = image.permute(0, 3, 1, 2).float()
    batch, channels, height, width = x.shape
    if tile <= 0:
        tile = max(height, width)
    tile = max(tile, 8)
    overlap = max(0, min(overlap, tile // 2))
    ys, xs = _starts(height, tile, overlap), _starts(width, tile, overlap)
    out = torch.zeros(batch, channels, height * scale, width * scale)
    weight = torch.zeros(1, 1, height * scale, width * scale)
    total, done = len(ys) * len(xs) * batch, 0
    with torch.no_grad():
        for b in range(batch):
            for y in ys:
                for x0 in xs:
                    piece = x[b:b + 1, :, y:y + tile, x0:x0 + tile].to(device)
                    result = model(piece).float().cpu().clamp(0, 1)
                    th, tw = result.shape[-2:]
                    fade = overlap * scale
                    wy = _ramp(th, fade, y > 0, y + tile < height)
                    wx = _ramp(tw, fade, x0 > 0, x0 + tile < width)
                    w = (wy[:, None] * wx[None, :])[None, None]
                    oy, ox = y * scale, x0 * scale
                    out[b:b + 1, :, oy:oy + th, ox:ox + tw] += result * w
                    if b == 0:
                        weight[..., oy:oy + th, ox:ox + tw] += w
                    done += 1
                    if on_tile is not None:
                        on_tile(done, total)
    return (out / weight).permute(0, 2, 3, 1).clamp(0, 1)


def upscale_fitting(model, image: torch.Tensor, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
                    on_tile=None, smallest: int = 64) -> torch.Tensor:
    """upscale(), halving the tile size each time the device runs out of memory (as ComfyUI does),
    down to `smallest` pixels."""
    if tile <= 0:
        tile = max(image.shape[1], image.shape[2])
    while True:
        try:
            return upscale(model, image, tile, overlap, on_tile)
        except torch.OutOfMemoryError:
            if tile <= smallest:
                raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        tile //= 2
