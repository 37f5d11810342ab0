"""MODEL patches that change the UNet's feature sizes (graphflow.models.deep_shrink)."""

from __future__ import annotations

from graphflow.api import MODEL, Bool, Choice, ComfyAlias, Float, Int, Node, NodeInputError
from graphflow.choices import DEEP_SHRINK_RESIZE_METHODS


class PatchModelAddDownscale(Node):
    """Kohya's Deep Shrink: between start_percent and end_percent of sampling, the UNet's features
    after input block `block_number` are shrunk by downscale_factor (and grown back in the decoder),
    so at resolutions above the model's own the early steps compose the image at its trained size
    (fewer doubled subjects). downscale_after_skip keeps the full-size features for the skip
    connection. For UNet models (SD1.x, SD2.x, SDXL)."""
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
        from graphflow.models.deep_shrink import apply_deep_shrink
        blocks = getattr(getattr(self.model, "unet", None), "input_blocks", None)
        if blocks is None:
            raise NodeInputError("model", "Deep Shrink needs a UNet model (SD1.x, SD2.x, SDXL)")
        if self.block_number >= len(blocks):
            raise NodeInputError("block_number", f"this UNet has input blocks 0 to {len(blocks) - 1}, "
                                                 f"got {self.block_number}")
        return apply_deep_shrink(self.model, self.block_number, self.downscale_factor, self.start_percent,
                                 self.end_percent, self.downscale_after_skip, self.downscale_method,
                                 self.upscale_method)
