"""MODEL patches that change the UNet's feature sizes or the tokens its self-attention sees
(graphflow.models.deep_shrink, graphflow.models.hypertile, graphflow.models.tome)."""

from __future__ import annotations

from graphflow.api import MODEL, Bool, Choice, ComfyAlias, Float, Int, Node, NodeInputError
from graphflow.choices import DEEP_SHRINK_RESIZE_METHODS


class PatchModelAddDownscale(Node):
    """Kohya's Deep Shrink: between start_percent and end_percent of sampling, the UNet's features
    after input block `block_number` are shrunk by downscale_factor (and grown back in the decoder),
    so at resolutions above the model's own the early steps compose the image at its trained size
    (fewer doubled subjects). downscale_after_skip keeps the full-size features for the skip
    connection. For UNet models (SD1.x, SD2.x, SDXL, SVD); others, and a block_number past the UNet's
    input blocks, pass unchanged (as in ComfyUI, with a warning)."""
    category = "model_patches/unet"
    model: MODEL
    block_number: int = Int(3, min=1, max=32)
    downscale_factor: float = Float(2.0, min=0.1, max=9.0, step=0.001)
    start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001)
    end_percent: float = Float(0.35, min=0.0, max=1.0, step=0.001)
    downscale_after_skip: bool = Bool(True)
    downscale_method: str = Choice(DEEP_SHRINK_RESIZE_METHODS, "bicubic")
    upscale_method: str = Choice(DEEP_SHRINK_RESIZE_METHODS, "bicubic")
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("PatchModelAddDownscale",))

    def run(self):
        from graphflow.context import warn
        from graphflow.models.deep_shrink import apply_deep_shrink
        if not _is_unet(self.model, "Deep Shrink"):
            return self.model
        blocks = self.model.unet.input_blocks
        if self.block_number >= len(blocks):  # ComfyUI's patch then never fires
            warn(f"Deep Shrink: this UNet has input blocks 0 to {len(blocks) - 1}, block_number is "
                 f"{self.block_number}: the model is passed on unchanged (as in ComfyUI)")
            return self.model
        return apply_deep_shrink(self.model, self.block_number, self.downscale_factor, self.start_percent,
                                 self.end_percent, self.downscale_after_skip, self.downscale_method,
                                 self.upscale_method)


def _is_unet(model, what: str) -> bool:
    """Whether the MODEL has a UNet to patch. Another diffusion model (FLUX, SD3, ...) has none of
    the blocks ComfyUI's patch hooks into, so ComfyUI's node leaves it as it is: False, with a
    warning (the node then passes the model on unchanged). Not a MODEL at all: an error."""
    from graphflow.context import warn
    unet = getattr(model, "unet", None)
    if unet is None:
        raise NodeInputError("model", f"{what} needs a diffusion MODEL")
    if getattr(unet, "input_blocks", None) is None:
        warn(f"{what} patches UNet models (SD1.x, SD2.x, SDXL); this model has no UNet blocks and is "
             f"passed on unchanged (as in ComfyUI)")
        return False
    return True


class HyperTile(Node):
    """HyperTile: the self-attention of the UNet's high-resolution blocks runs on tiles of about
    tile_size pixels instead of the whole image, which makes large images much faster (the
    result changes a little). max_depth also tiles that many lower-resolution levels (SDXL has
    no attention at the top level: use max_depth 1 or more there); scale_depth doubles the tile
    per level; swap_size is how many tile sizes are drawn from. Tiles, grids and blocks as
    ComfyUI's (each tile of queries attends to a run of the untiled tokens; see
    graphflow.models.hypertile). For UNet models; others pass unchanged (as in ComfyUI, with a
    warning)."""
    category = "model_patches/unet"
    model: MODEL
    tile_size: int = Int(256, min=1, max=2048)
    swap_size: int = Int(2, min=1, max=128)
    max_depth: int = Int(0, min=0, max=10)
    scale_depth: bool = Bool(False)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("HyperTile",))

    def run(self):
        from graphflow.models.hypertile import apply_hypertile
        if not _is_unet(self.model, "HyperTile"):
            return self.model
        return apply_hypertile(self.model, self.tile_size, self.swap_size, self.max_depth, self.scale_depth)


class TomePatchModel(Node):
    """Token Merging (ToMe for Stable Diffusion): before the self-attention of the UNet's
    full-resolution blocks, the queries of `ratio` of the image tokens are merged into similar
    ones (at most 3/4; they still attend to every token, as in ComfyUI), and split again after
    it: faster sampling of large images at a small cost in detail. For UNet models (SDXL has no
    attention at full resolution: nothing changes there); others pass unchanged (as in ComfyUI,
    with a warning)."""
    category = "model_patches/unet"
    model: MODEL
    ratio: float = Float(0.3, min=0.0, max=1.0, step=0.01)
    outputs = {"model": MODEL}
    comfy = ComfyAlias(("TomePatchModel",))

    def run(self):
        from graphflow.models.tome import apply_tome
        if not _is_unet(self.model, "Token Merging"):
            return self.model
        return apply_tome(self.model, self.ratio)
