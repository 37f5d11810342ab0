"""Image upscale models (ESRGAN, RealESRGAN, SwinIR, HAT, DAT, ...) through spandrel, run in tiles.

Loading: we read the file ourselves (safetensors, or a pickle only through
torch.load(weights_only=True) via WeightFile) and hand spandrel the state dict; spandrel
recognises the architecture from the keys. A file spandrel does not recognise, or that is not
a single-image model (a LoRA, a checkpoint, an inpainting model), is refused with a message
naming the file. Every single-image model is taken, as ComfyUI takes it: super-resolution,
restoration and face restoration (GFPGAN, CodeFormer, ...) alike.

Tiling, as ComfyUI's tiled_scale: an image larger than `tile` pixels is cut into tiles that start
every tile - overlap pixels (the last one in each direction cut short at the border), so that
neighbours overlap by `overlap` pixels. Each upscaled tile is weighted by a feather that rises
linearly from 1/(overlap*scale) at each of its edges to 1 at `overlap * scale` output pixels in,
the weighted tiles are averaged (on the border only one tile counts, so its feather cancels), and
the result is clamped to 0..1 once. So away from seams (further than the model's receptive field
from any inner tile edge) the result is exactly the untiled one, and across a seam the two tiles
cross-fade instead of meeting at a hard edge. Peak memory is one tile's activations.
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
    if not isinstance(model, spandrel.ImageModelDescriptor):
        raise CheckpointError(f"{path.name} is a {model.architecture.name} {getattr(model, 'purpose', '')} model, "
                              f"not a single-image model (an image upscale model)")
    return model.eval()


def _sample_keys(state: dict) -> str:
    return ", ".join(repr(k) for k in list(state)[:3])


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    """ComfyUI's tile starts along one axis: every tile - overlap pixels while a tile still
    reaches past the previous one's overlap; the last tile is cut short at the border."""
    if size <= tile:
        return [0]
    return list(range(0, size - overlap, tile - overlap))


def _feather(length: int, fade: int) -> torch.Tensor:
    """1-D tile weight: rising over `fade` samples from 1/fade at both ends (multiplied where the
    two ends meet), flat 1 when the tile is no longer than the fade."""
    w = torch.ones(length)
    if fade >= length:
        return w
    for t in range(fade):
        w[t] *= (t + 1) / fade
        w[length - 1 - t] *= (t + 1) / fade
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
    whole = height <= tile and width <= tile
    ys, xs = _starts(height, tile, overlap), _starts(width, tile, overlap)
    out = torch.zeros(batch, channels, height * scale, width * scale)
    weight = torch.zeros(1, 1, height * scale, width * scale)
    total, done = len(ys) * len(xs) * batch, 0
    with torch.no_grad():
        for b in range(batch):
            for y in ys:
                for x0 in xs:
                    piece = x[b:b + 1, :, y:y + tile, x0:x0 + tile].to(device)
                    result = model(piece).float().cpu()
                    th, tw = result.shape[-2:]
                    fade = round(overlap * scale)
                    w = (_feather(th, fade)[:, None] * _feather(tw, fade)[None, :])[None, None]
                    if whole:  # one tile: the bare network, as ComfyUI runs an image that fits
                        w = torch.ones_like(w)
                    oy, ox = y * scale, x0 * scale
                    out[b:b + 1, :, oy:oy + th, ox:ox + tw] += result * w
                    if b == 0:
                        weight[..., oy:oy + th, ox:ox + tw] += w
                    done += 1
                    if on_tile is not None:
                        on_tile(done, total)
    # Clamped once, after the cross-fade (a tile's overshoot is averaged, not cut, first).
    return (out / weight).permute(0, 2, 3, 1).clamp(0, 1)


def upscale_fitting(model, image: torch.Tensor, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
                    on_tile=None, smallest: int = 128) -> torch.Tensor:
    """upscale(), halving the tile size each time the device runs out of memory, as ComfyUI does:
    512, 256, 128, then the error (a half below `smallest` is not tried)."""
    if tile <= 0:
        tile = max(image.shape[1], image.shape[2])
    while True:
        try:
            return upscale(model, image, tile, overlap, on_tile)
        except torch.OutOfMemoryError:
            if tile // 2 < smallest:
                raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        tile //= 2
