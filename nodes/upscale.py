"""Upscale models: ESRGAN-family and transformer super-resolution models through spandrel, run in
overlapping tiles so a 4x upscale of a large image fits in memory. Files in models/upscale_models/."""

from graphflow.api import (IMAGE, Choice, ComfyAlias, Int, Node, NodeInputError, folders, progress,
                           socket_type)

UPSCALE_MODEL = socket_type("UPSCALE_MODEL", "#90a4ae", "An image super-resolution model (spandrel)")


class LoadUpscaleModel(Node):
    """Load an image upscale model (.safetensors, or a .pth/.pt read as plain tensors only):
    ESRGAN, RealESRGAN, SwinIR, HAT, DAT and the other architectures spandrel recognises from the keys."""
    category = "loaders"
    model_name: str = Choice(lambda: folders.list_models("upscale_models"), model_folder="upscale_models")
    outputs = {"upscale_model": UPSCALE_MODEL}
    comfy = ComfyAlias(("UpscaleModelLoader",))

    @classmethod
    def fingerprint(cls, model_name):
        return folders.model_state("upscale_models", model_name)

    def run(self):
        from graphflow.models.upscale import load_upscale_model
        from graphflow.models.weight_files import CheckpointError

        try:
            path = folders.find_model("upscale_models", self.model_name)
            return load_upscale_model(path)  # on the CPU: the memory manager moves it in to run
        except (FileNotFoundError, ValueError, CheckpointError) as e:
            raise NodeInputError("model_name", str(e)) from None


class ImageUpscaleWithModel(Node):
    """Upscale images with an upscale model, in tiles of tile_size pixels overlapping by overlap
    pixels, placed as ComfyUI places them (the last tile of a row or column cut short at the
    border); neighbouring tiles are cross-faded linearly over the overlap, so the result equals
    the untiled one away from the seams, and clamped to 0..1 after. tile_size 0 runs the whole
    image at once. When the device runs out of memory the tile size is halved and the image done
    again, down to 128 pixels as in ComfyUI. Progress is reported per tile and the run can be
    interrupted between tiles."""
    category = "image/upscaling"
    upscale_model: UPSCALE_MODEL
    image: IMAGE
    tile_size: int = Int(512, min=0, max=8192, step=8)
    overlap: int = Int(32, min=0, max=512)
    outputs = {"image": IMAGE}
    comfy = ComfyAlias(("ImageUpscaleWithModel",), optional=("tile_size", "overlap"))

    def run(self):
        from graphflow.models.upscale import upscale_fitting

        if self.image.shape[-1] != self.upscale_model.input_channels:
            raise NodeInputError("image", f"the model takes {self.upscale_model.input_channels}-channel images, "
                                          f"got {self.image.shape[-1]} channels")
        return upscale_fitting(self.upscale_model, self.image, self.tile_size, self.overlap, on_tile=progress)
